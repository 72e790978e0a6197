"""kokoro-say's text as bytes → str: arguments, standard input and -f files are read as
bytes and decoded here, so text that is not UTF-8 gets one line saying so (and what it
looks like), never a traceback.

Arguments reach Python decoded with `surrogateescape`; `os.fsencode` gives their bytes
back. A BOM is dropped. `--encoding` names another codec (latin-1, cp1252, utf-16, …).
"""

from __future__ import annotations

import codecs
import os

UTF8 = "utf-8"
BINARY_CONTROLS = 0.02  # more control bytes than this share: not text
_TEXT_CONTROLS = frozenset(b"\t\n\r\f\v\x1b")


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
    except LookupError:
        raise TextInputError(f"--encoding {name!r} is not an encoding Python knows; try "
                             "utf-8, latin-1, cp1252 or utf-16", usage=True) from None


def looks_binary(data: bytes) -> bool:
    """NUL bytes, or many control bytes: an executable, an image, random bytes."""
    head = data[:65536]
    if b"\0" in head and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    controls = sum(1 for byte in head if byte < 0x20 and byte not in _TEXT_CONTROLS)
    return controls > BINARY_CONTROLS * max(1, len(head))


def guess(data: bytes) -> str:
    """What non-UTF-8 text probably is, for the hint."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    high = [byte for byte in data if byte >= 0x80]
    if high and sum(1 for byte in high if byte < 0xA0) > len(high) // 2:
        return "cp1252"  # Windows' quotes and dashes live in 0x80–0x9f
    return "latin-1"


def decode(data: bytes, source: str, encoding: str | None = None) -> str:
    """`data` as text, or TextInputError naming `source` ("the text arguments",
    "standard input", a file name) and what to do."""
    if encoding is None and looks_binary(data):
        what = "binary data" if source in ("standard input", "the text arguments") \
            else "a binary file"
        raise TextInputError(f"{source} is {what}, not text")
    codec = check_encoding(encoding)
    if codec == UTF8:
        codec = "utf-8-sig"  # and drop a BOM
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        if encoding:
            raise TextInputError(f"{source} is not {encoding} (byte {exc.start}: "
                                 f"0x{data[exc.start]:02x})") from None
        likely = guess(data)
        raise TextInputError(f"{source} is not UTF-8 (looks like {likely}?); read it with "
                             f"--encoding {likely}") from None


def from_arguments(args: list[str], encoding: str | None = None) -> str:
    """The text arguments as the user typed them, in their real encoding."""
    data = b" ".join(os.fsencode(arg) for arg in args)
    return decode(data, "the text arguments", encoding)
