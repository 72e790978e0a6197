"""onnxruntime session construction: options, provider choice, CoreML with CPU fallback.

CoreML only exists on macOS builds of onnxruntime. Its options are built here
for real (and unit-tested); any failure to create or warm a CoreML session
falls back to CPU and the reason is kept for `status`. `auto` keeps an
int8-quantized model (the embedded one) on CPU: CoreML runs none of its integer
operators (ConvInteger, MatMulInteger, DynamicQuantizeLinear), so it would run
as fragments between CPU partitions, slower than CPU alone. A model on which
CoreML failed once is remembered, and later starts use CPU for it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnxruntime as ort

from kokorod.config import Config
from kokorod_common import atomic, paths

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


QUANTIZED_OPS = frozenset({"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear",
                           "QLinearConv", "QLinearMatMul"})
CACHE_MAX_AGE_S = 30 * 86400


def _stamp(model: Path) -> str:
    st = model.stat()
    return f"{model.resolve()}:{st.st_size}:{st.st_mtime_ns}"


@functools.lru_cache(maxsize=16)
def _quantized(stamp: str, model: str) -> bool:
    import onnx

    graph = onnx.load(model, load_external_data=False).graph
    return any(node.op_type in QUANTIZED_OPS for node in graph.node)


def quantized(model: Path) -> bool:
    """An integer-quantized graph (int8), which CoreML cannot run."""
    try:
        return _quantized(_stamp(model), str(model))
    except Exception:  # unreadable here: onnxruntime will say why when it loads it
        return False


def _failures_file() -> Path:
    return paths.data_dir() / "coreml-failures.json"


def coreml_failed(model: Path) -> str | None:
    """Why CoreML failed with this very file (same path, size, mtime) before, if it did."""
    try:
        data = json.loads(_failures_file().read_text())
        return str(data[_stamp(model)]) if _stamp(model) in data else None
    except (OSError, ValueError, TypeError):
        return None


def remember_coreml_failure(model: Path, why: str) -> None:
    """Later starts use CPU for this file (best effort)."""
    path = _failures_file()
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
        data[_stamp(model)] = f"onnxruntime {ort.__version__}: {why}"[:300]
        atomic.write_json(path, data)
    except (OSError, ValueError) as exc:
        log.warning("could not remember the CoreML failure: %s", exc)


def coreml_cache_dir(model: Path, options: dict[str, str], root: Path | None = None) -> Path:
    """CoreML's compiled partitions for this model's content, this onnxruntime and these
    options (keyed by all three: a model replaced at the same path must not reuse them);
    entries of other keys for the same model, and any unused for 30 days, are removed."""
    root = root or paths.data_dir() / "coreml-cache"
    key = hashlib.sha256(json.dumps([_stamp(model), ort.__version__, sorted(options.items())])
                         .encode()).hexdigest()[:16]
    target = root / f"{model.stem}-{key}"
    if root.is_dir():
        now = time.time()
        for entry in root.iterdir():
            stale = entry.name.startswith(f"{model.stem}-") and entry != target
            if stale or now - entry.stat().st_mtime > CACHE_MAX_AGE_S:
                shutil.rmtree(entry, ignore_errors=True)
    target.mkdir(parents=True, exist_ok=True)
    return target


def coreml_options(config: Config, model: Path | None = None,
                   cache_root: Path | None = None) -> dict[str, str]:
    """CoreML provider options (onnxruntime's string-keyed provider-options API, honoured
    from onnxruntime 1.21); the compile cache is keyed by `model` when given."""
    options = {
        "ModelFormat": config.coreml_model_format,
        "MLComputeUnits": config.coreml_compute_units,
        "SpecializationStrategy": config.coreml_specialization,
        "RequireStaticInputShapes": "0",
        "EnableOnSubgraphs": "0",
    }
    if model is not None and model.is_file():
        options["ModelCacheDirectory"] = str(coreml_cache_dir(model, options, cache_root))
    return options


def macos_performance_cores() -> int | None:
    """hw.perflevel0.physicalcpu: Apple silicon's performance cores. os.cpu_count() counts
    the efficiency cores too, and an inference split over those waits for the slowest
    thread. None where the key does not exist (Intel Macs) or sysctl is unavailable."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        value, size = ctypes.c_int(0), ctypes.c_size_t(ctypes.sizeof(ctypes.c_int))
        if libc.sysctlbyname(b"hw.perflevel0.physicalcpu", ctypes.byref(value),
                             ctypes.byref(size), None, ctypes.c_size_t(0)) == 0:
            return value.value or None
    except (OSError, AttributeError, TypeError):
        pass
    return None


