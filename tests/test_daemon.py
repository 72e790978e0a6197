"""The daemon over its real socket, with the real embedded model."""

from __future__ import annotations

import struct
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from helpers import DaemonProc, RawConn, raw_conn

from kokorod_common.protocol import PROTOCOL_VERSION, SAMPLE_RATE, ErrorCode, pcm_to_samples

MEDIUM = ("The lighthouse keeper climbed the spiral stairs every evening, polishing the great "
          "lens until it gleamed, and then he watched the ships pass safely by the rocks.")


def audio_of(frames: list[dict[str, Any]], fmt: str = "f32") -> np.ndarray:
    chunks = [f for f in frames if f["op"] == "chunk"]
    return np.concatenate([pcm_to_samples(f["pcm"], fmt) for f in chunks]) if chunks else \
        np.zeros(0, np.float32)


def check_stream(frames: list[dict[str, Any]], text: str) -> np.ndarray:
    """Shape of a complete stream: start, contiguous chunks, one end, plausible audio."""
    ops = [f["op"] for f in frames]
    assert ops[0] == "start" and ops[-1] == "end", ops
    assert ops.count("end") == 1 and "error" not in ops
    chunks = [f for f in frames if f["op"] == "chunk"]
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    end = frames[-1]
    assert end["chunks"] == len(chunks) and not end["cancelled"]
    audio = audio_of(frames, frames[0]["format"])
    assert sum(c["samples"] for c in chunks) == audio.size == end["samples"]
    assert end["audio_seconds"] == pytest.approx(audio.size / SAMPLE_RATE, abs=1e-3)
    seconds = audio.size / SAMPLE_RATE
    # English at speed 1 runs ~0.06 s a character; allow a wide band.
    assert 0.03 * len(text) <= seconds <= 0.15 * len(text) + 1.0, seconds
    assert float(np.sqrt(np.mean(audio ** 2))) > 0.01, "audio is (nearly) silent"
    assert np.all(np.isfinite(audio)) and np.abs(audio).max() <= 1.5
    return audio


def synth(conn: RawConn, rid: Any, text: str, **fields: Any) -> list[dict[str, Any]]:
    conn.send({"op": "synthesize", "id": rid, "text": text, **fields})
    return conn.until_final(rid)


def test_hello_reports_protocol_and_voices(daemon: DaemonProc) -> None:
    with raw_conn(daemon.socket) as c:
        c.send({"op": "hello", "id": "h", "client_name": "test"})
        reply = c.recv()
    assert reply["op"] == "hello" and reply["id"] == "h"
    assert reply["protocol"] == PROTOCOL_VERSION and reply["sample_rate"] == SAMPLE_RATE
    assert "jf_alpha" in reply["voices"] and reply["default_voice"] in reply["voices"]
    assert {"stop", "pause", "resume", "queue"} <= set(reply["ops"])
    assert reply["client_name"] == "test" and "markdown" in reply["text_formats"]


def test_synthesize_streams_contiguous_plausible_audio(daemon: DaemonProc) -> None:
    with raw_conn(daemon.socket) as c:
        frames = synth(c, 1, MEDIUM)
    audio = check_stream(frames, MEDIUM)
    chunk_samples = [f["samples"] for f in frames if f["op"] == "chunk"]
    assert max(chunk_samples) == 50 * SAMPLE_RATE // 1000  # default 50 ms chunks
    assert audio.size / SAMPLE_RATE > 5


def test_s16_format_and_chunk_ms(daemon: DaemonProc) -> None:
    text = "Twenty millisecond chunks, sixteen bit samples."
    with raw_conn(daemon.socket) as c:
        frames = synth(c, "s16", text, format="s16", chunk_ms=20)
    assert frames[0]["format"] == "s16"
    check_stream(frames, text)
    chunks = [f for f in frames if f["op"] == "chunk"]
    assert all(len(f["pcm"]) == 2 * f["samples"] for f in chunks)
    assert max(f["samples"] for f in chunks) == 480


def test_two_requests_on_one_connection_interleave(daemon: DaemonProc) -> None:
    texts = {"a": "First request, on the same connection as the second one.",
             "b": "Second request, sharing the connection with the first."}
    with raw_conn(daemon.socket) as c:
        for rid, text in texts.items():
            c.send({"op": "synthesize", "id": rid, "text": text})
        per_id: dict[str, list[dict[str, Any]]] = {"a": [], "b": []}
        done = set()
        for frame in c.frames():
            per_id[frame["id"]].append(frame)
            if frame["op"] in ("end", "error"):
                done.add(frame["id"])
                if done == set(texts):
                    break
    for rid, text in texts.items():
        check_stream(per_id[rid], text)


def test_two_connections_at_once(daemon: DaemonProc) -> None:
    results: dict[int, list[dict[str, Any]]] = {}
    text = "Two clients speak at the same time, and neither loses any audio."

    def worker(n: int) -> None:
        with raw_conn(daemon.socket) as c:
            results[n] = synth(c, n, text)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    a = check_stream(results[0], text)
    b = check_stream(results[1], text)
    assert a.size > 0 and b.size > 0


