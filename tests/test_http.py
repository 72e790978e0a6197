"""OpenAI's speech API on localhost, driven by the official `openai` package against a real
daemon: every format decodes, audio streams, errors have OpenAI's shape, the key is
enforced, HTTP and socket clients share the daemon, a client that leaves is cancelled."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import (
    DaemonProc,
    daemon_env,
    kokorod_cli,
    raw_conn,
    short_tmpdir,
    start_daemon,
    stream_audio,
)

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


def test_input_starting_with_speak_is_ssml(client: openai.OpenAI) -> None:
    """An SSML <break> through the OpenAI API: the audio is that much longer."""
    def seconds(text: str) -> float:
        data = client.audio.speech.create(model="tts-1", voice="af_heart", input=text,
                                          response_format="pcm").content
        return len(data) / 2 / 24_000

    plain = seconds("<speak>The first words and the last.</speak>")
    broken = seconds('<speak>The first words <break time="1500ms"/> and the last.</speak>')
    assert 1.2 < broken - plain < 1.8, (plain, broken)


def test_audio_streams_while_it_is_synthesised(client: openai.OpenAI) -> None:
    long = " ".join(["Each sentence here adds a little more audio to the stream."] * 4)
    arrivals = []
    started = time.monotonic()
    with client.audio.speech.with_streaming_response.create(
            model="kokoro", voice="alloy", input=long, response_format="pcm") as response:
        for part in response.iter_bytes(4800):
            arrivals.append((time.monotonic() - started, len(part)))
    total = sum(n for _, n in arrivals)
    assert total / 2 / 24_000 > 6  # seconds of audio
    assert arrivals[0][0] < 0.5 * arrivals[-1][0]  # the first bytes long before the last


@pytest.mark.parametrize(("fields", "param", "code"), [
    ({"voice": "nobody_here"}, "voice", "unknown_voice"),
    ({"input": "   "}, "input", "empty_text"),
    ({"input": "<speak>Hi <b>there</speak>"}, "input", "bad_ssml"),
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


def test_kokorod_http_and_status_ask_the_daemon(http_daemon: tuple[DaemonProc, int]) -> None:
    """The caller's environment has no KOKORO_HTTP_PORT: the daemon says where it is."""
    daemon, port = http_daemon
    env = {k: v for k, v in daemon.env.items() if k != "KOKORO_HTTP_PORT"}
    where = kokorod_cli("http", env=env)
    assert where.returncode == 0 and where.stdout.strip() == f"http://127.0.0.1:{port}/v1", \
        where.stdout + where.stderr
    shown = kokorod_cli("status", env=env)
    assert f"http         http://127.0.0.1:{port}/v1" in shown.stdout, shown.stdout
    http = json.loads(kokorod_cli("status", "--json", env=env).stdout)["http"]
    assert http["on"] is True and http["port"] == port and http["error"] is None
    assert f"on http://127.0.0.1:{port}/v1" in daemon.log_text()  # the log says so too


def test_protocol_md_names_the_status_fields_kokorod_http_reads(
        http_daemon: tuple[DaemonProc, int]) -> None:
    """Issue 36 row 2: a client written from PROTOCOL.md alone finds where the daemon's
    front-ends are in its `status` reply."""
    text = (Path(__file__).resolve().parent.parent / "PROTOCOL.md").read_text()
    block = text[text.index("status  {op, id"):text.index("pong    {op, id}")]
    reply = status(http_daemon[0])
    missing = [k for k in reply if k not in ("op", "id") and f"{k}:" not in block
               and not re.search(rf"\b{k}\b", block)]
    assert missing == [], missing
    for front in ("http", "wyoming"):
        line = block[block.index(f"{front}: {{"):]
        fields = line[:line.index("}")]
        assert all(k in fields for k in reply[front]), (front, reply[front], fields)


