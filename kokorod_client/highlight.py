"""`kokoro-say -i` on a terminal: the sentence being spoken, its current word shown in
reverse video and moved in place as each word is heard (as macOS `say -i` does).

The text shown is the text as given (word marks carry spans of it), one sentence or
line at a time; a sentence longer than the terminal is wrapped by us, so it can be
redrawn in place by moving the cursor up over the rows it took.
"""

from __future__ import annotations

import shutil
from bisect import bisect_right
from typing import TextIO

from kokorod_common.messages import Mark
from kokorod_common.sentences import sentence_spans

ON, OFF, CLEAR = "\x1b[7m", "\x1b[27m", "\x1b[K"


def units(text: str) -> list[tuple[int, int]]:
    """The sentences and lines of `text` as (start, end), blank ones left out: the
    daemon's own rule (abbreviations such as "Dr." do not end a sentence)."""
    return [(s.start, s.end) for s in sentence_spans(text)]


def wrap(text: str, width: int) -> list[tuple[int, int]]:
    """Rows of `text` no wider than `width`, broken after spaces where possible."""
    rows, start = [], 0
    while len(text) - start > width:
        cut = text.rfind(" ", start, start + width + 1)
        cut = cut + 1 if cut > start else start + width
        rows.append((start, cut))
        start = cut
    rows.append((start, len(text)))
    return rows


class WordHighlighter:
    """Feed word marks as they are heard; `close()` leaves the last sentence plain."""

    def __init__(self, text: str, out: TextIO, width: int | None = None) -> None:
        self.text = text
        self.out = out
        self.width = max(10, (width or shutil.get_terminal_size().columns) - 1)
        self.units = units(text)
        self._starts = [a for a, _ in self.units]
        self.current = -1  # the unit on screen
        self._rows = 0  # rows it took

    def word(self, mark: Mark) -> None:
        if mark.span is None or not self.units:
            return
        unit = max(0, bisect_right(self._starts, mark.span[0]) - 1)
        if unit != self.current:
            if self.current >= 0:
                self._draw(None)
                self.out.write("\n")
            self.current, self._rows = unit, 0
        self._draw(mark.span)
        self.out.flush()

    def _draw(self, span: tuple[int, int] | None) -> None:
        a, b = self.units[self.current]
        line = self.text[a:b].replace("\n", " ")
        lo, hi = (span[0] - a, span[1] - a) if span else (0, 0)
        rows = wrap(line, self.width)
        if self._rows > 1:
            self.out.write(f"\x1b[{self._rows - 1}F")
        self.out.write("\r")
        for n, (r0, r1) in enumerate(rows):
            x0, x1 = max(r0, lo), min(r1, hi)
            if x1 > x0:
                self.out.write(line[r0:x0] + ON + line[x0:x1] + OFF + line[x1:r1])
            else:
                self.out.write(line[r0:r1])
            self.out.write(CLEAR + ("\n" if n + 1 < len(rows) else ""))
        self._rows = len(rows)

    def close(self) -> None:
        if self.current >= 0:
            self._draw(None)
            self.out.write("\n")
            self.out.flush()
            self.current = -1
