"""Runs → segments: SSML's stretches of one voice, language and rate, each cut by the
ordinary rule (segment.py), with the pauses SSML asks for between them.

A run ends a segment: a `<break>` after it becomes an exact silence (`break_s`,
breaks.py trims the speech's quiet tail and the next onset so the gap is that long),
a paragraph or sentence end its usual pause. Segments are numbered across runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from kokorod.synth.segment import PARAGRAPH_PAUSE_S, SENTENCE_PAUSE_S, Segment, SegmentStream
from kokorod.synth.ssml import Run


@dataclass(frozen=True)
class RunSegment(Segment):
    """A segment with its run's voice, language and rate, and its exact silences."""

    voice: str | None = None
    lang: str | None = None
    rate: float = 1.0
    lead_s: float = 0.0  # exact silence before it (a <break> before the first words)
    break_s: float | None = None  # exact silence after it (a <break>); pause_s is 0 then
    trim_head: bool = False  # a <break> came before: its onset's quiet is cut


def _pause(run: Run, text: str, last: bool) -> float:
    if last:
        return 0.0  # the request's audio ends where its speech does
    if run.boundary == "p":
        return PARAGRAPH_PAUSE_S
    if run.boundary == "s":
        return SENTENCE_PAUSE_S
    from kokorod.synth.segment import _pause_for

    return _pause_for(text, False)


class RunStream:
    """SegmentStream's interface (`next`, `exhausted`) over a document's runs."""

    def __init__(self, runs: list[Run], lead_s: float = 0.0) -> None:
        self._runs = runs
        self._lead = lead_s
        self._at = 0
        self._stream: SegmentStream | None = None
        self._index = 0
        self._after_break = False

    def next(self, first_chars: int, max_chars: int) -> Segment | None:
        while self._at < len(self._runs):
            run = self._runs[self._at]
            if self._stream is None:
                self._stream = SegmentStream(run.text)
            seg = self._stream.next(first_chars, max_chars)
            if seg is None:
                self._at, self._stream = self._at + 1, None
                continue
            ends_run = self._stream.exhausted()
            pause, exact = seg.pause_s, None
            if ends_run:
                exact = run.break_s
                pause = 0.0 if exact is not None else _pause(
                    run, seg.text, self._at == len(self._runs) - 1)
                self._at, self._stream = self._at + 1, None
            out = RunSegment(seg.text, pause, self._index, seg.spoken, voice=run.voice,
                             lang=run.lang, rate=run.rate,
                             lead_s=self._lead if self._index == 0 else 0.0,
                             break_s=exact, trim_head=self._after_break)
            self._after_break = exact is not None
            self._index += 1
            return out
        return None

    def exhausted(self) -> bool:
        return self._at >= len(self._runs)
