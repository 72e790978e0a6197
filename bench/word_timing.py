"""Word marks against a real recognizer, and what they cost first audio.

Alignment: each text is synthesized by a fresh daemon with `marks: "word"`, and
PocketSphinx (forced alignment to the same words) places each word in that audio on
its own; the error is kokorod's word start minus the recognizer's, over every word
of every text and voice. Cost: the same new text with and without word marks, in
alternating order, a new text every trial (kokorod keeps no audio cache); the
difference in time to the first chunk is what word marks cost.

    python bench/word_timing.py --trials 10 --json bench/results/word-timing.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asr
import machine
import texts
from run_bench import REPO, BenchDaemon, write_report

from kokorod_client import Client

VOICES = ("af_heart", "am_michael", "bf_emma", "af_bella")
# Written for this bench: everyday words (all in the recognizer's dictionary), commas and
# stops, several sentences to a text, so marks cross sentence and segment boundaries.
SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "We should leave early tomorrow morning, because the roads will be busy.",
    "She opened the window and listened to the rain falling on the garden.",
    "My brother bought a new bicycle last summer. He rode it every day.",
    "Please remember to turn off the lights when you leave the office.",
    "The children played in the park until the sun went down behind the hills.",
    "He told me that the meeting was moved to the afternoon. Nobody else knew.",
    "Reading a good book on a quiet evening is one of my favorite things to do.",
    "The old man walked slowly along the beach, looking for shells and stones.",
    "After dinner we sat outside and talked about our plans for the holiday.",
    "Could you send me the report before lunch? I would like to read it first.",
    "The small boat drifted away from the shore while everyone was asleep.",
    "If the weather stays warm, we will have a picnic by the lake on Sunday.",
    "Her voice was calm and clear, and the whole room went silent to listen.",
    "They painted the kitchen yellow, then changed their minds and made it white.",
    "Water the plants twice a week, and keep them away from the cold window.",
]
SAMPLE_RATE = 24_000


def render(client: Client, text: str, voice: str | None, marks: str | None
           ) -> tuple[np.ndarray, list[Any], float]:
    """(audio, word marks, seconds to the first chunk)."""
    started = time.perf_counter()
    stream = client.synthesize(text, voice=voice, marks=marks)
    pieces, first = [], None
    for chunk in stream:
        first = first or time.perf_counter()
        pieces.append(chunk.samples)
    assert first is not None
    words = [m for m in stream.marks if m.kind == "word"]
    return np.concatenate(pieces), words, first - started


def alignment_errors(client: Client, voice: str, sentences: list[str]) -> dict[str, Any]:
    errors: list[float] = []
    skipped = 0
    for text in sentences:
        audio, marks, _ = render(client, text, voice, "word")
        try:
            heard = asr.align(audio, text)
        except RuntimeError:  # a word missing from the recognizer's dictionary
            heard = []
        if len(heard) != len(marks):  # a word the recognizer did not place: not compared
            skipped += 1
            continue
        errors += [m.sample / SAMPLE_RATE - start for m, (_, start, _) in zip(marks, heard,
                                                                               strict=True)]
    return {"voice": voice, "errors_s": [round(e, 4) for e in errors], "texts_skipped": skipped}


def describe(errors: list[float]) -> dict[str, float]:
    e = np.asarray(errors)
    return {"words": int(e.size), "median_s": round(float(np.median(e)), 4),
            "median_abs_s": round(float(np.median(np.abs(e))), 4),
            "p90_abs_s": round(float(np.percentile(np.abs(e), 90)), 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=10, help="TTFA pairs")
    p.add_argument("--texts", type=int, default=16, help="texts per voice for alignment")
    p.add_argument("--text-offset", type=int, default=700)
    p.add_argument("--json")
    args = p.parse_args()
    daemon = BenchDaemon(None, verbose=False)
    ttfa: dict[str, list[float]] = {"segment": [], "word": []}
    try:
        with Client(daemon.socket, client_name="bench-words") as client:
            render(client, "Warm up.", None, None)
            for i in range(args.trials):
                text = texts.PRESETS["short"](args.text_offset + i)
                order = ["segment", "word"] if i % 2 == 0 else ["word", "segment"]
                for marks in order:
                    ttfa[marks].append(render(client, text, None, marks)[2])
            sentences = [" ".join(SENTENCES[(i + k) % len(SENTENCES)] for k in range(2))
                         for i in range(args.texts)]
            per_voice = [alignment_errors(client, v, sentences) for v in VOICES]
    finally:
        daemon.stop()
    info = machine.describe(REPO)
    every = [e for row in per_voice for e in row["errors_s"]]
    overall = describe(every)
    p50 = {k: round(statistics.median(v) * 1000, 1) for k, v in ttfa.items()}
    print(f"CPU: {info['cpu_model']} ({info['cores']} cores)")
    print(f"command: python bench/word_timing.py --trials {args.trials} --texts {args.texts}")
    for row in per_voice:
        d = describe(row["errors_s"])
        print(f"{row['voice']:11} words {d['words']:4}  start error vs PocketSphinx: median "
              f"{d['median_s'] * 1000:+6.1f} ms, |median| {d['median_abs_s'] * 1000:5.1f} ms, "
              f"|p90| {d['p90_abs_s'] * 1000:5.1f} ms  (texts not compared: "
              f"{row['texts_skipped']})")
    print(f"{'all':11} words {overall['words']:4}  median {overall['median_s'] * 1000:+6.1f} ms, "
          f"|median| {overall['median_abs_s'] * 1000:5.1f} ms, "
          f"|p90| {overall['p90_abs_s'] * 1000:5.1f} ms")
    paired = statistics.median(w - s for s, w in zip(ttfa["segment"], ttfa["word"],
                                                      strict=True)) * 1000
    print(f"first chunk p50: segment marks {p50['segment']} ms, word marks {p50['word']} ms "
          f"({p50['word'] - p50['segment']:+.1f} ms; median of the {args.trials} paired "
          f"differences {paired:+.1f} ms)")
    if args.json:
        write_report(args.json, {"machine": info, "command": " ".join(sys.argv),
                                 "alignment": {"overall": overall, "voices": per_voice},
                                 "first_chunk_s": ttfa, "first_chunk_p50_ms": p50})


if __name__ == "__main__":
    main()
