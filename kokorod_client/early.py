"""The request before the client: kokoro-say's synthesize request leaves with nothing
loaded but the socket, msgpack and the wire format.

A `Client` brings threads, queues, routing and the reply types; in a fresh process
those imports cost ~15–20 ms. Sent from here, the daemon already synthesizes while
they load; `Client(early=…)` then takes over the connected socket and the request's
stream. Only a daemon that is already running is asked this way: starting one is
the Client's job (the launcher), and then nothing is gained by asking early.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, NamedTuple

from kokorod_common.paths import resolve_socket
from kokorod_common.protocol import (
    DEFAULT_MAX_FRAME,
    encode_frame,
    request_frame,
    synthesize_message,
)

HELLO_ID = 1
REQUEST_ID = 2
# A text this close to the daemon's default frame limit goes the Client's way, which
# reads the daemon's own limit from hello before sending.
EARLY_TEXT_BYTES = DEFAULT_MAX_FRAME - 4096


class EarlyRequest(NamedTuple):
    """A connection on which hello and one synthesize request are sent, nothing read."""

    sock: socket.socket
    socket_path: Path
    hello_id: int
    request_id: int
    fmt: str


def connect(path: Path) -> socket.socket:
    """A socket connected to the daemon at `path` (closed again if the connect fails).
    Here rather than in client.py so that asking early needs nothing of the Client."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        raise
    return sock


def ask_early(socket_path: str | Path | None, client_name: str, text: str, fmt: str,
              options: dict[str, Any]) -> EarlyRequest | None:
    """Connect, send hello and the request; None when no daemon answers (or the text is
    too large to send unchecked): then the caller makes a Client the usual way."""
    if len(text.encode("utf-8")) > EARLY_TEXT_BYTES:
        return None
    path = resolve_socket(socket_path)
    try:
        sock = connect(path)
    except OSError:
        return None
    try:
        sock.sendall(encode_frame(request_frame("hello", HELLO_ID, client_name=client_name))
                     + encode_frame(synthesize_message(REQUEST_ID, text, fmt, options)))
    except OSError:  # the daemon went away between the connect and the send
        sock.close()
        return None
    return EarlyRequest(sock, path, HELLO_ID, REQUEST_ID, fmt)
