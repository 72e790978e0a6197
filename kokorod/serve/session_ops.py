"""What the session ops answer: `session-status` (each inference session's health),
`optimization-status` (what makes this daemon fast or slow here). `session-reset`
is a rebuild through reload (server.py): new sessions, empty caches, connections kept.
"""

from __future__ import annotations

from typing import Any

from kokorod.synth import providers
from kokorod.synth.engine import Engine
from kokorod.synth.engine_status import schedule_status


def _sessions(engine: Engine) -> dict[str, Any]:
    parts = dict(engine.vocoder.parts) if engine.vocoder is not None else {}
    if engine.whole is not None:
        parts["whole"] = engine.whole
    return {name: {"providers": s.get_providers(),
                   "provider_options": s.get_provider_options(),
                   "inputs": [i.name for i in s.get_inputs()],
                   "outputs": len(s.get_outputs())}
            for name, s in parts.items()}


def session_status(engine: Engine) -> dict[str, Any]:
    s = engine.stats
    return {"sessions": _sessions(engine), "failures": s.failures,
            "consecutive_failures": s.consecutive_failures, "rebuilds": s.rebuilds,
            "interrupted": s.interrupted, "last_error": s.last_error,
            "warmup_seconds": round(engine.warmup_seconds, 3), "schedule": schedule_status(engine)}


def optimization_status(engine: Engine, caches: dict[str, Any]) -> dict[str, Any]:
    choice = engine.provider
    return {"provider": choice.provider, "provider_reason": choice.reason,
            "provider_options": choice.options,
            "threads": providers.thread_count(engine.config),
            "model": engine.files.model.name,
            "quantized": providers.quantized(engine.files.model),
            "streaming_vocoder": engine.streaming,
            "word_durations": bool(engine.vocoder and engine.vocoder.has_durations),
            "schedule": schedule_status(engine), "caches": caches,
            "coreml": "CPU is the default: CoreML's first request was measured far slower "
                      "than CPU's, and a quantized model stays on CPU"}
