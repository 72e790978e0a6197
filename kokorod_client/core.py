"""What the blocking and the asyncio client share: ids, routing, stream decoding, the ops.

Each client supplies only its transport (a reader thread and queues, or a task
and asyncio queues); which frame belongs to which request, what a stream's
frames mean and which operations exist are decided here once.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

from kokorod_common.messages import Chunk, ConnectionLost, End, Mark, stream_item

LOST: dict[str, Any] = {"op": "_lost"}  # put on every open route when the connection drops

Deliver = Callable[[dict[str, Any]], None]


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

    def route(self, frame: dict[str, Any]) -> None:
        rid = frame.get("id")
        with self._lock:
            if rid is None:
                targets = list(self._routes.values())
            else:
                targets = [t for t in [self._routes.get(rid)] if t is not None]
        for deliver in targets:
            deliver(frame)

    def lose(self) -> None:
        """The connection is gone: every open request hears it."""
        self.lost = True
        with self._lock:
            targets = list(self._routes.values())
        for deliver in targets:
            deliver(LOST)


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
            raise ConnectionLost("kokorod closed the connection mid-stream")
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
