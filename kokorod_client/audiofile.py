"""Writing audio to a file as it streams in (bounded memory), via soundfile.

The file format comes from `--file-format` or the extension; the sample
format from `--data-format`, in macOS `say`'s notation (LEI16, BEF32, …, with
an optional @rate) or as s16 / f32. Raw files are headerless samples. AIFC is
written as AIFF by libsndfile for integer samples, so its header is rewritten as
AIFC (compression "NONE") when the file is closed. "-" is standard output (the
whole file is written there at the end: WAV and AIFF headers need the length).
"""

from __future__ import annotations

import io
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kokorod_common import atomic
from kokorod_common.protocol import SAMPLE_RATE

if TYPE_CHECKING:  # numpy loads with soundfile, when a file is written
    import numpy as np

# --file-format names (say's and common ones) → soundfile container
FILE_FORMATS: dict[str, str] = {
    "wave": "WAV", "wav": "WAV", "aiff": "AIFF", "aif": "AIFF", "aifc": "AIFC",
    "flac": "FLAC", "ogg": "OGG", "raw": "RAW", "pcm": "RAW",
}
EXTENSIONS: dict[str, str] = {
    ".wav": "WAV", ".wave": "WAV", ".aiff": "AIFF", ".aif": "AIFF", ".aifc": "AIFC",
    ".flac": "FLAC", ".ogg": "OGG", ".raw": "RAW", ".pcm": "RAW",
}
# sample type in say's notation → soundfile subtype
SAMPLE_TYPES: dict[str, str] = {
    "I8": "PCM_S8", "UI8": "PCM_U8", "I16": "PCM_16", "I24": "PCM_24", "I32": "PCM_32",
    "F32": "FLOAT", "F64": "DOUBLE",
}
ALIASES = {"S16": "LEI16", "F32LE": "LEF32", "S16LE": "LEI16", "FLOAT": "LEF32"}
DEFAULT_SUBTYPE = {"WAV": "PCM_16", "AIFF": "PCM_16", "AIFC": "PCM_16", "FLAC": "PCM_16",
                   "OGG": "VORBIS", "RAW": "PCM_16"}
LITTLE_ONLY = ("WAV", "FLAC", "OGG")
BIG_ONLY = ("AIFF", "AIFC")
STDOUT = "-"


class UnsupportedFormat(ValueError):
    """A file or data format we cannot write; the message says what would work."""


@dataclass(frozen=True)
class FileSpec:
    container: str  # soundfile format: WAV, AIFF, FLAC, OGG, RAW
    subtype: str  # soundfile subtype: PCM_16, FLOAT, …
    endian: str  # FILE (the container's own), LITTLE or BIG


def parse_data_format(text: str) -> tuple[str | None, str, int | None]:
    """'LEF32@24000' → ('LITTLE', 'FLOAT', 24000); 's16' → ('LITTLE', 'PCM_16', None)."""
    spec, _, rate_text = text.strip().partition("@")
    spec = ALIASES.get(spec.upper(), spec.upper())
    endian = None
    if spec.startswith(("LE", "BE")):
        endian = "LITTLE" if spec.startswith("LE") else "BIG"
        spec = spec[2:]
    if spec not in SAMPLE_TYPES:
        raise UnsupportedFormat(
            f"data format {text!r} not understood; use e.g. LEI16, BEI16, LEF32, I24, F32 "
            "(say's notation, optional @24000), or s16 / f32")
    rate = None
    if rate_text:
        try:
            rate = int(float(rate_text))
        except ValueError:
            raise UnsupportedFormat(f"sample rate {rate_text!r} is not a number") from None
    return endian, SAMPLE_TYPES[spec], rate


