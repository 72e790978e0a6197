"""Exact silences for SSML's `<break>`: a segment's audio with its quiet edges cut and
the break's silence added, so the gap between the words is the time asked for.

The model ends a segment with a fading tail and starts the next with a quiet onset
(together ~0.1–0.3 s); a `<break time="700ms">` must be heard as 0.7 s. The speech
before a break has its tail cut where the sound last rises above QUIET, the speech
after it its onset up to where the sound first does; the break is digital silence
in between. Word timings move with the cut, so marks stay on their words.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kokorod.synth.vocoder import Audio
from kokorod_common.protocol import SAMPLE_RATE

QUIET = 10 ** (-45 / 20)  # -45 dBFS: below this, a tail or onset counts as silence


def _zeros(seconds: float) -> Audio:
    return np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)


def _loud(audio: Audio) -> np.ndarray:
    return np.flatnonzero(np.abs(audio) >= QUIET)


class ExactPauses:
    """A segment's Pieces (engine or cache) with exact silences before and after."""

    def __init__(self, inner: object, lead_s: float, trim_head: bool,
                 break_s: float | None) -> None:
        self.inner = inner
        self._lead = _zeros(lead_s) if lead_s else None
        self._trim_head = trim_head
        self._break = break_s
        self._held: Audio | None = None  # before a break: quiet kept back, maybe the tail
        self._shift = len(self._lead) if self._lead is not None else 0
        self._done = False

    @property
    def words(self) -> list:  # the engine's list: the job reads and clears it
        return self.inner.words  # type: ignore[attr-defined, no-any-return]

    def interrupt(self) -> None:
        self.inner.interrupt()  # type: ignore[attr-defined]

    def _moved_words(self) -> None:
        words = self.words
        for k, w in enumerate(words):
            words[k] = dataclasses.replace(w, sample=max(0, w.sample + self._shift))

    def step(self) -> Audio | None:
        while not self._done:
            audio = self.inner.step()  # type: ignore[attr-defined]
            if audio is None:
                self._moved_words()
                self._done = True
                return self._last()
            if self._trim_head:
                loud = _loud(audio)
                cut = int(loud[0]) if loud.size else audio.size
                self._shift -= cut
                audio = audio[cut:]
                self._trim_head = not loud.size
            self._moved_words()
            if self._lead is not None:
                audio, self._lead = np.concatenate([self._lead, audio]), None
            if self._break is None:
                return audio
            if self._held is not None:  # the quiet kept back may be the tail, or not
                audio = np.concatenate([self._held, audio])
            loud = _loud(audio)
            end = int(loud[-1]) + 1 if loud.size else 0
            audio, self._held = audio[:end], audio[end:]
            if audio.size:
                return audio
        return None

    def _last(self) -> Audio:
        """The break (after a lead never given: a segment with no sound); the quiet tail
        kept back is left out."""
        lead = self._lead if self._lead is not None else np.zeros(0, dtype=np.float32)
        if self._break is None:
            return lead
        return np.concatenate([lead, _zeros(self._break)]).astype(np.float32)


def exact(pieces: object, segment: object) -> object:
    """`pieces` wrapped when the segment has exact silences (run_stream.RunSegment)."""
    lead = getattr(segment, "lead_s", 0.0)
    trim = getattr(segment, "trim_head", False)
    brk = getattr(segment, "break_s", None)
    if not (lead or trim or brk is not None):
        return pieces
    return ExactPauses(pieces, lead, trim, brk)
