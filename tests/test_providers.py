"""Provider choice: CoreML options built and checked, failures fall back to CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest

from kokorod.config import load
from kokorod.store import models
from kokorod.synth import providers


def test_coreml_options_follow_config(tmp_path: Path) -> None:
    cfg = load({"KOKORO_COREML_COMPUTE_UNITS": "ALL", "KOKORO_COREML_MODEL_FORMAT":
                "NeuralNetwork", "KOKORO_COREML_SPECIALIZATION": "Default"})
    model = tmp_path / "m.onnx"
    model.write_bytes(b"one")
    opts = providers.coreml_options(cfg, model, tmp_path / "cache")
    assert opts["MLComputeUnits"] == "ALL" and opts["ModelFormat"] == "NeuralNetwork"
    assert opts["SpecializationStrategy"] == "Default"
    cache = Path(opts["ModelCacheDirectory"])
    assert cache.parent == tmp_path / "cache" and cache.is_dir()
    assert all(isinstance(v, str) for v in opts.values())  # provider options are strings


def test_plan_prefers_coreml_where_available_with_cpu_fallback() -> None:
    cfg = load({})
    chosen = providers.plan(cfg, available=[providers.COREML, providers.CPU])  # no model known
    assert [c.provider for c in chosen] == [providers.COREML, providers.CPU]
    assert chosen[0].options["MLComputeUnits"] == "CPUOnly"
    assert [c.provider for c in providers.plan(cfg, available=[providers.CPU])] == [
        providers.CPU]
    forced = providers.plan(load({"KOKORO_PROVIDER": "cpu"}),
                            available=[providers.COREML, providers.CPU])
    assert [c.provider for c in forced] == [providers.CPU]
    missing = providers.plan(load({"KOKORO_PROVIDER": "coreml"}), available=[providers.CPU])
    assert missing[0].provider == providers.CPU and "not in this" in missing[0].reason


def test_coreml_failure_falls_back_to_cpu_with_reason() -> None:
    """The CoreML session is attempted with its real options; its failure leads to CPU."""
    model, _ = models.embedded_model()
    attempts: list[Any] = []

    def factory(path: str, sess_options: ort.SessionOptions, providers: list[Any]) -> Any:
        attempts.append(providers)
        if providers[0][0] == "CoreMLExecutionProvider":
            raise RuntimeError("CoreML compile failed")
        return ort.InferenceSession(path, sess_options=sess_options, providers=providers)

    session, choice = providers.create_session(
        model, load({"KOKORO_PROVIDER": "coreml"}), available=[providers.COREML, providers.CPU],
        factory=factory)
    assert attempts[0][0][0] == providers.COREML and attempts[0][-1] == providers.CPU
    assert choice.provider == providers.CPU and "CoreML compile failed" in choice.reason
    assert session.get_providers() == [providers.CPU]


def test_warmup_failure_also_falls_back() -> None:
    model, _ = models.embedded_model()
    calls = {"n": 0}

    def check(session: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("first provider crashed on warm-up")

    _, choice = providers.create_session(
        model, load({"KOKORO_PROVIDER": "coreml"}), check=check,
        available=[providers.COREML, providers.CPU],
        factory=lambda p, sess_options, providers: ort.InferenceSession(
            p, sess_options=sess_options, providers=["CPUExecutionProvider"]))
    assert choice.provider == providers.CPU and "warm-up" in choice.reason


def test_session_options_bound_memory() -> None:
    so = providers.session_options(load({"KOKORO_THREADS": "2"}))
    assert so.intra_op_num_threads == 2 and not so.enable_mem_pattern
    assert so.enable_cpu_mem_arena  # off costs ~35 % speed; shrinkage bounds it instead
    ro = providers.run_options()
    assert ro.get_run_config_entry("memory.enable_memory_arena_shrinkage") == "cpu:0"


def test_all_failing_is_one_error() -> None:
    def factory(*_: Any, **__: Any) -> Any:
        raise RuntimeError("bad model")

    with pytest.raises(RuntimeError, match="no execution provider"):
        providers.create_session(Path("m.onnx"), load({}), factory=factory)
