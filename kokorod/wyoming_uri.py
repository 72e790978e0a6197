"""Where the Wyoming server listens (KOKORO_WYOMING_URI): `tcp://host:port` or
`unix:///path`. Read once here, for the setting's check and for the server.

A TCP address is loopback unless the URI names another: `tcp://:10200` and
`tcp://localhost:10200` listen on 127.0.0.1 only; Home Assistant on another machine (or in
a container) needs the address named, e.g. `tcp://0.0.0.0:10200` — Wyoming has no
authentication, so that is the user's explicit choice, never a default.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple
from urllib.parse import urlparse

LOOPBACK = "127.0.0.1"


class WyomingAddress(NamedTuple):
    scheme: str  # "tcp" or "unix"
    host: str  # tcp: the address to bind
    port: int  # tcp
    path: str  # unix: the socket file

    @property
    def loopback(self) -> bool:
        if self.scheme == "unix":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"

    def __str__(self) -> str:
        return f"unix://{self.path}" if self.scheme == "unix" else \
            f"tcp://{self.host}:{self.port}"


def parse(uri: str) -> WyomingAddress | None:
    """The address `uri` names (None: empty, the server is off); ValueError says why not."""
    uri = uri.strip()
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "unix":
        path = (parsed.netloc + parsed.path) if parsed.netloc else parsed.path
        if not path:
            raise ValueError(f"{uri!r} names no socket file; use unix:///path/to/socket")
        return WyomingAddress("unix", "", 0, path)
    if parsed.scheme == "tcp":
        try:
            port = parsed.port
        except ValueError:
            port = None
        if port is None or not 0 < port < 65536:
            raise ValueError(f"{uri!r} needs a port from 1 to 65535, e.g. tcp://127.0.0.1:10200")
        host = parsed.hostname or LOOPBACK
        return WyomingAddress("tcp", LOOPBACK if host == "localhost" else host, port, "")
    raise ValueError(f"{uri!r} is not tcp://host:port or unix:///path")
