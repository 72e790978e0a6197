"""Where sentences end: one rule for the daemon's segments (kokorod/synth/segment.py) and the
client's sentence-by-sentence display and subtitle cues (`kokoro-say -i`, `--subtitles`).

A sentence ends after end punctuation (plus closing quotes or brackets) and whitespace,
or at a line break; a blank line ends a paragraph. A full stop after a title or an
abbreviation that introduces something ("Mr.", "Dr.", "e.g.", "vs."), or after a single
initial ("J. R. R. Tolkien"), does not end one; after another abbreviation the English
cleanup reads in full ("Ave.", "Mon.", "etc.", "p.m.") it does only when a capital letter
follows — the cleanup keeps that full stop then, and only then, so the rule cuts the text
as written where it cuts the text as spoken.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from kokorod_common.abbreviations import ABBREVIATIONS as READ_IN_FULL
from kokorod_common.abbreviations import NEVER_END
from kokorod_common.punctuation import SENTENCE_END_CLASS

# Abbreviations after which a full stop does not end the sentence.
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e cf fig no vol approx dept est inc ltd co corp "
    "jan feb mar apr jun jul aug sep sept oct nov dec mt ft gen col lt sgt capt rev".split()
)
# A time of day's "a.m."/"pm" ("5 p.m.", "7pm", "9:30am"): the end of a sentence when a
# capital letter follows, as for the abbreviations read in full.
HALF_DAY = re.compile(r"(?:\d{1,2}(?::\d\d){0,2})?[ap]\.?m", re.I)

_SENTENCE_RE = re.compile(
    rf"""(?P<body>.*?(?:{SENTENCE_END_CLASS}+["'”’)\]]*(?=\s|$)|(?=\n)|$))(?P<gap>\s*)""",
    re.DOTALL,
)


class Sentence(NamedTuple):
    start: int  # in the text, first non-space character
    end: int  # exclusive, after its last non-space character
    paragraph_end: bool  # a blank line follows


def _words(body: str) -> list[str]:
    """The last two words of `body`, without the brackets or quotes opening them."""
    return [w.lstrip("([{\"'“‘«") for w in body.rsplit(None, 2)[-2:]]


def continues_after(body: str, following: str = "") -> bool:
    """Does the full stop ending `body` belong to an abbreviation or an initial (so the
    sentence goes on)? `following` is the text after it (its first word, at least)."""
    if not body.endswith(".") or body.endswith(".."):  # "..": no abbreviation's
        return False
    words = _words(body)
    written = words[-1] if words else ""
    capital_next = following[:1].isupper()
    if written in NEVER_END:
        return True
    if written in READ_IN_FULL or (written == "St." and len(words) == 2
                                   and words[0][:1].isupper() and words[0][1:].islower()):
        return not capital_next  # "Main St. Then" is read "Main Street. Then"
    last = written.rstrip(".").lower()
    if len(last) == 1 and last.isalpha():  # an initial, unless "p.m." as read ("five P M.")
        return not (written == "M." and words[:1] in (["A"], ["P"]) and capital_next)
    if last in ABBREVIATIONS:
        return True
    return HALF_DAY.fullmatch(last) is not None and not capital_next


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
