"""Blocking client: one socket, a reader thread that routes frames to requests by id.

Several requests may run at once on one Client (each `Stream` reads its own
queue). `Stream.cancel()` may be called from any thread, e.g. a Ctrl-C handler.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kokorod_client.core import (
    LOST,
    POLL_S,
    READ_BYTES,
    REPLY_TIMEOUT_S,
    STREAM_QUEUE_FRAMES,
    IdSource,
    Inbound,
    Operations,
    Router,
    StreamFrames,
    answer,
    lost_mid_stream,
)
from kokorod_client.early import EarlyRequest, connect
from kokorod_common.messages import (
    Chunk,
    ConnectionLost,
    DaemonError,
    End,
    Mark,
    version_warning,
)
from kokorod_common.paths import resolve_socket
from kokorod_common.protocol import encode_frame, request_frame, synthesize_message


def _offer(q: queue.Queue[Any]) -> Callable[[dict[str, Any]], None]:
    """Deliver into a bounded queue (core's policy): blocks the reader when the caller
    falls behind, never for the loss notice."""
    def deliver(frame: dict[str, Any]) -> None:
        if frame is LOST:
            with contextlib.suppress(queue.Full):
                q.put_nowait(frame)
        else:
            q.put(frame)
    return deliver


class Stream(StreamFrames):
    """The frames of one synthesize request: iterate for Chunks; `.end` afterwards."""

    def __init__(self, client: Client, rid: int, fmt: str) -> None:
        super().__init__(rid, fmt, threading.Event())
        self.client = client
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=STREAM_QUEUE_FRAMES)

    def __iter__(self) -> Iterator[Chunk]:
        try:
            while self.end is None:
                try:
                    frame = self.queue.get(timeout=POLL_S)
                except queue.Empty:
                    if self.client.router.lost:
                        raise lost_mid_stream() from None
                    continue
                chunk = self.take(frame)
                if chunk is not None:
                    yield chunk
        finally:
            self.client.router.close(self.id)

    def cancel(self) -> None:
        self.client.send(request_frame("cancel", self.id))


class Client(Operations):
    """`early`: a connection on which hello and a synthesize request were already sent
    (kokorod_client.early); the Client takes it over and `early_stream` is that request's
    Stream."""

    def __init__(self, socket_path: str | Path | None = None, *, autostart: bool = False,
                 client_name: str = "kokorod-client", timeout: float = REPLY_TIMEOUT_S,
                 max_frame: int = 64 << 20, early: EarlyRequest | None = None) -> None:
        self.socket_path = early.socket_path if early else resolve_socket(socket_path)
        self.client_name = client_name
        self.timeout = timeout
        self.sock = early.sock if early else self._connect(autostart)
        self._send_lock = threading.Lock()
        self.router = Router()
        self._ids = IdSource(early.request_id + 1 if early else 1)
        self._inbound = Inbound(self.router, max_frame)
        self._closed = False
        # An early request's routes open before the reader runs: no reply can go astray.
        hello_id = early.hello_id if early else self._ids.next()
        replies = self._expect(hello_id)
        self.early_stream = self._open_stream(early.request_id, early.fmt) if early else None
        self._reader = threading.Thread(target=self._read_loop, name="kokorod-client-reader",
                                        daemon=True)
        self._reader.start()
        hello = None if early else request_frame("hello", hello_id, client_name=client_name)
        try:
            self.server: dict[str, Any] = self._reply("hello", hello_id, replies, hello)
        except BaseException:  # no reply (timeout, refused, lost): nothing left open
            self.close()
            raise
        warning = version_warning(self.server)
        if warning:
            import logging  # here: a client that only speaks does not load it (~5 ms)

            logging.getLogger(__name__).warning(warning)

    # ------------------------------------------------------------ plumbing
    def _connect(self, autostart: bool) -> socket.socket:
        try:
            return connect(self.socket_path)
        except OSError:
            if not autostart:
                raise
        # Only now the launcher (and what it imports): a running daemon needs none of it.
        from kokorod_common import launcher

        launcher.ensure_running(self.socket_path)
        return connect(self.socket_path)

    def send(self, message: dict[str, Any]) -> None:
        data = encode_frame(message)
        with self._send_lock:
            self.sock.sendall(data)

    def _read_loop(self) -> None:
        with self._inbound.reading():
            while data := self.sock.recv(READ_BYTES):
                for deliver, frame in self._inbound.frames(data):
                    deliver(frame)

    # ------------------------------------------------------------ api
    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a one-reply op and wait for its reply (DaemonError for an error frame)."""
        rid = self._ids.next()
        replies = self._expect(rid)
        return self._reply(op, rid, replies, request_frame(op, rid, **fields))

    def _expect(self, rid: int) -> queue.Queue[dict[str, Any]]:
        replies: queue.Queue[dict[str, Any]] = queue.Queue()
        self.router.open(rid, replies.put)
        return replies

    def _reply(self, op: str, rid: int, replies: queue.Queue[dict[str, Any]],
               message: dict[str, Any] | None) -> dict[str, Any]:
        """Send `message` (None: it was sent early) and wait for its reply on `replies`."""
        try:
            if message is not None:
                self.send(message)
            deadline = time.monotonic() + self.timeout
            while True:
                try:
                    frame: dict[str, Any] | None = replies.get(timeout=min(POLL_S, self.timeout))
                except queue.Empty:
                    if not self.router.lost and time.monotonic() < deadline:
                        continue
                    frame = LOST if self.router.lost else None
                return answer(op, frame, self.timeout)
        finally:
            self.router.close(rid)

    def _call(self, op: str, then: Callable[[dict[str, Any]], Any], **fields: Any) -> Any:
        return then(self.request(op, **fields))

    def synthesize(self, text: str, *, fmt: str = "f32", **options: Any) -> Stream:
        """Start a request; iterate the Stream for its chunks (none when play=True: the
        daemon plays it, and the Stream ends when the speaker is done with it).
        `options`: voice, speed, lang, chunk_ms, text_format, priority, mode, play,
        normalize (None: the daemon's default)."""
        rid = self._ids.next()
        message = synthesize_message(rid, text, fmt, options)
        stream = self._open_stream(rid, fmt)
        self.send(message)
        return stream

    def _open_stream(self, rid: int, fmt: str) -> Stream:
        stream = Stream(self, rid, fmt)
        self.router.open(rid, _offer(stream.queue))
        return stream

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._reader.join(timeout=2)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Chunk", "Client", "ConnectionLost", "DaemonError", "End", "Mark", "Stream"]
