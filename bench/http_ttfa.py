"""The OpenAI-compatible endpoint's cost: time to the first audio byte over HTTP against
time to the first chunk over the Unix socket, same daemon, the same text each way in a
rotating order, a new text every trial. The difference is what HTTP adds.

    python bench/http_ttfa.py --trials 10 --json bench/results/http.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import machine
import texts
from run_bench import REPO, BenchDaemon, write_report

from kokorod_client import Client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def socket_ttfa(client: Client, text: str) -> float:
    started = time.perf_counter()
    stream = client.synthesize(text, fmt="s16")
    first = None
    for _ in stream:
        first = first or time.perf_counter()
    assert first is not None
    return first - started


def http_ttfb(port: int, text: str, fmt: str) -> float:
    body = json.dumps({"model": "tts-1", "input": text, "response_format": fmt})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    conn.request("POST", "/v1/audio/speech", body=body,
                 headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200, response.read()
    response.read(1)
    first = time.perf_counter() - started
    response.read()
    conn.close()
    return first


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--text-offset", type=int, default=500)
    p.add_argument("--json")
    args = p.parse_args()
    port = free_port()
    daemon = BenchDaemon(None, verbose=False, env={"KOKORO_HTTP_PORT": str(port)})
    rows: dict[str, list[float]] = {"socket": [], "http_pcm": [], "http_mp3": []}
    try:
        with Client(daemon.socket, client_name="bench-http") as client:
            socket_ttfa(client, "Warm up.")
            runs = {"socket": lambda text: socket_ttfa(client, text),
                    "http_pcm": lambda text: http_ttfb(port, text, "pcm"),
                    "http_mp3": lambda text: http_ttfb(port, text, "mp3")}
            order = list(runs)
            for i in range(args.trials):
                # The same text through each way (kokorod keeps no audio cache), in a
                # rotating order so that none is always first.
                text = texts.PRESETS["short"](args.text_offset + i)
                for key in order[i % 3:] + order[:i % 3]:
                    rows[key].append(runs[key](text))
    finally:
        daemon.stop()
    info = machine.describe(REPO)
    p50 = {k: round(statistics.median(v) * 1000, 1) for k, v in rows.items()}
    print(f"CPU: {info['cpu_model']} ({info['cores']} cores)")
    print(f"command: python bench/http_ttfa.py --trials {args.trials}")
    for key, label in (("socket", "socket: first chunk"), ("http_pcm", "HTTP pcm: first byte"),
                       ("http_mp3", "HTTP mp3: first byte")):
        print(f"{label:24} p50 {p50[key]:7.1f} ms   (min {min(rows[key]) * 1000:.0f}, "
              f"max {max(rows[key]) * 1000:.0f}, n {len(rows[key])})")
    print(f"HTTP adds (p50): pcm {p50['http_pcm'] - p50['socket']:+.1f} ms, "
          f"mp3 {p50['http_mp3'] - p50['socket']:+.1f} ms")
    if args.json:
        write_report(args.json, {"machine": info, "command": " ".join(sys.argv),
                                 "first_audio_s": rows, "p50_ms": p50})


if __name__ == "__main__":
    main()
