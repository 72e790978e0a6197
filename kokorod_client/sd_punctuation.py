"""speech-dispatcher's punctuation modes for sd_kokoro: which marks are said by name.

`none` says none (the daemon's cleanup still reads symbols such as `%` or `&` the way
plain text does); `some` says symbols (`@ # $ % & * …`) but not the marks that end
clauses and sentences; `most` adds brackets, quotes and dashes; `all` says every one.
The mark itself stays after its name, so the pause it makes is kept. Names are
English (speech-dispatcher's own symbol tables are per language; these cover the
voices' common case).
"""

from __future__ import annotations

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
