"""asyncio client: the same operations, replies, streams, queue policy, timeouts and
autostart as the blocking Client (kokorod_client/core.py holds what they share)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from kokorod_client.core import (
    LOST,
    POLL_S,
    READ_BYTES,
    REPLY_TIMEOUT_S,
    STREAM_QUEUE_FRAMES,
    IdSource,
    Inbound,
    Operations,
    Router,
    StreamFrames,
    answer,
    lost_mid_stream,
)
from kokorod_common.messages import Chunk, version_warning
from kokorod_common.paths import resolve_socket
from kokorod_common.protocol import encode_frame, request_frame, synthesize_message


def _offer(q: asyncio.Queue[dict[str, Any]]) -> Callable[[dict[str, Any]], Any]:
    """Deliver into a bounded queue (core's policy): the read loop awaits when the caller
    falls behind, never for the loss notice."""
    def deliver(frame: dict[str, Any]) -> Any:
        if frame is LOST:  # from Router.lose(), which awaits nothing
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(frame)
            return None
        return q.put(frame)  # awaited by the read loop
    return deliver


class AsyncStream(StreamFrames):
    def __init__(self, client: AsyncClient, rid: int, fmt: str) -> None:
        super().__init__(rid, fmt, asyncio.Event())
        self.client = client
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=STREAM_QUEUE_FRAMES)

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        getter: asyncio.Future[dict[str, Any]] | None = None
        try:
            while self.end is None:
                # one get kept across polls (never cancelled with a frame in hand)
                getter = getter or asyncio.ensure_future(self.queue.get())
                done, _ = await asyncio.wait({getter}, timeout=POLL_S)
                if not done:
                    if self.client.router.lost:
                        raise lost_mid_stream()
                    continue
                frame, getter = getter.result(), None
                chunk = self.take(frame)
                if chunk is not None:
                    yield chunk
        finally:
            if getter is not None:
                getter.cancel()
            self.client.router.close(self.id)

    async def cancel(self) -> None:
        await self.client.send(request_frame("cancel", self.id))


class AsyncClient(Operations):
    """`async with AsyncClient() as c: async for chunk in await c.synthesize("Hi"): …`

    Every operation of Client is here too (`await c.status()`, `await c.stop()`…);
    `autostart` starts a daemon when none serves, `timeout` bounds each one-reply op."""

    def __init__(self, socket_path: str | Path | None = None, *, autostart: bool = False,
                 client_name: str = "kokorod-async-client", timeout: float = REPLY_TIMEOUT_S,
                 max_frame: int = 64 << 20) -> None:
        self.socket_path = resolve_socket(socket_path)
        self.client_name = client_name
        self.autostart = autostart
        self.timeout = timeout
        self.server: dict[str, Any] = {}
        self.warning: str | None = None
        self.router = Router()
        self._ids = IdSource()
        self._inbound = Inbound(self.router, max_frame)
        self._reader: asyncio.StreamReader
        self._writer: asyncio.StreamWriter
        self._task: asyncio.Task[None] | None = None

    async def connect(self) -> AsyncClient:
        path = str(self.socket_path)
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(path)
        except OSError:
            if not self.autostart:
                raise
            from kokorod_common import launcher  # only now: a running daemon needs none of it

            await asyncio.to_thread(launcher.ensure_running, self.socket_path)
            self._reader, self._writer = await asyncio.open_unix_connection(path)
        self._task = asyncio.get_running_loop().create_task(self._read_loop())
        self.server = await self.request("hello", client_name=self.client_name)
        self.warning = version_warning(self.server)
        return self

    async def _read_loop(self) -> None:
        with self._inbound.reading():
            while data := await self._reader.read(READ_BYTES):
                for deliver, frame in self._inbound.frames(data):
                    await deliver(frame)

    async def send(self, message: dict[str, Any]) -> None:
        self._writer.write(encode_frame(message))
        await self._writer.drain()

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a one-reply op and wait for its reply (DaemonError for an error frame,
        TimeoutError after `timeout`, ConnectionLost when the connection goes first)."""
        rid = self._ids.next()
        replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.router.open(rid, _offer(replies))
        try:
            await self.send(request_frame(op, rid, **fields))
            try:
                frame: dict[str, Any] | None = await asyncio.wait_for(replies.get(),
                                                                      self.timeout)
            except asyncio.TimeoutError:
                frame = None
            return answer(op, frame, self.timeout)
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
        self.router.open(rid, _offer(stream.queue))
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
        try:
            return await self.connect()
        except BaseException:
            await self.close()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
