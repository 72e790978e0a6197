"""What the Wyoming server costs: time to the first audio chunk over Wyoming (a new
connection per request, as Home Assistant makes) against the first chunk over the Unix
socket, same daemon, the same text each way in a rotating order, a new text every trial;
and for streaming synthesis, the time from the `synthesize-chunk` that completes the first
sentence to that sentence's first audio chunk. The audio cache is off, so that no way
hears the text a second time for free.

Streaming: the text is sent as an LLM's tokens are, a word at a time with its leading
space (" word"); a sentence is complete when the next one's first word arrives, so that is
the chunk timed. The words before it are sent at once, then the timer starts.

    python bench/wyoming_latency.py --trials 15 --json bench/results/wyoming-latency.json
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import machine
import texts
from run_bench import REPO, BenchDaemon, write_report
from wyoming.audio import AudioChunk
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from kokorod_client import Client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def socket_first(client: Client, text: str) -> float:
    started = time.perf_counter()
    first = None
    for _ in client.synthesize(text, fmt="s16"):
        first = first or time.perf_counter()
    assert first is not None
    return first - started


async def _drain(client: AsyncTcpClient, last: str) -> None:
    while True:
        event = await client.read_event()
        assert event is not None and event.type != "error", event
        if event.type == last:
            return


async def wyoming_first(port: int, text: str) -> float:
    started = time.perf_counter()
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Synthesize(text).event())
        while True:
            event = await client.read_event()
            assert event is not None and event.type != "error", event
            if AudioChunk.is_type(event.type):
                first = time.perf_counter() - started
                break
        await _drain(client, "audio-stop")
    return first


async def streaming_first(port: int, first: str, second: str) -> float:
    """From the chunk that completes `first` (the second sentence's first word) to the
    first audio chunk."""
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(SynthesizeStart().event())
        words = first.split()
        for i, word in enumerate(words):
            await client.write_event(SynthesizeChunk(word if i == 0 else " " + word).event())
        rest = second.split()
        started = time.perf_counter()
        await client.write_event(SynthesizeChunk(" " + rest[0]).event())
        while True:
            event = await client.read_event()
            assert event is not None and event.type != "error", event
            if AudioChunk.is_type(event.type):
                took = time.perf_counter() - started
                break
        for word in rest[1:]:
            await client.write_event(SynthesizeChunk(" " + word).event())
        await client.write_event(SynthesizeStop().event())
        await _drain(client, "synthesize-stopped")
    return took


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=15)
    p.add_argument("--text-offset", type=int, default=700)
    p.add_argument("--json")
    args = p.parse_args()
    port = free_port()
    daemon = BenchDaemon(None, verbose=False, env={
        "KOKORO_WYOMING_URI": f"tcp://127.0.0.1:{port}", "KOKORO_AUDIO_CACHE_MB": "0"})
    rows: dict[str, list[float]] = {"socket": [], "wyoming": [], "wyoming_streaming": []}
    try:
        with Client(daemon.socket, client_name="bench-wyoming") as client:
            socket_first(client, "Warm up.")
            asyncio.run(wyoming_first(port, "Warm up."))
            runs = {"socket": lambda text: socket_first(client, text),
                    "wyoming": lambda text: asyncio.run(wyoming_first(port, text))}
            order = list(runs)
            for i in range(args.trials):
                text = texts.PRESETS["short"](args.text_offset + i)
                for key in order[i % 2:] + order[:i % 2]:  # none always first
                    rows[key].append(runs[key](text))
                pair = texts.medium(args.text_offset + i).split(". ", 1)
                first, second = pair[0] + ".", pair[1] if len(pair) > 1 else "And so on."
                rows["wyoming_streaming"].append(asyncio.run(
                    streaming_first(port, first, second)))
    finally:
        daemon.stop()
    info = machine.describe(REPO)
    ms = {k: {"p50": round(statistics.median(v) * 1000, 1), "p95": round(pct(v, 0.95) * 1000, 1),
              "n": len(v)} for k, v in rows.items()}
    print(f"CPU: {info['cpu_model']} ({info['cores']} cores, shared with other work)")
    print(f"command: python bench/wyoming_latency.py --trials {args.trials}")
    for key, label in (("socket", "socket: first chunk"),
                       ("wyoming", "Wyoming: first audio-chunk"),
                       ("wyoming_streaming", "streaming: sentence → audio")):
        print(f"{label:30} p50 {ms[key]['p50']:7.1f} ms   p95 {ms[key]['p95']:7.1f} ms   "
              f"(n {ms[key]['n']})")
    added = ms["wyoming"]["p50"] - ms["socket"]["p50"]
    print(f"Wyoming adds (p50): {added:+.1f} ms (connection included)")
    if args.json:
        write_report(args.json, {"machine": info, "command": " ".join(sys.argv),
                                 "note": "2 cores shared with other engineers' work",
                                 "first_audio_s": rows, "ms": ms,
                                 "wyoming_adds_p50_ms": round(added, 1)})


if __name__ == "__main__":
    main()
