"""Where sentences end: one rule for the daemon's segments (kokorod/synth/segment.py) and the
client's sentence-by-sentence display and subtitle cues (`kokoro-say -i`, `--subtitles`).

A sentence ends after end punctuation (plus closing quotes or brackets) and whitespace,
or at a line break; a blank line ends a paragraph. A full stop after an abbreviation
("Mr.", "e.g.", "St."), or after a single initial ("J. R. R. Tolkien"), does not end one;
"a.m." and "p.m." do only when the next word starts with a capital letter.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from kokorod_common.punctuation import SENTENCE_END_CLASS

# Abbreviations after which a full stop does not end the sentence.
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e cf fig no vol approx dept est inc ltd co corp "
    "jan feb mar apr jun jul aug sep sept oct nov dec mt ft gen col lt sgt capt rev".split()
)
# Abbreviations that often end a sentence too: they do when a capital letter follows.
ABBREVIATIONS_BEFORE_LOWER = frozenset({"a.m", "p.m"})

_SENTENCE_RE = re.compile(
    rf"""(?P<body>.*?(?:{SENTENCE_END_CLASS}+["'”’)\]]*(?=\s|$)|(?=\n)|$))(?P<gap>\s*)""",
    re.DOTALL,
)


class Sentence(NamedTuple):
    start: int  # in the text, first non-space character
    end: int  # exclusive, after its last non-space character
    paragraph_end: bool  # a blank line follows


def _last_word(body: str) -> str:
    words = body.rstrip(".").rsplit(None, 1)
    return words[-1].lower().lstrip("(\"'") if words else ""


def continues_after(body: str, following: str = "") -> bool:
    """Does the full stop ending `body` belong to an abbreviation or an initial (so the
    sentence goes on)? `following` is the text after it, for "p.m." and the like."""
    if not body.endswith("."):
        return False
    last = _last_word(body)
    if (len(last) == 1 and last.isalpha()) or last in ABBREVIATIONS:
        return True
    return last in ABBREVIATIONS_BEFORE_LOWER and following[:1].islower()


def sentence_spans(text: str) -> Iterator[Sentence]:
    """The sentences of `text`, lazily, as spans of it (blank ones left out)."""
    start: int | None = None  # of a sentence carried past an abbreviation
    pos, n = 0, len(text)
    while pos < n:
        m = _SENTENCE_RE.match(text, pos)
        if m is None or m.end() == pos:  # pragma: no cover - the regex always advances
            break
        pos = m.end()
        body, gap = m.group("body"), m.group("gap")
        a, b = m.start("body"), m.end("body")
        if start is None:
            start = a
        if "\n" not in gap and pos < n and continues_after(body, text[pos:pos + 1]):
            continue
        span = _strip(text, start, b)
        start = None
        if span is not None:
            yield Sentence(span[0], span[1], gap.count("\n") >= 2)
    if start is not None and (span := _strip(text, start, n)) is not None:
        yield Sentence(span[0], span[1], False)


def _strip(text: str, a: int, b: int) -> tuple[int, int] | None:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return (a, b) if b > a else None


def sentences(text: str) -> Iterator[tuple[str, bool]]:
    """(sentence with its whitespace collapsed, paragraph_end), lazily."""
    for s in sentence_spans(text):
        yield " ".join(text[s.start:s.end].split()), s.paragraph_end
