"""The daemon's socket, pid and lock files: claimed at start, kept while it runs, removed
at stop.

One daemon per socket path: an flock on <socket>.lock, and a live socket already
there refuses the start (a dead one is removed). While it runs the daemon checks
every `runtime_check_s` that its files are still its own: macOS sweeps temporary
directories of files untouched for days, and a user may delete them. A vanished
socket is bound again (clients would otherwise start a second daemon), a vanished
pid file rewritten (`kokorod stop` needs it), a vanished lock taken again (so a
second daemon cannot start beside this one); if another daemon has taken over
meanwhile, this one stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from kokorod_common import atomic, paths
from kokorod_common.launcher import socket_is_live

log = logging.getLogger(__name__)

Accept = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class AlreadyRunning(RuntimeError):
    """Another live daemon owns the socket or the lock."""


class InstanceLock:
    """flock on <socket>.lock: exactly one daemon per socket path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(
                f"another kokorod is already running on {self.path.with_suffix('.sock')} "
                "(or starting); stop it with 'kokorod stop'"
            ) from None
        self.release()
        self._fd = fd

    def held(self) -> bool:
        """The file at `path` is still the one we hold the lock on."""
        if self._fd is None:
            return False
        try:
            return os.stat(self.path).st_ino == os.fstat(self._fd).st_ino
        except FileNotFoundError:
            return False

    def release(self, remove: bool = False) -> None:
        if self._fd is not None:
            if remove and self.held():  # ours: no lock file left behind
                with contextlib.suppress(OSError):
                    self.path.unlink()
            os.close(self._fd)
            self._fd = None


class RuntimeFiles:
    def __init__(self, socket_path: Path) -> None:
        self.socket = socket_path
        self.lock = InstanceLock(paths.lock_file(socket_path))
        self.pid = paths.pid_file(socket_path)
        self.server: asyncio.AbstractServer | None = None
        self._socket_ino: int | None = None

    def claim(self) -> None:
        """Before the engine loads: a usable directory, the lock, no live socket."""
        paths.check_socket_path(self.socket)
        paths.ensure_private_dir(self.socket.parent)
        self.lock.acquire()
        if self.socket.exists() or self.socket.is_symlink():
            if socket_is_live(self.socket):
                self.lock.release()
                raise AlreadyRunning(f"a daemon is already serving {self.socket}")
            log.info("removing stale socket %s", self.socket)
            self.socket.unlink()

    async def bind(self, accept: Accept) -> None:
        """Write the pid file, then listen on the socket (0600 in a 0700 directory): whoever
        finds the socket live finds the pid too (`kokorod start` says it)."""
        paths.ensure_private_dir(self.socket.parent)
        atomic.write_text(self.pid, f"{os.getpid()}\n")
        old_umask = os.umask(0o177)
        try:
            self.server = await asyncio.start_unix_server(accept, path=str(self.socket),
                                                          limit=1 << 16)
        finally:
            os.umask(old_umask)
        os.chmod(self.socket, 0o600)
        self._socket_ino = os.stat(self.socket).st_ino

    def _socket_is_ours(self) -> bool:
        try:
            return os.stat(self.socket).st_ino == self._socket_ino
        except FileNotFoundError:
            return False

    async def keep(self, accept: Accept, every_s: float, give_up: Callable[[str], None]) -> None:
        """Until cancelled: put back whatever was removed; `give_up(why)` if another daemon
        took our place."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.restore(accept)
            except AlreadyRunning as exc:
                log.error("%s; this daemon stops", exc)
                give_up(str(exc))
                return
            except OSError as exc:  # e.g. the directory cannot be made: try again later
                log.warning("cannot restore the runtime files: %s", exc)

    async def restore(self, accept: Accept) -> None:
        if not self.lock.held():
            log.warning("the lock file %s was removed; taking it again", self.lock.path)
            self.lock.acquire()
        if not self._socket_is_ours():
            if self.socket.exists() and socket_is_live(self.socket, timeout=0.5):
                raise AlreadyRunning(f"another daemon now serves {self.socket}")
            log.warning("the socket %s was removed; listening on it again", self.socket)
            if self.server is not None:
                self.server.close()  # connections already open carry on
            paths.check_socket_path(self.socket)  # never replace a file put there since
            with contextlib.suppress(FileNotFoundError):
                self.socket.unlink()
            await self.bind(accept)
        if not self.pid.exists() or self.pid.read_text().strip() != str(os.getpid()):
            log.warning("the pid file %s was removed; writing it again", self.pid)
            atomic.write_text(self.pid, f"{os.getpid()}\n")

    def close_listener(self) -> None:
        """Stop accepting and remove the socket (first step of shutdown)."""
        if self.server is not None:
            self.server.close()
        if self._socket_is_ours():
            self.socket.unlink()

    def release(self) -> None:
        """Last step of shutdown."""
        with contextlib.suppress(OSError):
            if self.pid.exists() and self.pid.read_text().strip() == str(os.getpid()):
                self.pid.unlink()
        self.lock.release(remove=True)