def thread_count(config: Config, platform: str = sys.platform,
                 performance_cores: Callable[[], int | None] = macos_performance_cores) -> int:
    """KOKORO_THREADS, else one per core (on Apple silicon: per performance core)."""
    if config.threads:
        return config.threads
    if platform == "darwin":
        cores = performance_cores()
        if cores:
            return cores
    return os.cpu_count() or 1


GRAPH_LEVELS = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                "off": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}


def session_options(config: Config) -> ort.SessionOptions:
    """Options for a long-lived session fed inputs of ever-changing length."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = thread_count(config)
    so.inter_op_num_threads = config.inter_op_threads
    so.execution_mode = ort.ExecutionMode.ORT_PARALLEL if config.inter_op_threads > 1 \
        else ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = GRAPH_LEVELS[config.graph_optimization]
    # Every request has a new input length; memory patterns would be planned
    # (and kept) per shape, so they only grow memory here.
    so.enable_mem_pattern = False
    # The arena stays on: without it every run mallocs afresh, measured 35 % slower
    # (RTF 0.94 vs 0.67). Its growth is undone after each run by run_options().
    if config.memory_arena_size_mb > 0:
        _register_capped_arena(config.memory_arena_size_mb)
        so.add_session_config_entry("session.use_env_allocators", "1")
    if not config.verbose_logs:
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


def plan(config: Config, available: list[str] | None = None, model: Path | None = None,
         whole: Path | None = None) -> list[ProviderChoice]:
    """Providers to try, in order; CPU is always the last resort. `whole`: the model that
    `model` is a part of, whose kind (int8?) and history (CoreML failed?) decide `auto`."""
    decides = whole or model
    available = ort.get_available_providers() if available is None else available
    if config.provider == "cpu":
        return [ProviderChoice(CPU, "KOKORO_PROVIDER=cpu")]
    if COREML not in available:
        if config.provider == "coreml":
            return [ProviderChoice(CPU, "KOKORO_PROVIDER=coreml but CoreML is not in this "
                                        "onnxruntime build", fallback_from=COREML)]
        return [ProviderChoice(CPU, "auto: CoreML not available")]
    if config.provider == "auto" and decides is not None:
        if quantized(decides):
            return [ProviderChoice(CPU, "auto: an int8 model runs faster on CPU (CoreML has "
                                        "none of its integer operators); "
                                        "KOKORO_PROVIDER=coreml tries CoreML")]
        failed = coreml_failed(decides)
        if failed:
            return [ProviderChoice(CPU, f"auto: CoreML failed with this model before "
                                        f"({failed}); KOKORO_PROVIDER=coreml tries again")]
    why = "KOKORO_PROVIDER=coreml" if config.provider == "coreml" else "auto: CoreML available"
    return [ProviderChoice(COREML, why, coreml_options(config, model)),
            ProviderChoice(CPU, "fallback", fallback_from=COREML)]


def create_session(
    model: Path,
    config: Config,
    check: Callable[[ort.InferenceSession], Any] | None = None,
    available: list[str] | None = None,
    factory: Callable[..., ort.InferenceSession] = ort.InferenceSession,
    whole: Path | None = None,
) -> tuple[ort.InferenceSession, ProviderChoice]:
    """Create the session on the first provider that loads and passes `check` (a warm-up).
    `whole`: the model that `model` is a part of (see plan)."""
    errors: list[str] = []
    for choice in plan(config, available, model, whole):
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
            if choice.provider == COREML:
                remember_coreml_failure(whole or model, str(exc).splitlines()[0]
                                        if str(exc) else type(exc).__name__)
            continue
        if choice.provider != CPU:  # what the session took, not what was asked
            with contextlib.suppress(Exception):
                choice.options = dict(session.get_provider_options().get(choice.provider, {}))
        if errors:
            choice.reason = f"fallback after {'; '.join(errors)}"
        log.info("onnxruntime provider %s (%s)", choice.provider, choice.reason)
        return session, choice
    raise RuntimeError("no execution provider could load the model: " + "; ".join(errors))
