"""speech-dispatcher's output-module protocol, as text and bytes: nothing here does I/O.

The server writes commands on the module's stdin, one per line; some are followed
by a data block that ends with a line holding only "." (a data line that starts
with "." has one more "." in front). The module answers each command with
numbered lines and reports what it speaks as events: 701 BEGIN, 700 INDEX MARK,
705 AUDIO (server audio: samples in the frame, with 0x7D and newline escaped),
702 END, 703 STOP, 704 PAUSE. See brailcom/speechd's module_main.c and
module_utils.c for the reference implementation.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

BLOCK_END = "."
AUDIO_BYTES_PER_FRAME = 10_000  # as upstream: the server reads a frame whole
_ESCAPE = 0x7D
_TAG = re.compile(r"<(/?)([A-Za-z_][\w:.-]*)([^>]*?)(/?)>", re.S)
_MARK_NAME = re.compile(r"""name\s*=\s*(?:"([^"]*)"|'([^']*)')""")


def undot(line: str) -> str:
    """A data line as sent: one leading "." was added to lines that start with one."""
    return line[1:] if line.startswith("..") else line


def reply(code: int, *lines: str) -> str:
    """`code-line` for every line but the last, `code line` for the last."""
    out = [f"{code}-{line}" for line in lines[:-1]]
    out.append(f"{code} {lines[-1]}")
    return "\n".join(out) + "\n"


def escape_audio(data: bytes) -> bytes:
    """0x7D → 7D 5D and newline → 7D 2A (the escaped byte with bit 5 flipped)."""
    return data.replace(b"\x7d", b"\x7d\x5d").replace(b"\n", b"\x7d\x2a")


def unescape_audio(data: bytes) -> bytes:
    out = bytearray()
    it = iter(data)
    for byte in it:
        out.append(next(it) ^ 0x20 if byte == _ESCAPE else byte)
    return bytes(out)


def audio_frames(pcm: bytes, sample_rate: int) -> list[bytes]:
    """16-bit little-endian mono samples as 705 AUDIO events, at most
    AUDIO_BYTES_PER_FRAME bytes of samples in each."""
    frames = []
    step = AUDIO_BYTES_PER_FRAME - AUDIO_BYTES_PER_FRAME % 2
    for start in range(0, len(pcm), step):
        part = pcm[start:start + step]
        head = (f"705-bits=16\n705-num_channels=1\n705-sample_rate={sample_rate}\n"
                f"705-num_samples={len(part) // 2}\n705-big_endian=0\n705-AUDIO\0")
        frames.append(head.encode() + escape_audio(part) + b"\n705 AUDIO\n")
    return frames


def parse_audio_frame(frame: bytes) -> tuple[dict[str, str], bytes]:
    """The inverse of one audio_frames() item (tests, tools): its header and samples."""
    head, _, rest = frame.partition(b"705-AUDIO\0")
    assert rest.endswith(b"\n705 AUDIO\n")
    fields = dict(line[4:].split("=", 1) for line in head.decode().splitlines())
    return fields, unescape_audio(rest[:-len(b"\n705 AUDIO\n")])


def settings(lines: list[str]) -> dict[str, str]:
    """A SET or AUDIO block's `key=value` lines."""
    out = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


@dataclass
class Speech:
    """SSML as the server sends it, read as plain text plus where each mark stands."""

    text: str
    marks: list[tuple[int, str]] = field(default_factory=list)  # (offset in text, name)


def read_ssml(data: str) -> Speech:
    """Tags dropped (a <break/> becomes a space), entities decoded, <mark name=…/> kept as
    positions in the text. Text that is not SSML is taken as it is."""
    parts: list[str] = []
    marks: list[tuple[int, str]] = []
    length = 0
    pos = 0
    for m in _TAG.finditer(data):
        chunk = html.unescape(data[pos:m.start()])
        parts.append(chunk)
        length += len(chunk)
        pos = m.end()
        name = m.group(2).lower()
        if name == "mark":
            found = _MARK_NAME.search(m.group(3))
            if found:
                marks.append((length, found.group(1) or found.group(2) or ""))
        elif name in ("break", "p", "s", "br") and parts and not parts[-1].endswith(" "):
            parts.append(" ")
            length += 1
    tail = html.unescape(data[pos:])
    parts.append(tail)
    return Speech("".join(parts), marks)


def key_text(key: str) -> str:
    """A KEY event as words: `shift_a` → "shift a", `space` → "space"."""
    return " ".join(part for part in key.replace("_", " ").split())
