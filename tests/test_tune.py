"""`kokorod tune`: real engines measured, the table and the choice, the config written
(its other lines kept), --dry-run writing nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kokorod import tune
from kokorod.config import load, read_config_file, write_settings


def test_write_settings_keeps_other_lines(tmp_path: Path) -> None:
    path = tmp_path / "kokorod.toml"
    path.write_text("# my settings\nvoice = \"bf_emma\"\nthreads = 4\n")
    write_settings(path, {"threads": 2, "streaming_vocoder": False,
                          "window_schedule": "48:3.600,16.00,35.00,0.470"})
    text = path.read_text()
    assert text.startswith("# my settings\nvoice = \"bf_emma\"\nthreads = 2\n")
    values = read_config_file(path)
    assert values == {"voice": "bf_emma", "threads": 2, "streaming_vocoder": False,
                      "window_schedule": "48:3.600,16.00,35.00,0.470"}
    config = load({"KOKORO_CONFIG": str(path)})
    assert config.threads == 2 and config.window_schedule.startswith("48:")


def test_best_keeps_up_first() -> None:
    fast_but_slow_rtf = tune.Result("a", {}, 200.0, 0.95)
    steady = tune.Result("b", {}, 300.0, 0.5)
    failed = tune.Result("c", {}, error="boom")
    assert tune.best([fast_but_slow_rtf, steady, failed]) is steady
    assert tune.best([fast_but_slow_rtf, failed]) is None
    shown = tune.table([fast_but_slow_rtf, steady, failed], steady)
    assert "*b" in shown and "failed: boom" in shown


def test_tune_measures_real_engines_and_writes_the_winner(tmp_path: Path) -> None:
    config = tmp_path / "kokorod.toml"
    config.write_text("# kept\n")
    report = tmp_path / "tune.json"
    env = {"KOKORO_CONFIG": str(config), "KOKORO_SOCKET": str(tmp_path / "none.sock")}
    cmd = [sys.executable, "-m", "kokorod", "tune", "--texts", "2", "--json", str(report),
           "--only", "as configured", "--only", "streaming vocoder off"]
    import os
    full_env = {**os.environ, **env}
    dry = subprocess.run([*cmd, "--dry-run"], env=full_env, capture_output=True, text=True,
                         timeout=300)
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing written" in dry.stdout and config.read_text() == "# kept\n"
    data = json.loads(report.read_text())
    assert data["cpu"] and [r["name"] for r in data["results"]] == [
        "as configured", "streaming vocoder off"]
    streamed, whole = data["results"]
    assert 0 < streamed["rtf"] < 5 and 0 < whole["rtf"] < 5
    assert streamed["first_audio_ms"] > 0 and streamed["schedule"]
    assert whole["settings"]["streaming_vocoder"] is False and not whole["schedule"]
    real = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=300)
    assert real.returncode in (0, 1), real.stderr
    if real.returncode == 0:  # a candidate kept up: its settings are in the file
        written = read_config_file(config)
        assert config.read_text().startswith("# kept\n")
        best = next(r for r in data["results"] if r["name"] == json.loads(
            report.read_text())["best"])
        assert written["streaming_vocoder"] == best["settings"]["streaming_vocoder"]
        assert "not running" in real.stdout
