"""asyncio client: the same operations, replies and streams as the blocking Client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from kokorod_client.core import LOST, IdSource, Operations, Router, StreamFrames
from kokorod_common.messages import Chunk, ConnectionLost, raise_if_error, version_warning
from kokorod_common.paths import resolve_socket
from kokorod_common.protocol import (
    FrameDecoder,
    ProtocolError,
    encode_frame,
    request_frame,
    synthesize_message,
)


class AsyncStream(StreamFrames):
    def __init__(self, client: AsyncClient, rid: int, fmt: str) -> None:
        super().__init__(rid, fmt, asyncio.Event())
        self.client = client
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        try:
            while self.end is None:
                chunk = self.take(await self.queue.get())
                if chunk is not None:
                    yield chunk
        finally:
            self.client.router.close(self.id)

    async def cancel(self) -> None:
        await self.client.send(request_frame("cancel", self.id))


class AsyncClient(Operations):
    """`async with AsyncClient() as c: async for chunk in await c.synthesize("Hi"): …`

    Every operation of Client is here too (`await c.status()`, `await c.stop()`…)."""

    def __init__(self, socket_path: str | Path | None = None, *,
                 client_name: str = "kokorod-async-client", max_frame: int = 64 << 20) -> None:
        self.socket_path = resolve_socket(socket_path)
        self.client_name = client_name
        self.server: dict[str, Any] = {}
        self.warning: str | None = None
        self.router = Router()
        self._ids = IdSource()
        self._decoder = FrameDecoder(max_frame)
        self._reader: asyncio.StreamReader
        self._writer: asyncio.StreamWriter
        self._task: asyncio.Task[None] | None = None

    async def connect(self) -> AsyncClient:
        self._reader, self._writer = await asyncio.open_unix_connection(str(self.socket_path))
        self._task = asyncio.get_running_loop().create_task(self._read_loop())
        self.server = await self.request("hello", client_name=self.client_name)
        self.warning = version_warning(self.server)
        return self

    async def _read_loop(self) -> None:
        try:
            while data := await self._reader.read(1 << 16):
                self._decoder.feed(data)
                for frame in self._decoder:
                    self.router.route(frame)
        except (OSError, ProtocolError):
            pass
        finally:
            self.router.lose()

    async def send(self, message: dict[str, Any]) -> None:
        self._writer.write(encode_frame(message))
        await self._writer.drain()

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        rid = self._ids.next()
        replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.router.open(rid, replies.put_nowait)
        try:
            await self.send(request_frame(op, rid, **fields))
            frame = await replies.get()
            if frame is LOST:
                raise ConnectionLost(f"kokorod closed the connection before replying to {op}")
            return raise_if_error(frame)
        finally:
            self.router.close(rid)

    async def _call(self, op: str, then: Callable[[dict[str, Any]], Any],
                    **fields: Any) -> Any:
        return then(await self.request(op, **fields))

    async def synthesize(self, text: str, *, fmt: str = "f32", **options: Any) -> AsyncStream:
        """Start a request (same options as Client.synthesize); iterate the stream."""
        rid = self._ids.next()
        message = synthesize_message(rid, text, fmt, options)
        stream = AsyncStream(self, rid, fmt)
        self.router.open(rid, stream.queue.put_nowait)
        await self.send(message)
        return stream

    async def close(self) -> None:
        if self._task is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def __aenter__(self) -> AsyncClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
