"""sha256 of model files, remembered by (size, mtime) so a start does not re-read 300 MB."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from kokorod_common import atomic


def sha256_file(path: Path, bufsize: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(bufsize):
            digest.update(block)
    return digest.hexdigest()


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def cached_sha256(path: Path, cache_file: Path) -> str:
    """The file's sha256; re-hashed only when its size, mtime or inode changed."""
    cache: dict[str, dict[str, object]] = {}
    with contextlib.suppress(OSError, ValueError):
        cache = json.loads(cache_file.read_text())
    if not isinstance(cache, dict):
        cache = {}
    key = str(path.resolve())
    entry = cache.get(key)
    stamp = _stamp(path)
    if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(
            entry.get("sha256"), str):
        return str(entry["sha256"])
    digest = sha256_file(path)
    remember(path, digest, cache_file, cache)
    return digest


def remember(path: Path, digest: str, cache_file: Path,
             cache: dict[str, dict[str, object]] | None = None) -> None:
    """Record a digest just computed (best effort: an unwritable cache only costs time)."""
    if cache is None:
        cache = {}
        with contextlib.suppress(OSError, ValueError):
            cache = json.loads(cache_file.read_text())
    if not isinstance(cache, dict):
        cache = {}
    cache[str(path.resolve())] = {"stamp": _stamp(path), "sha256": digest}
    with contextlib.suppress(OSError):
        atomic.write_json(cache_file, cache)
