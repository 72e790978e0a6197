"""Frame format and request validation, including a hypothesis fuzz of the decoder."""

from __future__ import annotations

import re
import struct
from itertools import pairwise
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiers import examples

from kokorod_common.protocol import (
    HEADER,
    MARKS,
    MODES,
    PRIORITIES,
    TEXT_FORMATS,
    ErrorCode,
    FrameDecoder,
    ProtocolError,
    check_op,
    decode_body,
    encode_frame,
    parse_stop_scope,
    parse_synthesize,
    pcm_to_samples,
    samples_to_pcm,
)

LIMITS = {"max_text_chars": 1000, "default_chunk_ms": 50}


def test_roundtrip_and_incremental_decoding() -> None:
    messages = [{"op": "ping", "id": i, "pad": "x" * i} for i in range(50)]
    stream = b"".join(encode_frame(m) for m in messages)
    dec = FrameDecoder()
    got = []
    for i in range(0, len(stream), 7):  # byte-dribbled
        dec.feed(stream[i:i + 7])
        got.extend(dec)
    assert got == messages and not dec.pending_partial()


def test_header_is_u32_big_endian() -> None:
    frame = encode_frame({"op": "ping", "id": 1})
    (length,) = struct.unpack(">I", frame[:4])
    assert length == len(frame) - 4 == len(msgpack.packb({"op": "ping", "id": 1}))


def test_oversized_frame_is_fatal_before_body_arrives() -> None:
    dec = FrameDecoder(max_frame=1024)
    dec.feed(HEADER.pack(1025))
    with pytest.raises(ProtocolError) as err:
        next(dec)
    assert err.value.code == ErrorCode.FRAME_TOO_LARGE and err.value.fatal


@pytest.mark.parametrize(("body", "code"), [
    (b"", ErrorCode.BAD_FRAME),
    (b"\xc1", ErrorCode.BAD_FRAME),
    (msgpack.packb([1, 2]), ErrorCode.NOT_A_MAP),
    (msgpack.packb("text"), ErrorCode.NOT_A_MAP),
    (msgpack.packb({"a": 1}) + b"\x00", ErrorCode.BAD_FRAME),  # trailing bytes
])
def test_bad_bodies(body: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as err:
        decode_body(body)
    assert err.value.code == code and not err.value.fatal


def test_decoder_stays_in_sync_after_a_bad_frame() -> None:
    dec = FrameDecoder()
    dec.feed(HEADER.pack(1) + b"\xc1" + encode_frame({"op": "ping", "id": 2}))
    with pytest.raises(ProtocolError):
        next(dec)
    assert next(dec) == {"op": "ping", "id": 2}


def test_synthesize_defaults_and_bytes_text() -> None:
    req = parse_synthesize({"op": "synthesize", "id": "a", "text": b"hi"}, **LIMITS)
    assert (req.text, req.speed, req.chunk_ms, req.format, req.voice) == ("hi", 1.0, 50,
                                                                         "f32", None)


@pytest.mark.parametrize(("fields", "code"), [
    ({"speed": float("nan")}, ErrorCode.BAD_SPEED),
    ({"speed": 0.49}, ErrorCode.BAD_SPEED),
    ({"speed": True}, ErrorCode.BAD_REQUEST),
    ({"chunk_ms": 501}, ErrorCode.BAD_CHUNK_MS),
    ({"chunk_ms": 50.5}, ErrorCode.BAD_REQUEST),
    ({"format": "wav"}, ErrorCode.BAD_FORMAT),
    ({"voice": 3}, ErrorCode.BAD_REQUEST),
    ({"text": "y" * 1001}, ErrorCode.TEXT_TOO_LONG),
    ({"id": "i" * 129}, ErrorCode.BAD_ID),
])
def test_synthesize_validation_codes(fields: dict[str, Any], code: str) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_synthesize({"op": "synthesize", "id": 1, "text": "hi", **fields}, **LIMITS)
    assert err.value.code == code


def test_unknown_op_is_reported_apart_from_bad_request() -> None:
    with pytest.raises(ProtocolError) as err:
        check_op({"op": "teleport"})
    assert err.value.code == ErrorCode.UNKNOWN_OP and "protocol" in err.value.message
    with pytest.raises(ProtocolError) as err:
        check_op({"op": 5})
    assert err.value.code == ErrorCode.BAD_REQUEST


def test_pcm_formats_roundtrip() -> None:
    import numpy as np

    x = np.linspace(-1, 1, 101, dtype=np.float32)
    assert np.array_equal(pcm_to_samples(samples_to_pcm(x, "f32"), "f32"), x)
    s16 = pcm_to_samples(samples_to_pcm(x, "s16"), "s16")
    assert np.abs(s16 - x).max() < 1 / 32767 + 1e-6


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text()
    | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)
