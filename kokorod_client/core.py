"""What the blocking and the asyncio client share: ids, routing, the read loop's body, the
queue policy, replies and their timeouts, stream decoding, the ops.

Each client supplies only its transport (a reader thread and queues, or a task
and asyncio queues); which frame belongs to which request, what a stream's
frames mean, how long a reply may take and which operations exist are decided here once.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any

from kokorod_common.messages import (
    Chunk,
    ConnectionLost,
    End,
    Mark,
    raise_if_error,
    stream_item,
)
from kokorod_common.protocol import FrameDecoder, ProtocolError

LOST: dict[str, Any] = {"op": "_lost"}  # put on every open route when the connection drops

# The queue policy, one for both clients: a stream's frames wait in a queue of at most
# this many; when its reader falls behind, the read loop waits (so the daemon, whose writes
# then block, pauses: end-to-end backpressure). The loss notice never waits: a consumer
# that finds its queue empty asks `Router.lost` every POLL_S.
STREAM_QUEUE_FRAMES = 512
POLL_S = 0.25
# How long a one-reply op (hello, status, …) may take before TimeoutError.
REPLY_TIMEOUT_S = 30.0
READ_BYTES = 1 << 16

Deliver = Callable[[dict[str, Any]], Any]  # None, or an awaitable in the asyncio client


class IdSource:
    """Thread-safe increasing request ids."""

    def __init__(self, first: int = 1) -> None:
        self._ids = itertools.count(first)
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            return next(self._ids)


class Router:
    """Frames to the request they answer, by id; a frame without an id (an error about the
    connection itself) to every open request. Thread-safe: the blocking client's reader
    thread delivers while callers open and close routes."""

    def __init__(self) -> None:
        self._routes: dict[Any, Deliver] = {}
        self._lock = threading.Lock()
        self.lost = False

    def open(self, rid: Any, deliver: Deliver) -> None:
        with self._lock:
            self._routes[rid] = deliver

    def close(self, rid: Any) -> None:
        with self._lock:
            self._routes.pop(rid, None)

    def targets(self, frame: dict[str, Any]) -> list[Deliver]:
        """Who gets `frame`: its request, or every open one (no id)."""
        rid = frame.get("id")
        with self._lock:
            if rid is None:
                return list(self._routes.values())
            return [t for t in [self._routes.get(rid)] if t is not None]

    def lose(self) -> None:
        """The connection is gone: every open request hears it."""
        self.lost = True
        with self._lock:
            targets = list(self._routes.values())
        for deliver in targets:
            deliver(LOST)


class Inbound:
    """The read loop's body, shared: bytes in, (deliver, frame) pairs out; `reading()` is
    how a loop ends (EOF, a socket error or a frame that breaks the protocol): every open
    request hears that the connection is lost."""

    def __init__(self, router: Router, max_frame: int) -> None:
        self.router = router
        self._decoder = FrameDecoder(max_frame)

    def frames(self, data: bytes) -> Iterator[tuple[Deliver, dict[str, Any]]]:
        self._decoder.feed(data)
        for frame in self._decoder:
            for deliver in self.router.targets(frame):
                yield deliver, frame

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        try:
            yield
        except (OSError, ProtocolError):
            pass
        finally:
            self.router.lose()


def answer(op: str, frame: dict[str, Any] | None, timeout: float) -> dict[str, Any]:
    """A one-reply op's outcome: the reply, or DaemonError for an error frame,
    ConnectionLost when the connection went first, TimeoutError (`frame` None) when
    nothing came within `timeout`."""
    if frame is LOST:
        raise ConnectionLost(f"kokorod closed the connection before replying to {op}")
    if frame is None:
        raise TimeoutError(f"no reply to {op} within {timeout:g}s")
    return raise_if_error(frame)


def lost_mid_stream() -> ConnectionLost:
    return ConnectionLost("kokorod closed the connection mid-stream")


class StreamFrames:
    """One synthesize request's frames as its caller sees them: `take` returns the Chunks
    and keeps the rest (start, marks, playing, the End)."""

    def __init__(self, rid: int, fmt: str, playing: Any) -> None:
        self.id = rid
        self.format = fmt
        self.started: dict[str, Any] | None = None
        self.playing = playing  # an Event: play: true, the daemon's speaker started it
        self.marks: list[Mark] = []  # text positions, in the order their audio comes
        self.on_mark: Callable[[Mark], None] | None = None
        self.end: End | None = None

    def take(self, frame: dict[str, Any]) -> Chunk | None:
        """A Chunk to hand on, or None; raises DaemonError or ConnectionLost."""
        if frame is LOST:
            raise lost_mid_stream()
        item = stream_item(frame, self.format)
        if isinstance(item, Chunk):
            return item
        if isinstance(item, Mark):
            self.marks.append(item)
            if self.on_mark is not None:
                self.on_mark(item)
        elif isinstance(item, End):
            self.end = item
        elif frame.get("op") == "playing":
            self.playing.set()
        else:
            self.started = frame
        return None


def stop_fields(everyone: bool, client_name: str | None) -> dict[str, Any]:
    return {"scope": "all" if everyone else "client", "client_name": client_name}


class Operations:
    """The one-reply operations, written once for both clients. `_call(op, then, **fields)`
    sends the request and hands the reply to `then`: at once in Client, after the await
    in AsyncClient (where each method below returns an awaitable)."""

    def _call(self, op: str, then: Callable[[dict[str, Any]], Any], **fields: Any) -> Any:
        raise NotImplementedError

    def ping(self) -> Any:
        return self._call("ping", dict)

    def voices(self) -> Any:
        """[{name, lang, gender, …}] for every voice the daemon has."""
        return self._call("voices", lambda reply: list(reply["voices"]))

    def status(self) -> Any:
        return self._call("status", dict)

    def reload(self, *, rebuild: bool = False) -> Any:
        """Ask the daemon to re-read settings and the model choice; the reply comes after
        the swap."""
        return self._call("reload", dict, rebuild=rebuild)

    def stop(self, *, everyone: bool = False, client_name: str | None = None) -> Any:
        """Stop this client's speech (or `client_name`'s, or everyone's): how many ended."""
        return self._call("stop", lambda reply: int(reply["stopped"]),
                          **stop_fields(everyone, client_name))

    def pause(self) -> Any:
        return self._call("pause", dict)

    def resume(self) -> Any:
        return self._call("resume", dict)

    def speech_queue(self) -> Any:
        """What the daemon's speaker plays and what waits (`queue` op)."""
        return self._call("queue", dict)

    def synthesize(self, text: str, *, fmt: str = "f32", **options: Any) -> Any:
        raise NotImplementedError

    def speak(self, text: str, **options: Any) -> Any:
        """The daemon plays `text` itself (no audio code here); see synthesize()."""
        return self.synthesize(text, play=True, **options)
