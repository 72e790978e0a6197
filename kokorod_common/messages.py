"""Typed views of the daemon's replies: what a client (and `kokorod status`) reads back.

NamedTuples rather than dataclasses: importing `dataclasses` (and with it `inspect`)
would add ~15 ms to every kokoro-say before it can ask for speech."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # decoding imports numpy when a chunk arrives; control calls need none
    import numpy as np

from kokorod_common.protocol import PROTOCOL_VERSION, pcm_to_samples


class DaemonError(Exception):
    """An `error` frame from the daemon; `code` is one of protocol.ErrorCode."""

    def __init__(self, code: str, message: str, request_id: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id


class ConnectionLost(ConnectionError):
    """The daemon closed the connection (it stopped or crashed) before the request ended."""


class Chunk(NamedTuple):
    """A chunk as sent; nothing is decoded until asked (a player takes the f32 bytes as
    they are, so a client that only speaks never imports numpy)."""

    seq: int
    pcm: bytes  # the bytes as sent (f32 or s16 little-endian)
    fmt: str = "f32"

    @property
    def size(self) -> int:
        """Samples in the chunk."""
        return len(self.pcm) // (4 if self.fmt == "f32" else 2)

    @property
    def samples(self) -> np.ndarray:
        """float32 mono at the sample rate (imports numpy)."""
        return pcm_to_samples(self.pcm, self.fmt)

    @property
    def f32(self) -> bytes:
        """float32 little-endian bytes, what the player plays."""
        return self.pcm if self.fmt == "f32" else self.samples.astype("<f4").tobytes()


class Mark(NamedTuple):
    """Where a piece of the spoken text starts in the audio (sent before that sample)."""

    sample: int  # offset in the request's audio
    char: int  # segment marks: offset in the spoken (cleaned) text
    text: str  # segment: the spoken text from here; word: the word as the request wrote it
    kind: str = "segment"  # or "word" (requests with marks: "word"), or "ssml" (text: name)
    samples: int = 0  # word: how long it is heard
    span: tuple[int, int] | None = None  # word: where it is in the request's text


class End(NamedTuple):
    """The `end` frame: how much was sent, and the daemon's timings for the request."""

    chunks: int
    samples: int
    audio_seconds: float
    cancelled: bool
    timings: dict[str, Any]
    reason: str = "done"  # or cancelled, stopped, interrupted, discarded, shutdown
    interrupted_by: dict[str, Any] | None = None  # {client_name, priority, mode}


def raise_if_error(frame: dict[str, Any]) -> dict[str, Any]:
    if frame.get("op") == "error":
        raise DaemonError(str(frame.get("code")), str(frame.get("message")), frame.get("id"))
    return frame


def stream_item(frame: dict[str, Any], fmt: str) -> Chunk | End | Mark | None:
    """A frame of a synthesize stream → Chunk, End, Mark, or None for `start` and
    `playing`."""
    op = raise_if_error(frame).get("op")
    if op == "mark":
        if frame.get("kind") == "word":
            a, b = frame["span"]
            return Mark(int(frame["sample"]), int(a), str(frame["text"]), "word",
                        int(frame.get("samples", 0)), (int(a), int(b)))
        if frame.get("kind") == "ssml":  # an SSML <mark>: its name, where the next word starts
            return Mark(int(frame["sample"]), 0, str(frame.get("name", "")), "ssml")
        return Mark(int(frame["sample"]), int(frame["char"]), str(frame["text"]))
    if op == "chunk":
        return Chunk(int(frame["seq"]), frame["pcm"], fmt)
    if op == "end":
        return End(int(frame.get("chunks", 0)), int(frame.get("samples", 0)),
                   float(frame["audio_seconds"]), bool(frame["cancelled"]),
                   dict(frame.get("timings") or {}), str(frame.get("reason", "done")),
                   frame.get("interrupted_by") if isinstance(frame.get("interrupted_by"), dict)
                   else None)
    return None


def version_warning(hello: dict[str, Any]) -> str | None:
    theirs = hello.get("protocol")
    if theirs != PROTOCOL_VERSION:
        return (f"kokorod speaks protocol {theirs}, this client {PROTOCOL_VERSION}; "
                "update the older one")
    return None
