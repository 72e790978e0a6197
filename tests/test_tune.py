"""`kokorod tune`: real engines measured, the table and the choice, the config written
(its other lines kept), --dry-run writing nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kokorod.config import load, read_config_file, write_settings
from kokorod.ctl import tune


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


def test_a_change_within_the_noise_keeps_the_configured_settings() -> None:
    configured = tune.Result("as configured", {}, 500.0, 0.5)
    again = tune.Result(tune.AGAIN, {}, 600.0, 0.5)  # 20 % apart: this machine's noise
    slightly = tune.Result("graph optimisation basic", {"graph_optimization": "basic"},
                           420.0, 0.5)  # 16 % faster than the better run: within the noise
    assert tune.noise([configured, again, slightly]) == 0.2
    assert tune.best([configured, again, slightly]) is configured
    clearly = tune.Result("2 threads", {"threads": 2}, 300.0, 0.5)
    assert tune.best([configured, again, slightly, clearly]) is clearly
    # one run of the configured settings: a change needs MIN_GAIN
    assert tune.best([configured, tune.Result("x", {"threads": 1}, 470.0, 0.5)]) is configured
    assert tune.best([configured, tune.Result("x", {"threads": 1}, 440.0, 0.5)]).name == "x"
    # configured settings that cannot keep up are no reference
    lagging = tune.Result("as configured", {}, 300.0, 0.95)
    assert tune.best([lagging, slightly]) is slightly


def test_the_verdict_says_what_is_kept_and_why() -> None:
    configured = tune.Result("as configured", {}, 500.0, 0.5)
    again = tune.Result(tune.AGAIN, {}, 520.0, 0.5)
    slightly = tune.Result("2 threads", {"threads": 2}, 470.0, 0.5)
    results = [configured, again, slightly]
    said = tune.verdict(results, tune.best(results), dry_run=True)
    assert said.startswith("would keep the configured settings") and "2 threads" in said
    assert "6% sooner" in said and "10% sooner" in said
    clearly = tune.Result("1 thread", {"threads": 1}, 300.0, 0.5)
    said = tune.verdict([*results, clearly], tune.best([*results, clearly]), dry_run=False)
    assert said == "keeps 1 thread: first audio 300 ms against 500 ms as configured " \
                   "(40% sooner; 10% needed)"
    lagging = [tune.Result("as configured", {}, 900.0, 0.95),
               tune.Result("2 threads", {"threads": 2}, 700.0, 0.85)]
    said = tune.verdict(lagging, tune.best(lagging), dry_run=True)
    assert "none keeps up" in said and "the fastest, 2 threads" in said and "0.850" in said
    assert tune.progress_line(lagging[1]) == \
        "  2 threads: first audio 700 ms, RTF 0.850 (does not keep up: RTF above 0.8)"


@pytest.mark.model  # its client autostarts a daemon (or tune builds engines)
def test_tune_measures_real_engines_and_writes_the_winner(tmp_path: Path) -> None:
    config = tmp_path / "kokorod.toml"
    config.write_text("# kept\n")
    report = tmp_path / "tune.json"
    env = {**os.environ, "KOKORO_CONFIG": str(config),
           "KOKORO_SOCKET": str(tmp_path / "none.sock")}
    cmd = [sys.executable, "-m", "kokorod", "tune", "--texts", "1", "--json", str(report)]
    dry = subprocess.run([*cmd, "--dry-run", "--only", "as configured"], env=env,
                         capture_output=True, text=True, timeout=300)
    (streamed,) = json.loads(report.read_text())["results"]
    assert 0 < streamed["rtf"] < 5 and streamed["first_audio_ms"] > 0
    # A dry run measured and said so: exit 0 even where nothing keeps up (a busy CPU),
    # with a line per candidate as it is measured and what would be kept, and why.
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "dry run: nothing written" in dry.stdout
    assert f"  as configured: first audio {streamed['first_audio_ms']:.0f} ms, RTF " \
        f"{streamed['rtf']:.3f}" in dry.stdout, dry.stdout
    said = dry.stdout.splitlines()
    assert said.index("  measuring: as configured …") + 1 == \
        said.index(next(line for line in said if line.startswith("  as configured: first")))
    if streamed["rtf"] <= tune.MAX_RTF:
        assert "would keep the configured settings" in dry.stdout, dry.stdout
    else:
        assert "none keeps up" in dry.stdout and "the fastest, as configured" in dry.stdout
    assert config.read_text() == "# kept\n"
    assert "as configured" in dry.stdout and "first audio" in dry.stdout
    assert streamed["schedule"] and streamed["settings"]["streaming_vocoder"] is True
    real = subprocess.run([*cmd, "--only", "streaming vocoder off"], env=env,
                          capture_output=True, text=True, timeout=300)
    data = json.loads(report.read_text())
    (whole,) = data["results"]
    assert whole["settings"]["streaming_vocoder"] is False and not whole["schedule"]
    if whole["rtf"] <= tune.MAX_RTF:  # it keeps up: its settings are in the file
        assert real.returncode == 0, real.stderr
        assert config.read_text().startswith("# kept\n")
        assert read_config_file(config)["streaming_vocoder"] is False
        assert "not running" in real.stdout  # no daemon on that socket to reload
    else:  # this machine was too slow for it: nothing written, and said so
        assert real.returncode == 1 and config.read_text() == "# kept\n"
