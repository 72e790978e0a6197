"""Start a detached daemon and wait until it serves; used by `kokorod start` and client autostart.

One code path for both, so a daemon started on demand by `kokoro-say` behaves
exactly like one started by hand.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from kokorod_common import paths

if TYPE_CHECKING:
    import psutil

# The first start assembles the model and may install the voices (first_run.py).
DEFAULT_START_TIMEOUT = 180.0
# Lines the daemon writes to its log during a first start; echoed to whoever started it.
PROGRESS_PREFIX = "kokorod first run:"
# A start's notes for whoever started it (a missing optional part): echoed the same way.
NOTE_PREFIX = "kokorod note:"


class StartError(RuntimeError):
    """The daemon did not come up; the message carries the tail of its log."""


def socket_is_live(path: Path, timeout: float = 1.0) -> bool:
    """True when something accepts connections on `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect(str(path))
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK):
                return False
            raise
        return True


def instance_lock_held(socket_path: Path) -> bool:
    """True while some daemon holds the instance lock for this socket (running or starting)."""
    try:
        fd = os.open(paths.lock_file(socket_path), os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _tail(path: Path, lines: int = 8, since: int = 0) -> str:
    """The log's last lines, from byte `since` on: what this start wrote, not an older
    run's lines (ALSA's, a previous failure's)."""
    try:
        with path.open("rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


class LogFollower:
    """Echoes the daemon's first-run progress lines written to the log after `start`."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        try:
            self.offset = paths.log_file().stat().st_size
        except OSError:
            self.offset = 0
        self.start = self.offset  # where this start's lines begin
        self._partial = b""

    def poll(self) -> None:
        try:
            with paths.log_file().open("rb") as f:
                f.seek(self.offset)
                data = f.read(1 << 20)
        except OSError:
            return
        self.offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            text = line.decode("utf-8", "replace").strip()
            if text.startswith((PROGRESS_PREFIX, NOTE_PREFIX)):
                self.echo(text)


def echo_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def spawn(socket_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Launch `python -m kokorod run` in its own session, logging to the log file."""
    log = paths.log_file()
    log.parent.mkdir(parents=True, exist_ok=True)
    child_env = dict(os.environ if env is None else env)
    child_env["KOKORO_SOCKET"] = str(socket_path)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "kokorod", "run"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=child_env,
            start_new_session=True, close_fds=True,
        )


def wait_ready(socket_path: Path, proc: subprocess.Popen[bytes] | None,
               timeout: float = DEFAULT_START_TIMEOUT,
               follower: LogFollower | None = None) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.02
    since = follower.start if follower is not None else 0
    while time.monotonic() < deadline:
        if follower is not None:
            follower.poll()
        if socket_is_live(socket_path):
            if follower is not None:
                follower.poll()
            return
        if proc is not None and proc.poll() is not None:
            if socket_is_live(socket_path):
                return
            if instance_lock_held(socket_path):
                # Another daemon holds the lock: one still loading (a start race), or one
                # running whose socket was removed, which it puts back. Wait for it.
                proc = None
                if follower is not None:
                    follower.echo(_waiting_for(socket_path))
                continue
            said = _tail(paths.log_file(), since=since)
            if proc.returncode == 2 and said and "Traceback" not in said:
                raise StartError(said)  # it said why: just that, as it said it
            raise StartError(f"kokorod exited with status {proc.returncode} during start:\n"
                             f"{said}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)
    raise StartError(f"kokorod did not start within {timeout:.0f}s; log {paths.log_file()}:\n"
                     f"{_tail(paths.log_file(), since=since)}")


def _waiting_for(socket_path: Path) -> str:
    pid = daemon_pid(socket_path)
    if pid is None:
        return "kokorod: another kokorod is starting on this socket; waiting for it"
    return (f"kokorod: the daemon (pid {pid}) is running but its socket {socket_path} was "
            "removed; waiting for it to put the socket back (KOKORO_RUNTIME_CHECK_S)")


def ensure_running(socket_path: Path, timeout: float = DEFAULT_START_TIMEOUT) -> bool:
    """Start a daemon unless one serves already; True when this call started it."""
    if socket_is_live(socket_path):
        return False
    follower = LogFollower(echo_stderr)
    proc = spawn(socket_path)
    wait_ready(socket_path, proc, timeout, follower)
    return True


def daemon_pid(socket_path: Path) -> int | None:
    """The pid in the pid file, if that process is alive and is a kokorod."""
    import psutil  # here: a client that only speaks does not load it (~10 ms)

    try:
        pid = int(paths.pid_file(socket_path).read_text().strip())
        proc = psutil.Process(pid)
        if "kokorod" not in " ".join(proc.cmdline()):
            return None
    except (OSError, ValueError, psutil.Error):
        return None
    return pid


def stop(socket_path: Path, timeout: float = 15.0) -> int | None:
    """SIGTERM the daemon and wait for it to exit; returns its pid, None if none ran."""
    pid = daemon_pid(socket_path)
    if pid is None:
        return None
    import psutil

    try:
        proc = psutil.Process(pid)
        os.kill(pid, signal.SIGTERM)
    except (psutil.NoSuchProcess, ProcessLookupError):
        return pid
    deadline = time.monotonic() + timeout
    while not _exited(proc):
        if time.monotonic() >= deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    return pid


def _exited(proc: psutil.Process) -> bool:
    """Gone, or a zombie: a daemon whose parent (an editor, a test, a client library that
    autostarted it) has not reaped it yet has exited all the same; waiting for the pid
    to vanish would wait out the whole timeout."""
    import psutil

    try:
        return bool(proc.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True
