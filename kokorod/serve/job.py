"""One admitted synthesize request inside the daemon: its state, its audio queue, its end.

A Job is made by requests.py, fed segment by segment by the scheduler's worker,
and read by exactly one consumer through its one drain loop, `Job.drain` — the
connection that streams it back, the HTTP handler, or the daemon's speaker
(`play: true`). The drain counts what it hands out and keeps the engine's error,
so whichever way the request ends (finished, cancelled, stopped, interrupted, an
engine fault), `start_frame` and `final_frame` build its first and its one `end`
or `error` frame from the job alone. Cancelling wakes the scheduler by itself
(`wake`), so no cancel path can forget to.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from kokorod.synth import overrides
from kokorod.synth.guard import EngineError
from kokorod.synth.run_stream import RunStream
from kokorod.synth.segment import Segment, SegmentStream, clean
from kokorod.synth.spoken import Spoken
from kokorod.synth.ssml_marks import MarkPlacer
from kokorod.synth.vocoder import Audio
from kokorod.synth.windows import Windows
from kokorod.synth.words import SourceMap, Span, WordTime, word_spans
from kokorod_common.protocol import (
    PRIORITIES,
    SAMPLE_RATE,
    SPEED_RANGE,
    ErrorCode,
    SynthesizeRequest,
    error_frame,
)

SEGMENTS_AHEAD = 2  # per request: pieces synthesized but not yet taken by the consumer
DEFAULT_CHUNK_MS = 50


class Cancelled:
    """Sentinel put in a job's queue when it is cancelled."""


class Pieces(Protocol):
    """A segment's audio a step at a time: guard.SegmentAudio, or the audio cache's."""

    words: list[WordTime]

    def step(self) -> Audio | None: ...
    def interrupt(self) -> None: ...


class Piece(NamedTuple):
    """A piece of a request's audio as handed to its consumer: `seq` counts from 0."""

    seq: int
    audio: Audio


def _nothing() -> None:
    pass


