"""Fair ordering of synthesis work between requests.

One worker thread runs the engine (one inference already uses both cores).
The scheduler hands it one segment at a time, to the request of the highest
priority (important > message > text > notification); among equals a request
that has not produced audio yet goes first (so a short request is never starved behind a long one),
the rest take turns round-robin. A request whose output queue is full — its
client is not reading — is skipped until it drains, which bounds memory per
connection. Where a text is cut into segments is decided by the text alone
(segment.py), never by timing, so the same request always gives the same audio.
With the streaming vocoder a segment's audio comes in windows (engine.Prepared),
each window a turn of its own, so a new request waits for one window, not a segment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kokorod.config import Config
from kokorod.engine import Audio, Engine, EngineError, Prepared
from kokorod.protocol import PRIORITIES, SAMPLE_RATE, SynthesizeRequest
from kokorod.segment import SegmentStream

log = logging.getLogger(__name__)

SEGMENTS_AHEAD = 2  # per request: segments (or windows) synthesized but not yet written
FIRST_WINDOW_FRAMES = 80  # 1 s: the first audio of a request, vocoded on its own
WINDOW_GROWTH = 1.25
MAX_WINDOW_FRAMES = 400  # 5 s: bounds how long a new request waits behind a window


class Cancelled:
    """Sentinel put in a job's queue when it is cancelled."""


