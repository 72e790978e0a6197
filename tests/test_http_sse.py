"""OpenAI's `stream_format: "sse"` and word timings over HTTP, against a real daemon: the
official `openai` client and a plain HTTP client read the events, the decoded audio is the
non-SSE response's, events come while the request is still being synthesized, and the
word events are the socket's word marks."""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import DaemonProc, raw_conn, short_tmpdir, start_daemon

openai = pytest.importorskip("openai")
pytest.importorskip("aiohttp")

TEXT = "Server-sent events carry the audio, and each word's place, as they are made."


@pytest.fixture(scope="module")
def sse_daemon(data_dir: Path) -> Iterator[tuple[DaemonProc, int]]:
    from test_http import free_port

    run = short_tmpdir("ke")
    port = free_port()
    handle = start_daemon(run / "k.sock", data_dir, KOKORO_HTTP_PORT=str(port))
    yield handle, port
    assert handle.stop() == 0, handle.log_text()


@pytest.fixture
def client(sse_daemon: tuple[DaemonProc, int]) -> Any:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{sse_daemon[1]}/v1", api_key="k",
                         max_retries=0, timeout=120)


def events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The `data:` payloads of a text/event-stream, as JSON."""
    for line in lines:
        if line.startswith("data:"):
            yield json.loads(line[5:])


def audio_of(got: list[dict[str, Any]]) -> bytes:
    return b"".join(base64.b64decode(e["audio"]) for e in got
                    if e["type"] == "speech.audio.delta")


def post(port: int, body: dict[str, Any]) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", "/v1/audio/speech", body=json.dumps(body),
                 headers={"Content-Type": "application/json"})
    return conn.getresponse()


def test_the_openai_client_reads_sse_and_the_audio_is_the_same(client: Any) -> None:
    got: list[dict[str, Any]] = []
    with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="af_heart", input=TEXT, response_format="pcm",
            stream_format="sse") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        got = list(events(response.iter_lines()))
    assert got[0]["type"] == "speech.audio.delta" and got[-1]["type"] == "speech.audio.done"
    assert [e["type"] for e in got].count("speech.audio.done") == 1
    assert len(got) > 20  # 50 ms deltas, as they were made
    usage = got[-1]["usage"]
    assert usage["input_tokens"] == len(TEXT) and usage["total_tokens"] == len(TEXT)
    pcm = audio_of(got)
    assert len(pcm) // 2 == got[-1]["samples"] and got[-1]["audio_seconds"] > 2
    whole = client.audio.speech.create(model="tts-1", voice="af_heart", input=TEXT,
                                       response_format="pcm").content
    assert pcm == whole


def status(daemon: DaemonProc) -> dict[str, Any]:
    with raw_conn(daemon.socket) as conn:
        conn.send({"op": "status", "id": "s"})
        return conn.recv()


def test_events_come_while_it_is_synthesized_and_a_reader_that_leaves_cancels(
        sse_daemon: tuple[DaemonProc, int]) -> None:
    daemon, port = sse_daemon
    before = status(daemon)["cancelled"]
    long = " ".join(["Every sentence here adds a little more audio to the stream."] * 30)
    response = post(port, {"input": long, "response_format": "pcm", "stream_format": "sse"})
    first = next(events(iter(line.decode() for line in response)))
    assert first["type"] == "speech.audio.delta"
    # Its first event is here and the request is still being synthesized: the rest (six
    # segments more) waits for this reader, as the daemon keeps two segments ahead.
    assert status(daemon)["active_requests"] >= 1
    response.close()
    deadline = time.monotonic() + 30
    while status(daemon)["cancelled"] == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status(daemon)["cancelled"] == before + 1


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
def test_a_plain_http_client_reads_sse_of_encoded_audio(
        fmt: str, sse_daemon: tuple[DaemonProc, int], client: Any) -> None:
    response = post(sse_daemon[1], {"model": "tts-1", "voice": "bm_george", "input": TEXT,
                                    "response_format": fmt, "stream_format": "sse"})
    assert response.status == 200
    got = list(events(iter(line.decode() for line in response)))
    assert got[-1]["type"] == "speech.audio.done"
    deltas = [e for e in got if e["type"] == "speech.audio.delta"]
    assert len(deltas) >= (5 if fmt == "mp3" else 1)
    whole = client.audio.speech.create(model="tts-1", voice="bm_george", input=TEXT,
                                       response_format=fmt).content
    assert audio_of(got) == whole


def test_word_timings_over_http_are_the_sockets(sse_daemon: tuple[DaemonProc, int]) -> None:
    daemon, port = sse_daemon
    text = "Dr. Smith paid $5 for 3 apples on 2026-11-26, didn't he?"
    response = post(port, {"input": text, "voice": "af_heart", "response_format": "pcm",
                           "stream_format": "sse", "marks": "word"})
    got = list(events(iter(line.decode() for line in response)))
    words = [e for e in got if e["type"] == "speech.audio.word"]
    with raw_conn(daemon.socket) as conn:
        conn.send({"op": "synthesize", "id": 1, "text": text, "voice": "af_heart",
                   "marks": "word"})
        frames = conn.until_final(1)
    marks = [f for f in frames if f["op"] == "mark" and f["kind"] == "word"]
    assert len(marks) >= 10
    assert [(w["sample"], w["samples"], w["span"], w["text"]) for w in words] == \
        [(m["sample"], m["samples"], list(m["span"]), m["text"]) for m in marks]
    assert all(text[a:b] == w["text"] for w, (a, b) in zip(words, (w["span"] for w in words),
                                                            strict=True))
    assert words[0]["start"] == round(words[0]["sample"] / 24_000, 4)
    # each word before the delta holding its first sample
    seen = 0
    for e in got:
        if e["type"] == "speech.audio.delta":
            seen += len(base64.b64decode(e["audio"])) // 2
        elif e["type"] == "speech.audio.word":
            assert e["sample"] >= seen


@pytest.mark.parametrize(("fields", "param"), [
    ({"stream_format": "chunks"}, "stream_format"),
    ({"marks": "word"}, "marks"),
    ({"marks": "word", "stream_format": "audio"}, "marks"),
])
def test_bad_stream_fields_get_openai_shaped_errors(
        fields: dict[str, Any], param: str, sse_daemon: tuple[DaemonProc, int]) -> None:
    response = post(sse_daemon[1], {"input": "Hello.", **fields})
    assert response.status == 400
    assert json.loads(response.read())["error"]["param"] == param
