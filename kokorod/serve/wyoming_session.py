"""One Wyoming connection (Home Assistant's voice pipeline, or any Wyoming client): its
events in, audio out, on the same request life as the socket and HTTP (requests.py).

`describe` → `info`. `synthesize` → `audio-start`, `audio-chunk`s as they are made,
`audio-stop`. The streaming form — `synthesize-start`, `synthesize-chunk`s of text as an
LLM writes it, `synthesize-stop` — speaks each sentence as soon as it is complete
(sentence_feed.py), all in one `audio-start` … `audio-stop`, then `synthesize-stopped`.
Each sentence (or the sentences one chunk completed) is one request: admitted, limited,
scheduled and counted like a socket client's. A `synthesize` that arrives inside a
streaming session is the copy Wyoming clients send for servers that do not stream: it is
ignored. Bad input gets an `error` event ({text, code}: the socket's error codes) and the
connection serves on; a peer that goes away has its request cancelled.

Events are read with the frame limit (KOKORO_MAX_FRAME_BYTES) on the header line, its
data and its payload, and not read at all while KOKORO_MAX_REQUESTS_PER_CONNECTION pieces
of work wait for the speaker: a peer cannot make the daemon buffer more than that.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from dataclasses import dataclass
from typing import Any

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.tts import SynthesizeStopped

from kokorod.serve import wyoming_info
from kokorod.serve.job import Job, Piece, final_frame
from kokorod.serve.requests import Requests
from kokorod.serve.sentence_feed import SentenceFeed
from kokorod_common.protocol import SAMPLE_RATE, ErrorCode, ProtocolError, samples_to_pcm

log = logging.getLogger(__name__)

_ids = itertools.count(1)
WIDTH, CHANNELS = 2, 1  # s16 mono: what every Wyoming client plays or converts from
# Wyoming's text_format → the daemon's (None: plain, or SSML when the text starts <speak)
TEXT_FORMATS: dict[Any, str | None] = {None: None, "text": "plain", "ssml": "ssml"}
MERGE_CHARS = 2000  # sentences waiting together are spoken as one request up to this size


class FramingError(Exception):
    """The peer's bytes cannot be read as events any more: the connection ends."""


@dataclass
class Say:
    """Speak this text (in the open audio stream; `close`: then end the stream)."""

    text: str
    voice: str | None
    close: bool
    text_format: str | None = None


@dataclass
class Fail:
    """Say this error (in its place among the audio asked for before it)."""

    code: str
    message: str


@dataclass
class Close:
    """End the audio stream if one is open; `stopped`: then say `synthesize-stopped`."""

    stopped: bool


async def read_event(reader: asyncio.StreamReader, limit: int) -> Event | None:
    """The next event (None at the end of the stream); FramingError when it is larger than
    `limit` or its lengths are unreadable. A header line that is not JSON is a ValueError:
    it was consumed whole, so the connection can go on."""
    try:
        line = await reader.readline()
    except ValueError as exc:  # longer than the reader's limit
        raise FramingError(f"an event header is over {limit} bytes") from exc
    if not line:
        return None
    if not line.strip():
        return Event(type="")
    header = json.loads(line)
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ValueError("an event header must be a JSON object with a string 'type'")
    lengths = [header.get("data_length") or 0, header.get("payload_length") or 0]
    if any(not isinstance(n, int) or n < 0 for n in lengths):
        raise FramingError("data_length and payload_length must be whole numbers")
    if sum(lengths) > limit:
        raise FramingError(f"an event of {sum(lengths)} bytes is over the limit of {limit}")
    data = header.get("data") if isinstance(header.get("data"), dict) else {}
    try:
        if lengths[0]:
            extra = json.loads(await reader.readexactly(lengths[0]))
            if isinstance(extra, dict):
                data.update(extra)
        payload = await reader.readexactly(lengths[1]) if lengths[1] else None
    except asyncio.IncompleteReadError:
        return None
    return Event(type=header["type"], data=data, payload=payload)


