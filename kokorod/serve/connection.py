"""One client connection: read frames, dispatch ops, stream each request's audio back.

A request that passes validation gets its `start` at once (requests.py decides
whether the daemon's speaker plays it or it is streamed back); a streamed one gets
a writer task, which alone sends the rest (marks and chunks as `Job.drain` hands
them out, then exactly one `end` or `error`), so the guarantee holds however the
request ends: finished, cancelled by the client, by a disconnect,
by shutdown, or by an engine fault. The final frame is put in the connection's
buffer without waiting for the client to read; closing (shutdown too) ends a
writer blocked on a client that does not read, puts its final frame behind the
chunks already buffered, and closes only once the buffer is flushed or
`FLUSH_S` has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any

from kokorod.serve import peercred, session_ops
from kokorod.serve.job import Job, Piece, final_frame, start_frame
from kokorod.serve.speech_queue import Utterance
from kokorod.serve.state import ReloadError, ServerState
from kokorod_common.protocol import (
    FORMATS,
    PRIORITIES,
    PROTOCOL_VERSION,
    REQUEST_OPS,
    SAMPLE_RATE,
    TEXT_FORMATS,
    ErrorCode,
    FrameDecoder,
    ProtocolError,
    check_id,
    check_op,
    encode_frame,
    error_frame,
    parse_stop_scope,
    safe_id,
    samples_to_pcm,
    typed_field,
)

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
FLUSH_S = 8.0  # closing: how long frames already buffered may wait for a slow reader
REFUSED_LINGER_S = 1.0  # a refused peer: how long its frames are read and dropped
_ANONYMOUS = itertools.count(1)


class Connection:
    def __init__(self, state: ServerState, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.state = state
        self.requests = state.requests  # admission, stop, counting; the current settings
        self.speech = state.speech  # the daemon's speaker: pause, resume, queue, cancel
        self.reader = reader
        self.writer = writer
        # Who is speaking, for `stop` and mode `interrupt`: the hello's client_name,
        # else a name of this connection's own.
        self.client_name = f"anonymous-{next(_ANONYMOUS)}"
        self.jobs: dict[Any, Job] = {}
        self.played: dict[Any, Utterance] = {}  # play: true requests, by id
        self.tasks: set[asyncio.Task[None]] = set()  # reloads and stream writers
        self.writers: dict[Any, asyncio.Task[None]] = {}  # by request id
        self.closed = False  # no more frames may be sent
        self._closing: asyncio.Future[None] | None = None
        self.frames_seen = 0

    # ------------------------------------------------------------ io
    async def send(self, message: dict[str, Any]) -> None:
        if self.closed or self.writer.is_closing():
            raise ConnectionResetError("client went away")
        self.writer.write(encode_frame(message))
        await self.writer.drain()

    async def send_quietly(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await self.send(message)

    def put(self, message: dict[str, Any]) -> None:
        """Into the buffer without waiting for the client to read (a final frame: it must
        not be lost to a writer stopped while blocked); flushed by `close` at the latest."""
        if not self.writer.is_closing():
            self.writer.write(encode_frame(message))

    # ------------------------------------------------------------ main loop
    async def serve(self) -> None:
        sock = self.writer.get_extra_info("socket")
        peer_uid = peercred.peer_uid(sock) if sock is not None else None
        if peer_uid is not None and not peercred.allowed(peer_uid):
            log.warning("refused a connection from uid %s", peer_uid)
            await self.send_quietly(error_frame(None, ErrorCode.PEER_REFUSED,
                                                "connection refused: not the daemon's user"))
            await self._refused_close()
            return
        decoder = FrameDecoder(self.requests.config.max_frame_bytes)
        try:
            while not self.closed:
                # A client that never sends a frame, or stalls mid-frame, is closed
                # after the idle timeout; one that has spoken may idle (editors do).
                patient = self.frames_seen and not decoder.pending_partial()
                timeout = None if patient else self.requests.config.idle_timeout_s
                try:
                    data = await asyncio.wait_for(self.reader.read(READ_SIZE), timeout)
                except asyncio.TimeoutError:
                    log.info("closing an idle connection (no complete frame in %.0fs)",
                             timeout)
                    self.requests.counters["idle_closed"] += 1
                    break
                if not data:
                    break
                decoder.feed(data)
                if not await self._drain_frames(decoder):
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            await self.close()

    async def _drain_frames(self, decoder: FrameDecoder) -> bool:
        """Handle every complete frame; False when the connection must close."""
        while True:
            try:
                message = next(decoder)
            except StopIteration:
                return True
            except ProtocolError as exc:
                self.requests.counters["refused"] += 1
                await self.send_quietly(error_frame(None, exc.code, exc.message))
                if exc.fatal:
                    return False
                continue
            self.frames_seen += 1
            await self.dispatch(message)

    async def dispatch(self, message: dict[str, Any]) -> None:
        try:
            op = check_op(message)
            handler = getattr(self, f"op_{op.replace('-', '_')}")
            await handler(message)
        except ProtocolError as exc:
            self.requests.counters["refused"] += 1
            await self.send_quietly(error_frame(safe_id(message), exc.code, exc.message))
        except (ConnectionError, OSError):
            raise
        except Exception as exc:  # a bug must not take the daemon down
            log.exception("internal error handling %r", message.get("op"))
            self.requests.counters["refused"] += 1
            await self.send_quietly(
                error_frame(safe_id(message), ErrorCode.INTERNAL, f"internal error: {exc}")
            )

    async def close(self, reason: str = "cancelled") -> None:
        """End this connection's requests, each with its final frame (`reason`: why, e.g.
        "shutdown" when the daemon stops), then the connection: once what is buffered has
        reached the client, or after FLUSH_S (a client that does not read cannot hold
        the daemon up longer)."""
        if self._closing is not None:  # shutdown and the client's hang-up may cross
            await asyncio.shield(self._closing)
            return
        self._closing = asyncio.get_running_loop().create_future()
        try:
            await self._close(reason)
        finally:
            self._closing.set_result(None)

    async def _close(self, reason: str) -> None:
        for job in list(self.jobs.values()):
            job.cancel(reason)
        await asyncio.sleep(0)  # writers not blocked on the client end by themselves
        writers = list(self.writers.values())
        for task in writers:  # blocked on a client that does not read: their final
            task.cancel()  # frame goes into the buffer behind the chunks (see _stream)
        await asyncio.gather(*writers, return_exceptions=True)
        for job in list(self.jobs.values()):  # a writer cancelled before it ever ran
            self._ended(job, final_frame(job))
        self.closed = True
        if not await self._flushed(FLUSH_S):
            self.writer.transport.abort()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)

    async def _refused_close(self) -> None:
        """The refusal, then EOF; what the peer sent is read and dropped (bounded) before
        the close: closing with unread data resets the connection, and the peer's read
        could lose the refusal to the reset."""
        await self._flushed(REFUSED_LINGER_S)
        with contextlib.suppress(OSError, RuntimeError):
            if self.writer.can_write_eof():
                self.writer.write_eof()
        deadline = asyncio.get_running_loop().time() + REFUSED_LINGER_S
        with contextlib.suppress(Exception):
            while (left := deadline - asyncio.get_running_loop().time()) > 0:
                if not await asyncio.wait_for(self.reader.read(READ_SIZE), left):
                    break  # the peer read the refusal and hung up
        self.writer.close()

    async def _flushed(self, timeout: float) -> bool:
        """Wait until the buffer is handed to the socket (the client has read enough)."""
        transport = self.writer.transport
        deadline = asyncio.get_running_loop().time() + timeout
        while not transport.is_closing() and transport.get_write_buffer_size():
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    # ------------------------------------------------------------ ops
    async def op_hello(self, message: dict[str, Any]) -> None:
        rid = check_id(message)
        name = message.get("client_name")
        if isinstance(name, str) and name.strip():
            self.client_name = name[:64]
        await self.send({
            "op": "hello",
            "id": rid,
            "protocol": PROTOCOL_VERSION,
            "daemon_version": self.state.version,
            "sample_rate": SAMPLE_RATE,
            "voices": self.requests.engine.voices.names(),
            "default_voice": self.requests.engine.default_voice,
            "formats": list(FORMATS),
            "ops": list(REQUEST_OPS),
            "text_formats": list(TEXT_FORMATS),
            "priorities": list(PRIORITIES),
            "client_name": self.client_name,
            "max_frame_bytes": self.requests.config.max_frame_bytes,
        })

    async def op_ping(self, message: dict[str, Any]) -> None:
        await self.send({"op": "pong", "id": check_id(message)})

    async def op_voices(self, message: dict[str, Any]) -> None:
        await self.send({"op": "voices", "id": check_id(message),
                         "voices": self.requests.engine.voice_list(),
                         "default_voice": self.requests.engine.default_voice})

    async def op_status(self, message: dict[str, Any]) -> None:
        await self.send({"op": "status", "id": check_id(message), **self.state.status()})

    async def op_session_status(self, message: dict[str, Any]) -> None:
        await self.send({"op": "session-status", "id": check_id(message),
                         **session_ops.session_status(self.requests.engine)})

    async def op_optimization_status(self, message: dict[str, Any]) -> None:
        caches = self.state.status().get("caches", {})
        await self.send({"op": "optimization-status", "id": check_id(message),
                         **session_ops.optimization_status(self.requests.engine, caches)})

    async def op_phonemes(self, message: dict[str, Any]) -> None:
        """What the front will read for a text (after cleanup, SSML and the lexicon)."""
        from kokorod.serve.phonemes_op import phonemes

        rid = check_id(message)
        await self.send({"op": "phonemes", "id": rid,
                         **await phonemes(self.state.requests, message)})

    async def op_session_reset(self, message: dict[str, Any]) -> None:
        """New sessions and empty caches (a reload that rebuilds); connections stay."""
        self._reload(check_id(message), True, "session-reset")

    async def op_reload(self, message: dict[str, Any]) -> None:
        """Re-read settings and the model choice (`kokorod model use`); replies when swapped."""
        self._reload(check_id(message), typed_field(message, "rebuild", (bool,), False),
                     "reload")

    def _reload(self, rid: Any, rebuild: bool, reply: str) -> None:
        async def run() -> None:
            try:
                result = await self.state.reload(rebuild)
            except ReloadError as exc:
                self.requests.counters["refused"] += 1
                await self.send_quietly(error_frame(rid, ErrorCode.RELOAD_FAILED, str(exc)))
                return
            await self.send_quietly({"op": reply, "id": rid, **result})

        task = asyncio.get_running_loop().create_task(run(), name="reload-op")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def op_cancel(self, message: dict[str, Any]) -> None:
        """Idempotent: cancelling an unknown or finished id does nothing."""
        rid = check_id(message)
        job = self.jobs.get(rid)
        if job is not None:
            job.cancel()
        utt = self.played.get(rid)
        if utt is not None:
            self.speech.cancel(utt)

    async def op_stop(self, message: dict[str, Any]) -> None:
        """Stop speech: this client's (by client_name), a named client's, or everyone's."""
        rid = check_id(message)
        scope, name = parse_stop_scope(message)
        target = None if scope == "all" else (name or self.client_name)
        stopped = self.requests.stop(target, "stopped")
        await self.send({"op": "stop", "id": rid, "stopped": stopped,
                         "client_name": target})

    async def op_pause(self, message: dict[str, Any]) -> None:
        """Hold the daemon's playback (one speaker: for every client)."""
        rid = check_id(message)
        self.speech.pause()
        await self.send({"op": "pause", "id": rid, **self.speech.snapshot()})

    async def op_resume(self, message: dict[str, Any]) -> None:
        rid = check_id(message)
        self.speech.resume()
        await self.send({"op": "resume", "id": rid, **self.speech.snapshot()})

    async def op_queue(self, message: dict[str, Any]) -> None:
        """What the daemon is playing and what waits, in order."""
        await self.send({"op": "queue", "id": check_id(message),
                         **self.speech.snapshot()})

    async def op_synthesize(self, message: dict[str, Any]) -> None:
        taken = {*self.jobs, *self.played}
        job = await self.requests.admit(message, self.client_name, taken, len(self.jobs))
        rid = job.request.id
        self.put(start_frame(job))  # before the speaker's first event or the first chunk

        async def played(frame: dict[str, Any]) -> None:
            if frame.get("op") in ("end", "error"):
                self.played.pop(rid, None)
            await self.send_quietly(frame)

        utt = self.requests.start(job, played)
        if utt is not None:
            self.played[rid] = utt
            return
        self.jobs[rid] = job
        task = asyncio.get_running_loop().create_task(self._stream(job))
        self.writers[rid] = task
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # ------------------------------------------------------------ streaming
    async def _stream(self, job: Job) -> None:
        """The writer of one streamed request: marks and chunks in order, then one final."""
        req = job.request
        final: dict[str, Any] | None = None
        try:
            async for item in job.drain(marks=True):
                if isinstance(item, Piece):
                    await self.send({"op": "chunk", "id": req.id, "seq": item.seq,
                                     "pcm": samples_to_pcm(item.audio, req.format),
                                     "samples": int(item.audio.size)})
                else:
                    await self.send({"op": "mark", "id": req.id, **item})
            final = final_frame(job)
        except (ConnectionError, OSError):
            job.cancel()  # the client is gone: nothing can reach it
        except asyncio.CancelledError:  # closing, blocked on a client that does not read
            job.cancel("shutdown")
            final = final_frame(job)
            raise
        except Exception as exc:  # a fault of ours: this request ends, the rest go on
            log.exception("streaming %r failed", req.id)
            job.cancel("error")
            final = error_frame(req.id, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        finally:
            self._ended(job, final)

    def _ended(self, job: Job, final: dict[str, Any] | None) -> None:
        """A streamed request is over: its final frame (None: no one to send it to) goes
        into the buffer, and it is counted once."""
        rid = job.request.id
        self.jobs.pop(rid, None)
        self.writers.pop(rid, None)
        self.requests.ended(job, final)
        if final is not None:
            self.put(final)