requests = st.fixed_dictionaries(
    {"op": st.sampled_from(["synthesize", "ping", "cancel", "stop", "nope"])
     | st.text(max_size=5)},
    optional={"id": msgpack_values, "text": msgpack_values, "speed": msgpack_values,
              "chunk_ms": msgpack_values, "format": msgpack_values, "voice": msgpack_values,
              "text_format": msgpack_values | st.sampled_from(["markdown", "code"]),
              "priority": msgpack_values | st.sampled_from(["important", "notification"]),
              "mode": msgpack_values | st.sampled_from(["interrupt", "stop-all"]),
              "play": msgpack_values, "normalize": msgpack_values,
              "marks": msgpack_values | st.just("word"),
              "scope": msgpack_values | st.just("all"), "client_name": msgpack_values},
)
DOCUMENTED = ErrorCode.all()


# 8,000 byte strings here + 700 structured requests below: 8,700 fuzz cases a run.
@settings(max_examples=examples(8000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=256))
def test_fuzz_decoder_raises_only_protocol_errors(data: bytes) -> None:
    dec = FrameDecoder(max_frame=128)
    dec.feed(data)
    for _ in range(64):
        try:
            next(dec)
        except StopIteration:
            break
        except ProtocolError as exc:
            assert exc.code in DOCUMENTED
            if exc.fatal:
                break


@settings(max_examples=examples(700), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests)
def test_fuzz_request_validation(message: dict[str, Any]) -> None:
    try:
        body = msgpack.packb(message, use_bin_type=True)
    except (OverflowError, ValueError):
        return
    try:
        decoded = decode_body(body)
        check_op(decoded)
        if decoded["op"] == "synthesize":
            req = parse_synthesize(decoded, **LIMITS)
            assert isinstance(req.text, str) and req.text.strip()
            assert 0.5 <= req.speed <= 2.0 and 20 <= req.chunk_ms <= 500
            assert req.priority in PRIORITIES and req.mode in MODES
            assert req.text_format in TEXT_FORMATS and isinstance(req.play, bool)
            assert req.marks in MARKS
        if decoded["op"] == "stop":
            scope, name = parse_stop_scope(decoded)
            assert scope in ("client", "all") and (name is None or isinstance(name, str))
    except ProtocolError as exc:
        assert exc.code in DOCUMENTED


# ---------------------------------------------------------------- PROTOCOL.md as written


def _protocol_md() -> str:
    from helpers import REPO

    return (REPO / "PROTOCOL.md").read_text()


def test_protocol_md_op_table_names_every_synthesize_field() -> None:
    doc = _protocol_md()
    row = next(line for line in doc.splitlines() if line.startswith("| `synthesize` |"))
    listed = set(re.findall(r"`(\w+)`", row.split("|")[2]))
    table = doc[doc.index("### `synthesize` fields"):doc.index("## Replies")]
    fields = set(re.findall(r"^\| `(\w+)` \|", table, re.M))
    assert "marks" in fields and fields <= listed, fields - listed


def test_protocol_md_example_runs_and_ends_cleanly_at_eof(daemon: Any) -> None:
    """The example client, as PROTOCOL.md prints it, speaks; when the daemon closes the
    connection its recv() raises ConnectionError (MSG_WAITALL alone returned short and
    struct.unpack failed)."""
    doc = _protocol_md()
    example = doc[doc.index("## Example"):]
    code = example[example.index("```python") + len("```python"):example.index("```\n\n")]
    played: list[bytes] = []
    ns: dict[str, Any] = {"path": str(daemon.socket), "play": played.append}
    exec(code, ns)
    assert played and sum(len(p) for p in played) > 24_000  # s16: > 0.5 s of audio
    ns["s"].sendall(b"\x7f\xff\xff\xff")  # a header too large: error, then the daemon closes
    assert ns["recv"]()["code"] == "frame_too_large"
    with pytest.raises(ConnectionError):
        ns["recv"]()
    ns["s"].close()


def test_word_marks_map_segments_back_to_the_text_as_documented(daemon: Any) -> None:
    """PROTOCOL.md: segment marks index the spoken text; word marks' spans the text sent,
    several in a row sharing one span ("$5")."""
    from helpers import raw_conn

    text = "Dr. Smith paid $5."
    with raw_conn(daemon.socket) as conn:
        conn.send({"op": "synthesize", "id": 1, "text": text, "marks": "word"})
        frames = conn.until_final(1)
    segment = next(f for f in frames if f["op"] == "mark" and f["kind"] == "segment")
    words = [f for f in frames if f["op"] == "mark" and f["kind"] == "word"]
    assert segment["text"].startswith("Doctor")  # the spoken text
    assert text[words[0]["span"][0]:words[-1]["span"][1]] == "Dr. Smith paid $5"
    shared = [w["text"] for a, w in pairwise(words) if a["span"] == w["span"]]
    assert shared == ["$5"]