class WyomingSession:
    def __init__(self, requests: Requests, chunk_ms: int, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, limit: int) -> None:
        self.requests = requests
        self.chunk_ms = chunk_ms
        self.reader, self.writer, self.limit = reader, writer, limit
        self.client = f"wyoming-{next(_ids)}"
        self.work: asyncio.Queue[Say | Fail | Close] = asyncio.Queue()
        self.job: Job | None = None  # the request being spoken
        self.audio_open = False
        self.feed: SentenceFeed | None = None  # between synthesize-start and -stop
        self.stream_voice: str | None = None
        self.stream_failed = False
        self.stream_ssml: str | None = None  # a streamed SSML document, read at the stop
        self.tail: Say | None = None  # the stream's sentences not yet taken by the speaker
        self._write_lock = asyncio.Lock()
        self._taken = asyncio.Event()  # the speaker took an item: room in `work` again
        # Work queued ahead of the speaker, at most: then the peer's events wait unread
        # (back-pressure), so a peer that sends faster than it listens holds bounded memory.
        self.ahead = max(2, requests.config.max_requests_per_connection)

    async def serve(self) -> None:
        speaker = asyncio.get_running_loop().create_task(self._speak(), name=self.client)
        try:
            while not speaker.done():
                while self.work.qsize() >= self.ahead and not speaker.done():
                    self._taken.clear()
                    await self._taken.wait()
                try:
                    event = await read_event(self.reader, self.limit)
                except (ValueError, UnicodeDecodeError) as exc:
                    await self._error(ErrorCode.BAD_FRAME, f"not a Wyoming event: {exc}")
                    continue
                if event is None:
                    break
                await self._handle(event)
        except FramingError as exc:
            with contextlib.suppress(ConnectionError, OSError):
                await self._error(ErrorCode.FRAME_TOO_LARGE, f"{exc}; closing")
        except (ConnectionError, OSError):
            pass
        finally:
            if self.job is not None:
                self.job.cancel()  # the peer is gone: its speech with it
            speaker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await speaker
            self.writer.close()

    # ------------------------------------------------------------ events in
    async def _handle(self, event: Event) -> None:
        kind, data = event.type, event.data or {}
        if kind == "describe":
            names = self.requests.engine.voices.names()
            await self._send(wyoming_info.info(names).event())
        elif kind == "synthesize":
            if self.feed is not None:
                return  # the copy sent for servers that do not stream
            text = data.get("text")
            if self._text_ok(text, data) and (voice := self._voice(data)) is not False:
                self.work.put_nowait(Say(str(text), voice or None, close=True,
                                         text_format=TEXT_FORMATS[data.get("text_format")]))
                self.work.put_nowait(Close(stopped=False))
        elif kind == "synthesize-start":
            if self.feed is not None:  # a new stream replaces one never stopped
                self._end_stream()
            self.feed = SentenceFeed(self.requests.config.max_text_chars)
            voice = self._voice(data) if self._text_ok("", data) else False
            self.stream_failed = voice is False
            self.stream_voice = voice or None
            # SSML cannot be cut into sentences as it comes: it is read whole at the stop
            self.stream_ssml = "" if data.get("text_format") == "ssml" else None
        elif kind == "synthesize-chunk":
            if self.feed is None:
                await self._error(ErrorCode.BAD_REQUEST, "synthesize-chunk outside "
                                  "synthesize-start … synthesize-stop")
                return
            text = data.get("text")
            if not isinstance(text, str):
                await self._error(ErrorCode.BAD_REQUEST, "synthesize-chunk needs 'text'")
                return
            if self.stream_ssml is not None:
                self._ssml(text)
                return
            done = self.feed.add(text)
            if done and not self.stream_failed:
                self._sentences(" ".join(done))
        elif kind == "synthesize-stop":
            if self.feed is None:
                await self._error(ErrorCode.BAD_REQUEST, "synthesize-stop without "
                                  "synthesize-start")
                return
            self._end_stream()
        elif kind in ("ping",):
            await self._send(Event(type="pong", data={"text": data.get("text")}))
        elif kind:
            log.debug("wyoming: ignoring a %r event", kind[:40])

    def _end_stream(self) -> None:
        assert self.feed is not None
        rest = self.feed.finish()
        if rest and not self.stream_failed:
            self._sentences(rest)
        if self.stream_ssml and not self.stream_failed:
            self.work.put_nowait(Say(self.stream_ssml, self.stream_voice, close=False,
                                     text_format="ssml"))
        self.stream_ssml = None
        self.work.put_nowait(Close(stopped=True))
        self.feed = None
        self.tail = None

    def _ssml(self, text: str) -> None:
        assert self.stream_ssml is not None
        if self.stream_failed:
            return
        self.stream_ssml += text
        limit = self.requests.config.max_text_chars
        if len(self.stream_ssml) > limit:
            self.stream_failed, self.stream_ssml = True, ""
            self._error_soon(ErrorCode.TEXT_TOO_LONG, f"the streamed SSML is over the limit "
                             f"of {limit} characters (KOKORO_MAX_TEXT_CHARS)")

    def _sentences(self, text: str) -> None:
        """Complete sentences of the stream: joined to those still waiting for the speaker
        (one request reads them with their context), else a new request."""
        tail = self.tail
        if tail is not None and len(tail.text) + len(text) < MERGE_CHARS:
            tail.text += " " + text
            return
        self.tail = Say(text, self.stream_voice, close=False)
        self.work.put_nowait(self.tail)

    def _voice(self, data: dict[str, Any]) -> str | bool:
        """The Kokoro voice asked for ("" : the default), or False after an error event."""
        voice = data.get("voice")
        try:
            if voice is not None and not isinstance(voice, dict):
                raise ProtocolError(ErrorCode.BAD_VOICE, "voice must be an object")
            engine = self.requests.engine
            name = wyoming_info.voice_for(voice, engine.voices.names(), engine.default_voice)
            if name is not None:
                engine.voice_style(name)  # unknown or unreadable: said now
        except ProtocolError as exc:
            self._error_soon(exc.code, exc.message)
            return False
        return name or ""

    def _text_ok(self, text: Any, data: dict[str, Any]) -> bool:
        if not isinstance(text, str):
            self._error_soon(ErrorCode.BAD_REQUEST, "synthesize needs 'text' (a string)")
            return False
        if data.get("text_format") not in TEXT_FORMATS:
            self._error_soon(ErrorCode.BAD_TEXT_FORMAT, "text_format must be text or ssml")
            return False
        return True

    def _error_soon(self, code: str, message: str) -> None:
        """An error event in the order of the audio already asked for."""
        self.requests.counters["refused"] += 1
        self.work.put_nowait(Fail(code, message))

    # ------------------------------------------------------------ audio out
    async def _speak(self) -> None:
        """The one writer of audio: the work in order, a request at a time."""
        while True:
            item = await self.work.get()
            self._taken.set()
            if item is self.tail:
                self.tail = None  # being spoken: later sentences make a request of their own
            if isinstance(item, Fail):
                await self._error(item.code, item.message)
            elif isinstance(item, Close):
                if self.audio_open:
                    await self._send(AudioStop().event())
                    self.audio_open = False
                if item.stopped:
                    await self._send(SynthesizeStopped().event())
            else:
                await self._say(item)

    async def _say(self, item: Say) -> None:
        message = {"op": "synthesize", "id": f"{self.client}-{next(_ids)}", "text": item.text,
                   "voice": item.voice, "format": "s16", "chunk_ms": self.chunk_ms,
                   "priority": "message"}
        if item.text_format is not None:
            message["text_format"] = item.text_format
        requests = self.requests
        try:
            job = await requests.admit(message, self.client, (), 0)
        except ProtocolError as exc:
            if exc.code != ErrorCode.EMPTY_TEXT or item.close:  # "..." between sentences: quiet
                requests.counters["refused"] += 1
                await self._error(exc.code, exc.message)
            return
        self.job = job
        requests.stream(job)
        final: dict[str, Any] | None = None
        try:
            async for item in job.drain():
                assert isinstance(item, Piece)
                if not self.audio_open:
                    await self._send(AudioStart(SAMPLE_RATE, WIDTH, CHANNELS).event())
                    self.audio_open = True
                await self._send(AudioChunk(SAMPLE_RATE, WIDTH, CHANNELS,
                                            samples_to_pcm(item.audio, "s16")).event())
            final = final_frame(job)
        except (ConnectionError, OSError):
            job.cancel()
            final = final_frame(job)
        except asyncio.CancelledError:
            job.cancel()
            final = final_frame(job)
            raise
        finally:
            self.job = None
            requests.ended(job, final)
        if final is not None and final["op"] == "error":
            await self._error(final["code"], final["message"])

    # ------------------------------------------------------------ writing
    async def _send(self, event: Event) -> None:
        async with self._write_lock:
            await async_write_event(event, self.writer)

    async def _error(self, code: str, message: str) -> None:
        await self._send(Error(text=message, code=code).event())
