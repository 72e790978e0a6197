"""Which marks end a sentence and which end a clause: one list for the daemon's text
cutting and cleaning and for the client's sentence-by-sentence display (`say -i`)."""

from __future__ import annotations

import re

SENTENCE_END = ".!?…。！？"  # Latin, and the CJK full-width forms
CLAUSE_END = ",;:—–、，；："
# One or more sentence marks, as a regex character class body.
SENTENCE_END_CLASS = "[" + re.escape(SENTENCE_END) + "]"


def ends_sentence(text: str, also: str = "") -> bool:
    """Does `text` end with a sentence mark (or one of `also`)?"""
    return bool(text) and text[-1] in SENTENCE_END + also
