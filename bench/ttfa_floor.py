"""The least time any window plan can take to first audio on this machine, against one-shot.

A request's first audio needs its first segment's front (text, durations, F0, the
decoder's blocks) and one generator call. The smallest window the plan allows (16
frames, and its context) is the cheapest such call, so the daemon's own first step with
that window is a floor under every plan's time to first audio (a plan that used it would
also stall: the next window cannot be ready in its 200 ms of audio). This times that
step, and the step with the window the daemon's plan chooses, in-process on the warm
engine, for the bench's short and medium texts, against kokoro-onnx `create()` of the same
text: the ratios say how far planning alone could bring time to first audio here. For
four clients at once (the bench's 3 medium and 1 short) the last to start waits for the
others' first steps at least: the sum of four floors.

    python bench/ttfa_floor.py --texts 10 --json bench/results/ttfa-floor.json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import anchors  # noqa: E402
import machine  # noqa: E402
import texts  # noqa: E402

from kokorod.config import load  # noqa: E402
from kokorod.synth.engine import Engine  # noqa: E402
from kokorod.synth.segment import SegmentStream  # noqa: E402
from kokorod.synth.windows import MIN_WINDOW_FRAMES, Windows  # noqa: E402


def first_step_s(engine: Engine, text: str, voice: str, first: int | None) -> float:
    """Seconds of the daemon's first step for `text`: its first segment's front and a first
    window of `first` frames (None: the window the engine's plan chooses)."""
    config = engine.config
    segment = SegmentStream(text).next(config.first_segment_chars, config.segment_chars)
    assert segment is not None
    schedule = engine.schedule
    if first is not None:
        schedule = dataclasses.replace(schedule, first=first, adapt=False)
    pieces = engine.begin(segment, engine.voice_style(voice), 1.0, "en-us", Windows(schedule))
    started = time.perf_counter()
    while pieces.step() is None:  # (a step without audio: a silent lead, none here)
        pass
    took = time.perf_counter() - started
    pieces.interrupt()
    return took


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=10, help="texts per preset")
    ap.add_argument("--voice", default="af_heart")
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args(argv)
    engine = Engine(dataclasses.replace(load(), warmup=True))
    if not engine.streaming:
        print("no streaming vocoder here: nothing to plan", file=sys.stderr)
        return 1
    warm = anchors.WarmKokoro(str(engine.files.model), str(engine.files.voices), args.voice)
    rows: list[dict[str, Any]] = []
    for preset in ("short", "medium"):
        for i in range(args.texts):
            text = texts.PRESETS[preset](i)
            engine.phonemize(text, "en-us")  # phonemes of every run alike (a cache hit)
            row = {"preset": preset, "chars": len(text),
                   "floor_s": first_step_s(engine, text, args.voice, MIN_WINDOW_FRAMES),
                   "plan_s": first_step_s(engine, text, args.voice, None),
                   "one_shot_s": warm.one_shot(text)["ttfa_s"]}
            rows.append(row)
            print(f"{preset} {i}: {len(text)} chars, floor {row['floor_s'] * 1000:.0f} ms, "
                  f"plan {row['plan_s'] * 1000:.0f} ms, one-shot "
                  f"{row['one_shot_s'] * 1000:.0f} ms", file=sys.stderr, flush=True)
    summary: dict[str, Any] = {}
    for preset in ("short", "medium"):
        group = [r for r in rows if r["preset"] == preset]
        med = {k: statistics.median(r[k] for r in group)
               for k in ("floor_s", "plan_s", "one_shot_s")}
        summary[preset] = {**{k: round(v, 4) for k, v in med.items()},
                           "floor_ratio": round(med["floor_s"] / med["one_shot_s"], 3),
                           "plan_ratio": round(med["plan_s"] / med["one_shot_s"], 3)}
    floor_short = summary["short"]["floor_s"]
    four = 3 * summary["medium"]["floor_s"] + floor_short
    plan_short = summary["short"]["plan_s"]
    summary["four_clients"] = {"last_first_step_at_least_s": round(four, 4),
                               "over_one_short_floor": round(four / floor_short, 2),
                               "over_one_short_plan": round(four / plan_short, 2)}
    cpu = machine.describe(REPO)["cpu_model"]
    print(f"CPU: {cpu}; voice {args.voice}; medians of {args.texts} texts a preset")
    print(f"{'':8} {'floor':>8} {'plan':>8} {'one-shot':>9} {'floor/one-shot':>15} "
          f"{'plan/one-shot':>14}")
    for preset in ("short", "medium"):
        s = summary[preset]
        print(f"{preset:8} {s['floor_s'] * 1000:6.0f}ms {s['plan_s'] * 1000:6.0f}ms "
              f"{s['one_shot_s'] * 1000:7.0f}ms {s['floor_ratio']:15.2f} {s['plan_ratio']:14.2f}")
    print(f"4 clients: the last starts after >= {four * 1000:.0f} ms of first steps "
          f"({four / plan_short:.1f}x one short request's first step with the plan, "
          f"{four / floor_short:.1f}x its floor)")
    if args.json:
        from run_bench import write_report
        write_report(args.json, {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(["python", "bench/ttfa_floor.py",
                                 *(argv if argv is not None else sys.argv[1:])]),
            "machine": machine.describe(REPO), "voice": args.voice,
            "schedule": engine.schedule.status(), "summary": summary, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
