"""Streaming vocoder quality: windowed vs unwindowed output of the same model, same text.

Writes listenable WAVs (whole / windowed) and a JSON with the log-spectral distance
(natural-log magnitude; int8 vs fp32 Kokoro differ by about 1.0 on this scale), the
largest sample jump at a window seam against the 99th percentile elsewhere, and the
level of the windowed output where the whole one is silent.

    python bench/vocoder_quality.py --out bench/results/vocoder-samples
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import machine  # noqa: E402
import texts  # noqa: E402
from metrics import lsd  # noqa: E402

from kokorod import engine as engine_module  # noqa: E402
from kokorod import windows as window_plan  # noqa: E402
from kokorod.config import load  # noqa: E402
from kokorod.segment import Segment  # noqa: E402
from kokorod.vocoder import SAMPLES_PER_FRAME  # noqa: E402


def measure(engine: engine_module.Engine, text: str) -> tuple[dict[str, Any], np.ndarray,
                                                                np.ndarray]:
    """The daemon's window schedule against the generator run whole, untrimmed."""
    vocoder = engine.vocoder
    assert vocoder is not None
    voice = engine.voice_style(None)
    p = engine.prepare(Segment(text, 0.0, 0), voice, 1.0, "en-us")[0]
    whole = vocoder.whole(p)[p.origin * SAMPLES_PER_FRAME:]  # the windows start there
    windows = window_plan.Windows(engine.schedule)
    pieces, seams = [], []
    while not p.done:
        pieces.append(vocoder.window(p, windows.next_frames(), trim=False))
        windows.spent(pieces[-1].size, p.span)
        seams.append((p.next - p.origin) * SAMPLES_PER_FRAME)
    windowed = np.concatenate(pieces)
    jumps = np.abs(np.diff(windowed))
    seam_jump = max((jumps[s - 3:s + 3].max() for s in seams[:-1]), default=0.0)
    quiet = np.sqrt(np.mean(whole ** 2, axis=-1))
    return {
        "text": text, "frames": p.frames, "windows": len(pieces),
        "lsd_windowed_vs_whole": round(lsd(windowed, whole), 4),
        "seam_max_jump": round(float(seam_jump), 4),
        "p99_jump": round(float(np.percentile(jumps, 99)), 4),
        "tail_rms_whole": round(float(np.sqrt(np.mean(whole[-2400:] ** 2))), 6),
        "tail_rms_windowed": round(float(np.sqrt(np.mean(windowed[-2400:] ** 2))), 6),
        "rms_whole": round(float(quiet), 4),
    }, whole, windowed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench/results/vocoder-samples"))
    ap.add_argument("--texts", type=int, default=3)
    args = ap.parse_args()
    engine = engine_module.Engine(dataclasses.replace(load(), warmup=False))
    if not engine.streaming:
        print("the streaming vocoder is off (KOKORO_STREAMING_VOCODER=0 or the model "
              "cannot be cut)", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for i in range(args.texts):
        row, whole, windowed = measure(engine, texts.PRESETS["medium"](i))
        results.append(row)
        sf.write(args.out / f"{i}-whole.wav", whole, 24000, subtype="PCM_16")
        sf.write(args.out / f"{i}-windowed.wav", windowed, 24000, subtype="PCM_16")
        print(json.dumps(row))
    report = {"machine": machine.describe(REPO), "context_frames": window_plan.WINDOW_CONTEXT,
              "fade_frames": window_plan.FADE_FRAMES, "schedule": engine.schedule.status(),
              "results": results,
              "command": "python " + " ".join(sys.argv)}
    (args.out / "quality.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