def test_unknown_routes_and_methods_get_openai_shaped_errors(
        http_daemon: tuple[DaemonProc, int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", http_daemon[1], timeout=30)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for method, path, status, code in [("GET", "/v1/nothing", 404, "not_found"),
                                       ("GET", "/v1/audio/speech", 405, "method_not_allowed"),
                                       ("DELETE", "/v1/models", 405, "method_not_allowed")]:
        conn.request(method, path, headers=auth)
        response = conn.getresponse()
        body = response.read()
        assert response.status == status, (method, path, body)
        assert response.getheader("Content-Type", "").startswith("application/json")
        error = json.loads(body)["error"]
        assert error["code"] == code and error["type"] == "invalid_request_error"
        assert path in error["message"]
    with pytest.raises(openai.NotFoundError) as err:  # as an OpenAI client sees it
        openai.OpenAI(base_url=f"http://127.0.0.1:{http_daemon[1]}/v2", api_key=TOKEN,
                      max_retries=0).audio.speech.create(model="tts-1", voice="af_heart",
                                                         input="Hi.")
    assert isinstance(err.value.body, dict) and err.value.body.get("code") == "not_found"


def test_streamed_mp3_decodes_to_its_full_duration(client: openai.OpenAI,
                                                   http_daemon: tuple[DaemonProc, int]) -> None:
    """Decoders reckon a streamed mp3's duration from its frames: all of it is there."""
    text = ("Streaming should not cost the end of the audio. A decoder reads every frame "
            "that was sent, and the last sentence is heard to the end.")
    data = b""
    with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="af_heart", input=text, response_format="mp3",
            speed=1.2) as response:
        for part in response.iter_bytes():
            data += part
    audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    wav = client.audio.speech.create(model="tts-1", voice="af_heart", input=text,
                                     response_format="wav", speed=1.2).content
    sent, wav_rate = sf.read(io.BytesIO(wav), dtype="float32")  # the wav rendering
    assert rate == wav_rate == 24_000
    # Issue 36 row 7: every sample is there. An mp3 decoder without the gapless tag (that
    # lame writes at the end, after the stream has gone) adds the codec's delay in front,
    # 1105 samples (lame's 576 + the decoder's 529), and pads the end to a whole frame
    # (576 samples at 24 kHz): nothing more, nothing less.
    delay, frame = 1105, 576
    info = sf.info(io.BytesIO(data))
    assert info.frames == audio.size
    extra = audio.size - sent.size
    assert delay <= extra < delay + frame, (audio.size, sent.size)
    shifted = audio[delay:delay + sent.size]  # the same speech, sample for sample
    corr = float(np.dot(shifted, sent) / (np.linalg.norm(shifted) * np.linalg.norm(sent)))
    assert corr > 0.9, corr
    # A player without a Xing header (a browser, a stream) reckons the duration from the
    # size and the first frame's bitrate: right only when every frame has that bitrate.
    bitrates, at = [], 0
    while at + 4 <= len(data):
        header = data[at:at + 4]
        assert header[0] == 0xFF and header[1] & 0xE0 == 0xE0, f"no frame at byte {at}"
        kbps = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)[header[2] >> 4]
        size = 72 * kbps * 1000 // 24_000 + ((header[2] >> 1) & 1)  # MPEG-2 layer III
        assert any(data[at + 4:at + size]), f"a zero-filled frame at byte {at}"
        bitrates.append(kbps)
        at += size
    assert len(set(bitrates)) == 1, sorted(set(bitrates))  # constant bitrate
    estimate = len(data) * 8 / (bitrates[0] * 1000)
    assert abs(estimate - sent.size / rate) < 0.1, (estimate, sent.size / rate)


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_port_in_use_is_one_line_and_the_socket_serves_on(data_dir: Path) -> None:
    """Issue 36 row 4: 8880 is also Kokoro-FastAPI's default. `kokorod start` says in one
    line which port and who holds it; socket users keep their speech; HTTP comes on once
    the port is free; the stop leaves nothing behind."""
    run = short_tmpdir("kb")
    state = short_tmpdir("kbs")
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    sock = run / "other.sock"
    env = daemon_env(sock, data_dir, KOKORO_HTTP_PORT=str(port), XDG_STATE_HOME=str(state),
                     KOKORO_RUNTIME_CHECK_S="0.5", KOKORO_WARMUP="0")
    try:
        started = kokorod_cli("start", env=env)
        assert started.returncode == 0, started.stderr
        lines = [line for line in started.stderr.splitlines() if "HTTP" in line]
        assert len(lines) == 1, started.stderr  # said once
        assert f"HTTP port {port} is already in use" in lines[0]
        assert f"pid {os.getpid()}" in lines[0]  # who holds it, as psutil tells
        assert "Traceback" not in started.stderr and "OpenAI speech API on" not in \
            started.stdout
        said = kokorod_cli("http", env=env)
        assert said.returncode == 1 and f"HTTP port {port} is already in use" in said.stdout
        shown = kokorod_cli("status", env=env)
        assert shown.returncode == 0 and f"off: HTTP port {port}" in shown.stdout, shown.stdout
        assert stream_audio(sock, "still", "The socket still speaks.").size > 24_000
        holder.close()  # the port is free: HTTP comes on by itself

        def http_on() -> bool:
            return kokorod_cli("http", env=env).returncode == 0
        wait_for(http_on, "HTTP did not come on once its port was free")
        models = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x",
                               max_retries=0).models.list()
        assert "tts-1" in [m.id for m in models.data]
    finally:
        holder.close()
        stopped = kokorod_cli("stop", env=env)
        leftover = sorted(p.name for p in run.iterdir())
        shutil.rmtree(run, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stderr
    assert leftover == [], leftover  # no socket, pid or lock file left behind


def test_a_reload_starts_moves_and_stops_http(data_dir: Path) -> None:
    run = short_tmpdir("kl")
    config = run / "kokorod.toml"
    config.write_text("")
    handle = start_daemon(run / "k.sock", data_dir, KOKORO_CONFIG=str(config),
                          KOKORO_WARMUP="0")
    env = handle.env

    def reload_to(port: int) -> dict[str, object]:
        config.write_text(f"http_port = {port}\n")
        before = status(handle)["reloads"]
        handle.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while status(handle)["reloads"] == before and time.monotonic() < deadline:
            time.sleep(0.05)
        return status(handle)["http"]  # type: ignore[return-value]

    try:
        assert kokorod_cli("http", env=env).returncode == 1  # off, and says how
        # README's sequence with a daemon already running (autostarted without HTTP): said
        again = kokorod_cli("start", env={**env, "KOKORO_HTTP_PORT": "8899"})
        assert again.returncode == 0 and "already running" in again.stdout, again.stderr
        assert "KOKORO_HTTP_PORT=8899 here, off there" in again.stderr
        assert "kokorod restart" in again.stderr and "kokorod reload" in again.stderr
        assert kokorod_cli("start", env=env).stderr == ""  # the same settings: nothing to say
        first, second = free_port(), free_port()
        http_on = reload_to(first)
        assert http_on["url"] == f"http://127.0.0.1:{first}/v1" and listening(first)
        where = kokorod_cli("http", env=env)
        assert where.stdout.strip() == f"http://127.0.0.1:{first}/v1"
        voices = openai.OpenAI(base_url=f"http://127.0.0.1:{first}/v1", api_key="x",
                               max_retries=0).models.list()
        assert "tts-1" in [m.id for m in voices.data]
        config.write_text(f"http_port = {second}\n")  # `kokorod reload`: SIGHUP, answered
        said = kokorod_cli("reload", env=env)
        assert said.returncode == 0, said.stderr
        assert f"http         http://127.0.0.1:{second}/v1" in said.stdout.splitlines()
        moved = status(handle)["http"]
        assert moved["url"] == f"http://127.0.0.1:{second}/v1"
        assert listening(second) and not listening(first)
        config.write_text('http_port = 1\nthreads = "lots"\n')  # a bad file: nothing moves
        bad = kokorod_cli("reload", env=env)
        assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
        assert "KOKORO_THREADS" in bad.stderr and "current settings serve on" in bad.stderr
        assert listening(second)
        with socket.socket() as taken:  # a reload to a taken port: said, the socket serves on
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = taken.getsockname()[1]
            failed = reload_to(busy)
            assert failed["url"] is None and f"HTTP port {busy}" in str(failed["error"])
            said = kokorod_cli("http", env=env)
            assert said.returncode == 1 and f"HTTP port {busy}" in said.stdout
        off = reload_to(0)
        assert off["url"] is None and off["error"] is None and not listening(second)
        assert handle.proc.poll() is None
    finally:
        handle.stop()
        shutil.rmtree(run, ignore_errors=True)
