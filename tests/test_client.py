"""The importable client libraries (blocking and asyncio) against the real daemon."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import DaemonProc, daemon_env

from kokorod_client import Client, DaemonError
from kokorod_client.aio import AsyncClient
from kokorod_common import launcher
from kokorod_common.protocol import SAMPLE_RATE, ErrorCode


def test_blocking_client_streams_and_reports_end(daemon: DaemonProc) -> None:
    with Client(daemon.socket) as client:
        assert client.server["protocol"] == 1
        stream = client.synthesize("A blocking client call.", fmt="s16")
        chunks = list(stream)
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert stream.end is not None and stream.end.chunks == len(chunks)
    audio = np.concatenate([c.samples for c in chunks])
    assert audio.size == stream.end.samples and np.abs(audio).max() > 0.05


def test_blocking_client_concurrent_streams_and_typed_errors(daemon: DaemonProc) -> None:
    with Client(daemon.socket) as client:
        a = client.synthesize("First of two at once.")
        b = client.synthesize("Second of two at once.")
        results = {}
        threads = [threading.Thread(target=lambda s=s, k=k: results.setdefault(k, list(s)))
                   for k, s in (("a", a), ("b", b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert results["a"] and results["b"]
        with pytest.raises(DaemonError) as err:
            list(client.synthesize("x", voice="nobody"))
        assert err.value.code == ErrorCode.UNKNOWN_VOICE
        assert client.request("ping")["op"] == "pong"


def test_async_client(daemon: DaemonProc) -> None:
    async def main() -> tuple[int, float]:
        async with AsyncClient(daemon.socket) as client:
            stream = await client.synthesize("Hello from asyncio.")
            seqs = [chunk.seq async for chunk in stream]
            assert stream.end is not None
            voices = await client.request("voices")
            assert voices["voices"]
            return len(seqs), stream.end.audio_seconds

    n, seconds = asyncio.run(main())
    assert n > 0 and seconds > 0.5


def test_async_client_cancel(daemon: DaemonProc) -> None:
    async def main() -> bool:
        async with AsyncClient(daemon.socket) as client:
            stream = await client.synthesize(" ".join(["A long text to cancel."] * 40))
            async for chunk in stream:
                if chunk.seq == 1:
                    await stream.cancel()
            assert stream.end is not None
            return stream.end.cancelled

    assert asyncio.run(main()) is True


def test_both_clients_have_the_same_operations(daemon: DaemonProc) -> None:
    """Every op of Client answers the same through AsyncClient (one definition serves both)."""
    with Client(daemon.socket, client_name="twin") as client:
        blocking = {"voices": client.voices(), "stop": client.stop(),
                    "queue": client.speech_queue()["waiting"]}
        marks = client.synthesize("One. Two.", text_format="markdown", priority="message",
                                  normalize=False)
        list(marks)
        assert marks.marks and marks.end is not None and marks.end.reason == "done"

    async def main() -> dict[str, object]:
        async with AsyncClient(daemon.socket, client_name="twin") as client:
            status = await client.status()
            assert status["pid"] > 0 and (await client.ping())["op"] == "pong"
            stream = await client.synthesize("One. Two.", text_format="markdown",
                                             priority="message", normalize=False)
            assert [c.seq async for c in stream] and stream.marks
            with pytest.raises(DaemonError) as err:
                [c async for c in await client.synthesize("x", voice="nobody")]
            assert err.value.code == ErrorCode.UNKNOWN_VOICE
            return {"voices": await client.voices(), "stop": await client.stop(),
                    "queue": (await client.speech_queue())["waiting"]}

    assert asyncio.run(main()) == blocking


@contextlib.contextmanager
def silent_peer(path: Path) -> Iterator[list[bytes]]:
    """A real Unix socket whose peer reads every frame and answers none (a daemon that
    hangs): what a client's reply timeout is for. Yields what it received."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    received: list[bytes] = []
    held: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                held.append(conn)
                threading.Thread(target=lambda c=conn: drain(c), daemon=True).start()

    def drain(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := conn.recv(1 << 16):
                received.append(data)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield received
    finally:
        server.close()
        for conn in held:
            conn.close()


def test_both_clients_time_out_on_a_daemon_that_never_replies(run_dir: Path) -> None:
    path = run_dir / "silent.sock"
    with silent_peer(path) as received:
        with pytest.raises(TimeoutError, match=r"no reply to hello within 0\.5s"):
            Client(path, timeout=0.5)

        async def main() -> None:
            with pytest.raises(TimeoutError, match=r"no reply to hello within 0\.5s"):
                async with AsyncClient(path, timeout=0.5):
                    pass

        asyncio.run(main())
        assert len(received) >= 2  # both hellos reached the peer: it was the reply that hung


def test_the_async_client_without_a_daemon_fails_unless_it_may_start_one(
        run_dir: Path) -> None:
    async def main() -> None:
        with pytest.raises(OSError):
            async with AsyncClient(run_dir / "none.sock"):
                pass

    asyncio.run(main())


@pytest.mark.model  # starts a daemon
def test_the_async_client_autostarts_a_daemon(run_dir: Path, data_dir: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    sock = run_dir / "auto.sock"
    for key, value in daemon_env(sock, data_dir).items():
        if key.startswith("KOKORO_"):
            monkeypatch.setenv(key, value)

    async def main() -> tuple[dict[str, object], int]:
        async with AsyncClient(sock, autostart=True, timeout=60) as client:
            status = await client.status()
            stream = await client.synthesize("Started for me.")
            samples = sum([len(c.samples) async for c in stream])
            assert stream.end is not None and stream.end.reason == "done"
            return status, samples

    try:
        status, samples = asyncio.run(main())
        assert status["socket"] == str(sock) and status["pid"] == launcher.daemon_pid(sock)
        assert 0.5 * SAMPLE_RATE < samples < 4 * SAMPLE_RATE  # "Started for me." ~1.3 s
    finally:
        assert launcher.stop(sock) is not None  # it was this test's daemon, and it stops
