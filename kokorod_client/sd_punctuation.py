"""What sd_kokoro asks kokorod for a sentence: speech-dispatcher's marks inside it as
SSML (they come back at their words' samples), spelling mode, and the punctuation
modes, which say marks by name.

`none` says none (the daemon's cleanup still reads symbols such as `%` or `&` the way
plain text does); `some` says symbols (`@ # $ % & * …`) but not the marks that end
clauses and sentences; `most` adds brackets, quotes and dashes; `all` says every one.
The mark itself stays after its name, so the pause it makes is kept. Names are
English (speech-dispatcher's own symbol tables are per language; these cover the
voices' common case).
"""

from __future__ import annotations

import itertools

NAMES = {
    "@": "at", "#": "hash", "$": "dollar", "%": "percent", "^": "caret", "&": "and",
    "*": "star", "+": "plus", "=": "equals", "/": "slash", "\\": "backslash", "|": "bar",
    "~": "tilde", "<": "less than", ">": "greater than", "_": "underscore", "`": "backtick",
    "(": "left paren", ")": "right paren", "[": "left bracket", "]": "right bracket",
    "{": "left brace", "}": "right brace", "\"": "quote", "'": "apostrophe", "-": "dash",
    "—": "dash", "–": "dash", ",": "comma", ".": "dot", ";": "semicolon", ":": "colon",
    "!": "exclamation", "?": "question", "…": "ellipsis",
}
_SOME = frozenset("@#$%^&*+=/\\|~<>_`")
_MOST = _SOME | frozenset("()[]{}\"-—–")
MODES = {"none": frozenset(), "some": _SOME, "most": _MOST, "all": frozenset(NAMES)}


def said(text: str, mode: str) -> str:
    """`text` with the marks of `mode` said by name (an apostrophe inside a word, a dot
    inside a number and a hyphen inside a word are left alone)."""
    names = MODES.get(mode.lower(), frozenset())
    if not names:
        return text
    out = []
    for i, ch in enumerate(text):
        inside = 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
        if ch in names and not (inside and ch in "'.-,"):
            out.append(f" {NAMES[ch]}{ch if ch in ',.;:!?…' else ''} ")
        else:
            out.append(ch)
    spaced = "".join(out)
    while "  " in spaced:
        spaced = spaced.replace("  ", " ")
    return spaced


def as_ssml(text: str, inner: list[tuple[int, str]], spelling: bool,
            punctuation: str = "none") -> tuple[str, str | None]:
    """What to ask kokorod for a sentence: SSML when marks stand inside it (they come
    back at their words' samples) or letters are to be spelled; else the plain text.
    Punctuation the mode says by name is spelled out between the marks."""
    cuts = [0, *(offset for offset, _ in inner), len(text)]
    parts = [said(text[a:b], punctuation) for a, b in itertools.pairwise(cuts)]
    if not inner and not spelling:
        return parts[0], None
    from xml.sax.saxutils import escape, quoteattr

    out = [escape(parts[0])]
    for (_, name), part in zip(inner, parts[1:], strict=True):
        out.append(f"<mark name={quoteattr(name)}/>")
        out.append(escape(part))
    body = "".join(out)
    if spelling:
        body = f'<say-as interpret-as="characters">{body}</say-as>'
    return f"<speak>{body}</speak>", "ssml"
