"""HTTP download that survives interruptions: resume by Range, verify sha256, rename atomically.

A transfer writes `<target>.part`; a dropped connection keeps it, and the next
attempt (automatic retries, or running the command again) asks only for the
missing bytes. Nothing reaches `target` unless its sha256 matches.
"""

from __future__ import annotations

import errno
import http.client
import logging
import os
import re
import shutil
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from kokorod import __version__
from kokorod.store.hashing import sha256_file
from kokorod_common import atomic

log = logging.getLogger(__name__)

BLOCK = 1 << 20
SPACE_MARGIN = 16 << 20  # keep a little free space beyond the file itself
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


_RETRYABLE = (ConnectionError, TimeoutError, http.client.HTTPException, urllib.error.URLError)


class DownloadError(RuntimeError):
    """The download did not complete; the message says what to do next."""


class ChecksumError(DownloadError):
    """The bytes arrived but are not the published file; they were deleted."""


class Progress(Protocol):
    def update(self, n: int) -> Any: ...
    def close(self) -> Any: ...


ProgressFactory = Callable[[str, "int | None", int], Progress]


def tqdm_progress(quiet: bool = False) -> ProgressFactory:
    """A tqdm bar on stderr (bytes, scaled units); `quiet` hides it."""
    from tqdm import tqdm

    def make(desc: str, total: int | None, initial: int) -> Progress:
        return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True,
                    unit_divisor=1024, file=sys.stderr, disable=quiet, mininterval=0.25,
                    dynamic_ncols=True)

    return make


def part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def _os_message(exc: OSError, where: Path) -> str:
    if exc.errno == errno.ENOSPC:
        return (f"disk full while writing {where}; free some space and run the command again "
                "(the partial download is kept and resumes)")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"cannot write {where}: {exc.strerror}; make the directory writable or point "
                "KOKORO_DATA_DIR at one that is")
    return f"cannot write {where}: {exc.strerror or exc}"


def _check_space(directory: Path, needed: int) -> None:
    free = shutil.disk_usage(directory).free
    if needed + SPACE_MARGIN > free:
        raise DownloadError(
            f"not enough disk space in {directory}: need {needed / 2**20:.0f} MiB more, "
            f"{free / 2**20:.0f} MiB free"
        )


def tls_context(platform: str = sys.platform) -> ssl.SSLContext:
    """The system's trust store, plus certifi's on macOS: python.org's Python for macOS
    ships without CA certificates (until "Install Certificates.command" is run), so every
    HTTPS download would fail there with CERTIFICATE_VERIFY_FAILED."""
    context = ssl.create_default_context()
    if platform == "darwin":
        try:
            import certifi

            context.load_verify_locations(certifi.where())
        except (ImportError, OSError) as exc:
            log.warning("certifi's certificates are not available (%s)", exc)
    return context


def _open(url: str, offset: int, timeout: float) -> Any:
    headers = {"User-Agent": f"kokorod/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    if url.startswith("https:"):
        return urllib.request.urlopen(request, timeout=timeout, context=tls_context())
    return urllib.request.urlopen(request, timeout=timeout)


def _transfer(url: str, part: Path, desc: str, progress: ProgressFactory,
              timeout: float) -> None:
    """One attempt: append the missing bytes to `part`; raise OSError-ish on a broken transfer."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        resp = _open(url, offset, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left to send: the part is complete
            return
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    with resp:
        length = resp.headers.get("Content-Length")
        if resp.status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if m is None or int(m.group(1)) != offset:
                part.unlink(missing_ok=True)
                raise ConnectionError("server answered a different range; starting over")
            total = int(m.group(3)) if m.group(3) != "*" else None
        else:  # 200: the server ignores ranges, so start over
            offset = 0
            total = int(length) if length is not None else None
        if total is not None:
            _check_space(part.parent, total - offset)
        bar = progress(desc, total, offset)
        received = offset
        try:
            with part.open("ab" if offset else "wb") as out:
                while block := resp.read(BLOCK):
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
                out.flush()
                os.fsync(out.fileno())
        finally:
            bar.close()
        if total is not None and received < total:
            raise ConnectionError(f"connection closed at {received} of {total} bytes")


def fetch(url: str, target: Path, sha256: str | None, *, progress: ProgressFactory | None = None,
          retries: int = 3, timeout: float = 30.0) -> str:
    """Download `url` to `target`; return its sha256. `sha256=None` only for pin-on-first-use."""
    progress = progress or tqdm_progress()
    part = part_path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        attempt = 0
        while True:
            try:
                _transfer(url, part, target.name, progress, timeout)
                break
            except _RETRYABLE as exc:
                if isinstance(exc, urllib.error.URLError) and not isinstance(exc.reason, OSError):
                    raise DownloadError(f"{url}: {exc.reason}") from None
                got = part.stat().st_size if part.exists() else 0
                unreachable = isinstance(exc, urllib.error.URLError) and not got
                if unreachable and isinstance(exc.reason, socket.gaierror):
                    raise DownloadError(f"cannot reach {urllib.parse.urlsplit(url).hostname}: "
                                        "its name does not resolve (offline?)") from None
                if attempt >= retries and unreachable:
                    raise DownloadError(f"cannot reach {url}: {exc.reason}") from None
                if attempt >= retries:
                    raise DownloadError(
                        f"download of {target.name} interrupted at {got / 2**20:.1f} MiB ({exc}); "
                        "run the same command again to resume"
                    ) from None
                attempt += 1
                if got:
                    log.warning("download interrupted (%s); resuming at byte %d (retry %d of "
                                "%d)", exc, got, attempt, retries)
                else:
                    log.warning("could not connect (%s); trying again (%d of %d)", exc,
                                attempt, retries)
                time.sleep(min(2.0 ** attempt, 10.0) * 0.25)
        digest = sha256_file(part)
        if sha256 is not None and digest != sha256:
            part.unlink(missing_ok=True)
            raise ChecksumError(
                f"{target.name} does not match its published sha256 (got {digest[:12]}…, "
                f"expected {sha256[:12]}…); the download was deleted and nothing was changed"
            )
        atomic.install(part, target)
    except OSError as exc:
        raise DownloadError(_os_message(exc, Path(exc.filename or part))) from None
    return digest
