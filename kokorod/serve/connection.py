"""One client connection: read frames, dispatch ops, stream each request's audio back.

Every request that passes validation gets a writer task; that task alone sends
the request's frames (`start`, `chunk`…, then exactly one `end` or `error`),
so the guarantee holds however the request ends: finished, cancelled by the
client, by a disconnect, by shutdown, or by an engine fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any

from kokorod.serve import peercred, session_ops
from kokorod.serve.job import Job, final_frame
from kokorod.serve.speech_queue import Utterance
from kokorod.serve.state import ReloadError, ServerState
from kokorod.synth.engine import EngineError
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
_ANONYMOUS = itertools.count(1)


class Connection:
    def __init__(self, state: ServerState, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.state = state
        self.reader = reader
        self.writer = writer
        # Who is speaking, for `stop` and mode `interrupt`: the hello's client_name,
        # else a name of this connection's own.
        self.client_name = f"anonymous-{next(_ANONYMOUS)}"
        self.jobs: dict[Any, Job] = {}
        self.played: dict[Any, Utterance] = {}  # play: true requests, by id
        self.tasks: set[asyncio.Task[None]] = set()
        self.closed = False
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

    # ------------------------------------------------------------ main loop
    async def serve(self) -> None:
        sock = self.writer.get_extra_info("socket")
        peer_uid = peercred.peer_uid(sock) if sock is not None else None
        if peer_uid is not None and not peercred.allowed(peer_uid):
            log.warning("refused a connection from uid %s", peer_uid)
            await self.send_quietly(error_frame(None, ErrorCode.PEER_REFUSED,
                                                "connection refused: not the daemon's user"))
            self.writer.close()
            return
        decoder = FrameDecoder(self.state.config.max_frame_bytes)
        try:
            while not self.closed:
                # A client that never sends a frame, or stalls mid-frame, is closed
                # after the idle timeout; one that has spoken may idle (editors do).
                patient = self.frames_seen and not decoder.pending_partial()
                timeout = None if patient else self.state.config.idle_timeout_s
                try:
                    data = await asyncio.wait_for(self.reader.read(READ_SIZE), timeout)
                except asyncio.TimeoutError:
                    log.info("closing an idle connection (no complete frame in %.0fs)",
                             timeout)
                    self.state.counters["idle_closed"] += 1
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
                self.state.counters["refused"] += 1
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
            self.state.counters["refused"] += 1
            await self.send_quietly(error_frame(safe_id(message), exc.code, exc.message))
        except (ConnectionError, OSError):
            raise
        except Exception as exc:  # a bug must not take the daemon down
            log.exception("internal error handling %r", message.get("op"))
            self.state.counters["refused"] += 1
            await self.send_quietly(
                error_frame(safe_id(message), ErrorCode.INTERNAL, f"internal error: {exc}")
            )

    async def close(self, reason: str = "cancelled") -> None:
        """End this connection's requests, each with its final frame (`reason`: why, e.g.
        "shutdown" when the daemon stops), then the connection."""
        if self.closed:
            return
        for job in list(self.jobs.values()):
            job.cancel(reason)
        if self.tasks:  # the stream writers send their end frames (a client that does not
            await asyncio.wait(self.tasks, timeout=2.0)  # read cannot hold this up)
        self.closed = True
        if self.tasks:  # writers still blocked on a client that does not read
            if not self.writer.is_closing():
                self.writer.transport.abort()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

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
            "voices": self.state.engine.voices.names(),
            "default_voice": self.state.engine.default_voice,
            "formats": list(FORMATS),
            "ops": list(REQUEST_OPS),
            "text_formats": list(TEXT_FORMATS),
            "priorities": list(PRIORITIES),
            "client_name": self.client_name,
            "max_frame_bytes": self.state.config.max_frame_bytes,
        })

    async def op_ping(self, message: dict[str, Any]) -> None:
        await self.send({"op": "pong", "id": check_id(message)})

    async def op_voices(self, message: dict[str, Any]) -> None:
        await self.send({"op": "voices", "id": check_id(message),
                         "voices": self.state.engine.voice_list(),
                         "default_voice": self.state.engine.default_voice})

    async def op_status(self, message: dict[str, Any]) -> None:
        await self.send({"op": "status", "id": check_id(message), **self.state.status()})

    async def op_session_status(self, message: dict[str, Any]) -> None:
        await self.send({"op": "session-status", "id": check_id(message),
                         **session_ops.session_status(self.state.engine)})

    async def op_optimization_status(self, message: dict[str, Any]) -> None:
        caches = self.state.status().get("caches", {})
        await self.send({"op": "optimization-status", "id": check_id(message),
                         **session_ops.optimization_status(self.state.engine, caches)})

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
                self.state.counters["refused"] += 1
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
            self.state.requests.speech.cancel(utt)

    async def op_stop(self, message: dict[str, Any]) -> None:
        """Stop speech: this client's (by client_name), a named client's, or everyone's."""
        rid = check_id(message)
        scope, name = parse_stop_scope(message)
        target = None if scope == "all" else (name or self.client_name)
        stopped = self.state.requests.stop(target, "stopped")
        await self.send({"op": "stop", "id": rid, "stopped": stopped,
                         "client_name": target})

    async def op_pause(self, message: dict[str, Any]) -> None:
        """Hold the daemon's playback (one speaker: for every client)."""
        rid = check_id(message)
        self.state.requests.speech.pause()
        await self.send({"op": "pause", "id": rid, **self.state.requests.speech.snapshot()})

    async def op_resume(self, message: dict[str, Any]) -> None:
        rid = check_id(message)
        self.state.requests.speech.resume()
        await self.send({"op": "resume", "id": rid, **self.state.requests.speech.snapshot()})

    async def op_queue(self, message: dict[str, Any]) -> None:
        """What the daemon is playing and what waits, in order."""
        await self.send({"op": "queue", "id": check_id(message),
                         **self.state.requests.speech.snapshot()})

    async def op_synthesize(self, message: dict[str, Any]) -> None:
        requests = self.state.requests
        taken = {*self.jobs, *self.played}
        job = await requests.admit(message, self.client_name, taken, len(self.jobs))
        rid = job.request.id
        if job.request.play:
            await self._play(job)
            return
        self.jobs[rid] = job
        task = asyncio.get_running_loop().create_task(self._stream(job))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        requests.stream(job)

    async def _play(self, job: Job) -> None:
        """play: true — the daemon's speech queue plays it; events come back here."""
        rid = job.request.id

        async def send(frame: dict[str, Any]) -> None:
            if frame.get("op") in ("end", "error"):
                self.played.pop(rid, None)
            await self.send_quietly(frame)

        await self.send({"op": "start", "id": rid, "play": True, "sample_rate": SAMPLE_RATE,
                         "voice": self.state.requests.voice_name(job),
                         "priority": job.request.priority, "client_name": self.client_name,
                         **({"note": job.note} if job.note else {})})
        self.played[rid] = self.state.requests.play(job, send)

    # ------------------------------------------------------------ streaming
    async def _stream(self, job: Job) -> None:
        """The writer of one streamed request: start, marks and chunks in order, one final."""
        req = job.request
        chunks = samples = 0
        final: dict[str, Any] | None = None
        try:
            await self.send({"op": "start", "id": req.id, "sample_rate": SAMPLE_RATE,
                             "format": req.format, "chunk_ms": req.chunk_ms,
                             "chars": len(req.text),
                             "voice": self.state.requests.voice_name(job),
                             **({"note": job.note} if job.note else {})})
            error: EngineError | None = None
            try:
                async for piece in job.pieces():
                    while job.marks and job.marks[0]["sample"] < samples + piece.size:
                        await self.send({"op": "mark", "id": req.id, **job.marks.pop(0)})
                    await self.send({"op": "chunk", "id": req.id, "seq": chunks,
                                     "pcm": samples_to_pcm(piece, req.format),
                                     "samples": int(piece.size)})
                    chunks += 1
                    samples += int(piece.size)
            except EngineError as exc:
                error = exc
            for mark in [m for m in job.marks if m["kind"] == "ssml"]:  # after the last word
                await self.send({"op": "mark", "id": req.id, **mark})
            final = final_frame(job, chunks=chunks, samples=samples, error=error)
        except (ConnectionError, OSError):
            job.cancel()
        except asyncio.CancelledError:
            job.cancel()
            raise
        except Exception as exc:  # a fault of ours: this request ends, the rest go on
            log.exception("streaming %r failed", req.id)
            job.cancel("error")
            final = error_frame(req.id, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        finally:
            self.jobs.pop(req.id, None)
            self.state.requests.ended(job, final)
            if final is not None:
                await self.send_quietly(final)
