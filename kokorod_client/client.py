"""Blocking client: one socket, a reader thread that routes frames to requests by id.

Several requests may run at once on one Client (each `Stream` reads its own
queue). `Stream.cancel()` may be called from any thread, e.g. a Ctrl-C handler.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kokorod import launcher
from kokorod.paths import default_socket_path
from kokorod.protocol import FrameDecoder, ProtocolError, encode_frame
from kokorod_client.messages import (
    Chunk,
    ConnectionLost,
    DaemonError,
    End,
    IdSource,
    Mark,
    raise_if_error,
    stream_item,
    synthesize_request,
    version_warning,
)

log = logging.getLogger(__name__)

STREAM_QUEUE_FRAMES = 512


def resolve_socket(path: str | Path | None) -> Path:
    import os

    if path:
        return Path(path)
    env = os.environ.get("KOKORO_SOCKET")
    return Path(env) if env else default_socket_path()


class Stream:
    """The frames of one synthesize request: iterate for Chunks; `.end` afterwards."""

    def __init__(self, client: Client, rid: int, fmt: str) -> None:
        self.client = client
        self.id = rid
        self.format = fmt
        # Bounded: a consumer that falls behind stops the reader, so the
        # socket stops being read and the daemon pauses (end-to-end backpressure).
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=STREAM_QUEUE_FRAMES)
        self.end: End | None = None
        self.started: dict[str, Any] | None = None
        self.playing = threading.Event()  # play: true — the daemon's speaker started it
        self.marks: list[Mark] = []  # text positions, in the order their audio comes
        self.on_mark: Callable[[Mark], None] | None = None

    def __iter__(self) -> Iterator[Chunk]:
        try:
            while True:
                try:
                    frame = self.queue.get(timeout=0.25)
                except queue.Empty:
                    if self.client.lost:
                        raise ConnectionLost("kokorod closed the connection mid-stream") from None
                    continue
                item = stream_item(frame, self.format)
                if isinstance(item, Mark):
                    self.marks.append(item)
                    if self.on_mark is not None:
                        self.on_mark(item)
                elif item is None and frame.get("op") == "playing":
                    self.playing.set()
                elif item is None:
                    self.started = frame
                elif isinstance(item, End):
                    self.end = item
                    return
                else:
                    yield item
        finally:
            self.client._forget(self.id)

    def cancel(self) -> None:
        self.client.send({"op": "cancel", "id": self.id})


class Client:
    def __init__(self, socket_path: str | Path | None = None, *, autostart: bool = False,
                 client_name: str = "kokorod-client", timeout: float = 30.0,
                 max_frame: int = 64 << 20) -> None:
        self.socket_path = resolve_socket(socket_path)
        self.client_name = client_name
        self.timeout = timeout
        self.started_daemon = False
        if autostart:
            self.started_daemon = launcher.ensure_running(self.socket_path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(str(self.socket_path))
        except OSError:
            self.sock.close()
            raise
        self._send_lock = threading.Lock()
        self._routes: dict[Any, queue.Queue[Any]] = {}
        self._routes_lock = threading.Lock()
        self._ids = IdSource()
        self._decoder = FrameDecoder(max_frame)
        self._closed = False
        self.lost = False
        self._reader = threading.Thread(target=self._read_loop, name="kokorod-client-reader",
                                        daemon=True)
        self._reader.start()
        self.server: dict[str, Any] = self.request("hello", client_name=client_name)
        warning = version_warning(self.server)
        if warning:
            log.warning(warning)

    # ------------------------------------------------------------ plumbing
    def send(self, message: dict[str, Any]) -> None:
        data = encode_frame(message)
        with self._send_lock:
            self.sock.sendall(data)

    def _route(self, rid: Any) -> queue.Queue[Any]:
        q: queue.Queue[Any] = queue.Queue()
        with self._routes_lock:
            self._routes[rid] = q
        return q

    def _forget(self, rid: Any) -> None:
        with self._routes_lock:
            self._routes.pop(rid, None)

    def _read_loop(self) -> None:
        try:
            while True:
                data = self.sock.recv(1 << 16)
                if not data:
                    break
                self._decoder.feed(data)
                for frame in self._decoder:
                    with self._routes_lock:
                        target = self._routes.get(frame.get("id"))
                        if target is None and frame.get("id") is None:
                            targets = list(self._routes.values())  # connection-level error
                        else:
                            targets = [target] if target is not None else []
                    for q in targets:
                        q.put(frame)
        except (OSError, ProtocolError):
            pass
        finally:
            self.lost = True

    # ------------------------------------------------------------ api
    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a one-reply op (hello, voices, status, ping) and wait for its reply."""
        rid = self._ids.next()
        q = self._route(rid)
        try:
            self.send({"op": op, "id": rid, **fields})
            deadline = time.monotonic() + self.timeout
            while True:
                try:
                    return raise_if_error(q.get(timeout=0.1))
                except queue.Empty:
                    if self.lost:
                        raise ConnectionLost(
                            f"kokorod closed the connection before replying to {op}") from None
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"no reply to {op} within {self.timeout}s") from None
        finally:
            self._forget(rid)

    def voices(self) -> list[dict[str, str]]:
        return list(self.request("voices")["voices"])

    def status(self) -> dict[str, Any]:
        return self.request("status")

    def reload(self, *, rebuild: bool = False) -> dict[str, Any]:
        """Ask the daemon to re-read settings and the model choice; waits for the swap."""
        return self.request("reload", rebuild=rebuild)

    def synthesize(self, text: str, *, voice: str | None = None, speed: float = 1.0,
                   lang: str | None = None, chunk_ms: int | None = None,
                   fmt: str = "f32", text_format: str | None = None,
                   priority: str | None = None, mode: str | None = None,
                   play: bool | None = None, normalize: bool | None = None) -> Stream:
        """Start a request; iterate the Stream for its chunks (none when play=True: the
        daemon plays it, and the Stream ends when the speaker is done with it)."""
        rid = self._ids.next()
        stream = Stream(self, rid, fmt)
        with self._routes_lock:
            self._routes[rid] = stream.queue
        self.send(synthesize_request(rid, text, voice=voice, speed=speed, lang=lang,
                                     chunk_ms=chunk_ms, fmt=fmt, text_format=text_format,
                                     priority=priority, mode=mode, play=play,
                                     normalize=normalize))
        return stream

    def speak(self, text: str, **options: Any) -> Stream:
        """The daemon plays `text` itself (no audio code here); see synthesize()."""
        return self.synthesize(text, play=True, **options)

    def stop(self, *, everyone: bool = False, client_name: str | None = None) -> int:
        """Stop this client's speech (or `client_name`'s, or everyone's); how many ended."""
        reply = self.request("stop", scope="all" if everyone else "client",
                             **({"client_name": client_name} if client_name else {}))
        return int(reply["stopped"])

    def pause(self) -> dict[str, Any]:
        return self.request("pause")

    def resume(self) -> dict[str, Any]:
        return self.request("resume")

    def speech_queue(self) -> dict[str, Any]:
        """What the daemon's speaker plays and what waits (`queue` op)."""
        return self.request("queue")

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
