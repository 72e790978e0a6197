"""The anchors kokorod is compared with, on the same model, texts and machine.

1. plain kokoro-onnx `create()` in a warm process: time to audio = time to all audio;
2. kokoro-onnx `create_stream()` in a warm process: time to its first batch;
3. a cold process that loads the model and speaks (what users do without a daemon).
The bench's own process hosts 1 and 2 while the daemon sits idle.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

SAMPLE_RATE = 24_000

COLD_SCRIPT = """
import json, sys, time
from kokoro_onnx import Kokoro
model, voices, voice, text = sys.argv[1:5]
kokoro = Kokoro(model, voices)
audio, rate = kokoro.create(text, voice=voice, lang="en-us")
print(json.dumps({"done_unix": time.time(), "samples": int(audio.size)}))
"""


class WarmKokoro:
    """kokoro-onnx as its README uses it, loaded once and warmed up."""

    def __init__(self, model: str, voices: str, voice: str) -> None:
        from kokoro_onnx import Kokoro

        self.kokoro = Kokoro(model, voices)
        self.voice = voice
        self.kokoro.create("Warming up.", voice=voice, lang="en-us")

    def one_shot(self, text: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        audio, _ = self.kokoro.create(text, voice=self.voice, lang="en-us")
        total = time.perf_counter() - t0
        seconds = audio.size / SAMPLE_RATE
        return {"ttfa_s": total, "total_s": total, "audio_s": seconds,
                "rtf": total / seconds if seconds else None}

    def stream(self, text: str) -> dict[str, Any]:
        async def run() -> dict[str, Any]:
            t0 = time.perf_counter()
            first = None
            samples = 0
            async for audio, _ in self.kokoro.create_stream(text, voice=self.voice,
                                                            lang="en-us"):
                if first is None:
                    first = time.perf_counter() - t0
                samples += audio.size
            total = time.perf_counter() - t0
            seconds = samples / SAMPLE_RATE
            return {"ttfa_s": first, "total_s": total, "audio_s": seconds,
                    "rtf": total / seconds if seconds else None}

        return asyncio.run(run())


def cold_process(model: str, voices: str, voice: str, text: str) -> dict[str, Any]:
    """Process start → audio returned, loading the model from scratch."""
    t0 = time.time()
    out = subprocess.run([sys.executable, "-c", COLD_SCRIPT, model, voices, voice, text],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-500:]}
    result = json.loads(out.stdout.strip().splitlines()[-1])
    total = result["done_unix"] - t0
    seconds = result["samples"] / SAMPLE_RATE
    return {"ttfa_s": total, "total_s": total, "audio_s": seconds,
            "rtf": total / seconds if seconds else None}
