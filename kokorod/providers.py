"""onnxruntime session construction: options, provider choice, CoreML with CPU fallback.

CoreML only exists on macOS builds of onnxruntime. Its options are built here
for real (and unit-tested); any failure to create or warm a CoreML session
falls back to CPU and the reason is kept for `status`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnxruntime as ort

from kokorod.config import Config
from kokorod_common import paths

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
COREML = "CoreMLExecutionProvider"

_arena_registered = False


@dataclass
class ProviderChoice:
    """What the session runs on, and why; reported by the `status` op."""

    provider: str
    reason: str
    options: dict[str, str] = field(default_factory=dict)
    fallback_from: str | None = None


def coreml_options(config: Config, cache_dir: Path | None = None) -> dict[str, str]:
    """CoreML provider options (onnxruntime's string-keyed provider-options API)."""
    cache = cache_dir or paths.data_dir() / "coreml-cache"
    return {
        "ModelFormat": config.coreml_model_format,
        "MLComputeUnits": config.coreml_compute_units,
        "SpecializationStrategy": config.coreml_specialization,
        "RequireStaticInputShapes": "0",
        "EnableOnSubgraphs": "0",
        "ModelCacheDirectory": str(cache),
    }


def thread_count(config: Config) -> int:
    return config.threads or os.cpu_count() or 1


def session_options(config: Config) -> ort.SessionOptions:
    """Options for a long-lived session fed inputs of ever-changing length."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = thread_count(config)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Every request has a new input length; memory patterns would be planned
    # (and kept) per shape, so they only grow memory here.
    so.enable_mem_pattern = False
    # The arena stays on: without it every run mallocs afresh, measured 35 % slower
    # (RTF 0.94 vs 0.67). Its growth is undone after each run by run_options().
    if config.memory_arena_size_mb > 0:
        _register_capped_arena(config.memory_arena_size_mb)
        so.add_session_config_entry("session.use_env_allocators", "1")
    if not config.verbose:
        so.log_severity_level = 3
    return so


def run_options() -> ort.RunOptions:
    """Shrink the CPU arena back after every run.

    Each request has a new input length, so a plain arena keeps the largest
    buffers of every shape it has seen (measured: 226 → 505 MB RSS over six
    mixed requests); with shrinkage RSS stayed at 241 MB at the same speed.
    """
    ro = ort.RunOptions()
    ro.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return ro


def _register_capped_arena(size_mb: int) -> None:
    """One shared CPU arena capped at size_mb, growing only by what is asked for."""
    global _arena_registered
    if _arena_registered:
        return
    mem_info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                 ort.OrtMemType.DEFAULT)
    arena = ort.OrtArenaCfg({"max_mem": size_mb << 20, "arena_extend_strategy": 1})
    ort.create_and_register_allocator(mem_info, arena)
    _arena_registered = True


def plan(config: Config, available: list[str] | None = None) -> list[ProviderChoice]:
    """Providers to try, in order; CPU is always the last resort."""
    available = ort.get_available_providers() if available is None else available
    cpu = ProviderChoice(CPU, "default")
    if config.provider == "cpu":
        return [ProviderChoice(CPU, "KOKORO_PROVIDER=cpu")]
    if COREML in available:
        why = "KOKORO_PROVIDER=coreml" if config.provider == "coreml" else "auto: CoreML available"
        fallback = ProviderChoice(CPU, "fallback", fallback_from=COREML)
        return [ProviderChoice(COREML, why, coreml_options(config)), fallback]
    if config.provider == "coreml":
        return [ProviderChoice(CPU, "KOKORO_PROVIDER=coreml but CoreML is not in this "
                                    "onnxruntime build", fallback_from=COREML)]
    cpu.reason = "auto: CoreML not available"
    return [cpu]


def create_session(
    model: Path,
    config: Config,
    check: Callable[[ort.InferenceSession], Any] | None = None,
    available: list[str] | None = None,
    factory: Callable[..., ort.InferenceSession] = ort.InferenceSession,
) -> tuple[ort.InferenceSession, ProviderChoice]:
    """Create the session on the first provider that loads and passes `check` (a warm-up)."""
    errors: list[str] = []
    for choice in plan(config, available):
        providers: list[Any] = [(choice.provider, choice.options)] if choice.options else [
            choice.provider]
        if choice.provider != CPU:
            providers.append(CPU)
        try:
            session = factory(str(model), sess_options=session_options(config),
                              providers=providers)
            if check is not None:
                check(session)
        except Exception as exc:  # any provider failure → next choice
            errors.append(f"{choice.provider}: {exc}")
            log.warning("could not use %s (%s); falling back", choice.provider, exc)
            continue
        if errors:
            choice.reason = f"fallback after {'; '.join(errors)}"
        log.info("onnxruntime provider %s (%s)", choice.provider, choice.reason)
        return session, choice
    raise RuntimeError("no execution provider could load the model: " + "; ".join(errors))
