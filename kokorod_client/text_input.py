"""kokoro-say's text as bytes → str: arguments, standard input and -f files are read as
bytes and decoded here, so text that is not UTF-8 gets one line saying so (and what it
looks like), never a traceback.

Arguments reach Python decoded with `surrogateescape`; `os.fsencode` gives their bytes
back. A BOM is dropped; text that starts with a UTF-16 or UTF-32 BOM is read as such (a
Windows "Unicode" file). `--encoding` names another codec (latin-1, cp1252, utf-16, …).
"""

from __future__ import annotations

import codecs
import os
from typing import BinaryIO

UTF8 = "utf-8"
# The largest text any daemon takes (KOKORO_MAX_FRAME_BYTES' ceiling): more is never read,
# so `kokoro-say -f /dev/urandom` or `yes | kokoro-say` ends with a line, not a full memory.
MAX_TEXT_BYTES = 64 << 20
HEAD_BYTES = 65536  # enough to tell text from binary data
BINARY_CONTROLS = 0.02  # more control bytes than this share: not text
_TEXT_CONTROLS = frozenset(b"\t\n\r\f\v\x1b")
# A byte order mark names its encoding (UTF-32's first: its LE mark starts with UTF-16's).
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


class TextInputError(Exception):
    """Bytes that are not text in the given encoding; the message is one line."""

    def __init__(self, message: str, usage: bool = False) -> None:
        super().__init__(message)
        self.usage = usage  # a bad command line (an unknown --encoding)


def check_encoding(name: str | None) -> str:
    """The codec's name; an unknown one is a bad command line."""
    if not name:
        return UTF8
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError):  # ValueError: a name that is not text
        raise TextInputError(f"--encoding {name!r} is not an encoding Python knows; try "
                             "utf-8, latin-1, cp1252 or utf-16", usage=True) from None


def looks_binary(data: bytes) -> bool:
    """NUL bytes, or many control bytes: an executable, an image, random bytes."""
    head = data[:65536]
    if b"\0" in head and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    controls = sum(1 for byte in head if byte < 0x20 and byte not in _TEXT_CONTROLS)
    return controls > BINARY_CONTROLS * max(1, len(head))


def by_bom(data: bytes) -> str | None:
    """The encoding a byte order mark at the start names (UTF-8's is dropped later)."""
    return next((codec for bom, codec in BOMS if data.startswith(bom)), None)


def utf16_without_bom(data: bytes) -> str | None:
    """utf-16-le / utf-16-be for text whose every other byte is NUL (ASCII-range UTF-16
    written without a mark); None otherwise."""
    head = data[:4096]
    if len(head) < 4:
        return None
    for codec, zeros, letters in (("utf-16-le", head[1::2], head[0::2]),
                                  ("utf-16-be", head[0::2], head[1::2])):
        if zeros.count(0) > 0.6 * len(zeros) and letters.count(0) < 0.1 * len(letters):
            try:
                data.decode(codec)
            except UnicodeDecodeError:
                continue
            return codec
    return None


def guess(data: bytes) -> str:
    """What non-UTF-8 text probably is, for the hint."""
    high = [byte for byte in data if byte >= 0x80]
    if high and sum(1 for byte in high if byte < 0xA0) > len(high) // 2:
        return "cp1252"  # Windows' quotes and dashes live in 0x80–0x9f
    return "latin-1"


def _is(source: str) -> str:
    return f"{source} {'are' if source.endswith('arguments') else 'is'}"


def decode(data: bytes, source: str, encoding: str | None = None) -> str:
    """`data` as text, or TextInputError naming `source` ("the text arguments",
    "standard input", a file name) and what to do."""
    if encoding is None:
        encoding = by_bom(data)
    if encoding is None and looks_binary(data):
        wide = utf16_without_bom(data)
        if wide:
            raise TextInputError(f"{_is(source)} not UTF-8 (looks like UTF-16 without a byte "
                                 f"order mark?); read it with --encoding {wide}")
        what = "a binary file" if source not in ("standard input", "the text arguments") \
            else "binary data"
        raise TextInputError(f"{_is(source)} {what}, not text")
    codec = check_encoding(encoding)
    if codec == UTF8:
        codec = "utf-8-sig"  # and drop a BOM
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        if encoding:
            raise TextInputError(f"{_is(source)} not {encoding} (byte {exc.start}: "
                                 f"0x{data[exc.start]:02x})") from None
        likely = guess(data)
        raise TextInputError(f"{_is(source)} not UTF-8 (looks like {likely}?); read it with "
                             f"--encoding {likely}") from None
    if text.startswith("\ufeff"):  # utf-16 / utf-32 keep a second mark; nothing to say
        text = text[1:]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a codec that lets lone surrogates through (utf-16 halves)
        raise TextInputError(f"{_is(source)} not {encoding or 'UTF-8'} text: it holds a "
                             "lone surrogate") from None
    return text


def read_limited(stream: BinaryIO, source: str, encoding: str | None = None) -> bytes:
    """Up to MAX_TEXT_BYTES of `stream`; binary data is refused from its first bytes, and a
    longer text (an endless one: a device, `yes`) once the limit is passed."""
    head = stream.read(HEAD_BYTES) or b""
    if encoding is None and by_bom(head) is None and looks_binary(head):
        decode(head, source)  # says what it is (binary, UTF-16 without a mark)
    parts, size = [head], len(head)
    while len(head) and size <= MAX_TEXT_BYTES:
        head = stream.read(1 << 20) or b""
        parts.append(head)
        size += len(head)
    if size > MAX_TEXT_BYTES:
        raise TextInputError(f"{_is(source)} over {MAX_TEXT_BYTES >> 20} MiB, more than "
                             "kokorod takes in one request; split the text")
    return b"".join(parts)


def from_arguments(args: list[str], encoding: str | None = None) -> str:
    """The text arguments as the user typed them, in their real encoding."""
    data = b" ".join(os.fsencode(arg) for arg in args)
    return decode(data, "the text arguments", encoding)
