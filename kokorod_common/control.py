"""One request, one reply, on a connection of its own: how `kokorod status` and
`kokorod model use` ask the running daemon (the daemon's command line needs no client
library for that)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from kokorod_common.messages import ConnectionLost, raise_if_error
from kokorod_common.protocol import FrameDecoder, encode_frame, request_frame

_HELLO, _ASK = 0, 1


def call(socket_path: Path, op: str, *, client_name: str, timeout: float = 30.0,
         **fields: Any) -> dict[str, Any]:
    """The daemon's reply to `op`; DaemonError for an error frame, ConnectionLost if it
    hangs up first, FileNotFoundError/ConnectionRefusedError when nothing serves."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(socket_path))
        sock.sendall(encode_frame(request_frame("hello", _HELLO, client_name=client_name))
                     + encode_frame(request_frame(op, _ASK, **fields)))
        decoder = FrameDecoder(64 << 20)
        while data := sock.recv(1 << 16):
            decoder.feed(data)
            for frame in decoder:
                if frame.get("id") in (_ASK, None):
                    return raise_if_error(frame)
                raise_if_error(frame)  # the hello's reply, or why it was refused
    raise ConnectionLost(f"kokorod closed the connection before replying to {op}")