def test_cancel_mid_stream_ends_with_cancelled(daemon: DaemonProc) -> None:
    long_text = " ".join([MEDIUM] * 6)
    with raw_conn(daemon.socket) as c:
        c.send({"op": "synthesize", "id": 7, "text": long_text})
        frames = c.until_final(7, cancel_at_seq=2)
        end = frames[-1]
        assert end["op"] == "end" and end["cancelled"] is True
        chunks = [f for f in frames if f["op"] == "chunk"]
        assert [f["seq"] for f in chunks] == list(range(len(chunks)))
        assert end["chunks"] == len(chunks)
        # Far less than the whole text was sent.
        assert end["audio_seconds"] < 0.03 * len(long_text)
        # Cancelling again (or an unknown id) is a no-op, the connection still works.
        c.send({"op": "cancel", "id": 7})
        c.send({"op": "ping", "id": 8})
        assert c.recv() == {"op": "pong", "id": 8}


BAD_REQUESTS = [
    ({"op": "fly", "id": 1}, ErrorCode.UNKNOWN_OP),
    ({"id": 1}, ErrorCode.BAD_REQUEST),
    ({"op": "synthesize", "id": 1, "text": 42}, ErrorCode.BAD_REQUEST),
    ({"op": "synthesize", "id": 1}, ErrorCode.BAD_REQUEST),
    ({"op": "synthesize", "id": 1, "text": ""}, ErrorCode.EMPTY_TEXT),
    ({"op": "synthesize", "id": 1, "text": "  \n\t "}, ErrorCode.EMPTY_TEXT),
    ({"op": "synthesize", "id": 1, "text": "hi", "voice": "zz_nobody"}, ErrorCode.UNKNOWN_VOICE),
    ({"op": "synthesize", "id": 1, "text": "hi", "speed": 9.0}, ErrorCode.BAD_SPEED),
    ({"op": "synthesize", "id": 1, "text": "hi", "speed": "fast"}, ErrorCode.BAD_REQUEST),
    ({"op": "synthesize", "id": 1, "text": "hi", "chunk_ms": 5}, ErrorCode.BAD_CHUNK_MS),
    ({"op": "synthesize", "id": 1, "text": "hi", "format": "mp3"}, ErrorCode.BAD_FORMAT),
    ({"op": "synthesize", "id": 1, "text": "hi", "lang": "xx-nowhere"}, ErrorCode.BAD_LANG),
    ({"op": "synthesize", "id": 1, "text": "x" * 600_000}, ErrorCode.TEXT_TOO_LONG),
    ({"op": "synthesize", "id": [1], "text": "hi"}, ErrorCode.BAD_ID),
    ({"op": "ping", "id": 2**64 - 1}, ErrorCode.BAD_ID),
    ({"op": "ping", "id": True}, ErrorCode.BAD_ID),
    ({"op": "synthesize", "id": 1, "text": b"\xff\xfe bad utf-8"}, ErrorCode.BAD_REQUEST),
]


@pytest.mark.parametrize(("message", "code"), BAD_REQUESTS,
                         ids=[code for _, code in BAD_REQUESTS])
def test_bad_request_gets_its_code_and_connection_survives(
        daemon: DaemonProc, message: dict[str, Any], code: str) -> None:
    with raw_conn(daemon.socket) as c:
        c.send(message)
        reply = c.recv()
        assert reply["op"] == "error" and reply["code"] == code, reply
        assert reply["message"]
        c.send({"op": "ping", "id": "after"})
        assert c.recv() == {"op": "pong", "id": "after"}


def test_bad_frames(daemon: DaemonProc) -> None:
    with raw_conn(daemon.socket) as c:
        c.send_raw(struct.pack(">I", 0))
        assert c.recv()["code"] == ErrorCode.BAD_FRAME
        c.send_raw(struct.pack(">I", 3) + b"\xc1\xc1\xc1")  # 0xc1 is never valid msgpack
        assert c.recv()["code"] == ErrorCode.BAD_FRAME
        body = msgpack.packb([1, 2, 3])
        c.send_raw(struct.pack(">I", len(body)) + body)
        assert c.recv()["code"] == ErrorCode.NOT_A_MAP
        c.send({"op": "ping", "id": 1})
        assert c.recv()["op"] == "pong"
    with raw_conn(daemon.socket) as c:
        c.send_raw(struct.pack(">I", 1 << 30))  # over the 1 MiB limit
        reply = c.recv()
        assert reply["code"] == ErrorCode.FRAME_TOO_LARGE
        assert c.closed_by_peer()
    with raw_conn(daemon.socket) as c:  # the daemon still serves
        c.send({"op": "ping", "id": 1})
        assert c.recv()["op"] == "pong"


