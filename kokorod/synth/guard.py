"""Inference under guard: one run at a time, stoppable, and what a failure leads to.

The engine builds sessions; this module keeps a failing one from taking the
daemon down. Every run goes through `Guard.run`: under the engine's lock, with
onnxruntime's terminate flag armed only during the run (so `interrupt` stops the
run in progress, never a later one), counted in `EngineStats`. A failure becomes
an `EngineError` for its request, and the remedy is chosen here: CoreML that
fails at run time is given up for CPU at once (its faults depend on shapes and
recur) and remembered for later starts; on CPU, a run of
`REBUILD_AFTER_FAILURES` failures in a row rebuilds the sessions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kokorod.synth import heap, providers
from kokorod.synth.vocoder import Audio
from kokorod.synth.words import WordTime
from kokorod_common.protocol import SAMPLE_RATE

log = logging.getLogger(__name__)

REBUILD_AFTER_FAILURES = 3


class EngineError(RuntimeError):
    """Inference failed for one segment; the request gets an engine_error frame."""


class Interrupted(EngineError):
    """The run was stopped on purpose (its request was cancelled); not a failure."""


@dataclass
class EngineStats:
    segments: int = 0
    audio_seconds: float = 0.0
    busy_seconds: float = 0.0
    failures: int = 0
    interrupted: int = 0  # runs stopped because their request was cancelled
    consecutive_failures: int = 0
    rebuilds: int = 0
    last_error: str = ""
    started_at: float = field(default_factory=time.time)


class Sessions(Protocol):
    """What the guard asks of the engine to recover: where it runs, and new sessions."""

    @property
    def on_coreml(self) -> bool: ...
    def to_cpu(self, exc: BaseException) -> None: ...
    def rebuild(self) -> None: ...


def give_up_coreml(model: Path, exc: BaseException) -> str:
    """Why CoreML failed (one line), logged and remembered for this model's later starts."""
    why = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    log.warning("CoreML failed (%s); using CPU from now on for this model", why)
    providers.remember_coreml_failure(model, why)
    return why


class Guard:
    """Runs the engine's inference one at a time; thread-safe for one caller at a time."""

    def __init__(self, stats: EngineStats, sessions: Sessions) -> None:
        self.stats = stats
        self.sessions = sessions
        self._lock = threading.Lock()
        # One RunOptions for every run: a fresh one per run kept ~20 MiB more RSS after a
        # load test (measured). interrupt() may only set its flag during a run.
        self.run_options = providers.run_options()
        self._active_run: Any = None  # the RunOptions of the run in progress, if any
        self._flag_lock = threading.Lock()

    def run(self, what: str, fn: Any, *args: Any) -> Any:
        """`fn(*args)` under the lock; a failure is counted, remedied and re-raised as an
        EngineError (Interrupted when `interrupt` stopped it)."""
        with self._lock:
            ro = self.run_options
            with self._flag_lock:
                ro.terminate = False
                self._active_run = ro
            try:
                result = fn(*args)
                self.stats.consecutive_failures = 0
                return result
            except Exception as exc:
                if ro.terminate:
                    self.stats.interrupted += 1
                    raise Interrupted(f"{what} stopped: its request was cancelled") from exc
                self._failed(what, exc)
                raise EngineError(f"inference failed: {type(exc).__name__}: {exc}") from exc
            finally:
                with self._flag_lock:
                    self._active_run = None
                    ro.terminate = False

    def _failed(self, what: str, exc: Exception) -> None:
        stats = self.stats
        stats.failures += 1
        stats.consecutive_failures += 1
        stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
        log.error("inference failed (%s): %s", what, exc)
        try:
            if self.sessions.on_coreml:  # shape-dependent CoreML faults recur: CPU at once
                self.sessions.to_cpu(exc)
                stats.rebuilds += 1
            elif stats.consecutive_failures >= REBUILD_AFTER_FAILURES:
                log.warning("rebuilding the inference session after %d failures",
                            stats.consecutive_failures)
                self.sessions.rebuild()
                stats.rebuilds += 1
                stats.consecutive_failures = 0
        except Exception as rebuild_exc:  # keep serving with the old session
            log.error("session rebuild failed: %s", rebuild_exc)

    def interrupt(self) -> None:
        """Stop the run in progress now (onnxruntime's terminate flag, honoured within
        milliseconds): a cancelled request must not hold the worker for a whole window."""
        with self._flag_lock:
            if self._active_run is not None:
                self._active_run.terminate = True


class SegmentAudio:
    """One segment's audio, piece by piece: each `step()` is one guarded inference on the
    calling thread (the scheduler's worker), None once the segment is done. Bound to the
    guard of the engine that began it: a reload may swap the daemon's engine meanwhile,
    and the segment finishes on the one whose front read it."""

    def __init__(self, guard: Guard, what: str, pieces: Iterator[Audio],
                 words: list[WordTime] | None = None) -> None:
        self.guard = guard
        self.what = what
        self._pieces = pieces
        self.words = words if words is not None else []  # taken by the scheduler

    def step(self) -> Audio | None:
        stats = self.guard.stats
        started = time.perf_counter()
        audio: Audio | None = self.guard.run(self.what, next, self._pieces, None)
        heap.release()
        stats.busy_seconds += time.perf_counter() - started
        if audio is None:
            stats.segments += 1
        else:
            stats.audio_seconds += audio.size / SAMPLE_RATE
        return audio

    def __iter__(self) -> Iterator[Audio]:
        while (audio := self.step()) is not None:
            yield audio

    def interrupt(self) -> None:
        self.guard.interrupt()
