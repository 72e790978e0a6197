"""An SSML document with its markup blanked out, offsets kept: what word marks' spans
point into, so a word mark of an SSML request names the written words, not a tag."""

from __future__ import annotations


def masked(text: str) -> str:
    """`text` with tags, comments, declarations and CDATA brackets replaced by spaces
    (line breaks kept), everything else where it was."""
    out = list(text)
    at, n = 0, len(text)

    def blank(start: int, end: int) -> None:
        for k in range(start, min(end, n)):
            if out[k] != "\n":
                out[k] = " "

    while at < n:
        if text[at] != "<":
            at += 1
            continue
        if text.startswith("<![CDATA[", at):
            close = text.find("]]>", at)
            close = n if close < 0 else close
            blank(at, at + 9)
            blank(close, close + 3)
            at = close + 3
        elif text.startswith("<!--", at):
            close = text.find("-->", at)
            end = n if close < 0 else close + 3
            blank(at, end)
            at = end
        else:
            end, quote = at + 1, ""
            while end < n and (quote or text[end] != ">"):
                if text[end] in "\"'":
                    quote = "" if quote == text[end] else quote or text[end]
                end += 1
            blank(at, end + 1)
            at = end + 1
    return "".join(out)