@dataclass
class Job:
    request: SynthesizeRequest
    voice: Audio
    lang: str
    stream: SegmentStream = field(init=False)
    out: asyncio.Queue[Any] = field(init=False)
    created_at: float = field(default_factory=time.perf_counter)
    first_audio_at: float | None = None  # first chunk handed to the writer
    started_at: float | None = None  # first segment picked by the worker
    produced_s: float = 0.0
    produced_samples: int = 0
    # (first sample of the segment's audio, its first character in the spoken text, text):
    # the writer sends them as `mark` frames just before that sample, for `say -i`.
    marks: list[tuple[int, int, str]] = field(default_factory=list)
    chars_taken: int = 0
    synth_s: float = 0.0
    segments: int = 0
    windows: int = 0  # streaming vocoder windows done
    cancelled: bool = False
    reason: str = ""  # why it was cancelled: cancelled, stopped, interrupted, …
    exhausted: bool = False  # all segments handed out
    # Streaming vocoder: the current segment's batches still to vocode, window by window.
    pending: list[Prepared] = field(default_factory=list)
    pending_engine: Engine | None = None  # the engine that prepared them vocodes them

    def __post_init__(self) -> None:
        self.stream = SegmentStream(self.request.text)
        self.out = asyncio.Queue(maxsize=SEGMENTS_AHEAD + 1)

    @property
    def active(self) -> bool:
        return not (self.cancelled or self.exhausted)

    @property
    def fresh(self) -> bool:
        """Nothing synthesized yet: goes before everyone else."""
        return self.segments == 0 and not self.pending

    def ready(self) -> bool:
        return self.active and self.out.qsize() < SEGMENTS_AHEAD

    @property
    def rank(self) -> int:
        """0 for `important` … 3 for `notification`: lower goes first."""
        return PRIORITIES.index(self.request.priority)

    async def pieces(self, notify: Callable[[], None]) -> AsyncIterator[Audio]:
        """The request's audio in `chunk_ms` pieces, in order, until it ends or is cancelled;
        raises the EngineError its inference failed with. `notify` tells the scheduler
        there is room in the queue again. The one reader of `out`: the connection that
        streams it back, or the daemon's speaker."""
        chunk = max(1, self.request.chunk_ms * SAMPLE_RATE // 1000)
        while True:
            item = await self.out.get()
            notify()
            if item is None or item is Cancelled:
                return
            if isinstance(item, EngineError):
                raise item
            for start in range(0, item.size, chunk):
                if self.cancelled:
                    return
                yield item[start:start + chunk]

    def cancel(self, reason: str = "cancelled") -> None:
        if self.cancelled:
            return
        self.cancelled = True
        self.reason = reason
        while not self.out.empty():
            self.out.get_nowait()
        self.out.put_nowait(Cancelled)


class Scheduler:
    def __init__(self, engine: Engine, config: Config) -> None:
        self.engine = engine
        self.config = config
        self._jobs: list[Job] = []
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="kokoro-infer")
        self._task: asyncio.Task[None] | None = None
        self._rr = 0
        self.busy = False  # a segment is being synthesized (maybe of a cancelled request)
        self._running: tuple[Job, Any] | None = None  # (job, engine) of the run in progress

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True, cancel_futures=True)

    def submit(self, job: Job) -> None:
        self._jobs.append(job)
        self._wake.set()

    def notify(self) -> None:
        """A job's queue drained or was cancelled: look again. A cancelled job whose
        inference is running has it stopped, so the worker is free for the next one."""
        self._wake.set()
        running = self._running
        if running is not None and running[0].cancelled:
            running[1].interrupt()

    @property
    def active_jobs(self) -> int:
        return sum(1 for j in self._jobs if j.active)

    @property
    def paused_jobs(self) -> int:
        """Requests waiting for their client to read (backpressure)."""
        return sum(1 for j in self._jobs if j.active and not j.ready())

    # ------------------------------------------------------------ policy
    def _pick(self) -> Job | None:
        """The highest priority among ready jobs; within it fresh first, then round-robin."""
        self._jobs = [j for j in self._jobs if j.active]
        ready = [j for j in self._jobs if j.ready()]
        if not ready:
            return None
        best = min(j.rank for j in ready)
        fresh = [j for j in ready if j.fresh and j.rank == best]
        if fresh:
            return min(fresh, key=lambda j: j.created_at)
        n = len(self._jobs)
        for k in range(n):
            job = self._jobs[(self._rr + k) % n]
            if job.ready() and job.rank == best:
                self._rr = (self._rr + k + 1) % max(1, n)
                return job
        return None

    # ------------------------------------------------------------ worker
    async def _run(self) -> None:
        while True:
            job = self._pick()
            if job is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self._step(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let one request stop the worker
                log.exception("request %r failed", job.request.id)
                self._fail(job, EngineError(f"{type(exc).__name__}: {exc}"))

    @staticmethod
    def _fail(job: Job, error: EngineError) -> None:
        job.exhausted = True
        if not job.cancelled and not job.out.full():
            job.out.put_nowait(error)

    @staticmethod
    def window_frames(job: Job) -> int:
        """Frames for the request's next vocoder window, on a fixed schedule (so a
        one-segment text always gives the same audio).

        Two windows of FIRST_WINDOW_FRAMES, then each WINDOW_GROWTH times the last:
        on a CPU at RTF ~0.7 each window (with its context) is ready before the audio
        ahead of it has played; MAX_WINDOW_FRAMES bounds how long a new request waits.
        """
        grown = FIRST_WINDOW_FRAMES * WINDOW_GROWTH ** max(0, job.windows - 1)
        return min(MAX_WINDOW_FRAMES, int(grown))

    async def _infer(self, job: Job, fn: Any, *args: Any) -> Any:
        """Run one engine call on the worker thread; None when it failed (job told)."""
        self.busy = True
        self._running = (job, getattr(fn, "__self__", self.engine))
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except EngineError as exc:
            self._fail(job, exc)
            return None
        finally:
            self._running = None
            self.busy = False

    def _deliver(self, job: Job, audio: Audio, synth_s: float) -> None:
        job.synth_s += synth_s
        job.produced_s += audio.size / SAMPLE_RATE
        job.produced_samples += int(audio.size)
        if audio.size:
            job.out.put_nowait(np.ascontiguousarray(audio))

    async def _step(self, job: Job) -> None:
        """Synthesize the job's next window or segment (or mark it finished)."""
        if job.pending:
            await self._window(job)
            return
        now = time.perf_counter()
        segment = job.stream.next(self.config.first_segment_chars, self.config.segment_chars)
        if segment is None:
            job.exhausted = True
            job.out.put_nowait(None)
            return
        if job.started_at is None:
            job.started_at = now
        job.marks.append((job.produced_samples, job.chars_taken, segment.rest))
        job.chars_taken += len(segment.rest)
        req = job.request
        engine = self.engine  # a reload may swap self.engine while this runs
        if engine.streaming:
            prepared = await self._infer(job, engine.prepare, segment, job.voice, req.speed,
                                         job.lang)
            if prepared is None or job.cancelled:
                return
            job.segments += 1
            job.pending, job.pending_engine = prepared, engine
            job.synth_s += time.perf_counter() - now
            if job.pending:
                await self._window(job)  # the first window in the same turn: early audio
            return
        audio = await self._infer(job, engine.synthesize, segment, job.voice, req.speed,
                                  job.lang)
        if audio is None or job.cancelled:
            return
        synth_s = time.perf_counter() - now
        job.segments += 1
        self._deliver(job, audio, synth_s)

    async def _window(self, job: Job) -> None:
        now = time.perf_counter()
        p = job.pending[0]
        frames = min(self.window_frames(job), p.remaining)
        # A reload may have swapped the engine (even to one without the cut model):
        # windows already prepared finish on the engine whose front made them.
        engine = job.pending_engine or self.engine
        audio = await self._infer(job, engine.vocode, p, frames)
        if audio is None or job.cancelled:
            job.pending, job.pending_engine = [], None
            return
        job.windows += 1
        synth_s = time.perf_counter() - now
        if p.done:
            job.pending.pop(0)
        if not job.pending:
            job.pending_engine = None
        self._deliver(job, audio, synth_s)
