"""OpenAI's speech API on 127.0.0.1, so apps written for Kokoro-FastAPI speak with kokorod.

`POST /v1/audio/speech` ({model, input, voice, response_format, speed}) is a second
front-end on the same request life as the Unix socket (requests.py): the same
admission, the same scheduler turns, the same cancellation when the client goes
away. aiohttp serves it in the daemon's own event loop (a mature asyncio HTTP stack
with streamed responses; the daemon's loop is already asyncio, so no second server
thread). Audio streams while it is synthesised for `pcm`, `mp3` and `opus`; `wav` and
`flac` come whole (their headers hold the length); `stream_format: "sse"` (speech_sse.py)
sends them as OpenAI's events, with word marks on request. Errors have OpenAI's shape:
{"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import numpy as np
from aiohttp import web

from kokorod.serve import speech_sse
from kokorod.serve.job import Piece, final_frame
from kokorod.serve.requests import Requests
from kokorod_common.protocol import (
    SAMPLE_RATE,
    SPEED_RANGE,
    ErrorCode,
    ProtocolError,
    error_frame,
)

log = logging.getLogger(__name__)

MODELS = ("kokoro", "tts-1", "tts-1-hd", "gpt-4o-mini-tts")
# OpenAI's voice names → the Kokoro voice closest in kind (documented in the README).
OPENAI_VOICES = {"alloy": "af_alloy", "echo": "am_echo", "fable": "bm_fable",
                 "onyx": "am_onyx", "nova": "af_nova", "shimmer": "af_bella",
                 "ash": "am_adam", "ballad": "bm_george", "coral": "af_heart",
                 "sage": "af_sarah", "verse": "am_michael"}
# response_format → (container, subtype, content type, streamed while synthesised)
FORMATS: dict[str, tuple[str, str, str, bool]] = {
    "mp3": ("MP3", "MPEG_LAYER_III", "audio/mpeg", True),
    "opus": ("OGG", "OPUS", "audio/ogg", True),
    "flac": ("FLAC", "PCM_16", "audio/flac", False),
    "wav": ("WAV", "PCM_16", "audio/wav", False),
    "pcm": ("RAW", "PCM_16", "audio/pcm", True),  # 24 kHz mono s16le, as OpenAI's pcm
}
OPENAI_SPEED = (0.25, 4.0)
_STATUS = {ErrorCode.BUSY: 429, ErrorCode.SHUTTING_DOWN: 503, ErrorCode.TEXT_TOO_LONG: 413}
_ids = itertools.count(1)


class Tap:
    """A seekable byte sink for soundfile: what was appended since the last `take()` can
    be streamed; a header rewritten at close (mp3's, ogg's) is only in `whole()`."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.pos = 0
        self.sent = 0

    def write(self, b: bytes) -> int:
        end = self.pos + len(b)
        self.data[self.pos:end] = b
        self.pos = end
        return len(b)

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: len(self.data) + offset}[whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:  # soundfile asks for it; nothing is read back
        return b""

    def take(self) -> bytes:
        new = bytes(self.data[self.sent:])
        self.sent = len(self.data)
        return new


# Streamed mp3 is constant-bitrate (80 kbit/s at 24 kHz: libsndfile's level 0.5): a
# decoder reckons the duration of a CBR stream from its size. VBR needs the Xing/LAME
# frame that lame fills in at close, long after the stream's first bytes were sent; sent
# zero-filled, decoders stopped short (4.50 s of 5.23 s).
MP3_CBR = {"compression_level": 0.5, "bitrate_mode": "CONSTANT"}
_MP3_BITRATES = {3: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
                 2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def mp3_frame_size(header: bytes) -> int:
    """The length in bytes of the MPEG layer III frame this 4-byte header starts."""
    version = (header[1] >> 3) & 3
    bitrate = _MP3_BITRATES[3 if version == 3 else 2][header[2] >> 4] * 1000
    rate = _MP3_RATES[version][(header[2] >> 2) & 3]
    return (144 if version == 3 else 72) * bitrate // rate + ((header[2] >> 1) & 1)


class Encoder:
    """float32 pieces in, the response's bytes out (as soon as the format allows)."""

    def __init__(self, fmt: str) -> None:
        import soundfile as sf

        container, subtype, _, self.streamed = FORMATS[fmt]
        self.tap = Tap()
        extra: dict[str, Any] = {"endian": "LITTLE"} if container == "RAW" else {}
        if fmt == "mp3":
            extra.update(MP3_CBR)
        # lame's first frame holds only the Xing/LAME tag, written at close: not streamed
        self._tag_frame = fmt == "mp3"
        self.file = sf.SoundFile(self.tap, "w", samplerate=SAMPLE_RATE, channels=1,
                                 format=container, subtype=subtype, **extra)

    def _streamed(self, data: bytes) -> bytes:
        if self._tag_frame and len(self.tap.data) >= 4:
            size = mp3_frame_size(bytes(self.tap.data[:4]))
            if len(self.tap.data) < size:
                return b""
            self._tag_frame = False
            self.tap.sent = max(self.tap.sent, size)  # skip it
            return self.tap.take()
        return data

    def add(self, samples: np.ndarray) -> bytes:
        self.file.write(samples)
        if not self.streamed:
            return b""
        return self._streamed(b"") if self._tag_frame else self.tap.take()

    def finish(self) -> bytes:
        self.file.close()
        if not self.streamed:
            return bytes(self.tap.data)
        return self._streamed(b"") if self._tag_frame else self.tap.take()


def error(status: int, message: str, code: str, param: str | None = None,
          kind: str = "invalid_request_error") -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind, "param": param,
                                        "code": code}}, status=status)


