#!/usr/bin/env python3
"""Does kokorod sound like Kokoro? Duration, pauses, run-to-run identity and peak of
kokorod's streamed audio against plain kokoro-onnx `create()` of the same text and voice.

    python bench/prosody.py --runs 3 --json bench/results/prosody.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import machine  # noqa: E402
from metrics import pauses  # noqa: E402
from run_bench import BenchDaemon, write_report  # noqa: E402

from kokorod_client import Client  # noqa: E402

TEXTS = [
    "When the rain finally stopped, the children ran outside and splashed through every "
    "puddle they could find on the way to school.",
    "Hello there. The meeting moved to the small room on the second floor, next to the "
    "kitchen.",
    "She said that she would call back later, but the phone never rang and nobody knew "
    "where she had gone.",
]


def streamed(socket: Path, text: str, voice: str | None) -> np.ndarray:
    with Client(socket) as client:
        chunks = [c.samples for c in client.synthesize(text, voice=voice)
                  if hasattr(c, "samples")]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def compare(socket: Path, texts: list[str], voice: str, runs: int, model: str,
            voices: str) -> list[dict[str, Any]]:
    from kokoro_onnx import Kokoro

    one_shot = Kokoro(model, voices)
    rows = []
    for text in texts:
        ours = [streamed(socket, text, voice) for _ in range(runs)]
        theirs, _ = one_shot.create(text, voice=voice, lang="en-us")
        rows.append({
            "text": text,
            "kokorod_s": [round(a.size / 24_000, 3) for a in ours],
            "kokorod_pauses": [len(pauses(a)) for a in ours],
            "identical_runs": all(np.array_equal(ours[0], a) for a in ours[1:]),
            "kokorod_peak": round(float(max(np.abs(a).max() for a in ours)), 4),
            "one_shot_s": round(theirs.size / 24_000, 3),
            "one_shot_pauses": len(pauses(theirs)),
            "one_shot_peak": round(float(np.abs(theirs).max()), 4),
            "duration_ratio": round(ours[0].size / theirs.size, 4),
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--voice", default="af_heart")
    p.add_argument("--text", action="append", help="texts to compare (default: the table)")
    p.add_argument("--socket", help="an already running daemon")
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args(argv)
    info = machine.describe(REPO)
    daemon = BenchDaemon(args.socket, False)
    try:
        engine = daemon.status["engine"]
        rows = compare(daemon.socket, args.text or TEXTS, args.voice, args.runs,
                       engine["model_path"], engine["voices_path"])
    finally:
        daemon.stop()
    print(f"cpu: {info['cpu_model']}; voice {args.voice}; pauses: silences >= 0.12 s inside")
    print(f"{'kokorod durations':>26} {'pauses':>8} {'same':>5} {'one-shot':>9} {'pauses':>7} "
          f"{'ratio':>6}  text")
    for r in rows:
        durations = " / ".join(f"{d:.2f}" for d in r["kokorod_s"])
        print(f"{durations:>26} {max(r['kokorod_pauses']):>8} "
              f"{'yes' if r['identical_runs'] else 'NO':>5} {r['one_shot_s']:>9.2f} "
              f"{r['one_shot_pauses']:>7} {r['duration_ratio']:>6.3f}  {r['text'][:40]}…")
    if args.json:
        report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "command": " ".join(["python", "bench/prosody.py", *(argv or sys.argv[1:])]),
                  "machine": info, "voice": args.voice, "rows": rows}
        write_report(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
