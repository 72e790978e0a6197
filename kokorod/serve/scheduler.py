"""Who synthesizes next: fair ordering of the engine's work between requests.

One worker thread runs the engine (one inference already uses both cores). The
scheduler hands it one piece at a time — a whole segment, or one window of it
with the streaming vocoder (guard.SegmentAudio) — to the request of the highest
priority (important > message > text > notification); among equals a request
that has not produced audio yet goes first (so a short request is never starved
behind a long one), the rest take turns round-robin. A request whose output
queue is full — its consumer is not reading — is skipped until it drains, which
bounds memory per connection. Where a text is cut into segments is decided by
the text alone (segment.py), never by timing, so the same request always gives
the same audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from kokorod.config import Config
from kokorod.serve import audio_cache
from kokorod.serve.audio_cache import AudioCache
from kokorod.serve.job import Job, Pieces
from kokorod.synth import breaks
from kokorod.synth.engine import Engine
from kokorod.synth.guard import EngineError
from kokorod.synth.windows import Windows
from kokorod_common.protocol import SAMPLE_RATE

log = logging.getLogger(__name__)


class Scheduler:
    """`engine` may be swapped on reload (segments in progress finish on their own);
    `executor` is the worker (injectable: tests run the policy without a model)."""

    def __init__(self, engine: Engine, config: Config, executor: Executor | None = None) -> None:
        self._engine = engine
        self.config = config
        self._jobs: list[Job] = []
        self._wake = asyncio.Event()
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="kokoro-infer")
        self._task: asyncio.Task[None] | None = None
        self._rr = 0
        self.busy = False  # a piece is being synthesized (maybe of a cancelled request)
        self.cache = AudioCache(config.audio_cache_mb * 1024 * 1024)
        self._running: tuple[Job, Pieces] | None = None

    @property
    def engine(self) -> Engine:
        return self._engine

    @engine.setter
    def engine(self, engine: Engine) -> None:
        """A reload's new engine: the kept audio goes (a voice may sound different by the
        same name)."""
        if engine is not self._engine:
            self.cache.clear()
        self._engine = engine

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
        job.wake = self.notify
        self._jobs.append(job)
        self._wake.set()

    def notify(self) -> None:
        """A job's queue drained or a job was cancelled: look again. A cancelled job whose
        inference is running has it stopped, so the worker is free for the next one."""
        self._wake.set()
        running = self._running
        if running is not None and running[0].cancelled:
            running[1].interrupt()

    @property
    def active_jobs(self) -> int:
        return sum(1 for j in self._jobs if j.active)

    @property
    def synthesizing(self) -> int:
        """Requests taking turns at the worker now (a new one's first window shrinks)."""
        return sum(1 for j in self._jobs if j.active and j.ready())

    @property
    def paused_jobs(self) -> int:
        """Requests waiting for their consumer to read (backpressure)."""
        return sum(1 for j in self._jobs if j.active and not j.ready())

    # ------------------------------------------------------------ policy
    def pick(self) -> Job | None:
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
            job = self.pick()
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
                job.finish(EngineError(f"{type(exc).__name__}: {exc}"))

    async def _step(self, job: Job) -> None:
        """The job's next piece of audio: the next window or segment (or its end)."""
        while True:
            if job.segment is None and not self._begin(job):
                return
            assert job.segment is not None
            started = time.perf_counter()
            try:
                audio = await self._infer(job, job.segment)
            except EngineError as exc:
                job.finish(exc)
                return
            if job.cancelled:
                return
            took = time.perf_counter() - started
            if log.isEnabledFor(logging.DEBUG):  # (counting the others walks every job)
                log.debug("request %r of %s: a step of %.0f ms (%s audio); %d waiting",
                          job.request.id, job.client, took * 1000,
                          "no" if audio is None else f"{audio.size * 1000 / SAMPLE_RATE:.0f} ms",
                          self.synthesizing - 1)
            job.place_words(job.segment.words)
            if audio is not None:
                job.deliver(audio, took)
                return
            job.segment = None  # that segment is done: on to the next in the same turn

    def _begin(self, job: Job) -> bool:
        """Start the job's next segment; False when there is none (the job is done)."""
        segment = job.stream.next(self.config.first_segment_chars, self.config.segment_chars)
        if segment is None:
            job.finish()
            return False
        if job.started_at is None:
            job.started_at = time.perf_counter()
        job.begin_segment(segment)
        job.segments += 1
        req, engine, words = job.request, self.engine, job.wants_words()
        if job.windows is None:
            # (asked from the worker thread: it only reads the jobs' flags and queue sizes)
            job.windows = Windows(engine.schedule, load=lambda: self.synthesizing)
            job.windows.more = not job.stream.exhausted()
        windows = job.windows
        voice, speed, lang = job.settings(segment)  # SSML may change them by segment
        style = job.voice if voice == req.voice else engine.voice_style(voice)
        key = audio_cache.key_for(segment, job.stream.exhausted(), engine.files.sha256,
                                  voice or engine.default_voice, speed, lang,
                                  words, engine.streaming and engine.schedule.key())
        job.segment = breaks.exact(self.cache.begin(key, lambda: engine.begin(
            segment, style, speed, lang, windows, words=words)), segment)
        return True

    async def _infer(self, job: Job, segment: Pieces) -> Any:
        """One step of the segment on the worker thread."""
        self.busy = True
        self._running = (job, segment)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor,
                                                                    segment.step)
        finally:
            self._running = None
            self.busy = False