def test_duplicate_id_rejected_while_active(daemon: DaemonProc) -> None:
    with raw_conn(daemon.socket) as c:
        c.send({"op": "synthesize", "id": 5, "text": MEDIUM})
        c.send({"op": "synthesize", "id": 5, "text": "again"})
        frames: list[dict[str, Any]] = []
        for frame in c.frames():  # the duplicate's error comes anywhere in the original's
            if frame.get("id") == 5:
                frames.append(frame)
                if frame["op"] == "end":
                    break
        errors = [f for f in frames if f["op"] == "error"]
        assert [e["code"] for e in errors] == [ErrorCode.DUPLICATE_ID]
        check_stream([f for f in frames if f["op"] != "error"], MEDIUM)


def test_nothing_speakable_is_an_error(daemon: DaemonProc) -> None:
    with raw_conn(daemon.socket) as c:
        frames = synth(c, 1, "\x00\x01\x02 \u200b")
    assert frames[-1]["op"] == "error"
    assert frames[-1]["code"] in (ErrorCode.EMPTY_TEXT,)


def test_voices_and_status(daemon: DaemonProc) -> None:
    with raw_conn(daemon.socket) as c:
        c.send({"op": "status", "id": 0})
        before = c.recv()
        c.send({"op": "voices", "id": 1})
        voices = c.recv()["voices"]
        assert synth(c, 3, "Counted.")[-1]["op"] == "end"
        c.send({"op": "status", "id": 2})
        status = c.recv()
    names = {v["name"]: v for v in voices}
    assert set(names) >= {"jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"}
    assert names["jm_kumo"]["gender"] == "male" and names["jf_alpha"]["language"] == "ja"
    assert status["engine"]["model_verified"] is True
    assert status["engine"]["provider"] == "CPUExecutionProvider"
    assert status["engine"]["warmup_seconds"] > 0  # the warm-up ran and was timed
    assert status["rss_bytes"] > 0
    # one synthesis on this connection, counted once (status and voices are not requests)
    assert status["requests"] == before["requests"] + 1
    assert status["completed"] == before["completed"] + 1


def test_socket_is_private(daemon: DaemonProc) -> None:
    assert daemon.socket.stat().st_mode & 0o777 == 0o600
    assert daemon.socket.parent.stat().st_mode & 0o777 == 0o700


def test_disconnect_mid_stream_leaves_others_unaffected(daemon: DaemonProc) -> None:
    long_text = " ".join([MEDIUM] * 4)
    quitter = RawConn(daemon.socket)
    quitter.send({"op": "synthesize", "id": 1, "text": long_text})
    assert quitter.recv()["op"] == "start"
    quitter.close()
    time.sleep(0.2)
    with raw_conn(daemon.socket) as c:
        check_stream(synth(c, 2, "Still here after the other client left."),
                     "Still here after the other client left.")
        c.send({"op": "status", "id": 3})
        assert c.recv()["active_requests"] <= 1


def test_long_text_streams_in_bounded_memory_and_reports_progress(daemon: DaemonProc) -> None:
    """≥ 20,000 characters: chunks flow before synthesis of the whole text could finish."""
    text = " ".join([MEDIUM] * 130)
    assert len(text) >= 20_000
    with raw_conn(daemon.socket) as c:
        c.send({"op": "status", "id": "s0"})
        rss_before = c.recv()["rss_bytes"]
        c.send({"op": "synthesize", "id": "long", "text": text})
        # ~10 s of audio in is enough to prove streaming; then cancel.
        frames = c.until_final("long", cancel_at_seq=199)
        chunks = [f for f in frames if f["op"] == "chunk"]
        assert [f["seq"] for f in chunks] == list(range(len(chunks)))
        assert frames[-1]["op"] == "end" and frames[-1]["cancelled"]
        c.send({"op": "status", "id": "s1"})
        rss_after = c.recv()["rss_bytes"]
    assert rss_after - rss_before < 100 * 2**20


def test_second_daemon_on_same_socket_refuses(daemon: DaemonProc, data_dir: Path) -> None:
    from helpers import start_daemon

    other = start_daemon(daemon.socket, data_dir, wait=False)
    code = other.proc.wait(120)
    assert code != 0
    assert "already" in other.log_text()
    with raw_conn(daemon.socket) as c:  # the first keeps serving
        c.send({"op": "ping", "id": 1})
        assert c.recv()["op"] == "pong"


def test_invalid_utf8_in_a_string_is_that_requests_bad_request(daemon: DaemonProc) -> None:
    """A well-formed map whose text is not UTF-8: the reply names the request (by id)."""
    body = msgpack.packb({"op": "synthesize", "id": 7, "text": "x"}).replace(b"\xa1x",
                                                                              b"\xa1\xff")
    with raw_conn(daemon.socket) as c:
        c.send_raw(struct.pack(">I", len(body)) + body)
        reply = c.recv()
        assert (reply["op"], reply["id"], reply["code"]) == ("error", 7, ErrorCode.BAD_REQUEST)
        assert "UTF-8" in reply["message"]
        c.send({"op": "ping", "id": "after"})
        assert c.recv() == {"op": "pong", "id": "after"}


def test_the_log_says_when_the_daemon_started(daemon: DaemonProc) -> None:
    """Quiet by default, but never empty: the start line is always there."""
    assert "serving on" in daemon.log_text()
