"""Which part of the text is being heard: for `kokoro-say -i` and `--progress`.

Word marks (requests with marks: "word") are exact: each is reported once its
first sample has been heard.

The daemon sends a `mark` before each segment's audio (its first sample and
its text). Within a segment, a sentence's start is placed by its share of the
segment's characters between this mark and the next (or the end): close
enough to print each sentence as it starts, exact at every segment boundary.
A segment may end mid-sentence (the first one is short, for early audio): that
piece is reported with `ends=False`, and the sentence goes on in the next one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kokorod_common.messages import Mark
from kokorod_common.punctuation import ends_sentence
from kokorod_common.sentences import sentence_spans


@dataclass
class _Sentence:
    mark_index: int
    offset: int  # characters into the mark's text
    text: str
    ends: bool  # the sentence ends here (else it continues in the next mark)


class Timeline:
    """Feed marks as they arrive and the played position as it advances."""

    def __init__(self, on_sentence: Callable[[str, bool], None] | None = None,
                 on_word: Callable[[Mark], None] | None = None) -> None:
        self.on_sentence = on_sentence
        self.on_word = on_word  # word marks (marks: "word"), each as it is heard
        self.marks: list[Mark] = []
        self.words: list[Mark] = []
        self._words_said = 0
        self.sentences: list[_Sentence] = []
        self.end_sample: int | None = None
        self.total_chars: int | None = None  # the spoken text's length (from `start`)
        self._said = 0

    def add(self, mark: Mark) -> None:
        if mark.kind == "word":
            self.words.append(mark)
            return
        index = len(self.marks)
        self.marks.append(mark)
        for a, b, _ in sentence_spans(mark.text):
            text = " ".join(mark.text[a:b].split())
            ends = ends_sentence(text) or "\n" in mark.text[b:]  # a line break ends it too
            self.sentences.append(_Sentence(index, a, text, ends))

    def finish(self, total_samples: int) -> None:
        self.end_sample = total_samples

    def _span(self, index: int) -> tuple[int, int] | None:
        """First and last sample of mark `index`'s audio, once known."""
        start = self.marks[index].sample
        if index + 1 < len(self.marks):
            return start, self.marks[index + 1].sample
        return (start, self.end_sample) if self.end_sample is not None else None

    def _start_of(self, s: _Sentence) -> int | None:
        if s.offset == 0:
            return self.marks[s.mark_index].sample
        span = self._span(s.mark_index)
        if span is None:
            return None
        length = max(1, len(self.marks[s.mark_index].text))
        return span[0] + int((span[1] - span[0]) * s.offset / length)

    def advance(self, played: int) -> None:
        """Report every word and sentence whose audio has started by sample `played`."""
        while self._words_said < len(self.words) and self.words[self._words_said].sample <= played:
            if self.on_word is not None:
                self.on_word(self.words[self._words_said])
            self._words_said += 1
        while self._said < len(self.sentences):
            start = self._start_of(self.sentences[self._said])
            if start is None or start > played:
                return
            if self.on_sentence is not None:
                sentence = self.sentences[self._said]
                self.on_sentence(sentence.text, sentence.ends)
            self._said += 1

    def chars_at(self, played: int) -> int:
        """Characters of the spoken text heard by sample `played` (for a progress bar)."""
        done = 0
        for i, mark in enumerate(self.marks):
            if mark.sample > played:
                break
            span = self._span(i)
            if span is None or span[1] <= span[0]:
                done = mark.char
                continue
            share = min(1.0, (played - span[0]) / (span[1] - span[0]))
            done = mark.char + int(len(mark.text) * share)
        return done
