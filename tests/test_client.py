"""The importable client libraries (blocking and asyncio) against the real daemon."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from helpers import DaemonProc

from kokorod_client import Client, DaemonError
from kokorod_client.aio import AsyncClient
from kokorod_common.protocol import ErrorCode


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
