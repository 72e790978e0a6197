#!/usr/bin/env python3
"""Does kokorod sound like Kokoro? Duration, pauses, run-to-run identity and peak of
kokorod's streamed audio against plain kokoro-onnx `create()` of the same text and voice;
with --held-out, sentences nothing was tuned on, in several voices: the speech's span
(first to last sound), the silence kept after the last sound, and (--asr) PocketSphinx's
word error rate for each.

    python bench/prosody.py --runs 3 --json bench/results/prosody.json
    python bench/prosody.py --held-out --runs 1 --asr --voices af_heart,bm_george,... \
        --json bench/results/held-out.json
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
import texts as bench_texts  # noqa: E402
from metrics import pauses, sound_span  # noqa: E402
from run_bench import BenchDaemon, write_report  # noqa: E402

from kokorod_client import Client  # noqa: E402
from kokorod_common.voice_names import describe  # noqa: E402

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
            voices: str, asr: bool = False) -> list[dict[str, Any]]:
    from kokoro_onnx import Kokoro

    one_shot = Kokoro(model, voices)
    rows = []
    for text in texts:
        ours = [streamed(socket, text, voice) for _ in range(runs)]
        # the language kokorod reads the voice in (en-gb for b*_ voices), so both say the same
        theirs, _ = one_shot.create(text, voice=voice, lang=describe(voice)["language"]
                                    or "en-us")
        span_ours, span_theirs = sound_span(ours[0]), sound_span(theirs)
        extra: dict[str, Any] = {
            "kokorod_speech_s": round(span_ours[1] - span_ours[0], 3),
            "one_shot_speech_s": round(span_theirs[1] - span_theirs[0], 3),
            "kokorod_after_last_sound_s": round(ours[0].size / 24_000 - span_ours[1], 3),
            "one_shot_after_last_sound_s": round(theirs.size / 24_000 - span_theirs[1], 3)}
        if asr:
            from asr import transcribe, wer
            extra["kokorod_wer"] = round(wer(text, transcribe(ours[0])), 3)
            extra["one_shot_wer"] = round(wer(text, transcribe(theirs)), 3)
        rows.append({
            "text": text, "voice": voice, **extra,
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
    p.add_argument("--voices", help="comma-separated: compare each (instead of --voice)")
    p.add_argument("--held-out", action="store_true",
                   help="the held-out sentences (bench/texts.py HELD_OUT)")
    p.add_argument("--asr", action="store_true", help="PocketSphinx word error rates")
    p.add_argument("--text", action="append", help="texts to compare (default: the table)")
    p.add_argument("--socket", help="an already running daemon")
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args(argv)
    info = machine.describe(REPO)
    daemon = BenchDaemon(args.socket, False)
    try:
        engine = daemon.status["engine"]
        chosen = args.text or (bench_texts.HELD_OUT if args.held_out else TEXTS)
        rows = []
        for voice in (args.voices.split(",") if args.voices else [args.voice]):
            rows += compare(daemon.socket, chosen, voice, args.runs, engine["model_path"],
                            engine["voices_path"], args.asr)
    finally:
        daemon.stop()
    print(f"cpu: {info['cpu_model']}; pauses: silences >= 0.12 s inside")
    per_voice = summarize(rows)
    for voice, s in per_voice.items():
        print(f"{voice}: speech {s['kokorod_speech_s']:.2f} vs {s['one_shot_speech_s']:.2f} s; "
              f"after the last sound {s['kokorod_after_last_sound_s']:.3f} vs "
              f"{s['one_shot_after_last_sound_s']:.3f} s; duration ×{s['duration_ratio']:.3f}"
              + (f"; WER {s['kokorod_wer']:.3f} vs {s['one_shot_wer']:.3f}"
                 if "kokorod_wer" in s else ""))
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
                  "machine": info, "voices": args.voices or args.voice, "per_voice": per_voice,
                  "rows": rows}
        write_report(args.json, report)
    return 0


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Means per voice of every number the rows share."""
    out: dict[str, dict[str, float]] = {}
    for voice in dict.fromkeys(r["voice"] for r in rows):
        group = [r for r in rows if r["voice"] == voice]
        keys = [k for k, v in group[0].items() if isinstance(v, float) and not
                isinstance(v, bool)]
        out[voice] = {k: round(float(np.mean([r[k] for r in group])), 4) for k in keys}
    return out


if __name__ == "__main__":
    sys.exit(main())
