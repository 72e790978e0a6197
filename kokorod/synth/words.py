"""Where each spoken word is: in the request's own text, and among a batch's tokens.

Word marks need two maps. Cleanup rewrites text ("$5" → "five dollars", Markdown
loses its `**`), so `source_spans` lines the spoken words up with the words of the
request's text (a word-level diff): a word that survived points at itself, a
rewritten run of words points at the whole run it came from ("five" and "dollars"
both at "$5"), a word cleanup added (an operator said aloud) at the symbols between
its neighbours. espeak reads a sentence with context and joins words ("in the" →
"ɪnðə"), so `phoneme_spans` lines the words' own readings up with the sentence's
reading, phoneme by phoneme, to find where each word starts and ends among the
tokens the model was given.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from kokorod.synth import overrides
from kokorod.synth.segment import Segment

WORD = re.compile(r"\w+(?:['’]\w+)*")
# Words and the punctuation that survives cleanup: commas and full stops anchor the
# alignment inside a run of rewritten words ("the 1990s, 50%").
# A clock time ("9:30", "14:30:05") is one word: its colon is no punctuation to anchor on.
_TOKEN = re.compile(r"\d{1,2}:\d{2}(?::\d{2})?(?![\d:])|\w+(?:['’]\w+)*|[,;:.!?]")
_STRESS = "ˈˌ"  # espeak puts these where context moves stress: not matched on
_SPOKEN_SYMBOLS = "#%&@+=<>/\\|~^"  # symbols cleanup may have said in words


Span = tuple[int, int]
_PHONEME_WORD = re.compile(r"(?:^|(?<=[\s,;:.!?—…]))([ˈˌ]?[^\W\d_])")


def word_spans(text: str) -> list[Span]:
    """The words of `text`, as (start, end) character offsets."""
    return [m.span() for m in WORD.finditer(text)]


def _symbolic(ch: str) -> bool:
    return ch in _SPOKEN_SYMBOLS or unicodedata.category(ch)[0] == "S"


def _widen(text: str, start: int, end: int) -> Span:
    """A rewritten run with the symbols stuck to it ("$5", "50%", "#3")."""
    while start > 0 and _symbolic(text[start - 1]):
        start -= 1
    while end < len(text) and _symbolic(text[end]):
        end += 1
    return start, end


def _between(text: str, words: Sequence[Span], i: int) -> Span:
    """Where a word cleanup added before original word `i` comes from: the text
    between words i-1 and i (an operator, a symbol), else the nearest word."""
    lo = words[i - 1][1] if i > 0 else 0
    hi = words[i][0] if i < len(words) else len(text)
    gap = text[lo:hi]
    stripped = gap.strip()
    if stripped:
        at = lo + gap.index(stripped)
        return at, at + len(stripped)
    if i < len(words):
        return words[i]
    if words:
        return words[-1]
    return 0, len(text)


class _Tokens:
    """A text's tokens (`_TOKEN`), found as far as they are asked for."""

    def __init__(self, text: str) -> None:
        self._found = _TOKEN.finditer(text)
        self.spans: list[Span] = []
        self.starts: list[int] = []

    def _more(self) -> bool:
        m = next(self._found, None)
        if m is None:
            return False
        self.spans.append(m.span())
        self.starts.append(m.start())
        return True

    def upto(self, count: int) -> None:
        """At least `count` tokens found (fewer: the text has no more)."""
        while len(self.spans) < count and self._more():
            pass

    def past(self, at: int) -> None:
        """Every token starting at or before character `at` found, and the one after."""
        while (not self.starts or self.starts[-1] <= at) and self._more():
            pass


