"""Writing audio to a file as it streams in (bounded memory), via soundfile."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kokorod.protocol import SAMPLE_RATE

# extension → (soundfile format, subtype)
FORMATS: dict[str, tuple[str, str]] = {
    ".wav": ("WAV", "PCM_16"),
    ".aiff": ("AIFF", "PCM_16"),
    ".aif": ("AIFF", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
}


class UnsupportedFormat(ValueError):
    """The output file's extension names no format we can write."""


class AudioFileWriter:
    def __init__(self, path: str | Path, sample_rate: int = SAMPLE_RATE) -> None:
        import soundfile as sf

        self.path = Path(path)
        ext = self.path.suffix.lower()
        if ext not in FORMATS:
            raise UnsupportedFormat(
                f"cannot write {self.path.name}: use one of {', '.join(FORMATS)}"
            )
        fmt, subtype = FORMATS[ext]
        try:
            self._file = sf.SoundFile(str(self.path), "w", samplerate=sample_rate, channels=1,
                                      format=fmt, subtype=subtype)
        except (OSError, RuntimeError) as exc:
            raise UnsupportedFormat(f"cannot write {self.path}: {exc}") from None
        self.samples = 0

    def write(self, samples: np.ndarray) -> None:
        self._file.write(np.asarray(samples, dtype=np.float32))
        self.samples += samples.size

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
