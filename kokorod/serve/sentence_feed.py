"""Text that arrives in pieces (an LLM's tokens, Wyoming's `synthesize-chunk`s) → whole
sentences as soon as each is certainly complete, so speech can start before the text ends.

A sentence is complete once text of the next one has arrived, or once it ends in end
punctuation followed by whitespace and its last word is no abbreviation that may go on
("Mr.", "e.g.", "a.m."). The rule for where sentences end is kokorod_common/sentences.py's,
the same the daemon's segments use. A run with no sentence end longer than `max_chars`
is handed on whole, so memory stays bounded whatever a peer sends.
"""

from __future__ import annotations

import re

from kokorod_common.punctuation import SENTENCE_END_CLASS
from kokorod_common.sentences import continues_after, sentence_spans

_ENDS = re.compile(rf"{SENTENCE_END_CLASS}+[\"'”’)\]]*$")


class SentenceFeed:
    """add() pieces of text, get back the sentences they completed; finish() the rest."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max(1, max_chars)
        self.buffer = ""

    def add(self, piece: str) -> list[str]:
        self.buffer += piece
        spans = list(sentence_spans(self.buffer))
        if not spans:
            self.buffer = "" if not self.buffer.strip() else self.buffer
            return []
        done = spans[:-1]
        last = spans[-1]
        if self._ended(last.start, last.end):
            done.append(last)
            cut = len(self.buffer)
        else:
            cut = last.start
        out = [" ".join(self.buffer[s.start:s.end].split()) for s in done]
        self.buffer = self.buffer[cut:]
        if len(self.buffer) > self.max_chars:  # no end in sight: hand it on as it is
            out.append(" ".join(self.buffer.split()))
            self.buffer = ""
        return [s for s in out if s]

    def finish(self) -> str:
        """What is left (the last sentence, ended or not); the feed is empty again."""
        rest, self.buffer = " ".join(self.buffer.split()), ""
        return rest

    def _ended(self, start: int, end: int) -> bool:
        """Does the buffer's last sentence end for certain (end mark, then whitespace)?"""
        if end == len(self.buffer) or self.buffer[end:].strip():
            return False
        body = self.buffer[start:end]
        if not _ENDS.search(body):
            return False
        # "Mr." and "e.g." go on; "at 9 a.m. today" may: the next piece tells
        return not continues_after(body, "a")