class SourceMap:
    """Lines the spoken words up with the request's own text, segment by segment, in
    order. Each call aligns the segment's words, and a few spoken words after them
    (so a rewrite at the segment's end is bounded by what follows), against a window
    of the original text after the last word placed: cleanup only rewrites locally,
    so a long text costs time in proportion to its length, and nothing is read or
    aligned before it is spoken (a 500,000-character text tokenised at once held the
    event loop for ~0.2 s)."""

    LOOKAHEAD = 24  # spoken tokens

    def __init__(self, original: str, spoken: str) -> None:
        self.original = original
        self.spoken = spoken
        self._source = _Tokens(original)
        self._spoken = _Tokens(spoken)
        self._next = 0  # first original token not yet lined up with a spoken one
        self._said = 0  # spoken tokens placed so far

    def spans(self, piece: str) -> list[Span]:
        """The original span of each word of `piece` (the next spoken text, in order)."""
        tokens = [m.group().casefold() for m in _TOKEN.finditer(piece)]
        if not tokens:
            return []
        n = len(tokens)
        ahead = self._said + n + self.LOOKAHEAD
        self._spoken.upto(ahead)
        b = tokens + [self.spoken[s:e].casefold()
                      for s, e in self._spoken.spans[self._said + n:ahead]]
        budget = 4 * sum(len(w) + 1 for w in b) + 1000
        source = self._source
        source.upto(self._next + 1)
        start = source.starts[self._next] if self._next < len(source.spans) else 0
        source.past(start + budget)
        hi = bisect_right(source.starts, start + budget, lo=self._next)
        window = source.spans[self._next:hi]
        a = [self.original[s:e].casefold() for s, e in window]
        out: list[Span] = []
        placed = 0  # original tokens (of the window) spoken by now
        for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
            if j1 >= n:
                break
            used = min(j2, n) - j1
            if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
                out.extend(window[i1:i1 + used] if tag == "equal" else
                           (_widen(self.original, *window[i]) for i in range(i1, i1 + used)))
                placed = i1 + used
            elif tag == "replace":
                span = _widen(self.original, window[i1][0], window[i2 - 1][1])
                out.extend([span] * used)
                placed = i2 if j2 <= n else i1  # a rewrite going on: the next call again
            elif tag == "insert":
                out.extend([_between(self.original, source.spans, self._next + i1)] * used)
                placed = i1
            else:  # original words nobody says (a link's address): passed over
                placed = i2
        self._next += placed
        self._said += n
        return [span for span, token in zip(out, tokens, strict=True)
                if token[0].isalnum() or token[0] == "_"]


def _letters(phonemes: str) -> tuple[str, list[int]]:
    """The phonemes without spaces, punctuation and stress, and where each one was."""
    keep = [i for i, ch in enumerate(phonemes) if _spoken(ch) and ch not in _STRESS]
    return "".join(phonemes[i] for i in keep), keep