def file_spec(path: str | Path, file_format: str | None = None,
              data_format: str | None = None) -> FileSpec:
    """What to write for `path`, refusing combinations the container cannot hold."""
    suffix = Path(path).suffix.lower()
    if file_format:
        container = FILE_FORMATS.get(file_format.strip().lower())
        if container is None:
            raise UnsupportedFormat(f"file format {file_format!r} not supported; use one of "
                                    "WAVE, AIFF, AIFC, FLAC, OGG, raw")
    elif suffix in EXTENSIONS:
        container = EXTENSIONS[suffix]
    elif str(path) == STDOUT:
        container = "WAV"
    else:
        raise UnsupportedFormat(f"cannot tell the format of {Path(path).name}: use one of "
                                f"{', '.join(EXTENSIONS)} or --file-format")
    subtype, endian = DEFAULT_SUBTYPE[container], "FILE"
    if data_format:
        order, subtype, rate = parse_data_format(data_format)
        if rate is not None and rate != SAMPLE_RATE:
            raise UnsupportedFormat(f"kokoro-say writes {SAMPLE_RATE} Hz (Kokoro's own rate); "
                                    f"@{rate} would need resampling (e.g. sox in.wav -r {rate} "
                                    "out.wav)")
        if container == "OGG":
            raise UnsupportedFormat("OGG is always Vorbis; drop --data-format")
        if order == "BIG" and container in LITTLE_ONLY:
            raise UnsupportedFormat(f"{container} holds little-endian samples; use LE… or AIFF")
        if order == "LITTLE" and container in BIG_ONLY and subtype not in ("FLOAT", "DOUBLE"):
            raise UnsupportedFormat("AIFF holds big-endian integers; use BE… or WAVE")
        if container == "RAW":
            endian = order or "LITTLE"
        if container == "FLAC" and subtype not in ("PCM_S8", "PCM_16", "PCM_24"):
            raise UnsupportedFormat("FLAC holds 8-, 16- or 24-bit integers")
    return FileSpec(container, subtype, endian)


def check_target(path: str | Path) -> str | None:
    """Why the file `path` could not be written (None: it can be); "-" always can."""
    if str(path) == STDOUT:
        return None
    target = Path(path)
    if not target.parent.is_dir():
        return f"cannot write {target}: the directory {target.parent} does not exist"
    if target.is_dir():
        return f"cannot write {target}: it is a directory"
    return None


class AudioFileWriter:
    def __init__(self, path: str | Path, sample_rate: int = SAMPLE_RATE, *,
                 file_format: str | None = None, data_format: str | None = None) -> None:
        import soundfile as sf

        self.path = Path(path)
        self.spec = file_spec(self.path, file_format, data_format)
        self._stdout = str(path) == STDOUT
        problem = check_target(path)
        if problem:
            raise UnsupportedFormat(problem)
        # A file appears whole (atomic): written beside the target, renamed over it at close.
        self._pending = None if self._stdout else atomic.Pending(self.path)
        # A file name's own bytes (it may not be UTF-8, which soundfile would encode it as).
        target: Any = io.BytesIO() if self._pending is None else (
            str(self._pending.path) if sys.platform == "win32" else
            os.fsencode(self._pending.path))
        self._target = target
        container = "AIFF" if self.spec.container == "AIFC" else self.spec.container
        try:
            self._file = sf.SoundFile(target, "w", samplerate=sample_rate, channels=1,
                                      format=container, subtype=self.spec.subtype,
                                      endian=self.spec.endian)
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            if self._pending is not None:
                self._pending.discard()
            raise UnsupportedFormat(f"cannot write {self.path}: {exc}") from None
        self.samples = 0

    def write(self, samples: np.ndarray) -> None:
        import numpy as np

        self._file.write(np.asarray(samples, dtype=np.float32))
        self.samples += samples.size

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.close()
        if self._pending is not None:
            if self.spec.container == "AIFC":
                written = self._pending.path
                written.write_bytes(as_aifc(written.read_bytes()))
            self._pending.commit()
            return
        data = self._target.getvalue()
        if self.spec.container == "AIFC":
            data = as_aifc(data)
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


_AIFC_VERSION = struct.pack(">I", 0xA2805140)  # the one AIFC version there is


def as_aifc(aiff: bytes) -> bytes:
    """An AIFF file as AIFC: "AIFC" form, an FVER chunk, and COMM naming its compression
    ("NONE" for big-endian integers). A file that is already AIFC comes back unchanged."""
    if aiff[8:12] == b"AIFC":
        return aiff
    chunks = []
    pos = 12
    while pos + 8 <= len(aiff):
        kind, size = aiff[pos:pos + 4], struct.unpack(">I", aiff[pos + 4:pos + 8])[0]
        body = aiff[pos + 8:pos + 8 + size]
        if kind == b"COMM":
            name = b"not compressed"
            body = body[:18] + b"NONE" + bytes([len(name)]) + name + b"\0" * ((len(name) + 1) % 2)
        chunks.append(kind + struct.pack(">I", len(body)) + body + b"\0" * (len(body) % 2))
        pos += 8 + size + size % 2
    form = b"AIFC" + b"FVER" + struct.pack(">I", 4) + _AIFC_VERSION + b"".join(chunks)
    return b"FORM" + struct.pack(">I", len(form)) + form
