"""Configuration: precedence, validation messages that name the variable and its values."""

from __future__ import annotations

from pathlib import Path

import pytest

from kokorod.config import SETTINGS, ConfigError, load


def test_defaults() -> None:
    cfg = load({})
    assert cfg.provider == "auto" and cfg.chunk_ms == 50 and cfg.max_frame_bytes == 1 << 20
    assert cfg.coreml_compute_units == "CPUOnly" and not cfg.verbose


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
