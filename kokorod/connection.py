"""One client connection: read frames, dispatch ops, stream each request's audio back.

Every request that passes validation gets a writer task; that task alone sends
the request's frames (`start`, `chunk`…, then exactly one `end` or `error`),
so the guarantee holds however the request ends: finished, cancelled by the
client, by a disconnect, by shutdown, or by an engine fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
from typing import TYPE_CHECKING, Any

from kokorod import peercred
from kokorod.engine import EngineError
from kokorod.protocol import (
    FORMATS,
    PRIORITIES,
    PROTOCOL_VERSION,
    REQUEST_OPS,
    SAMPLE_RATE,
    TEXT_FORMATS,
    ErrorCode,
    FrameDecoder,
    ProtocolError,
    SynthesizeRequest,
    check_id,
    check_op,
    encode_frame,
    error_frame,
    parse_stop_scope,
    parse_synthesize,
    safe_id,
    samples_to_pcm,
    typed_field,
)
from kokorod.scheduler import Job
from kokorod.speech_queue import Utterance
from kokorod.text import prepare_text

if TYPE_CHECKING:
    from kokorod.server import Daemon

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
LONG_TEXT = 4000  # characters: cleanup runs off the event loop beyond this
_ANONYMOUS = itertools.count(1)


class Connection:
    def __init__(self, daemon: Daemon, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.daemon = daemon
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
            await self.send_quietly(error_frame(None, ErrorCode.BAD_REQUEST,
                                                "connection refused: not the daemon's user"))
            self.writer.close()
            return
        decoder = FrameDecoder(self.daemon.config.max_frame_bytes)
        try:
            while not self.closed:
                # A client that never sends a frame, or stalls mid-frame, is closed
                # after the idle timeout; one that has spoken may idle (editors do).
                patient = self.frames_seen and not decoder.pending_partial()
                timeout = None if patient else self.daemon.config.idle_timeout_s
                try:
                    data = await asyncio.wait_for(self.reader.read(READ_SIZE), timeout)
                except asyncio.TimeoutError:
                    log.info("closing an idle connection (no complete frame in %.0fs)",
                             timeout)
                    self.daemon.counters["idle_closed"] += 1
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
                self.daemon.counters["errors"] += 1
                await self.send_quietly(error_frame(None, exc.code, exc.message))
                if exc.fatal:
                    return False
                continue
            self.frames_seen += 1
            await self.dispatch(message)

    async def dispatch(self, message: dict[str, Any]) -> None:
        try:
            op = check_op(message)
            handler = getattr(self, f"op_{op}")
            await handler(message)
        except ProtocolError as exc:
            self.daemon.counters["errors"] += 1
            await self.send_quietly(error_frame(safe_id(message), exc.code, exc.message))
        except (ConnectionError, OSError):
            raise
        except Exception as exc:  # a bug must not take the daemon down
            log.exception("internal error handling %r", message.get("op"))
            self.daemon.counters["errors"] += 1
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
        self.daemon.scheduler.notify()
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
            "daemon_version": self.daemon.version,
            "sample_rate": SAMPLE_RATE,
            "voices": self.daemon.engine.voices.names(),
            "default_voice": self.daemon.engine.default_voice,
            "formats": list(FORMATS),
            "ops": list(REQUEST_OPS),
            "text_formats": list(TEXT_FORMATS),
            "priorities": list(PRIORITIES),
            "client_name": self.client_name,
            "max_frame_bytes": self.daemon.config.max_frame_bytes,
        })

    async def op_ping(self, message: dict[str, Any]) -> None:
        await self.send({"op": "pong", "id": check_id(message)})

    async def op_voices(self, message: dict[str, Any]) -> None:
        await self.send({"op": "voices", "id": check_id(message),
                         "voices": self.daemon.engine.voice_list(),
                         "default_voice": self.daemon.engine.default_voice})

    async def op_status(self, message: dict[str, Any]) -> None:
        await self.send({"op": "status", "id": check_id(message), **self.daemon.status()})

    async def op_reload(self, message: dict[str, Any]) -> None:
        """Re-read settings and the model choice (`kokorod model use`); replies when swapped."""
        rid = check_id(message)
        rebuild = typed_field(message, "rebuild", (bool,), False)

        async def run() -> None:
            from kokorod.server import ReloadError

            try:
                result = await self.daemon.reload(rebuild=rebuild)
            except ReloadError as exc:
                self.daemon.counters["errors"] += 1
                await self.send_quietly(error_frame(rid, ErrorCode.RELOAD_FAILED, str(exc)))
                return
            await self.send_quietly({"op": "reload", "id": rid, **result})

        task = asyncio.get_running_loop().create_task(run(), name="reload-op")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def op_cancel(self, message: dict[str, Any]) -> None:
        """Idempotent: cancelling an unknown or finished id does nothing."""
        rid = check_id(message)
        job = self.jobs.get(rid)
        if job is not None:
            job.cancel()
            self.daemon.scheduler.notify()
        utt = self.played.get(rid)
        if utt is not None:
            self.daemon.speech.cancel(utt)

    async def op_stop(self, message: dict[str, Any]) -> None:
        """Stop speech: this client's (by client_name), a named client's, or everyone's."""
        rid = check_id(message)
        scope, name = parse_stop_scope(message)
        target = None if scope == "all" else (name or self.client_name)
        stopped = self.daemon.stop_speech(target, "stopped")
        await self.send({"op": "stop", "id": rid, "stopped": stopped,
                         "client_name": target})

    async def op_pause(self, message: dict[str, Any]) -> None:
        """Hold the daemon's playback (one speaker: for every client)."""
        rid = check_id(message)
        self.daemon.speech.pause()
        await self.send({"op": "pause", "id": rid, **self.daemon.speech.snapshot()})

    async def op_resume(self, message: dict[str, Any]) -> None:
        rid = check_id(message)
        self.daemon.speech.resume()
        await self.send({"op": "resume", "id": rid, **self.daemon.speech.snapshot()})

    async def op_queue(self, message: dict[str, Any]) -> None:
        """What the daemon is playing and what waits, in order."""
        await self.send({"op": "queue", "id": check_id(message),
                         **self.daemon.speech.snapshot()})

    async def op_synthesize(self, message: dict[str, Any]) -> None:
        config = self.daemon.config
        req = parse_synthesize(message, max_text_chars=config.max_text_chars,
                               default_chunk_ms=config.chunk_ms)
        if self.daemon.shutting_down:
            raise ProtocolError(ErrorCode.SHUTTING_DOWN, "the daemon is shutting down")
        if req.id in self.jobs or req.id in self.played:
            raise ProtocolError(ErrorCode.DUPLICATE_ID,
                                f"id {req.id!r} is already in use on this connection")
        if len(self.jobs) >= config.max_requests_per_connection:
            raise ProtocolError(ErrorCode.BUSY, "too many requests in flight on this connection "
                                f"(limit {config.max_requests_per_connection})")
        if self.daemon.scheduler.active_jobs >= config.max_active_requests:
            raise ProtocolError(ErrorCode.BUSY, "the daemon is at its limit of "
                                f"{config.max_active_requests} requests; retry shortly")
        if req.play and self.daemon.speech.full():
            raise ProtocolError(ErrorCode.BUSY, f"the speech queue is full "
                                f"({config.max_queued} waiting); retry shortly")
        engine = self.daemon.engine
        voice = engine.voice_style(req.voice)
        lang = engine.lang_for(req.voice, req.text, req.lang)
        req = await self._cleaned(req, lang)
        if req.mode != "queue":
            target = None if req.mode == "stop-all" else self.client_name
            self.daemon.stop_speech(target, "interrupted")
        job = Job(req, voice, lang)
        self.daemon.counters["requests"] += 1
        if req.play:
            await self._queue_for_playback(job)
            return
        self.jobs[req.id] = job
        task = asyncio.get_running_loop().create_task(self._stream(job))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        self.daemon.scheduler.submit(job)

    async def _cleaned(self, req: SynthesizeRequest, lang: str) -> SynthesizeRequest:
        """The request with its text as it will be spoken (Markdown, code, numbers…)."""
        args = (req.text, req.text_format, lang, req.normalize)
        if len(req.text) > LONG_TEXT:
            text = await asyncio.get_running_loop().run_in_executor(None, prepare_text, *args)
        else:
            text = prepare_text(*args)
        if not text.strip():
            raise ProtocolError(ErrorCode.EMPTY_TEXT,
                                f"the {req.text_format} text has nothing speakable in it")
        return dataclasses.replace(req, text=text)

    async def _queue_for_playback(self, job: Job) -> None:
        """play: true — the daemon's speech queue plays it; events come back here."""
        rid = job.request.id

        async def send(frame: dict[str, Any]) -> None:
            if frame.get("op") in ("end", "error"):
                self.played.pop(rid, None)
                self._count_final(frame)
            await self.send_quietly(frame)

        utt = Utterance(job, self.client_name, send)
        self.played[rid] = utt
        await self.send({"op": "start", "id": rid, "play": True, "sample_rate": SAMPLE_RATE,
                         "voice": job.request.voice or self.daemon.engine.default_voice,
                         "priority": job.request.priority, "client_name": self.client_name})
        self.daemon.speech.add(utt)

    # ------------------------------------------------------------ streaming
    async def _stream(self, job: Job) -> None:
        req = job.request
        seq = 0
        samples_sent = 0
        final: dict[str, Any] | None = None
        try:
            await self.send({"op": "start", "id": req.id, "sample_rate": SAMPLE_RATE,
                             "format": req.format, "chunk_ms": req.chunk_ms,
                             "chars": len(req.text),
                             "voice": req.voice or self.daemon.engine.default_voice})
            try:
                async for piece in job.pieces(self.daemon.scheduler.notify):
                    while job.marks and job.marks[0][0] < samples_sent + piece.size:
                        sample, char, text = job.marks.pop(0)
                        await self.send({"op": "mark", "id": req.id, "sample": sample,
                                         "char": char, "text": text})
                    await self.send({"op": "chunk", "id": req.id, "seq": seq,
                                     "pcm": samples_to_pcm(piece, req.format),
                                     "samples": int(piece.size)})
                    if job.first_audio_at is None:
                        job.first_audio_at = time.perf_counter()
                    seq += 1
                    samples_sent += int(piece.size)
            except EngineError as exc:
                final = error_frame(req.id, ErrorCode.ENGINE_ERROR, str(exc))
            if final is None and seq == 0 and not job.cancelled:
                final = error_frame(req.id, ErrorCode.EMPTY_TEXT,
                                    "the text has nothing speakable in it")
            if final is None:
                final = self._end_frame(job, seq, samples_sent)
        except (ConnectionError, OSError):
            job.cancel()
        except asyncio.CancelledError:
            job.cancel()
            raise
        finally:
            self.jobs.pop(req.id, None)
            self.daemon.scheduler.notify()
            if final is not None:
                self._count_final(final)
                await self.send_quietly(final)

    def _count_final(self, frame: dict[str, Any]) -> None:
        """Status counters from a request's one final frame."""
        if frame["op"] == "error":
            key = "errors"
        else:
            key = "cancelled" if frame["cancelled"] else "completed"
        self.daemon.counters[key] += 1

    def _end_frame(self, job: Job, chunks: int, samples: int) -> dict[str, Any]:
        now = time.perf_counter()

        def ms(t: float | None) -> float | None:
            return None if t is None else round((t - job.created_at) * 1000, 1)

        return {
            "op": "end", "id": job.request.id, "chunks": chunks, "samples": samples,
            "audio_seconds": round(samples / SAMPLE_RATE, 4), "cancelled": job.cancelled,
            "reason": job.reason or "done",
            "timings": {"queued_ms": ms(job.started_at), "first_chunk_ms": ms(job.first_audio_at),
                        "total_ms": ms(now), "synth_ms": round(job.synth_s * 1000, 1),
                        "segments": job.segments},
        }
