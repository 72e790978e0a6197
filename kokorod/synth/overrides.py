"""Readings decided before the phonemizer: a word's own phonemes or respelling, and SSML
marks, carried inside the spoken text itself.

SSML's `<phoneme>` and `<say-as>`, the user lexicon and inline `[word](/ipa/)` all
come down to "read these written words this way". The written words stay in the
text (segmenting, word marks and their spans see them as any other word); what to
read follows them, encoded in private-use characters that no word pattern matches,
no sentence rule cuts at and no cleanup touches:

    OPEN written SEP payload CLOSE      payload: phonemes, or RESPELL + text to read

Because the reading is part of the text, the phoneme cache and the audio cache,
which key by the text, key by it too: a changed lexicon entry is heard at once.
A `<mark>` is MARK + its number. `visible()` gives the text as a person reads it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

OPEN, SEP, CLOSE, RESPELL, MARK = "\ue000", "\ue001", "\ue002", "\ue003", "\ue004"
_BASE = 0xF0000  # each payload character is shifted into plane 15's private use area
_CODES = frozenset((OPEN, SEP, CLOSE, RESPELL, MARK))


def _encode(text: str) -> str:
    return "".join(chr(_BASE + ord(ch)) for ch in text if ord(ch) < 0xFFFE)


def _decode(text: str) -> str:
    return "".join(chr(ord(ch) - _BASE) for ch in text if ord(ch) >= _BASE)


def reading(written: str, phonemes: str) -> str:
    """`written` read as `phonemes` (Kokoro's phoneme set)."""
    return f"{OPEN}{written}{SEP}{_encode(phonemes)}{CLOSE}"


def respelled(written: str, spelling: str) -> str:
    """`written` read as the phonemizer reads `spelling`, on its own."""
    return f"{OPEN}{written}{SEP}{RESPELL}{_encode(spelling)}{CLOSE}"


def mark(number: int) -> str:
    """Where the `number`th SSML mark of a request stands."""
    return MARK + chr(_BASE + number)


class Piece(NamedTuple):
    """A stretch of marked text: plain text (phonemes and spelling None), or written
    words with their phonemes or their respelling."""

    text: str
    phonemes: str | None = None
    spelling: str | None = None


def pieces(text: str) -> Iterator[Piece]:
    """The plain stretches and the readings of `text`, in order; marks left out."""
    at, n = 0, len(text)
    plain: list[str] = []
    while at < n:
        ch = text[at]
        if ch == OPEN:
            sep = text.find(SEP, at)
            close = text.find(CLOSE, at)
            if sep < 0 or close < sep:  # cut apart (cannot happen from our own markup)
                at += 1
                continue
            if plain:
                yield Piece("".join(plain))
                plain = []
            payload = text[sep + 1:close]
            written = text[at + 1:sep]
            if payload.startswith(RESPELL):
                yield Piece(written, spelling=_decode(payload[1:]))
            else:
                yield Piece(written, phonemes=_decode(payload))
            at = close + 1
        elif ch == MARK:
            at += 2
        elif ch in _CODES or ord(ch) >= _BASE:
            at += 1
        else:
            plain.append(ch)
            at += 1
    if plain:
        yield Piece("".join(plain))


def has_markup(text: str) -> bool:
    return any(code in text for code in (OPEN, MARK))


def visible(text: str) -> str:
    """The text as written: readings and marks dropped, written words kept."""
    if not has_markup(text):
        return text
    return "".join(p.text for p in pieces(text))


def marks_in(text: str) -> list[tuple[int, int]]:
    """(position in `text`, mark number) of each mark, in order."""
    out = []
    at = text.find(MARK)
    while at >= 0 and at + 1 < len(text):
        out.append((at, ord(text[at + 1]) - _BASE))
        at = text.find(MARK, at + 2)
    return out


def word_reading(text: str, start: int, end: int) -> str:
    """What to phonemize for the word at text[start:end]: the whole reading when the word
    opens one, nothing for a later word of the same reading, else the word itself."""
    opened = text.rfind(OPEN, 0, start)
    if opened >= 0 and text.rfind(CLOSE, 0, start) < opened:  # inside a reading
        close = text.find(CLOSE, start)
        if close < 0:
            return text[start:end]
        first = not any(c.isalnum() for c in text[opened + 1:start])
        return text[opened:close + 1] if first else ""
    return text[start:end]
