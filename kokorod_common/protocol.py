"""The wire format: the one place that knows how frames and messages look.

Every frame, both ways, is a 4-byte unsigned big-endian length followed by one
msgpack map. The daemon and the client only ever see dicts; this module turns
them into bytes and back, and checks requests before anything acts on them.
It imports nothing heavy so editor helpers and the client can depend on it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any, NamedTuple

import msgpack

from kokorod_common.ssml_detect import looks_like_ssml

PROTOCOL_VERSION = 1
SAMPLE_RATE = 24_000
HEADER = struct.Struct(">I")
DEFAULT_MAX_FRAME = 1 << 20  # 1 MiB
# Ids are echoed on every reply; a bounded id keeps a hostile client from
# making every reply huge.
MAX_ID_STR = 128
MAX_ID_INT = (1 << 63) - 1

FORMATS = ("f32", "s16")
# ssml: SSML (docs/pronunciation.md); plain+ipa: plain text with [word](/phonemes/) readings
TEXT_FORMATS = ("plain", "markdown", "code", "ssml", "plain+ipa")
# speech-dispatcher's priorities, highest first (see kokorod/serve/speech_queue.py for the rules)
PRIORITIES = ("important", "message", "text", "notification")
MODES = ("queue", "interrupt", "stop-all")
MARKS = ("segment", "word")  # a mark per segment, or per word as well
STOP_SCOPES = ("client", "all")
CHUNK_MS_RANGE = (20, 500)
SPEED_RANGE = (0.5, 2.0)


class ErrorCode:
    """Every error code the daemon can put in an `error` frame (see PROTOCOL.md)."""

    FRAME_TOO_LARGE = "frame_too_large"  # declared length over the limit (connection closed)
    BAD_FRAME = "bad_frame"  # zero length, or bytes that are not msgpack
    NOT_A_MAP = "not_a_map"  # msgpack that decodes to something other than a map
    BAD_REQUEST = "bad_request"  # missing field or wrong field type
    BAD_ID = "bad_id"  # id missing, of the wrong type or too large
    UNKNOWN_OP = "unknown_op"  # decodes fine, op not known (version skew)
    DUPLICATE_ID = "duplicate_id"  # id already in use on this connection
    EMPTY_TEXT = "empty_text"  # nothing speakable
    TEXT_TOO_LONG = "text_too_long"
    UNKNOWN_VOICE = "unknown_voice"
    BAD_VOICE = "bad_voice"  # a blend spec that cannot be read (weights, too many voices)
    BAD_SPEED = "bad_speed"
    BAD_CHUNK_MS = "bad_chunk_ms"
    BAD_FORMAT = "bad_format"
    BAD_LANG = "bad_lang"
    BAD_TEXT_FORMAT = "bad_text_format"
    BAD_SSML = "bad_ssml"  # SSML that cannot be read (the message names line and column)
    BAD_PHONEMES = "bad_phonemes"  # a reading with symbols outside the model's phoneme set
    BAD_PRIORITY = "bad_priority"
    BAD_MODE = "bad_mode"
    BAD_MARKS = "bad_marks"
    NO_AUDIO_DEVICE = "no_audio_device"  # play: true, but the daemon has no output device
    BUSY = "busy"  # too many requests in flight
    ENGINE_ERROR = "engine_error"  # inference failed for this request
    SHUTTING_DOWN = "shutting_down"
    RELOAD_FAILED = "reload_failed"  # the new model could not be loaded; the old one serves on
    PEER_REFUSED = "peer_refused"  # the connecting process is not the daemon's user
    INTERNAL = "internal"

    @classmethod
    def all(cls) -> frozenset[str]:
        return frozenset(v for k, v in vars(cls).items() if k.isupper())


class ProtocolError(Exception):
    """A request or frame the daemon refuses; becomes an `error` frame."""

    def __init__(self, code: str, message: str, fatal: bool = False):
        super().__init__(message)
        self.code = code
        self.message = message
        # fatal: the byte stream can no longer be trusted, close after replying
        self.fatal = fatal


# ---------------------------------------------------------------- framing


def encode_frame(message: dict[str, Any]) -> bytes:
    """One message → length header + msgpack body."""
    body = msgpack.packb(message, use_bin_type=True)
    return HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> dict[str, Any]:
    """msgpack body → dict, or ProtocolError saying why not."""
    if not body:
        raise ProtocolError(ErrorCode.BAD_FRAME, "empty frame (length 0)")
    try:
        try:
            message = msgpack.unpackb(body, raw=False, strict_map_key=False)
        except UnicodeDecodeError:  # a map with a bad string: read on, refuse the field
            message = msgpack.unpackb(body, raw=False, strict_map_key=False,
                                      unicode_errors="surrogateescape")
    except (msgpack.ExtraData, ValueError, msgpack.UnpackException, TypeError) as exc:
        why = str(exc) or type(exc).__name__
        raise ProtocolError(ErrorCode.BAD_FRAME, f"frame is not valid msgpack: {why}") from None
    except RecursionError:
        raise ProtocolError(ErrorCode.BAD_FRAME, "frame nests too deeply") from None
    if not isinstance(message, dict):
        raise ProtocolError(
            ErrorCode.NOT_A_MAP, f"frame must be a msgpack map, got {type(message).__name__}"
        )
    return message


class FrameDecoder:
    """Incremental decoder: feed bytes, iterate complete messages.

    The declared length is checked against the limit before any body is
    buffered, so a hostile length cannot make us allocate. A non-fatal error
    (bad body) is raised for that frame only; the stream stays in sync because
    framing is by length, not by parsing.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._need: int | None = None

    def feed(self, data: bytes) -> None:
        self._buf += data

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        if self._need is None:
            if len(self._buf) < HEADER.size:
                raise StopIteration
            (length,) = HEADER.unpack_from(self._buf)
            if length > self.max_frame:
                raise ProtocolError(
                    ErrorCode.FRAME_TOO_LARGE,
                    f"declared frame length {length} exceeds the limit of {self.max_frame} bytes",
                    fatal=True,
                )
            del self._buf[: HEADER.size]
            self._need = length
        if len(self._buf) < self._need:
            raise StopIteration
        body = bytes(self._buf[: self._need])
        del self._buf[: self._need]
        self._need = None
        return decode_body(body)

    def pending_partial(self) -> bool:
        """True when a frame has started but not finished (truncated on EOF)."""
        return self._need is not None or len(self._buf) > 0


