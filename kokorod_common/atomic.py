"""Atomic file writes: a file is either its old self or wholly the new one, never half.

Every file kokorod and its clients write goes through here. It is written beside the
target under one private temporary name (`.NAME.PID.THREAD.tmp`), flushed to disk, then
renamed over it (rename is atomic within one file system), so a reader or a crash never
sees a torn file. A symlink is followed (the file it points to is replaced, the link
stays); a target that is no regular file (`/dev/null`, a FIFO) is written in place, as
there is nothing to rename over.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _fsync(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def replaceable(target: Path) -> bool:
    """True when `target` is a regular file (through its symlinks) or does not exist yet."""
    try:
        return Path(os.path.realpath(target)).is_file() or not os.path.lexists(target)
    except OSError:
        return False


def temporary_name(target: Path) -> Path:
    """Where the new content of `target` is written before it is renamed into place."""
    real = Path(os.path.realpath(target))
    return real.with_name(f".{real.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def install(written: Path, target: Path) -> None:
    """Rename a file written beside `target` (a temporary, a resumable download's part)
    over it, after flushing it to disk."""
    _fsync(written)
    os.replace(written, os.path.realpath(target))


class Pending:
    """A write in progress: `path` to write to, then `commit()` (renamed over the target)
    or `discard()`. For writers that stream (audio files) where a `with` block does not
    fit; `replacing` is the usual way."""

    def __init__(self, target: Path) -> None:
        self.target = Path(target)
        self.atomic = replaceable(self.target)
        if self.atomic:
            self.target.parent.mkdir(parents=True, exist_ok=True)
        self.path = temporary_name(self.target) if self.atomic else self.target

    def commit(self) -> None:
        if self.atomic:
            install(self.path, self.target)

    def discard(self) -> None:
        if self.atomic:
            with contextlib.suppress(OSError):
                self.path.unlink()


@contextlib.contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A temporary path to write to; renamed over `target` when the block ends without an
    error, removed when it raises."""
    pending = Pending(target)
    try:
        yield pending.path
        pending.commit()
    finally:
        pending.discard()


def write_bytes(target: Path, data: bytes, mode: int | None = None) -> None:
    """`target` holds `data`, wholly; `mode` (e.g. 0o755) is set before it appears."""
    with replacing(target) as tmp:
        tmp.write_bytes(data)
        if mode is not None:
            tmp.chmod(mode)


def write_text(target: Path, text: str, mode: int | None = None) -> None:
    write_bytes(target, text.encode("utf-8"), mode)


def write_json(target: Path, data: Any, indent: int = 1) -> None:
    """The JSON stores (hash cache, first run, calibration, CoreML failures): one format."""
    write_text(target, json.dumps(data, indent=indent) + "\n")