def phoneme_spans(readings: Sequence[str], phonemes: str) -> list[Span | None]:
    """For each word's own reading, the (start, end) of that word in `phonemes` (the
    sentence read as a whole); None for a word with no phonemes of its own there."""
    sentence, where = _letters(phonemes)
    parts = [_letters(r)[0] for r in readings]
    joined = "".join(parts)
    mapped = [-1] * len(joined)
    matcher = SequenceMatcher(None, joined, sentence, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            mapped[block.a + k] = where[block.b + k]
    starts: list[int | None] = []
    lasts: list[int] = []  # each word's last phoneme found (-1: none)
    at, latest = 0, -1
    for part in parts:
        hits = [m for m in mapped[at:at + len(part)] if m >= 0]
        at += len(part)
        start = hits[0] if hits else None
        while start and phonemes[start - 1] in _STRESS:
            start -= 1
        if start is not None and start <= latest:
            start = None  # read out of order: no place of its own
        latest = start if start is not None else latest
        starts.append(start)
        lasts.append(hits[-1] if start is not None else -1)
    # A word read differently alone ("a" alone is the letter's name) takes the phoneme
    # word that begins between its neighbours, if there is one.
    for k, start in enumerate(starts):
        if start is None:
            lo = max([*lasts[:k], -1]) + 1
            hi = next((s for s in starts[k + 1:] if s is not None), len(phonemes))
            gap = _PHONEME_WORD.search(phonemes, lo, hi)
            if gap is not None and (gap.start(1) > 0 or k == 0):
                starts[k] = gap.start(1)
                lasts[k] = gap.start(1)
    # A word ends where the next one starts, less the spaces and marks between them
    # (espeak's reading of a word in context differs from its own at the edges).
    out: list[Span | None] = []
    for k, start in enumerate(starts):
        if start is None:
            out.append(None)
            continue
        after = next((s for s in starts[k + 1:] if s is not None), None)
        end = after if after is not None else _reading_end(phonemes, start)
        while end > start + 1 and not _spoken(phonemes[end - 1]):
            end -= 1
        out.append((start, end))
    return out


def _spoken(ch: str) -> bool:
    return ch.isalpha() or ch in "ːʰʲʷ̃ᵻ"


def _reading_end(phonemes: str, start: int) -> int:
    """The end of the phoneme word that begins at `start`."""
    end = start
    while end < len(phonemes) and (_spoken(phonemes[end]) or phonemes[end] in _STRESS):
        end += 1
    return end


def batch_offsets(phonemes: str, batches: Sequence[str]) -> list[int]:
    """Where each batch (kokoro-onnx's split, joined by single spaces) starts in
    `phonemes`."""
    out, at = [], 0
    for batch in batches:
        found = phonemes.find(batch, at)
        at = found if found >= 0 else at
        out.append(at)
        at += len(batch)
    return out


def batch_words(phonemes: str, batches: Sequence[str],
                readings: Sequence[str]) -> list[list[tuple[int, int, int]]]:
    """For each batch of `phonemes` (a segment's reading, cut by kokoro-onnx), its
    words: (index among the segment's words, first token, token after the last).
    `readings` are the words' own readings; tokens are the batch's characters."""
    spans = phoneme_spans(readings, phonemes)
    offsets = batch_offsets(phonemes, batches)
    out: list[list[tuple[int, int, int]]] = [[] for _ in batches]
    for word, span in enumerate(spans):
        if span is None:
            continue
        k = max(0, bisect_right(offsets, span[0]) - 1)
        lo, size = offsets[k], len(batches[k])
        if span[0] - lo < size:
            out[k].append((word, span[0] - lo, min(span[1] - lo, size)))
    return out


@dataclass(frozen=True)
class WordTime:
    """Where a segment's word is heard: samples from the start of the segment's audio."""

    word: int  # index among the segment text's words (`word_spans`)
    sample: int
    samples: int


def shared_out(segment: Segment, samples: int) -> list[WordTime]:
    """Where a segment's words are heard when the model does not say (the whole model
    gives no durations): each word by its share of the text, over `samples` of speech."""
    text = segment.text
    rest_at = len(text) - len(segment.rest) if segment.spoken else 0
    size = max(1, len(text) - rest_at)
    spans = word_spans(text)
    starts = [(k, int(samples * (s - rest_at) / size)) for k, (s, _) in enumerate(spans)
              if s >= rest_at]
    return [WordTime(k, at, max(1, (starts[i + 1][1] if i + 1 < len(starts) else samples) - at))
            for i, (k, at) in enumerate(starts)]


def read_batches(phonemize: Any, text: str, lang: str, words: bool, skip_words: int = 0
                 ) -> tuple[list[str], list[list[tuple[int, int, int]]]]:
    """The batches of `text`'s reading (`phonemize`: phonemes.Phonemizer) and (`words`)
    each batch's words, numbered from `skip_words` (the words of a head read before)."""
    from kokoro_onnx.chunker import split_phonemes
    from kokoro_onnx.config import MAX_PHONEME_LENGTH

    phonemes = phonemize(text, lang)
    batches = split_phonemes(phonemes, MAX_PHONEME_LENGTH) if phonemes else []
    if not (words and batches):
        return batches, [[] for _ in batches]
    spans = word_spans(text)
    readings = phonemize.each([overrides.word_reading(text, s, e) for s, e in spans], lang)
    found = batch_words(phonemes, batches, readings)
    return batches, [[(w + skip_words, a, b) for w, a, b in ws] for ws in found]