# ---------------------------------------------------------------- requests


class SynthesizeRequest(NamedTuple):
    """A `synthesize` request: what the client builds (`to_message`) and the daemon reads
    back (`parse_synthesize`). None means "the daemon's default" and is not sent.
    A NamedTuple, like the reply types in messages.py: `dataclasses` would cost every
    kokoro-say ~15 ms of start-up (it imports `inspect`)."""

    id: int | str
    text: str
    voice: str | None = None
    speed: float = 1.0
    lang: str | None = None
    chunk_ms: int | None = None  # the daemon fills in its configured size
    format: str = "f32"
    text_format: str = "plain"
    normalize: bool = True
    priority: str = "text"
    mode: str = "queue"
    play: bool = False  # the daemon plays the audio itself instead of streaming it back
    marks: str = "segment"  # "word": a mark per word too, with its span in `text`

    def to_message(self) -> dict[str, Any]:
        fields = {k: v for k, v in self._asdict().items() if v is not None}
        return {"op": "synthesize", **fields}


def synthesize_message(rid: int, text: str, fmt: str, options: dict[str, Any]) -> dict[str, Any]:
    """The frame for Client.synthesize / AsyncClient.synthesize: `options` are the fields
    of SynthesizeRequest (voice, speed, lang, chunk_ms, text_format, priority, mode, play,
    normalize); None leaves one to the daemon."""
    given = {k: v for k, v in options.items() if v is not None}
    return SynthesizeRequest(rid, text, format=fmt, **given).to_message()


def request_frame(op: str, rid: int | str, **fields: Any) -> dict[str, Any]:
    """Any other request (hello, cancel, stop, status…): its op, its id, its fields."""
    return {"op": op, "id": rid, **{k: v for k, v in fields.items() if v is not None}}


REQUEST_OPS = ("hello", "synthesize", "cancel", "voices", "status", "ping", "reload",
               "stop", "pause", "resume", "queue", "session-status", "optimization-status",
               "session-reset", "phonemes")


def check_id(message: dict[str, Any]) -> int | str:
    """The client-chosen id: an int (signed 64-bit) or a short string."""
    if "id" not in message:
        raise ProtocolError(ErrorCode.BAD_ID, "request has no 'id' field")
    rid = message["id"]
    if isinstance(rid, bool) or not isinstance(rid, (int, str)):
        raise ProtocolError(
            ErrorCode.BAD_ID, f"'id' must be an int or a string, got {type(rid).__name__}"
        )
    if isinstance(rid, int) and not -MAX_ID_INT <= rid <= MAX_ID_INT:
        raise ProtocolError(ErrorCode.BAD_ID, "'id' integer out of the signed 64-bit range")
    if _bad_utf8(rid):
        raise ProtocolError(ErrorCode.BAD_ID, "'id' is not valid UTF-8")
    if isinstance(rid, str) and len(rid) > MAX_ID_STR:
        raise ProtocolError(ErrorCode.BAD_ID, f"'id' string longer than {MAX_ID_STR} characters")
    return rid


def _printable(value: Any) -> str:
    return value.encode("utf-8", "replace").decode() if isinstance(value, str) else str(value)


def safe_id(message: Any) -> int | str | None:
    """The id to echo in an error reply, or None when the id itself is bad."""
    if not isinstance(message, dict):
        return None
    try:
        return check_id(message)
    except ProtocolError:
        return None


