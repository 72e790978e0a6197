"""The Wyoming server (Home Assistant's TTS protocol), driven by the `wyoming` library's own
clients against a real daemon: describe lists every voice, synthesize gives the socket's
audio, streaming synthesis speaks the first sentence before the text is all sent, a client
that leaves is cancelled, errors are events on a connection that serves on, Wyoming and
socket clients share the daemon, a reload moves the server to a unix socket."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import (
    DaemonProc,
    kokorod_cli,
    raw_conn,
    short_tmpdir,
    start_daemon,
    stream_audio,
)

pytest.importorskip("wyoming")

from wyoming.audio import AudioChunk
from wyoming.client import AsyncClient, AsyncTcpClient, AsyncUnixClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)

from kokorod.serve.sentence_feed import SentenceFeed
from kokorod.serve.wyoming_front import address_of
from kokorod_common.protocol import samples_to_pcm

TEXT = "Home Assistant hears the warm daemon now."
TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def wyoming_daemon(data_dir: Path) -> Iterator[tuple[DaemonProc, int, Path]]:
    run = short_tmpdir("kw")
    port = free_port()
    conf = run / "kokorod.toml"
    conf.write_text(f'wyoming_uri = "tcp://127.0.0.1:{port}"\n')
    handle = start_daemon(run / "k.sock", data_dir, KOKORO_CONFIG=str(conf))
    yield handle, port, conf
    assert handle.stop() == 0, handle.log_text()
    assert "Traceback" not in handle.log_text(), handle.log_text()  # no path ended in one


def status(daemon: DaemonProc) -> dict[str, Any]:
    with raw_conn(daemon.socket) as conn:
        conn.send({"op": "status", "id": "s"})
        return conn.recv()


async def read(client: AsyncClient) -> Event:
    event = await asyncio.wait_for(client.read_event(), TIMEOUT)
    assert event is not None, "the server closed the connection"
    return event


async def audio_until(client: AsyncClient, last: str) -> tuple[list[str], bytes]:
    """Event types up to and including `last`, and the audio they carried."""
    types, audio = [], b""
    while True:
        event = await read(client)
        types.append(event.type)
        if AudioChunk.is_type(event.type):
            chunk = AudioChunk.from_event(event)
            assert (chunk.rate, chunk.width, chunk.channels) == (24_000, 2, 1)
            audio += chunk.audio
        if event.type == last or Error.is_type(event.type):
            return types, audio


def s16(audio: bytes) -> np.ndarray:
    return np.frombuffer(audio, "<i2")


def test_describe_lists_every_installed_voice(wyoming_daemon: tuple[DaemonProc, int, Path]
                                              ) -> None:
    daemon, port, _ = wyoming_daemon
    with raw_conn(daemon.socket) as conn:
        conn.send({"op": "voices", "id": "v"})
        installed = {v["name"] if isinstance(v, dict) else v for v in conn.recv()["voices"]}

    async def ask() -> Info:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Describe().event())
            return Info.from_event(await read(client))

    info = asyncio.run(ask())
    assert len(info.tts) == 1
    program = info.tts[0]
    assert program.supports_synthesize_streaming and program.installed
    assert {v.name for v in program.voices} == installed and len(installed) >= 20
    heart = next(v for v in program.voices if v.name == "af_heart")
    assert heart.languages == ["en-US"] and heart.installed
    assert "American English" in (heart.description or "")


def test_synthesize_gives_the_sockets_audio(wyoming_daemon: tuple[DaemonProc, int, Path]
                                            ) -> None:
    daemon, port, _ = wyoming_daemon

    async def say() -> tuple[list[str], bytes]:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize(TEXT, SynthesizeVoice("bm_george")).event())
            return await audio_until(client, "audio-stop")

    types, audio = asyncio.run(say())
    assert types[0] == "audio-start" and types[-1] == "audio-stop"
    assert types.count("audio-chunk") == len(types) - 2 >= 10  # 50 ms chunks, as they came
    direct = stream_audio(daemon.socket, "direct", TEXT, voice="bm_george")  # float32
    assert s16(audio).size == direct.size > 24_000
    assert audio == samples_to_pcm(direct, "s16")  # the socket's samples, as s16


def test_streaming_speaks_the_first_sentence_before_the_text_ends(
        wyoming_daemon: tuple[DaemonProc, int, Path]) -> None:
    _, port, _ = wyoming_daemon
    first = "The kitchen lights are on now."
    second = "The front door is locked, and the heating will start at six tonight."
    words = (first + " " + second).split(" ")
    cut = len(first.split(" ")) + 1  # the first sentence, then the next one's first word

    async def stream() -> tuple[list[str], list[str], bytes]:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(SynthesizeStart(SynthesizeVoice("af_heart")).event())
            for i, word in enumerate(words[:cut]):
                await client.write_event(SynthesizeChunk(("" if i == 0 else " ") + word).event())
            # The rest of the text is not sent until audio has come back: a server that
            # waited for synthesize-stop would time out here.
            before: list[str] = []
            early = b""
            while "audio-chunk" not in before:
                event = await read(client)
                before.append(event.type)
                assert not Error.is_type(event.type), event.data
                if AudioChunk.is_type(event.type):
                    early += AudioChunk.from_event(event).audio
            for word in words[cut:]:
                await client.write_event(SynthesizeChunk(" " + word).event())
            await client.write_event(Synthesize(first + " " + second).event())  # HA's copy
            await client.write_event(SynthesizeStop().event())
            after, audio = await audio_until(client, "synthesize-stopped")
            return before, after, early + audio

    before, after, audio = asyncio.run(stream())
    assert before[0] == "audio-start" and len(words) - cut >= 3
    types = before + after
    assert types.count("audio-start") == 1 and types.count("audio-stop") == 1
    assert types[-2:] == ["audio-stop", "synthesize-stopped"]
    seconds = len(audio) / 2 / 24_000
    assert 3.0 < seconds < 15.0, seconds  # both sentences, once


def test_a_client_that_leaves_mid_stream_is_cancelled(
        wyoming_daemon: tuple[DaemonProc, int, Path]) -> None:
    daemon, port, _ = wyoming_daemon
    before = status(daemon)["cancelled"]
    long = " ".join(["A long announcement nobody will hear to the end."] * 30)

    async def leave() -> int:
        client = AsyncTcpClient("127.0.0.1", port)
        await client.connect()
        await client.write_event(Synthesize(long).event())
        got = 0
        while got < 5:
            if AudioChunk.is_type((await read(client)).type):
                got += 1
        await client.disconnect()
        return got

    assert asyncio.run(leave()) == 5
    deadline = time.monotonic() + 30
    while status(daemon)["cancelled"] == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status(daemon)["cancelled"] == before + 1

    async def next_client() -> bytes:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize("Still here.").event())
            return (await audio_until(client, "audio-stop"))[1]

    assert len(asyncio.run(next_client())) > 2 * 12_000


def test_errors_are_events_and_the_connection_serves_on(
        wyoming_daemon: tuple[DaemonProc, int, Path]) -> None:
    _, port, _ = wyoming_daemon

    async def session() -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize("Hi.", SynthesizeVoice("nobody_here")).event())
            event = await read(client)
            out.append((event.type, Error.from_event(event).code))
            await client.write_event(SynthesizeStart(SynthesizeVoice("nobody_here")).event())
            await client.write_event(SynthesizeChunk("Nothing will be said. ").event())
            await client.write_event(SynthesizeStop().event())
            event = await read(client)
            out.append((event.type, event.data.get("code")))
            out.append(((await read(client)).type, None))
            await client.write_event(Synthesize("   ").event())
            event = await read(client)
            out.append((event.type, Error.from_event(event).code))
            await client.write_event(SynthesizeChunk("no start").event())
            event = await read(client)
            out.append((event.type, Error.from_event(event).code))
            assert client._writer is not None
            client._writer.write(b"this is not json\n")
            event = await read(client)
            out.append((event.type, Error.from_event(event).code))
            await client.write_event(Synthesize("Still served.", SynthesizeVoice(
                language="en_GB")).event())
            types, audio = await audio_until(client, "audio-stop")
            out.append((types[-1], len(audio)))
        return out

    out = asyncio.run(session())
    assert out[0] == ("error", "unknown_voice")
    assert out[1] == ("error", "unknown_voice") and out[2] == ("synthesize-stopped", None)
    assert out[3] == ("error", "empty_text")
    assert out[4] == ("error", "bad_request")
    assert out[5] == ("error", "bad_frame")
    assert out[6][0] == "audio-stop" and out[6][1] > 2 * 12_000


def test_an_oversized_event_is_refused_and_the_daemon_serves_on(
        wyoming_daemon: tuple[DaemonProc, int, Path]) -> None:
    daemon, port, _ = wyoming_daemon
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(json.dumps({"type": "synthesize", "data_length": 1 << 30}).encode()
                     + b"\n")
        reply = sock.makefile("rb").readline()
        assert json.loads(reply)["type"] == "error"
    assert stream_audio(daemon.socket, "after", "Fine.").size > 0


def test_wyoming_and_socket_clients_share_the_daemon(
        wyoming_daemon: tuple[DaemonProc, int, Path]) -> None:
    daemon, port, _ = wyoming_daemon
    results: dict[str, int] = {}

    async def over_wyoming(i: int) -> None:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize(
                f"Wyoming client number {i} is speaking now.").event())
            types, audio = await audio_until(client, "audio-stop")
            assert types[-1] == "audio-stop"
            results[f"wyoming-{i}"] = len(audio) // 2

    def over_socket(i: int) -> None:
        results[f"sock-{i}"] = stream_audio(daemon.socket, f"sock-{i}",
                                            f"Socket client number {i} is speaking now.").size

    async def all_wyoming() -> None:
        await asyncio.gather(*(over_wyoming(i) for i in range(4)))

    threads = [threading.Thread(target=over_socket, args=(i,)) for i in range(2)]
    threads.append(threading.Thread(target=asyncio.run, args=(all_wyoming(),)))
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert len(results) == 6, results
    assert all(24_000 < n < 24_000 * 8 for n in results.values()), results


def test_a_reload_moves_the_server_to_a_unix_socket(
        wyoming_daemon: tuple[DaemonProc, int, Path]) -> None:
    daemon, port, conf = wyoming_daemon
    path = daemon.socket.parent / "w.sock"
    old = conf.read_text()
    conf.write_text(f'wyoming_uri = "unix://{path}"\n')
    try:
        os.kill(daemon.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 30
        while status(daemon)["wyoming"]["uri"] != f"unix://{path}":
            assert time.monotonic() < deadline, status(daemon)["wyoming"]
            time.sleep(0.1)
        assert path.stat().st_mode & 0o777 == 0o600

        async def say() -> tuple[list[str], bytes]:
            async with AsyncUnixClient(str(path)) as client:
                await client.write_event(Synthesize(TEXT).event())
                return await audio_until(client, "audio-stop")

        types, audio = asyncio.run(say())
        assert types[0] == "audio-start" and types[-1] == "audio-stop"
        assert s16(audio).size == stream_audio(daemon.socket, "u", TEXT).size
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        conf.write_text(old)
        os.kill(daemon.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 30
        while status(daemon)["wyoming"]["uri"] != f"tcp://127.0.0.1:{port}":
            assert time.monotonic() < deadline, status(daemon)["wyoming"]
            time.sleep(0.1)
    assert not path.exists()


def test_off_by_default(daemon: DaemonProc) -> None:
    assert status(daemon)["wyoming"] == {"on": False, "uri": None, "connections": 0,
                                         "error": None}


@pytest.mark.parametrize(("uri", "expected"), [
    ("", None),
    ("tcp://127.0.0.1:10200", ("tcp", "127.0.0.1", 10200, True)),
    ("tcp://:10200", ("tcp", "127.0.0.1", 10200, True)),
    ("tcp://localhost:10200", ("tcp", "127.0.0.1", 10200, True)),
    ("tcp://0.0.0.0:10200", ("tcp", "0.0.0.0", 10200, False)),
    ("unix:///run/k/w.sock", ("unix", "/run/k/w.sock", 0, True)),
])
def test_addresses(uri: str, expected: tuple[Any, ...] | None) -> None:
    address = address_of(uri)
    if expected is None:
        assert address is None
        return
    assert address is not None
    assert (address.scheme, address.where, address.port, address.loopback) == expected


@pytest.mark.parametrize("uri", ["tcp://127.0.0.1", "http://x:1", "unix://", "tcp://h:99999"])
def test_bad_addresses_are_config_errors(uri: str) -> None:
    from kokorod.config import ConfigError, load

    with pytest.raises(ConfigError, match="KOKORO_WYOMING_URI"):
        load({"KOKORO_WYOMING_URI": uri, "KOKORO_CONFIG": "/nonexistent/k.toml"})


@pytest.mark.parametrize(("pieces", "said", "rest"), [
    (["Hello", " there.", " How", " are you?"], [[], [], ["Hello there."], []],
     "How are you?"),
    (["It is 9 a.m. ", "today. ", "Mr. ", "Smith came. "],
     [[], ["It is 9 a.m. today."], [], ["Mr. Smith came."]], ""),
    (["One. Two. Three"], [["One.", "Two."]], "Three"),
    (["Wow! ", "Really?\n", "Yes"], [["Wow!"], ["Really?"], []], "Yes"),
])
def test_sentences_are_handed_on_as_soon_as_they_are_complete(
        pieces: list[str], said: list[list[str]], rest: str) -> None:
    feed = SentenceFeed(1000)
    assert [feed.add(p) for p in pieces] == said
    assert feed.finish() == rest


def test_a_run_without_an_end_is_bounded() -> None:
    feed = SentenceFeed(50)
    out = [s for _ in range(20) for s in feed.add("word ")]
    assert out and all(len(s) <= 60 for s in out) and len(feed.buffer) <= 50


def test_a_peer_that_floods_and_never_reads_holds_bounded_work(
        wyoming_daemon: tuple[DaemonProc, int, Path]) -> None:
    daemon, port, _ = wyoming_daemon
    before = status(daemon)
    event = Synthesize("Nobody listens to this sentence at all.").event()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.setblocking(False)
        sent = 0
        deadline = time.monotonic() + 20
        while sent < 500 and time.monotonic() < deadline:  # until the daemon stops reading
            line = json.dumps({"type": event.type, "data": event.data}).encode() + b"\n"
            try:
                sock.send(line)
                sent += 1
            except BlockingIOError:
                time.sleep(0.05)
        during = status(daemon)
    # The daemon took no more requests than it allows a connection ahead of its speaker.
    assert during["requests"] - before["requests"] <= 16 + 2
    deadline = time.monotonic() + 60
    while status(daemon)["active_requests"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status(daemon)["active_requests"] == 0
    assert stream_audio(daemon.socket, "after-flood", "Served again.").size > 0


def test_an_address_in_use_is_one_line_and_the_socket_serves_on(data_dir: Path) -> None:
    """As HTTP's port (issue 36 row 4): one line naming the address and its holder, the
    socket serves on, Wyoming comes on once the address is free; nothing left behind."""
    run = short_tmpdir("kx")
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    handle = start_daemon(run / "k.sock", data_dir, KOKORO_WYOMING_URI=f"tcp://127.0.0.1:{port}",
                          KOKORO_RUNTIME_CHECK_S="0.5", KOKORO_WARMUP="0")
    try:
        wyoming = status(handle)["wyoming"]
        assert wyoming["on"] is False and wyoming["uri"] is None
        assert f"Wyoming address tcp://127.0.0.1:{port} cannot be used: it is already in use " \
               f"(by pid {os.getpid()}" in wyoming["error"]
        notes = [line for line in handle.log_text().splitlines()
                 if line.startswith("kokorod note:")]
        assert len(notes) == 1 and f"tcp://127.0.0.1:{port}" in notes[0], handle.log_text()
        assert stream_audio(handle.socket, "still", "The socket still speaks.").size > 24_000
        holder.close()
        deadline = time.monotonic() + 60
        while not status(handle)["wyoming"]["on"]:
            assert time.monotonic() < deadline, "Wyoming did not come on once free"
            time.sleep(0.1)
        assert status(handle)["wyoming"]["error"] is None

        async def describe() -> Info:
            async with AsyncTcpClient("127.0.0.1", port) as client:
                await client.write_event(Describe().event())
                return Info.from_event(await read(client))
        assert asyncio.run(describe()).tts
    finally:
        holder.close()
        code = handle.stop()
        leftover = sorted(p.name for p in run.iterdir() if not p.name.endswith(".log"))
        text = handle.log_text()
        shutil.rmtree(run, ignore_errors=True)
    assert code == 0 and "Traceback" not in text, text
    assert leftover == [], leftover


def test_a_stop_ends_wyoming_streams_and_the_daemon_exits_cleanly(data_dir: Path) -> None:
    run = short_tmpdir("ky")
    path = run / "w.sock"
    handle = start_daemon(run / "k.sock", data_dir, KOKORO_WYOMING_URI=f"unix://{path}",
                          KOKORO_SHUTDOWN_GRACE_S="0.5")
    long = " ".join(["This announcement is cut short by the daemon's stop."] * 40)

    async def listen() -> list[str]:
        types: list[str] = []
        async with AsyncUnixClient(str(path)) as client:
            await client.write_event(Synthesize(long).event())
            while True:
                event = await asyncio.wait_for(client.read_event(), TIMEOUT)
                if event is None:
                    return types
                types.append(event.type)
                if types.count("audio-chunk") == 3:
                    handle.proc.send_signal(signal.SIGTERM)

    try:
        types = asyncio.run(listen())
        assert types[0] == "audio-start" and types.count("audio-chunk") >= 3
        assert handle.proc.wait(30) == 0, handle.log_text()
        assert not path.exists()
        assert "Traceback" not in handle.log_text(), handle.log_text()
    finally:
        handle.stop()
        shutil.rmtree(run, ignore_errors=True)


def test_ssml_is_read_whole_or_streamed(wyoming_daemon: tuple[DaemonProc, int, Path]) -> None:
    daemon, port, _ = wyoming_daemon
    ssml = ('<speak>Lights on. <break time="400ms"/> The door is '
            '<emphasis>locked</emphasis>.</speak>')

    async def session() -> tuple[bytes, str | None, bytes]:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Synthesize(ssml, text_format="ssml").event())
            whole = (await audio_until(client, "audio-stop"))[1]
            await client.write_event(Synthesize("<speak>Not closed", text_format="ssml")
                                     .event())
            bad = Error.from_event(await read(client)).code
            await client.write_event(SynthesizeStart(text_format="ssml").event())
            for i in range(0, len(ssml), 9):
                await client.write_event(SynthesizeChunk(ssml[i:i + 9]).event())
            await client.write_event(SynthesizeStop().event())
            types, streamed = await audio_until(client, "synthesize-stopped")
            assert types[-2:] == ["audio-stop", "synthesize-stopped"]
            return whole, bad, streamed

    whole, bad, streamed = asyncio.run(session())
    direct = stream_audio(daemon.socket, "ssml", ssml, text_format="ssml")
    assert whole == samples_to_pcm(direct, "s16") and len(whole) > 2 * 24_000
    assert bad == "bad_ssml"
    assert streamed == whole


def test_kokorod_status_says_where_wyoming_listens(
        wyoming_daemon: tuple[DaemonProc, int, Path]) -> None:
    daemon, port, _ = wyoming_daemon
    result = kokorod_cli("status", env=daemon.env)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("wyoming"))
    assert row.split() == ["wyoming", f"tcp://127.0.0.1:{port}"]
    # issue 36 row 2: the log says where it listens, from the start
    assert f"Wyoming server on tcp://127.0.0.1:{port}" in daemon.log_text()
    shown = json.loads(kokorod_cli("status", "--json", env={
        k: v for k, v in daemon.env.items() if k != "KOKORO_WYOMING_URI"}).stdout)["wyoming"]
    assert shown["on"] is True and shown["uri"] == f"tcp://127.0.0.1:{port}"  # the daemon's