class SpeechAPI:
    def __init__(self, requests: Requests, token: str, max_body: int) -> None:
        self.requests = requests
        self.token = token
        self.app = web.Application(client_max_size=max_body,
                                   middlewares=[self._errors, self._auth])
        self.app.add_routes([web.post("/v1/audio/speech", self.speech),
                             web.get("/v1/models", self.models),
                             web.get("/v1/audio/voices", self.voices),
                             web.get("/health", self.health)])
        self._runner: web.AppRunner | None = None

    async def start(self, port: int) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """aiohttp's own 404, 405 and 413 in OpenAI's shape, as every other error."""
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except web.HTTPMethodNotAllowed as exc:
            allowed = ", ".join(sorted(exc.allowed_methods))
            response = error(405, f"{request.method} is not allowed on {request.path}; use "
                                  f"{allowed}", "method_not_allowed")
            response.headers["Allow"] = allowed
            return response
        except web.HTTPNotFound:
            return error(404, f"no such route: {request.method} {request.path} (the API: POST "
                              "/v1/audio/speech, GET /v1/models, GET /v1/audio/voices, GET "
                              "/health)", "not_found")
        except web.HTTPRequestEntityTooLarge:
            return error(413, "the request body is too large", "request_too_large")

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        wanted = f"Bearer {self.token}"
        if self.token and request.path != "/health" and \
                request.headers.get("Authorization", "") != wanted:
            return error(401, "a valid API key (KOKORO_HTTP_TOKEN) is required",
                         "invalid_api_key", kind="authentication_error")
        return await handler(request)  # type: ignore[no-any-return]

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "owned_by": "kokorod"} for m in MODELS]})

    async def voices(self, request: web.Request) -> web.Response:
        names = self.requests.engine.voices.names()
        return web.json_response({"voices": names, "openai_voices": OPENAI_VOICES})

    async def speech(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except web.HTTPRequestEntityTooLarge:
            raise
        except Exception:
            return error(400, "the body must be a JSON object", "invalid_json")
        if not isinstance(body, dict):
            return error(400, "the body must be a JSON object", "invalid_json")
        fields = self._fields(body)
        if isinstance(fields, web.Response):
            return fields
        message, fmt = fields
        try:
            job = await self.requests.admit(message, "http", (), 0)
        except ProtocolError as exc:
            param = {"empty_text": "input", "text_too_long": "input", "unknown_voice": "voice",
                     "bad_voice": "voice", "bad_lang": "lang", "bad_ssml": "input",
                     "bad_phonemes": "input"}.get(exc.code)
            return error(_STATUS.get(exc.code, 400), exc.message, exc.code, param)
        encoder = Encoder(fmt)
        if body.get("stream_format") == "sse":  # OpenAI's events, and word marks
            return await speech_sse.respond(request, self.requests, job, encoder)
        response = web.StreamResponse(headers={"Content-Type": FORMATS[fmt][2]})
        final: dict[str, Any] | None = None
        self.requests.stream(job)  # HTTP never plays: streamed back, read through the drain
        try:
            await response.prepare(request)
            async for piece in job.drain():
                assert isinstance(piece, Piece)
                data = encoder.add(np.asarray(piece.audio))
                if data:
                    await response.write(data)
            if job.error is not None:  # the status line is out: all we can do is end short
                log.error("speech request failed: %s", job.error)
            else:
                await response.write(encoder.finish())
                await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):  # the client went away
            job.cancel()
            raise
        except Exception as exc:  # a fault of ours: counted as failed, aiohttp says 500
            job.cancel("error")
            final = error_frame(job.request.id, ErrorCode.INTERNAL, f"{exc}")
            raise
        finally:
            self.requests.ended(job, final or final_frame(job))
        return response

    def _fields(self, body: dict[str, Any]) -> tuple[dict[str, Any], str] | web.Response:
        """OpenAI's fields → a synthesize message and the response format."""
        model = body.get("model", "kokoro")
        if model not in MODELS:
            return error(400, f"model must be one of {', '.join(MODELS)}", "model_not_found",
                         "model")
        fmt = body.get("response_format", "mp3")
        if fmt not in FORMATS:
            return error(400, f"response_format {fmt!r} is not supported; use "
                              f"{', '.join(FORMATS)}", "unsupported_format", "response_format")
        speed = body.get("speed", 1.0)
        lo, hi = OPENAI_SPEED
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or \
                not lo <= speed <= hi:
            return error(400, f"speed must be a number from {lo} to {hi}", "invalid_speed",
                         "speed")
        if not isinstance(body.get("input"), str):
            return error(400, "input must be a string", "invalid_input", "input")
        voice = body.get("voice")
        if voice is not None and not isinstance(voice, str):
            return error(400, "voice must be a string", "invalid_voice", "voice")
        voice = OPENAI_VOICES.get(str(voice).lower(), voice) if voice else None
        kokoro_speed = min(SPEED_RANGE[1], max(SPEED_RANGE[0], float(speed)))
        stream_format = body.get("stream_format", "audio")
        if stream_format not in speech_sse.STREAM_FORMATS:
            return error(400, "stream_format must be audio or sse", "unsupported_stream_format",
                         "stream_format")
        marks = body.get("marks", "segment")
        if marks not in ("segment", "word") or (marks == "word" and stream_format != "sse"):
            return error(400, 'marks "word" (word timings) needs stream_format "sse"',
                         "invalid_marks", "marks")
        return {"op": "synthesize", "id": f"http-{next(_ids)}", "text": body["input"],
                "voice": voice, "speed": kokoro_speed, "format": "f32", "marks": marks}, fmt