def _bad_utf8(value: Any) -> bool:
    """A string decoded with surrogateescape: its bytes were not UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
    return False


def check_op(message: dict[str, Any]) -> str:
    for key, value in message.items():
        if _bad_utf8(key) or _bad_utf8(value):
            raise ProtocolError(ErrorCode.BAD_REQUEST,
                                f"{_printable(key)!r} is not valid UTF-8")
    op = message.get("op")
    if not isinstance(op, str):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "request has no string 'op' field")
    if op not in REQUEST_OPS:
        raise ProtocolError(
            ErrorCode.UNKNOWN_OP,
            f"unknown op {op[:64]!r}; this daemon speaks protocol {PROTOCOL_VERSION} "
            f"with ops {', '.join(REQUEST_OPS)}",
        )
    return op


def typed_field(message: dict[str, Any], name: str, types: tuple[type, ...],
                default: Any) -> Any:
    """A request field of the given types, `default` when absent; bad_request otherwise."""
    value = message.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) and bool not in types:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"'{name}' has the wrong type (bool)")
    if not isinstance(value, types):
        names = " or ".join(t.__name__ for t in types)
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"'{name}' must be {names}, got {type(value).__name__}"
        )
    return value


def parse_synthesize(
    message: dict[str, Any], *, max_text_chars: int, default_chunk_ms: int
) -> SynthesizeRequest:
    """Validate a `synthesize` request; each kind of bad value has its own code."""
    rid = check_id(message)
    text = message.get("text")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(
                ErrorCode.BAD_REQUEST, f"'text' bytes are not valid UTF-8: {exc}"
            ) from None
    if not isinstance(text, str):
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"'text' must be a string, got {type(text).__name__}"
        )
    if len(text) > max_text_chars:
        raise ProtocolError(
            ErrorCode.TEXT_TOO_LONG,
            f"text has {len(text)} characters; the limit is {max_text_chars}",
        )
    if not text.strip():
        raise ProtocolError(ErrorCode.EMPTY_TEXT, "text is empty")
    voice = typed_field(message, "voice", (str,), None)
    lang = typed_field(message, "lang", (str,), None)
    speed = typed_field(message, "speed", (int, float), 1.0)
    lo, hi = SPEED_RANGE
    if not lo <= float(speed) <= hi:  # also rejects NaN
        raise ProtocolError(ErrorCode.BAD_SPEED,
                            f"speed must be between {lo} and {hi}, got {speed}")
    chunk_ms = typed_field(message, "chunk_ms", (int,), default_chunk_ms)
    lo_ms, hi_ms = CHUNK_MS_RANGE
    if not lo_ms <= chunk_ms <= hi_ms:
        raise ProtocolError(
            ErrorCode.BAD_CHUNK_MS, f"chunk_ms must be between {lo_ms} and {hi_ms}, got {chunk_ms}"
        )
    fmt = _choice(message, "format", FORMATS, "f32", ErrorCode.BAD_FORMAT)
    text_format = _choice(message, "text_format", TEXT_FORMATS,
                          "ssml" if looks_like_ssml(text) else "plain", ErrorCode.BAD_TEXT_FORMAT)
    priority = _choice(message, "priority", PRIORITIES, "text", ErrorCode.BAD_PRIORITY)
    mode = _choice(message, "mode", MODES, "queue", ErrorCode.BAD_MODE)
    return SynthesizeRequest(
        id=rid,
        text=text,
        voice=voice,
        speed=float(speed),
        lang=lang,
        chunk_ms=chunk_ms,
        format=fmt,
        text_format=text_format,
        normalize=typed_field(message, "normalize", (bool,), True),
        priority=priority,
        mode=mode,
        play=typed_field(message, "play", (bool,), False),
        marks=_choice(message, "marks", MARKS, "segment", ErrorCode.BAD_MARKS),
    )


def _choice(message: dict[str, Any], name: str, allowed: tuple[str, ...], default: str,
            code: str) -> str:
    """A string field that must be one of `allowed`; its own error code otherwise."""
    value = typed_field(message, name, (str,), default)
    if value not in allowed:
        raise ProtocolError(code, f"{name} must be one of {', '.join(allowed)}, "
                                  f"got {value[:32]!r}")
    return str(value)


def parse_stop_scope(message: dict[str, Any]) -> tuple[str, str | None]:
    """`stop`'s scope ("client" = the caller's speech, "all") and an optional client_name."""
    scope = _choice(message, "scope", STOP_SCOPES, "client", ErrorCode.BAD_REQUEST)
    name = typed_field(message, "client_name", (str,), None)
    return scope, None if name is None else name[:64]


# ---------------------------------------------------------------- replies


def error_frame(request_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"op": "error", "id": request_id, "code": code, "message": message}


def samples_to_pcm(samples: Any, fmt: str) -> bytes:
    """float32 numpy samples → little-endian bytes in the requested format."""
    import numpy as np  # local: keeps protocol importable without numpy for tiny helpers

    audio = np.asarray(samples, dtype=np.float32)
    if fmt == "s16":
        return (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()
    return audio.astype("<f4").tobytes()


def pcm_to_samples(pcm: bytes, fmt: str) -> Any:
    """Inverse of samples_to_pcm: little-endian bytes → float32 numpy samples."""
    import numpy as np

    if fmt == "s16":
        return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32767.0
    return np.frombuffer(pcm, dtype="<f4").astype(np.float32)
