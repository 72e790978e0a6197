"""The Wyoming server beside the socket (KOKORO_WYOMING_URI): on, off, or why not, and where;
started, stopped or moved by a reload, as the HTTP front-end is (http_front.py). An
address in use leaves it off with one line while the socket serves on, and is tried again
at every runtime check.

It listens with asyncio's own servers (the `wyoming` library's event classes speak the
protocol, wyoming_session.py serves each connection) so that the daemon decides the
address, the unix socket's mode (0600, the daemon's user) and the read limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
from pathlib import Path
from typing import Any, NamedTuple

from kokorod import extras
from kokorod.config import Config
from kokorod.serve.http_front import port_holder
from kokorod.serve.requests import Requests
from kokorod.setting_values import read_wyoming_uri

log = logging.getLogger(__name__)


class WyomingAddress(NamedTuple):
    """Where the server listens: `tcp` at host:port, or a `unix` socket file."""

    scheme: str
    where: str  # tcp: the address to bind; unix: the socket file
    port: int

    @property
    def loopback(self) -> bool:
        if self.scheme == "unix":
            return True
        try:
            return ipaddress.ip_address(self.where).is_loopback
        except ValueError:  # a host name: resolved by the system, maybe to a LAN address
            return False

    def __str__(self) -> str:
        return f"unix://{self.where}" if self.scheme == "unix" else \
            f"tcp://{self.where}:{self.port}"


def address_of(uri: str) -> WyomingAddress | None:
    """The address KOKORO_WYOMING_URI names (None: off); ValueError if it names none."""
    parsed = read_wyoming_uri(uri)
    return None if parsed is None else WyomingAddress(*parsed)


def unusable(address: WyomingAddress, exc: OSError) -> str:
    """One line: the address, why (and what holds its port), and what to do."""
    if exc.errno == errno.EADDRINUSE:
        held = port_holder(address.port) if address.scheme == "tcp" else ""
        why = f"it is already in use{held}"
    else:
        why = exc.strerror or str(exc)
    return (f"Wyoming address {address} cannot be used: {why}; Wyoming is "
            "off until it can be (kokorod tries it again) or KOKORO_WYOMING_URI "
            "(wyoming_uri in the config file) names another")


class WyomingFront:
    def __init__(self) -> None:
        self.server: asyncio.AbstractServer | None = None
        self.uri = ""
        self.error = ""
        self.address: WyomingAddress | None = None
        self.requests: Requests | None = None
        self.chunk_ms = 50
        self.limit = 1 << 20
        self.sessions: set[asyncio.Task[None]] = set()
        self._busy: WyomingAddress | None = None  # off because it could not be bound

    def status(self) -> dict[str, Any]:
        return {"on": self.server is not None, "uri": str(self.address) if self.address
                else None, "connections": len(self.sessions), "error": self.error or None}

    async def apply(self, config: Config, requests: Requests, at_start: bool) -> None:
        """Serve at `config.wyoming_uri` (empty: not at all). A missing extra or an address
        in use leaves it off with one line saying why (a note for whoever started the daemon
        at a start, the log on reload) while the rest serves on."""
        self.requests, self.chunk_ms = requests, config.wyoming_chunk_ms
        self.limit = config.max_frame_bytes
        if self.server is not None and config.wyoming_uri == self.uri:
            return
        await self.stop()
        self.uri, self.error, self.address, self._busy = config.wyoming_uri, "", None, None
        address = address_of(config.wyoming_uri)  # checked when the config was read
        if address is None:
            return
        off = extras.off_without("wyoming", f"KOKORO_WYOMING_URI={self.uri}", at_start)
        if off:
            self.error = off
            return
        message = await self._start(address)
        if message:
            self.error, self._busy = extras.off(message, at_start), address

    async def retry(self) -> None:
        """If the address was in use: try it again (quietly while it still is)."""
        if self._busy is not None and self.server is None and \
                not await self._start(self._busy):
            log.warning("Wyoming address %s is free now", self._busy)
            self.error, self._busy = "", None

    async def _start(self, address: WyomingAddress) -> str:
        """Listen at `address`: "" when it does, else why not (one line)."""
        try:
            self.server = await self._listen(address)
        except OSError as exc:
            return unusable(address, exc)
        self.address = address
        if not address.loopback:
            log.warning("Wyoming server on %s: reachable from other machines, with no "
                        "authentication", address)
        log.info("Wyoming server on %s", address)
        return ""

    async def _listen(self, address: WyomingAddress) -> asyncio.AbstractServer:
        if address.scheme == "unix":
            path = Path(address.where)
            if path.is_socket():
                path.unlink()  # a stale one; the daemon's single-instance lock guards a live one
            old = os.umask(0o177)
            try:
                return await asyncio.start_unix_server(self._accept, path, limit=self.limit)
            finally:
                os.umask(old)
        return await asyncio.start_server(self._accept, address.where, address.port,
                                          limit=self.limit, reuse_address=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from kokorod.serve.wyoming_session import WyomingSession  # the wyoming extra

        assert self.requests is not None
        task = asyncio.current_task()
        if task is not None:
            self.sessions.add(task)
        self.requests.counters["connections"] += 1
        try:
            await WyomingSession(self.requests, self.chunk_ms, reader, writer,
                                 self.limit).serve()
        except asyncio.CancelledError:  # stop(): the session has cancelled its request
            pass  # and ends here (asyncio would log a cancelled connection task as an error)
        except Exception:  # a fault of ours ends this connection only
            log.exception("wyoming connection failed")
        finally:
            if task is not None:
                self.sessions.discard(task)

    def close_listener(self) -> None:
        """No new connections (shutdown): those open finish within the grace period."""
        if self.server is not None:
            self.server.close()

    async def stop(self) -> None:
        """Stop listening and end every connection (their requests are cancelled)."""
        if self.server is None:
            return
        self.server.close()
        for task in list(self.sessions):
            task.cancel()
        if self.sessions:
            await asyncio.wait(list(self.sessions), timeout=2.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), 2.0)
        if self.address is not None and self.address.scheme == "unix":
            with contextlib.suppress(OSError):
                Path(self.address.where).unlink()
        self.server = None
        log.info("Wyoming server on %s stopped", self.address)
