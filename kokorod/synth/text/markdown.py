"""Markdown read as prose, via markdown-it-py's token stream.

Headings, list items, table rows and paragraphs become sentences (a full stop
is added where the author left none, so the reader pauses); emphasis markers,
`#` and HTML tags are silent; a link is read by its text, a bare URL as
"link"; images by their alt text; code spans and blocks by the code reader.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.token import Token

from kokorod.synth.text.code import code_to_speech, split_identifier
from kokorod_common.punctuation import ends_sentence

_PARSER = MarkdownIt("commonmark").enable("table").enable("strikethrough")
_TAG_RE = re.compile(r"<[^>]+>")
_TASK_RE = re.compile(r"^\[([ xX])\]\s+")
_BARE_URL_RE = re.compile(r"^(?:https?://|www\.|mailto:)", re.I)
_NUMBER_RE = re.compile(r"[vV]?\d+(?:\.\d+)*")


def _sentence(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        return ""
    return text if ends_sentence(text, also=":;") else text + "."


def _inline(tokens: list[Token]) -> str:
    out: list[str] = []
    link_href: list[str] = []
    link_text: list[str] = []
    for tok in tokens:
        t = tok.type
        target = link_text if link_href else out
        if t == "text":
            target.append(tok.content)
        elif t == "code_inline":
            content = tok.content.strip()
            if _NUMBER_RE.fullmatch(content):  # `v1.2.3`, `3.11`: read as the number it is
                target.append(content)
            elif re.fullmatch(r"[A-Za-z_][\w.]*", content):
                target.append(" ".join(split_identifier(p) for p in content.split(".")))
            else:
                target.append(code_to_speech(content).rstrip("."))
        elif t in ("softbreak", "hardbreak"):
            target.append(" ")
        elif t == "link_open":
            link_href.append(str(tok.attrs.get("href", "")))
            link_text.clear()
        elif t == "link_close":
            href = link_href.pop() if link_href else ""
            text = "".join(link_text).strip()
            # An autolink's text is its URL: say "link", never the address.
            if not text or text == href or _BARE_URL_RE.match(text):
                text = "link"
            out.append(text)
            link_text.clear()
        elif t == "image":
            alt = tok.content.strip() or "".join(c.content for c in tok.children or [])
            target.append(f"image: {alt}" if alt else "image")
        elif t == "html_inline":
            continue
    return "".join(out)


def markdown_to_speech(text: str) -> str:
    """Markdown → plain sentences, one block per line (blank line between sections)."""
    tokens = _PARSER.parse(text)
    lines: list[str] = []
    row: list[str] = []
    for i, tok in enumerate(tokens):
        t = tok.type
        if t == "inline":
            spoken = _TAG_RE.sub("", _inline(tok.children or []))
            parent = tokens[i - 1].type if i else ""
            if parent in ("th_open", "td_open"):
                row.append(spoken.strip())
                continue
            task = _TASK_RE.match(spoken)
            if task:
                state = "done" if task.group(1).lower() == "x" else "to do"
                spoken = f"{state}: {spoken[task.end():]}"
            lines.append(_sentence(spoken))
        elif t == "tr_close":
            cells = [c for c in row if c]
            if cells:
                lines.append(_sentence(", ".join(cells)))
            row = []
        elif t in ("fence", "code_block"):
            code = code_to_speech(tok.content)
            if code:
                lines.append("Code: " + code.replace("\n", " "))
        elif t == "html_block":
            stripped = _TAG_RE.sub(" ", tok.content)
            if stripped.strip():
                lines.append(_sentence(stripped))
        elif t == "heading_close":
            lines.append("")  # a paragraph pause after a heading
    text_out = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text_out).strip()
