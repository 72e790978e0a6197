"""Configuration: precedence, validation messages that name the variable and its values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

from kokorod.config import SETTINGS, ConfigError, load, origins


def test_defaults() -> None:
    cfg = load({})
    assert cfg.provider == "auto" and cfg.chunk_ms == 50 and cfg.max_frame_bytes == 1 << 20
    assert cfg.coreml_compute_units == "CPUOnly" and not cfg.verbose_logs


def test_env_beats_file_beats_default(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('chunk_ms = 100\nvoice = "jm_kumo"\n')
    cfg = load({"KOKORO_CONFIG": str(conf), "KOKORO_CHUNK_MS": "40"})
    assert cfg.chunk_ms == 40 and cfg.voice == "jm_kumo"


@pytest.mark.parametrize(("env", "needles"), [
    ({"KOKORO_PROVIDER": "tpu"}, ["KOKORO_PROVIDER", "auto, cpu, coreml"]),
    ({"KOKORO_COREML_MODEL_FORMAT": "onnx"}, ["KOKORO_COREML_MODEL_FORMAT", "MLProgram"]),
    ({"KOKORO_COREML_SPECIALIZATION": "x"}, ["FastPrediction, Default"]),
    ({"KOKORO_COREML_COMPUTE_UNITS": "GPU"}, ["CPUOnly, CPUAndGPU, CPUAndNeuralEngine, ALL"]),
    ({"KOKORO_MEMORY_ARENA_SIZE_MB": "-1"}, ["KOKORO_MEMORY_ARENA_SIZE_MB", "range"]),
    ({"KOKORO_CHUNK_MS": "10"}, ["KOKORO_CHUNK_MS", "20 to 500"]),
    ({"KOKORO_VERBOSE_LOGS": "maybe"}, ["KOKORO_VERBOSE_LOGS"]),
])
def test_invalid_values_name_variable_and_allowed_values(env: dict[str, str],
                                                         needles: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        load(env)
    for needle in needles:
        assert needle in str(err.value)


def test_choices_are_case_insensitive() -> None:
    assert load({"KOKORO_COREML_COMPUTE_UNITS": "all"}).coreml_compute_units == "ALL"


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text("chunkms = 3\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load({"KOKORO_CONFIG": str(conf)})


def test_as_env_roundtrip() -> None:
    cfg = load({"KOKORO_CHUNK_MS": "80", "KOKORO_VERBOSE_LOGS": "1"})
    assert cfg.as_env() == {"KOKORO_CHUNK_MS": "80", "KOKORO_VERBOSE_LOGS": "1"}
    assert load(cfg.as_env()) == cfg


def test_every_setting_has_a_kokoro_env_var() -> None:
    assert all(s.env.startswith("KOKORO_") for s in SETTINGS)
    assert len({s.env for s in SETTINGS}) == len(SETTINGS)


def test_every_config_key_is_its_variable_in_lower_case() -> None:
    """README's rule: a config-file key is the variable's name without KOKORO_, lower case."""
    assert all(s.env == "KOKORO_" + s.name.upper() for s in SETTINGS)


def test_a_bad_value_is_a_warning_for_control_commands(tmp_path: Path) -> None:
    conf = tmp_path / "kokorod.toml"
    conf.write_text('chunk_ms = "bad"\nvoice = "bf_emma"\n')
    env = {"KOKORO_CONFIG": str(conf), "KOKORO_THREADS": "abc"}
    with pytest.raises(ConfigError, match="whole number"):
        load(env)
    seen: list[str] = []
    cfg = load(env, on_error=lambda exc: seen.append(str(exc)))
    assert cfg.chunk_ms == 50 and cfg.threads == 0 and cfg.voice == "bf_emma"
    assert any("KOKORO_CHUNK_MS" in m and str(conf) in m for m in seen)
    assert any("KOKORO_THREADS (environment): 'abc' is not a whole number" in m for m in seen)
    where, _, path = origins(env)
    assert (where["voice"], where["threads"], where["segment_chars"]) == (str(conf),
                                                                         "environment",
                                                                         "default")
    assert path == conf


def test_control_commands_work_with_a_broken_config(tmp_path: Path) -> None:
    conf = tmp_path / "kokorod.toml"
    conf.write_text('chunk_ms = "bad"\n')
    env = {**os.environ, "KOKORO_CONFIG": str(conf)}
    socket = subprocess.run([sys.executable, "-m", "kokorod", "socket", "--socket",
                             str(tmp_path / "k.sock")], env=env, capture_output=True, text=True,
                            timeout=60, cwd=REPO)
    assert socket.returncode == 0 and socket.stdout.strip() == str(tmp_path / "k.sock")
    assert "KOKORO_CHUNK_MS" in socket.stderr and "configuration error" in socket.stderr
    stop = subprocess.run([sys.executable, "-m", "kokorod", "stop"], env=env,
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert stop.returncode == 0
    shown = subprocess.run([sys.executable, "-m", "kokorod", "config"], env=env,
                           capture_output=True, text=True, timeout=60, cwd=REPO)
    assert f"config file: {conf} (found" in shown.stdout
    assert "KOKORO_VERBOSE_LOGS=0  [default]" in shown.stdout
    assert all(len(line) <= 100 or "KOKORO_MODEL_BASE_URL" in line
               for line in shown.stdout.splitlines())


def test_status_counts_add_up() -> None:
    from kokorod.ctl.status_text import requests_line

    line = requests_line({"requests": 48, "completed": 38, "cancelled": 7, "failed": 1,
                             "refused": 4})
    assert line == "48: 38 completed, 7 cancelled, 1 failed, 2 in flight; 4 refused"
