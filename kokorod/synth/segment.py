"""Text → segments, the unit of synthesis; where to cut depends on the text alone.

Kokoro gives each piece it is handed its own prosody, so a cut is heard: pieces
are whole sentences wherever possible. `SegmentStream.next()` applies the rule:

- the first segment is the first sentence (a tiny one, "Hi.", with those after it up
  to `first_chars`); only when that sentence is longer than
  `first_chars` (its front, ~10 % of the compute and proportional to its length,
  would delay first audio) it ends at a clause mark (comma, semicolon, colon,
  dash), where a listener hears a pause anyway — the last one within `first_chars`,
  else the first one after; a sentence with no clause mark is not cut. The next
  segment is then that whole sentence with `spoken` set to the head: the model
  reads the sentence whole, so the rest keeps the sentence's own prosody, and the
  engine starts its audio where the head's tokens end;
- every later segment packs whole sentences up to `max_chars` (a paragraph end
  ends one), and up to GROWTH × the characters of the segment before it (at least
  `first_chars`): after a heading, the next front is short enough to be done before
  the heading has played. A sentence longer than that budget is cut as a long
  first sentence is, the next segment reading the whole sentence: at the clause
  mark that best balances the two steps (`balanced_cut`); with none that helps, it
  is read whole. Only a
  sentence longer than `max_chars` is cut for good, at the least disruptive
  place (clause mark, then before a conjunction, then between words, and only
  for a run with no spaces at all, mid-word).

No timing enters the rule, so the same text always gives the same segments and
therefore the same audio. `take(budget)` packs up to an explicit budget (tools
and tests). Text is consumed lazily, so a very long input streams in bounded
memory.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

from kokorod_common.punctuation import CLAUSE_END, SENTENCE_END
from kokorod_common.sentences import sentences

FIRST_CHARS = 100  # defaults of KOKORO_FIRST_SEGMENT_CHARS / KOKORO_SEGMENT_CHARS
MAX_CHARS = 300
MIN_PIECE_CHARS = 12  # a clause cut leaves at least this much on either side
# A first sentence shorter than this is read together with the sentences after it (up to
# first_chars): on its own its audio (~0.5 s) would run out before the next one's front
# and first window were done; together they take one front call.
TINY_FIRST_CHARS = 12
# A segment packs sentences up to this many times the characters of the one before it
# (a longer sentence is cut at a clause mark), so a short segment is not followed by a
# front too long to be done before its audio has played: "Chapter 1." then a paragraph
# packed to 300 characters stalled playback 1.6 s into the soak (its heading alone: ~1.2 s
# of audio, the paragraph's front ~0.5 s here); a 34-character sentence then a whole
# 111-character one stalled it at 3.7 s. A heading before a paragraph is common.
GROWTH = 3
# Added to what trimming leaves at a sentence join (~0.25 s of quiet tail and onset):
# 0.15 gave joins of 0.35–0.41 s where kokoro-onnx reading the sentences together pauses
# 0.40–0.51 s (bench/prosody.py); 0.25 made them 0.45–0.51 s and the text 7 % longer.
SENTENCE_PAUSE_S = 0.15
CLAUSE_PAUSE_S = 0.1
# After the head of a cut first sentence. Plain kokoro-onnx reading the whole sentence
# paused 0.28–0.43 s at these clause marks (bench/prosody.py); the head read alone ends
# without that pause and the rest, read from the whole sentence, brings ~0.1 s of it.
CUT_PAUSE_S = 0.25
# After the head of a later sentence cut to follow a short segment: none added. The rest
# read from the whole sentence brings the clause's pause (0.18–0.26 s measured), where
# plain kokoro-onnx paused 0.13–0.15 s: with 0.25 more, "Good evening. After lunch, when
# everyone had gone home, …" ran 8 % longer than one-shot (0.51 s at that comma), with
# none 5 % (0.26 s); the soak's "Chapter 1." text 0.4 %.
LATER_CUT_PAUSE_S = 0.0
PARAGRAPH_PAUSE_S = 0.45


_CLAUSE_RE = re.compile("[" + re.escape(CLAUSE_END) + r"]\s+|\s[—–]\s")
_CONJUNCTIONS = (
    "and but or nor so yet because although though while whereas which who whom whose "
    "that when where if unless until since after before then however therefore with "
    "without for to of in on at from by into through during about against between"
).split()
_CONJ_SET = frozenset(_CONJUNCTIONS)
_CONJ_RE = re.compile(r"\s(?=(?:" + "|".join(_CONJUNCTIONS) + r")\b)", re.IGNORECASE)
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")


def clean(text: str) -> str:
    """Drop control characters (espeak stops reading at NUL) and normalise Unicode."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    # Lone surrogates cannot be encoded for espeak; drop them.
    text = text.encode("utf-8", "ignore").decode("utf-8")
    return _CONTROL_RE.sub(" ", text)


