"""SSML `<mark>`s placed where the next word starts, from the model's word timings.

A mark stands in the spoken text (overrides.mark); when its segment begins, it is
tied to the first word after it. When the engine says where that word is heard,
the mark goes out at that sample, like a word mark. A mark whose word has no
phonemes of its own goes with the next word heard; marks after the last word, at
the end of the audio.
"""

from __future__ import annotations

from typing import Any

from kokorod.synth import overrides
from kokorod.synth.segment import Segment
from kokorod.synth.words import WordTime, word_spans


class MarkPlacer:
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.pending: list[tuple[int, int]] = []  # (word index in the segment, mark number)
        self.start = 0  # the segment's first sample in the request's audio

    def begin(self, segment: Segment, start: int) -> None:
        """A segment begins at sample `start`: its marks wait for their words (marks not
        placed yet go with its first word)."""
        self.pending = [(-1, n) for _, n in self.pending]
        self.start = start
        head = len(segment.spoken) if segment.spoken else 0
        found = overrides.marks_in(segment.text)
        if not found:
            return
        starts = [s for s, _ in word_spans(segment.text)]
        for at, number in found:
            if at >= head and 0 <= number < len(self.names):
                self.pending.append((sum(1 for s in starts if s < at), number))

    def heard(self, words: list[WordTime]) -> list[dict[str, Any]]:
        """The marks whose word is among `words` (the engine's timings, in order)."""
        out = []
        for w in words:
            while self.pending and self.pending[0][0] <= w.word:
                out.append(self._mark(self.pending.pop(0)[1], self.start + w.sample))
        return out

    def rest(self, sample: int) -> list[dict[str, Any]]:
        """Marks never placed (after the last word): at `sample`, the audio's end."""
        out = [self._mark(n, sample) for _, n in self.pending]
        self.pending = []
        return out

    def _mark(self, number: int, sample: int) -> dict[str, Any]:
        return {"kind": "ssml", "sample": int(sample), "name": self.names[number]}
