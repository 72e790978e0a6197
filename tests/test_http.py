"""OpenAI's speech API on localhost, driven by the official `openai` package against a real
daemon: every format decodes, audio streams, errors have OpenAI's shape, the key is
enforced, HTTP and socket clients share the daemon, a client that leaves is cancelled."""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import DaemonProc, raw_conn, short_tmpdir, start_daemon, stream_audio

openai = pytest.importorskip("openai")
pytest.importorskip("aiohttp")

TOKEN = "test-key"
TEXT = "The warm daemon answers over HTTP as well."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def http_daemon(data_dir: Path) -> Iterator[tuple[DaemonProc, int]]:
    run = short_tmpdir("kh")
    port = free_port()
    handle = start_daemon(run / "k.sock", data_dir, KOKORO_HTTP_PORT=str(port),
                          KOKORO_HTTP_TOKEN=TOKEN)
    yield handle, port
    handle.stop()


@pytest.fixture
def client(http_daemon: tuple[DaemonProc, int]) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{http_daemon[1]}/v1", api_key=TOKEN,
                         max_retries=0, timeout=120)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "flac", "wav", "pcm"])
def test_every_format_decodes_to_the_daemons_audio(client: openai.OpenAI, fmt: str,
                                                   http_daemon: tuple[DaemonProc, int]) -> None:
    data = client.audio.speech.create(model="tts-1", voice="af_heart", input=TEXT,
                                      response_format=fmt).content
    if fmt == "pcm":
        audio = np.frombuffer(data, "<i2").astype(np.float32) / 32767
    else:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32")
        assert rate == 24_000
    direct = stream_audio(http_daemon[0].socket, f"direct-{fmt}", TEXT, voice="af_heart")
    assert abs(audio.size - direct.size) < 0.05 * direct.size + 2400, (audio.size, direct.size)
    assert np.sqrt(np.mean(audio ** 2)) > 0.01


def test_audio_streams_while_it_is_synthesised(client: openai.OpenAI) -> None:
    long = " ".join(["Each sentence here adds a little more audio to the stream."] * 8)
    arrivals = []
    started = time.monotonic()
    with client.audio.speech.with_streaming_response.create(
            model="kokoro", voice="alloy", input=long, response_format="pcm") as response:
        for part in response.iter_bytes(4800):
            arrivals.append((time.monotonic() - started, len(part)))
    total = sum(n for _, n in arrivals)
    assert total / 2 / 24_000 > 10  # seconds of audio
    assert arrivals[0][0] < 0.5 * arrivals[-1][0]  # the first bytes long before the last


@pytest.mark.parametrize(("fields", "param", "code"), [
    ({"voice": "nobody_here"}, "voice", "unknown_voice"),
    ({"input": "   "}, "input", "empty_text"),
    ({"response_format": "aac"}, "response_format", "unsupported_format"),
    ({"speed": 9}, "speed", "invalid_speed"),
    ({"model": "whisper-1"}, "model", "model_not_found"),
])
def test_bad_fields_get_openai_shaped_errors(client: openai.OpenAI, fields: dict[str, object],
                                             param: str, code: str) -> None:
    request = {"model": "tts-1", "voice": "af_heart", "input": "Hello.", **fields}
    with pytest.raises(openai.BadRequestError) as err:
        client.audio.speech.create(**request)  # type: ignore[arg-type]
    body = err.value.body
    assert isinstance(body, dict) and body.get("param") == param and body.get("code") == code


def test_the_key_is_required_and_the_info_routes(http_daemon: tuple[DaemonProc, int]) -> None:
    wrong = openai.OpenAI(base_url=f"http://127.0.0.1:{http_daemon[1]}/v1", api_key="nope",
                          max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.audio.speech.create(model="tts-1", voice="alloy", input="Hi.")
    conn = http.client.HTTPConnection("127.0.0.1", http_daemon[1], timeout=30)
    conn.request("GET", "/health")
    assert json.loads(conn.getresponse().read()) == {"status": "ok"}
    conn.request("GET", "/v1/audio/voices", headers={"Authorization": f"Bearer {TOKEN}"})
    voices = json.loads(conn.getresponse().read())
    assert "af_heart" in voices["voices"] and voices["openai_voices"]["alloy"] == "af_alloy"
    conn.request("GET", "/v1/models", headers={"Authorization": f"Bearer {TOKEN}"})
    assert "tts-1" in [m["id"] for m in json.loads(conn.getresponse().read())["data"]]


def status(daemon: DaemonProc) -> dict[str, int]:
    with raw_conn(daemon.socket) as conn:
        conn.send({"op": "status", "id": "s"})
        return conn.recv()  # type: ignore[no-any-return]


def test_a_client_that_leaves_is_cancelled(http_daemon: tuple[DaemonProc, int]) -> None:
    daemon, port = http_daemon
    before = status(daemon)["cancelled"]
    body = json.dumps({"model": "tts-1", "voice": "af_heart", "response_format": "pcm",
                       "input": " ".join(["A long text nobody will hear to the end."] * 30)})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/v1/audio/speech", body=body,
                 headers={"Authorization": f"Bearer {TOKEN}",
                          "Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200 and response.read(48_000)  # a second of audio
    conn.sock.shutdown(socket.SHUT_RDWR)
    conn.close()
    deadline = time.monotonic() + 30
    while status(daemon)["cancelled"] == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status(daemon)["cancelled"] > before


def test_http_and_socket_clients_share_the_daemon(client: openai.OpenAI,
                                                  http_daemon: tuple[DaemonProc, int]) -> None:
    results: dict[str, int] = {}

    def over_http(i: int) -> None:
        data = client.audio.speech.create(model="tts-1", voice="nova", response_format="pcm",
                                          input=f"HTTP client number {i} is speaking now.")
        results[f"http-{i}"] = len(data.content)

    def over_socket(i: int) -> None:
        audio = stream_audio(http_daemon[0].socket, f"sock-{i}",
                             f"Socket client number {i} is speaking now.")
        results[f"sock-{i}"] = audio.size

    threads = [threading.Thread(target=over_http, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=over_socket, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert len(results) == 6 and all(n > 24_000 for n in results.values()), results
