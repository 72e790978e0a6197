"""OpenAI's speech API beside the socket (KOKORO_HTTP_PORT): on, off, or why not, and where;
started, stopped or moved by a reload.

An optional front-end never costs the socket its speech: without the `http` extra, or with
its port held by another program (8880 is also Kokoro-FastAPI's default), the daemon serves
the socket on, says why HTTP is off (one line: the log, `kokorod start` or a client's
autostart, `kokorod status`, `kokorod http`) and, for a port in use, tries it again at every
runtime check, so HTTP comes on by itself once the port is free.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

import psutil

from kokorod import extras
from kokorod.config import Config
from kokorod.serve.requests import Requests

log = logging.getLogger(__name__)


def port_holder(port: int) -> str:
    """' (by pid N: command)' of whatever listens on `port`, when psutil can tell."""
    try:
        for conn in psutil.net_connections(kind="inet"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
                if conn.pid is None:
                    return ""
                proc = psutil.Process(conn.pid)
                command = " ".join(proc.cmdline()) or proc.name()
                return f" (by pid {conn.pid}: {command[:80]})"
    except (psutil.Error, OSError):
        pass
    return ""


def port_in_use(port: int, exc: OSError | None = None) -> str:
    """One line: the port, what holds it, and what to do."""
    why = "already in use" if exc is None or exc.errno == errno.EADDRINUSE else \
        (exc.strerror or str(exc))
    return (f"HTTP port {port} is {why}{port_holder(port)}; HTTP is off until the port is "
            "free (kokorod tries it again) or KOKORO_HTTP_PORT (http_port in the config "
            "file) names another")


class HttpFront:
    """The OpenAI speech API's on/off state and where it listens."""

    def __init__(self) -> None:
        self.api: Any = None
        self.port = 0  # the configured port (0: off)
        self.error = ""
        self._busy = False  # off because the port could not be bound: retried
        self._token = ""
        self._max_body = 1 << 20
        self._requests: Requests | None = None

    def status(self) -> dict[str, Any]:
        on = self.api is not None
        return {"on": on, "port": self.port,
                "url": f"http://127.0.0.1:{self.port}/v1" if on else None,
                "error": self.error or None}

    async def apply(self, config: Config, requests: Requests, at_start: bool) -> None:
        """Serve at `config.http_port` (0: not at all). A missing extra or a port in use
        leaves HTTP off with one line saying why (a note for whoever started the daemon at
        a start, the log on reload) while the socket serves on."""
        port = config.http_port
        self._token, self._max_body, self._requests = (config.http_token,
                                                       config.max_frame_bytes, requests)
        if self.api is not None and port == self.port:
            self.api.token = config.http_token
            return
        await self.stop()
        self.port, self.error, self._busy = port, "", False
        if not port:
            return
        off = extras.off_without("http", f"KOKORO_HTTP_PORT={port}", at_start)
        if off:
            self.error = off
            return
        message = await self._listen()
        if message:
            self.error, self._busy = extras.off(message, at_start), True

    async def retry(self) -> None:
        """If the port was in use: try it again (quietly while it still is)."""
        if self._busy and self.api is None and self.port and not await self._listen():
            self.error, self._busy = "", False
            log.warning("HTTP port %d is free now", self.port)

    async def _listen(self) -> str:
        """Start serving at `self.port`: "" when it does, else why not (one line)."""
        from kokorod.serve.http_api import SpeechAPI  # the http extra: only when it is on

        assert self._requests is not None
        api = SpeechAPI(self._requests, self._token, self._max_body)
        try:
            await api.start(self.port)
        except OSError as exc:
            await api.stop()
            return port_in_use(self.port, exc)
        self.api = api
        log.info("OpenAI speech API on http://127.0.0.1:%d/v1", self.port)
        return ""

    async def stop(self) -> None:
        if self.api is not None:
            await self.api.stop()
            self.api = None
            log.info("OpenAI speech API on port %d stopped", self.port)
