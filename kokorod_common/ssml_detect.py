"""Is a text SSML? One rule for the daemon (a `synthesize` without `text_format`, HTTP's
`input`) and the clients (`kokoro-say -f x.ssml`, sd_kokoro)."""

from __future__ import annotations


def looks_like_ssml(text: str) -> bool:
    """A text that starts with `<speak` (after white space and an XML declaration)."""
    head = text.lstrip()[:200]
    if head.startswith("<?xml"):
        end = head.find("?>")
        head = head[end + 2:].lstrip() if end >= 0 else head
    return head.startswith("<speak") and head[6:7] in (">", " ", "\n", "\t", "\r", "/")