@dataclass(frozen=True)
class Segment:
    text: str
    pause_s: float  # silence to add after this segment's (trimmed) audio
    index: int
    # The start of `text` that an earlier segment already spoke: the model reads the
    # whole sentence (its prosody) and the audio begins after this part.
    spoken: str = ""

    @property
    def rest(self) -> str:
        """What this segment adds to what was heard."""
        return self.text[len(self.spoken):].strip() if self.spoken else self.text


def _pause_for(text: str, paragraph_end: bool) -> float:
    if paragraph_end:
        return PARAGRAPH_PAUSE_S
    tail = text.rstrip("\"'”’)] ")[-1:]
    if tail and tail in SENTENCE_END:
        return SENTENCE_PAUSE_S
    if tail and tail in CLAUSE_END:
        return CLAUSE_PAUSE_S
    return 0.0


def split_point(text: str, budget: int) -> int:
    """Where to cut `text` so the head is ≤ budget chars, at the least disruptive place."""
    if len(text) <= budget:
        return len(text)
    window = text[: budget + 1]
    floor = max(1, budget // 3)  # avoid a tiny head when a later boundary exists
    for pattern in (_CLAUSE_RE, _CONJ_RE):
        cuts = [m.end() if pattern is _CLAUSE_RE else m.start() for m in pattern.finditer(window)]
        cuts = [c for c in cuts if 0 < c <= budget and text[:c].strip()]
        if pattern is _CONJ_RE:  # "and then": cut before the run, not inside it
            cuts = [c for c in cuts if text[:c].rsplit(None, 1)[-1].lower() not in _CONJ_SET]
        good = [c for c in cuts if c >= floor]
        if good:
            return good[-1]
    space = window.rfind(" ")
    if space > 0 and text[:space].strip():
        return space
    return budget  # one unbroken run (no spaces): cut mid-word


def _clause_cuts(sentence: str) -> list[int]:
    """After each clause mark that leaves MIN_PIECE_CHARS on either side."""
    cuts = [m.end() for m in _CLAUSE_RE.finditer(sentence)]
    return [c for c in cuts if len(sentence[:c].strip()) >= MIN_PIECE_CHARS
            and len(sentence[c:].strip()) >= MIN_PIECE_CHARS]


def first_cut(sentence: str, first_chars: int, max_chars: int) -> int | None:
    """Where a long first sentence may end its first segment: after a clause mark, the
    last within `first_chars`, else the first within `max_chars`; None: do not cut."""
    if len(sentence) <= first_chars:
        return None
    cuts = _clause_cuts(sentence)
    early = [c for c in cuts if c <= first_chars]
    if early:
        return early[-1]
    late = [c for c in cuts if c <= max_chars]
    return late[0] if late else None


def balanced_cut(sentence: str, before: int) -> int | None:
    """Where a sentence too long to follow `before` characters is best cut: the head is
    read after those, and the whole sentence after the head, so the clause mark that
    keeps the larger of the two steps (head / before, sentence / head) smallest; None
    when no clause mark makes it smaller than reading the sentence whole."""
    def step(cut: int) -> float:
        head = len(sentence[:cut].strip())
        return max(head / before, len(sentence) / head)

    best = min(_clause_cuts(sentence), key=step, default=None)
    return best if best is not None and step(best) < len(sentence) / before else None


class SegmentStream:
    """Lazily hands out segments: `next()` by the rule above, `take()` by a budget."""

    def __init__(self, text: str) -> None:
        self._sentences = sentences(clean(text))
        self._pending: tuple[str, bool] | None = None
        self._index = 0
        self._continue = ""  # head of the first sentence spoken by segment 0
        self._last_chars = 0  # the segment handed out last

    def _peek(self) -> tuple[str, bool] | None:
        if self._pending is None:
            self._pending = next(self._sentences, None)
        return self._pending

    def take(self, budget: int, whole_up_to: int = 0) -> Segment | None:
        """Whole sentences up to `budget` characters; a first sentence longer than that is
        cut, unless it fits in `whole_up_to` (then it is taken whole, alone)."""
        budget = max(1, budget)
        parts: list[str] = []
        size = 0
        paragraph_end = False
        while (item := self._peek()) is not None:
            sentence, para = item
            if not parts:
                if len(sentence) > budget and len(sentence) > whole_up_to:
                    cut = split_point(sentence, max(budget, whole_up_to))
                    head, rest = sentence[:cut].strip(), sentence[cut:].strip()
                    self._pending = (rest, para) if rest else None
                    parts.append(head)
                    break
            elif size + 1 + len(sentence) > budget:
                break
            parts.append(sentence)
            size += len(sentence) + (1 if size else 0)
            self._pending = None
            paragraph_end = para
            if para:
                break  # keep the paragraph pause where the paragraph ends
        if not parts:
            return None
        text = " ".join(parts)
        self._last_chars = len(text)
        # No pause after the last segment: the request's audio ends where its speech does.
        pause = _pause_for(text, paragraph_end) if self._peek() is not None else 0.0
        segment = Segment(text, pause, self._index)
        self._index += 1
        return segment

    def next(self, first_chars: int, max_chars: int) -> Segment | None:
        """The next segment by the text-only rule (module docstring)."""
        budget = min(max_chars, max(first_chars, GROWTH * self._last_chars))
        if self._continue:  # the rest of a cut sentence, read as the whole sentence
            head, self._continue = self._continue, ""
            whole = self.take(budget, whole_up_to=max_chars)
            if whole is not None:
                return Segment(whole.text, whole.pause_s, whole.index, spoken=head)
            return None
        item = self._peek()
        if item is None:
            return None
        sentence = item[0]
        if self._index:  # sentences packed up to GROWTH × the last segment (one at least)
            if budget < len(sentence) <= max_chars:  # one too long: cut at a clause mark
                cut = balanced_cut(sentence, self._last_chars)
                if cut is not None:
                    return self._head(sentence, cut, LATER_CUT_PAUSE_S)
            return self.take(budget, whole_up_to=max_chars)
        if len(sentence) < TINY_FIRST_CHARS:  # "Hi." alone plays out before the next
            return self.take(first_chars)  # sentence's front is done: read them together
        cut = first_cut(sentence, first_chars, max_chars)
        if cut is None:
            return self.take(min(len(sentence), max_chars))  # the first sentence alone
        if len(sentence) > max_chars:  # too long to read whole: cut for good
            return self.take(cut)
        return self._head(sentence, cut, CUT_PAUSE_S)

    def _head(self, sentence: str, cut: int, pause_s: float) -> Segment:
        """The head of `sentence` up to `cut`; the next segment reads the sentence whole."""
        self._continue = sentence[:cut].strip()
        self._last_chars = len(self._continue)
        segment = Segment(self._continue, pause_s, self._index)
        self._index += 1
        return segment

    def exhausted(self) -> bool:
        """No segment is left (the last one handed out was the text's end)."""
        return not self._continue and self._peek() is None

    def __iter__(self) -> Iterator[Segment]:  # the default rule, for tests and tools
        while (seg := self.next(FIRST_CHARS, MAX_CHARS)) is not None:
            yield seg
