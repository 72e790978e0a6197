"""What `status` says of the engine: its model, provider, plan, statistics and counters."""

from __future__ import annotations

from typing import Any, Protocol

import onnxruntime as ort

from kokorod.config import Config
from kokorod.store.models import ModelFiles
from kokorod.synth import providers
from kokorod.synth.windows import Schedule


class Engine(Protocol):
    """What `status` reads of the engine (kokorod.synth.engine.Engine, which calls in here,
    so it is described rather than imported)."""

    config: Config
    files: ModelFiles
    provider: providers.ProviderChoice
    default_voice: str
    warmup_seconds: float
    schedule: Schedule
    stats: Any  # kokorod.synth.engine.EngineStats: counters, read as they are

    @property
    def streaming(self) -> bool: ...


def schedule_status(engine: Engine) -> dict[str, Any] | None:
    """The window plan (None with the whole model: it vocodes a batch at a time)."""
    return engine.schedule.status() if engine.streaming else None


def describe_engine(engine: Engine) -> dict[str, Any]:
    s = engine.stats
    return {
        "model_path": str(engine.files.model),
        "voices_path": str(engine.files.voices),
        "default_voice": engine.default_voice,
        "model_sha256": engine.files.sha256,
        "model_verified": engine.files.verified,
        "model_embedded": engine.files.embedded,
        "provider": engine.provider.provider,
        "provider_reason": engine.provider.reason,
        "threads": providers.thread_count(engine.config),
        "onnxruntime": ort.__version__,
        "warmup_seconds": round(engine.warmup_seconds, 3),
        "streaming_vocoder": engine.streaming,
        "window_schedule": schedule_status(engine),
        "segments": s.segments,
        "audio_seconds": round(s.audio_seconds, 3),
        "busy_seconds": round(s.busy_seconds, 3),
        "rtf": round(s.busy_seconds / s.audio_seconds, 3) if s.audio_seconds else None,
        "failures": s.failures,
        "interrupted": s.interrupted,
        "rebuilds": s.rebuilds,
        "last_error": s.last_error,
    }
