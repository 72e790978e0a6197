"""asyncio client: same protocol and replies as the blocking Client, for async programs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from kokorod.protocol import FrameDecoder, ProtocolError, encode_frame
from kokorod_client.client import resolve_socket
from kokorod_client.messages import (
    Chunk,
    ConnectionLost,
    End,
    IdSource,
    Mark,
    raise_if_error,
    stream_item,
    synthesize_request,
    version_warning,
)

_LOST: dict[str, Any] = {"op": "_lost"}


class AsyncStream:
    def __init__(self, client: AsyncClient, rid: int, fmt: str) -> None:
        self.client = client
        self.id = rid
        self.format = fmt
        self.marks: list[Mark] = []
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.end: End | None = None

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        try:
            while True:
                frame = await self.queue.get()
                if frame is _LOST:
                    raise ConnectionLost("kokorod closed the connection mid-stream")
                item = stream_item(frame, self.format)
                if isinstance(item, End):
                    self.end = item
                    return
                if isinstance(item, Mark):
                    self.marks.append(item)
                elif item is not None:
                    yield item
        finally:
            self.client._routes.pop(self.id, None)

    async def cancel(self) -> None:
        await self.client.send({"op": "cancel", "id": self.id})


class AsyncClient:
    """`async with AsyncClient() as c: async for chunk in await c.synthesize("Hi"): …`"""

    def __init__(self, socket_path: str | Path | None = None, *,
                 client_name: str = "kokorod-async-client", max_frame: int = 64 << 20) -> None:
        self.socket_path = resolve_socket(socket_path)
        self.client_name = client_name
        self.server: dict[str, Any] = {}
        self.warning: str | None = None
        self._ids = IdSource()
        self._routes: dict[Any, asyncio.Queue[dict[str, Any]]] = {}
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
                    rid = frame.get("id")
                    targets = list(self._routes.values()) if rid is None else [
                        q for q in [self._routes.get(rid)] if q is not None]
                    for q in targets:
                        q.put_nowait(frame)
        except (OSError, ProtocolError):
            pass
        finally:
            for q in list(self._routes.values()):
                q.put_nowait(_LOST)

    async def send(self, message: dict[str, Any]) -> None:
        self._writer.write(encode_frame(message))
        await self._writer.drain()

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        rid = self._ids.next()
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._routes[rid] = q
        try:
            await self.send({"op": op, "id": rid, **fields})
            frame = await q.get()
            if frame is _LOST:
                raise ConnectionLost(f"kokorod closed the connection before replying to {op}")
            return raise_if_error(frame)
        finally:
            self._routes.pop(rid, None)

    async def synthesize(self, text: str, *, voice: str | None = None, speed: float = 1.0,
                         lang: str | None = None, chunk_ms: int | None = None,
                         fmt: str = "f32") -> AsyncStream:
        rid = self._ids.next()
        stream = AsyncStream(self, rid, fmt)
        self._routes[rid] = stream.queue
        await self.send(synthesize_request(rid, text, voice=voice, speed=speed, lang=lang,
                                           chunk_ms=chunk_ms, fmt=fmt))
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