@dataclass(eq=False)
class Job:
    request: SynthesizeRequest
    voice: Audio
    lang: str
    client: str = ""  # whose speech it is, for `stop` and mode `interrupt`
    note: str = ""  # a word for the client in the `start` frame (e.g. the text's language)
    # What to say when it is more than the text (SSML runs, readings, marks): see spoken.py.
    spoken: Spoken | None = None
    voice_name: str = ""  # the voice as the client asked (or the default), for `start`
    stream: SegmentStream | RunStream = field(init=False)
    placer: MarkPlacer | None = field(init=False, default=None)
    out: asyncio.Queue[Any] = field(init=False)
    # Set by the scheduler on submit: there is room in `out` again, or the job was cancelled.
    wake: Callable[[], None] = _nothing
    created_at: float = field(default_factory=time.perf_counter)
    first_audio_at: float | None = None  # first chunk handed to the consumer
    started_at: float | None = None  # first segment picked by the worker
    produced_samples: int = 0
    # `mark` frames' fields (kind, sample, …), in the order of their samples: sent just
    # before the chunk holding that sample (played: when it is heard).
    marks: list[dict[str, Any]] = field(default_factory=list)
    original: str = ""  # the request's text as sent (word marks' spans index it)
    words: SourceMap | None = field(init=False, default=None)  # with marks: "word"
    _segment_words: tuple[int, int, list[Span]] = field(init=False, default=(0, 0, []))
    _last_word_at: int = field(init=False, default=-1)
    chars_taken: int = 0
    synth_s: float = 0.0
    segments: int = 0  # segments begun
    segment: Pieces | None = None  # the one in progress
    windows: Windows | None = None  # the request's window plan, from its first segment's engine
    cancelled: bool = False
    reason: str = ""  # why it was cancelled: cancelled, stopped, interrupted, …
    interrupted_by: dict[str, Any] | None = None  # who: {client_name, priority, mode}
    exhausted: bool = False  # all segments handed out
    # What the drain handed to the consumer (final_frame reads them), and the engine's error
    chunks_out: int = 0
    samples_out: int = 0
    error: EngineError | None = None

    def __post_init__(self) -> None:
        if self.spoken is not None:
            self.stream = RunStream(self.spoken.runs, self.spoken.lead_s)
            self.placer = MarkPlacer(self.spoken.marks) if self.spoken.marks else None
        else:
            self.stream = SegmentStream(self.request.text)
        self.out = asyncio.Queue(maxsize=SEGMENTS_AHEAD + 1)
        if self.request.marks == "word":
            self.words = SourceMap(self.original or self.request.text, clean(self.request.text))

    def begin_segment(self, segment: Segment) -> None:
        """Marks for a segment about to be synthesized: its own, and (word marks) where
        its words come from in the request's text."""
        rest = overrides.visible(segment.rest)
        self.marks.append({"kind": "segment", "sample": self.produced_samples,
                           "char": self.chars_taken, "text": rest})
        self.chars_taken += len(rest)
        if self.placer is not None:
            self.placer.begin(segment, self.produced_samples)
        if self.words is None:
            return
        spans = word_spans(segment.text)
        head = sum(1 for s, _ in spans if s < len(segment.spoken)) if segment.spoken else 0
        said = self.words.spans(segment.text[spans[head][0]:] if head < len(spans) else "")
        self._segment_words = (self.produced_samples, head, said)

    def place_words(self, heard: list[WordTime]) -> None:
        """Word marks for the segment begun last: where the engine heard its words."""
        start, head, spans = self._segment_words
        if self.placer is not None:  # SSML marks before the word they stand before
            self.marks.extend(self.placer.heard(heard))
        for w in heard:
            k = w.word - head
            sample = start + w.sample
            if not 0 <= k < len(spans) or sample <= self._last_word_at:
                continue
            self._last_word_at = sample
            a, b = spans[k]
            self.marks.append({"kind": "word", "sample": int(sample), "samples": int(w.samples),
                               "span": [int(a), int(b)], "text": self.original[a:b]})
        heard.clear()
        if self.placer is not None:
            self.marks.sort(key=lambda m: m["sample"])

    @property
    def timed_marks(self) -> bool:
        """Marks that come as their sample is heard: word marks, SSML marks."""
        return self.request.marks == "word" or self.placer is not None

    def wants_words(self) -> bool:
        """Word timings for the segment begun last: word marks, or SSML marks in it."""
        return self.words is not None or bool(self.placer and self.placer.pending)

    def settings(self, segment: Segment) -> tuple[str | None, float, str]:
        """The voice (None: the request's), speed and language of a segment: SSML's
        runs change them."""
        voice = getattr(segment, "voice", None) or self.request.voice
        rate = getattr(segment, "rate", 1.0)
        lo, hi = SPEED_RANGE
        speed = min(hi, max(lo, self.request.speed * rate))
        return voice, speed, getattr(segment, "lang", None) or self.lang

    @property
    def active(self) -> bool:
        return not (self.cancelled or self.exhausted)

    @property
    def fresh(self) -> bool:
        """Nothing synthesized yet: goes before everyone else."""
        return self.segments == 0

    def ready(self) -> bool:
        return self.active and self.out.qsize() < SEGMENTS_AHEAD

    @property
    def rank(self) -> int:
        """0 for `important` … 3 for `notification`: lower goes first."""
        return PRIORITIES.index(self.request.priority)

    def deliver(self, audio: Audio, synth_s: float) -> None:
        """The worker's output: one piece of audio, in order."""
        self.synth_s += synth_s
        self.produced_samples += int(audio.size)
        if audio.size:
            self.out.put_nowait(audio)

    def finish(self, error: EngineError | None = None) -> None:
        """No more audio: every segment done, or (error) inference failed."""
        self.exhausted = True
        if self.placer is not None:
            self.marks.extend(self.placer.rest(self.produced_samples))
        if not self.cancelled and not self.out.full():
            self.out.put_nowait(error)

    async def drain(self, marks: bool = False) -> AsyncIterator[Piece | dict[str, Any]]:
        """The one loop every consumer reads a job through: its audio in `chunk_ms` pieces,
        in order, until it ends or is cancelled, counted in `chunks_out`/`samples_out` as
        each is handed out. `marks`: each mark's fields (a dict) just before the piece
        holding its sample (the speaker sends marks as they are heard instead). An engine
        fault ends it early and is kept in `error` for the final frame."""
        chunk = max(1, (self.request.chunk_ms or DEFAULT_CHUNK_MS) * SAMPLE_RATE // 1000)
        while True:
            item = await self.out.get()
            self.wake()
            if item is None and marks:  # an SSML <mark/> after the last word
                for mark in [m for m in self.marks if m["kind"] == "ssml"]:
                    yield mark
            if item is None or item is Cancelled:
                return
            if isinstance(item, EngineError):
                self.error = item
                return
            for start in range(0, item.size, chunk):
                if self.cancelled:
                    return
                piece = item[start:start + chunk]
                while marks and self.marks and \
                        self.marks[0]["sample"] < self.samples_out + piece.size:
                    yield self.marks.pop(0)
                if self.first_audio_at is None:
                    self.first_audio_at = time.perf_counter()
                seq = self.chunks_out
                self.chunks_out += 1
                self.samples_out += int(piece.size)
                yield Piece(seq, piece)

    def cancel(self, reason: str = "cancelled", by: Job | None = None) -> None:
        """End it early (the first reason sticks); its consumer sends the final frame.
        `by`: the request that interrupted it, named in the end frame."""
        if self.cancelled:
            return
        self.cancelled = True
        self.reason = reason
        if by is not None:
            self.interrupted_by = {"client_name": by.client, "priority": by.request.priority,
                                   "mode": by.request.mode}
        while not self.out.empty():
            self.out.get_nowait()
        self.out.put_nowait(Cancelled)
        self.wake()


def start_frame(job: Job) -> dict[str, Any]:
    """The request's first frame: streamed back (its format) or played (its priority)."""
    req = job.request
    frame: dict[str, Any] = {"op": "start", "id": req.id}
    if req.play:
        frame.update(play=True, sample_rate=SAMPLE_RATE, voice=job.voice_name,
                     priority=req.priority, client_name=job.client)
    else:
        frame.update(sample_rate=SAMPLE_RATE, format=req.format, chunk_ms=req.chunk_ms,
                     chars=len(req.text), voice=job.voice_name)
    return {**frame, **({"note": job.note} if job.note else {})}


def final_frame(job: Job, played_samples: int | None = None) -> dict[str, Any]:
    """The request's one last frame, from what its drain handed out: `error` if inference
    failed or nothing was speakable, else `end` (with why, if it ended early).
    `played_samples`: a played request's, what reached the device."""
    rid = job.request.id
    if job.error is not None:
        return error_frame(rid, ErrorCode.ENGINE_ERROR, str(job.error))
    if job.chunks_out == 0 and not job.cancelled:
        return error_frame(rid, ErrorCode.EMPTY_TEXT, "the text has nothing speakable in it")
    samples = job.samples_out if played_samples is None else played_samples
    frame: dict[str, Any] = {"op": "end", "id": rid, "cancelled": job.cancelled,
                             "reason": job.reason or "done", "samples": samples,
                             "audio_seconds": round(samples / SAMPLE_RATE, 4)}
    if job.interrupted_by is not None:
        frame["interrupted_by"] = job.interrupted_by
    if played_samples is not None:
        frame["play"] = True
        return frame

    def ms(t: float | None) -> float | None:
        return None if t is None else round((t - job.created_at) * 1000, 1)

    frame["chunks"] = job.chunks_out
    frame["timings"] = {"queued_ms": ms(job.started_at), "first_chunk_ms": ms(job.first_audio_at),
                        "total_ms": ms(time.perf_counter()),
                        "synth_ms": round(job.synth_s * 1000, 1), "segments": job.segments}
    return frame
