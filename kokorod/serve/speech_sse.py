"""`POST /v1/audio/speech` with `stream_format: "sse"`: the audio as OpenAI's server-sent
events, and (kokorod's own addition) the word marks beside it.

`speech.audio.delta` {audio: base64} carries the requested format's bytes as they are made
(raw s16 for `pcm`; mp3 and opus frames as the encoder gives them; wav and flac, whose
headers hold the length, in one delta at the end); one `speech.audio.done` {usage} ends the
stream. With `marks: "word"` each word comes as a `speech.audio.word` event — the socket's
word mark (PROTOCOL.md: sample, samples, span into `input`, text) plus its start and end
in seconds — before the delta that holds its first sample. Apps that know only OpenAI's
events skip the type they do not know. The request's life is http_api's: admission
there, then streamed, cancelled when the client leaves, counted once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import numpy as np
from aiohttp import web

from kokorod.serve.job import Job, Piece, final_frame
from kokorod.serve.requests import Requests
from kokorod_common.protocol import SAMPLE_RATE, ErrorCode

log = logging.getLogger(__name__)

STREAM_FORMATS = ("audio", "sse")


def event(fields: dict[str, Any]) -> bytes:
    """One server-sent event: a `data:` line of JSON and a blank line."""
    return b"data: " + json.dumps(fields, separators=(",", ":")).encode() + b"\n\n"


def delta(data: bytes) -> bytes:
    return event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()})


def word(mark: dict[str, Any]) -> bytes:
    start, length = int(mark["sample"]), int(mark["samples"])
    return event({"type": "speech.audio.word", "sample": start, "samples": length,
                  "span": list(mark["span"]), "text": mark["text"],
                  "start": round(start / SAMPLE_RATE, 4),
                  "end": round((start + length) / SAMPLE_RATE, 4)})


def done(input_text: str, samples: int) -> bytes:
    """OpenAI's closing event. Kokoro has no billing tokens: `input_tokens` counts the
    input's characters, `output_tokens` is 0; the audio's length is given beside."""
    chars = len(input_text)
    return event({"type": "speech.audio.done",
                  "usage": {"input_tokens": chars, "output_tokens": 0, "total_tokens": chars},
                  "samples": samples, "audio_seconds": round(samples / SAMPLE_RATE, 4)})


async def respond(request: web.Request, requests: Requests, job: Job, encoder: Any) -> \
        web.StreamResponse:
    """Stream an admitted job as server-sent events (`encoder`: http_api.Encoder)."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    requests.stream(job)
    final = None
    try:
        await response.prepare(request)
        async for item in job.drain(marks=True):
            if not isinstance(item, Piece):
                if item["kind"] == "word":
                    await response.write(word(item))
                continue
            data = encoder.add(np.asarray(item.audio))
            if data:
                await response.write(delta(data))
        rest = encoder.finish()
        if rest:
            await response.write(delta(rest))
        final = final_frame(job)
        if final["op"] == "error":  # the status line is out: an error event ends the stream
            server = final["code"] == ErrorCode.ENGINE_ERROR
            if server:
                log.error("speech request failed: %s", final["message"])
            await response.write(event({"type": "error", "error": {
                "message": final["message"],
                "type": "server_error" if server else "invalid_request_error",
                "param": None if server else "input", "code": final["code"]}}))
        else:
            await response.write(done(job.original or job.request.text, job.samples_out))
        await response.write_eof()
    except (ConnectionError, asyncio.CancelledError):  # the client went away
        job.cancel()
        final = final_frame(job)
        raise
    finally:
        requests.ended(job, final)
    return response
