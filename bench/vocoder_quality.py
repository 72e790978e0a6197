"""Streaming vocoder quality: windows of each size against the same batch vocoded whole.

For every voice (and blend) and text, the batch is vocoded whole (the reference) and then
window by window at each size, with the generator's norms given the batch's predicted
statistics ("table", what kokorod does where the voice has a table) and with each window's
own ("own": kokorod before them; its last window spans 80 frames). Per mode and size:
log-spectral distance over speech (dB), mel-cepstral distance (dB), the level where the
whole is silent (dBFS), the largest jump at a seam against the 99th percentile elsewhere,
and with --asr PocketSphinx's word error rate against the whole's. "oracle" feeds the
whole batch's own statistics (the best a predictor can do). Listenable WAVs of the first
text go to --wavs.

    python bench/vocoder_quality.py --json bench/results/vocoder-quality.json --asr
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import machine  # noqa: E402
import texts  # noqa: E402
from metrics import lsd_db, mcd, silence_dbfs  # noqa: E402

from kokorod.config import load  # noqa: E402
from kokorod.synth.engine import Engine  # noqa: E402
from kokorod.synth.segment import Segment  # noqa: E402
from kokorod.synth.vocoder import SAMPLES_PER_FRAME, Prepared  # noqa: E402

OWN_TAIL = 80  # before the statistics: a batch's last window spanned this many frames
VOICES = ["af_heart", "bm_george", "am_michael", "bf_emma", "af_bella", "am_adam",
          "af_heart:0.5,bm_george:0.5", "bf_emma:0.7,am_michael:0.3"]
SIZES = [16, 24, 32, 48, 80]
# PocketSphinx only for these (it costs more than the vocoding): kokorod before the
# statistics, and the smallest and largest windows with them.
ASR_MODES = {("own", 80), ("table", 16), ("table", 80), ("oracle", 16)}


def quality_texts(n: int, medium: int = 0) -> list[str]:
    """`n` short texts and `medium` medium ones, none of them a fitting text."""
    return [texts.short(i) for i in range(n)] + [texts.medium(i) for i in range(medium)]


def windowed(engine: Engine, p: Prepared, size: int, norms: dict[str, Any] | None,
             tail: int) -> tuple[np.ndarray, list[int]]:
    """The batch window by window from its origin, untrimmed (lines up with the whole)."""
    q = dataclasses.replace(p, next=p.origin, fade_tail=None, peak_rms=0.0, held=None,
                            norms=norms)
    vocoder = engine.vocoder
    assert vocoder is not None
    pieces, seams = [], []
    while not q.done:
        if q.remaining - size <= tail and tail:  # own statistics: the last spans `tail`
            size = q.remaining
        pieces.append(vocoder.window(q, size, trim=False))
        seams.append((q.next - p.origin) * SAMPLES_PER_FRAME)
    return np.concatenate(pieces), seams[:-1]


def seam_ratio(audio: np.ndarray, seams: list[int]) -> float:
    jumps = np.abs(np.diff(audio))
    if not seams or jumps.size == 0:
        return 0.0
    at = max(jumps[max(0, s - 3):s + 3].max() for s in seams if s < jumps.size)
    return float(at / max(1e-9, np.percentile(jumps, 99)))


def oracle(engine: Engine, p: Prepared) -> dict[str, Any]:
    """The norm inputs that give each window the whole batch's own statistics."""
    assert engine.vocoder is not None and engine.norms is not None
    _, mean, var = engine.vocoder.whole_norms(p)
    return engine.norms.inputs(mean, var)


def measure(engine: Engine, voice: str, text: str, sizes: list[int], asr: bool,
            wavs: Path | None) -> list[dict[str, Any]]:
    style = engine.voice_style(voice)
    p = engine.prepare(Segment(text, 0.0, 0), style, 1.0, "en-us")[0]
    assert engine.vocoder is not None
    table = p.norms
    whole = engine.vocoder.whole(dataclasses.replace(p))[p.origin * SAMPLES_PER_FRAME:]
    modes: list[tuple[str, int, dict[str, Any] | None, int]] = [
        ("own", OWN_TAIL, None, OWN_TAIL),
        ("oracle", 16, oracle(engine, dataclasses.replace(p)), 0)]
    if table is not None:
        modes += [("table", size, table, 0) for size in sizes]
    heard = None
    if asr:
        from asr import transcribe, wer
        heard = transcribe(whole)
    rows = []
    for mode, size, norms, tail in modes:
        started = time.perf_counter()
        audio, seams = windowed(engine, p, size, norms, tail)
        row = {"voice": voice, "text": text, "frames": p.frames, "mode": mode, "size": size,
               "lsd_db": round(lsd_db(audio, whole), 3), "mcd_db": round(mcd(audio, whole), 3),
               "silence_dbfs": round(silence_dbfs(audio, whole), 1),
               "whole_silence_dbfs": round(silence_dbfs(whole, whole), 1),
               "seam_jump_ratio": round(seam_ratio(audio, seams), 2),
               "seconds": round(time.perf_counter() - started, 3)}
        if heard is not None and (mode, size) in ASR_MODES:
            row["wer_vs_whole"] = round(wer(heard, transcribe(audio)), 3)
            row["wer_whole_vs_text"] = round(wer(text, heard), 3)
            row["wer_vs_text"] = round(wer(text, transcribe(audio)), 3)
        rows.append(row)
        if wavs is not None:
            name = voice.replace(":", "").replace(",", "+")
            sf.write(wavs / f"{name}-{mode}-{size}.wav", audio, 24000, subtype="PCM_16")
    if wavs is not None:
        sf.write(wavs / f"{voice.replace(':', '').replace(',', '+')}-whole.wav", whole, 24000,
                 subtype="PCM_16")
    return rows


def table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Means per mode and size over every voice and text."""
    out = []
    for key in sorted({(r["mode"], r["size"]) for r in rows}):
        group = [r for r in rows if (r["mode"], r["size"]) == key]
        summary: dict[str, Any] = {"mode": key[0], "size": key[1], "n": len(group)}
        for field in ("lsd_db", "mcd_db", "silence_dbfs", "whole_silence_dbfs",
                      "seam_jump_ratio", "wer_vs_whole", "wer_vs_text", "wer_whole_vs_text"):
            values = [r[field] for r in group if field in r and np.isfinite(r[field])]
            if values:
                summary[field] = round(float(np.mean(values)), 3)
        out.append(summary)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voices", default=";".join(VOICES),
                    help="voices and blends, separated by ';'")
    ap.add_argument("--texts", type=int, default=30, help="short texts (~30 characters)")
    ap.add_argument("--medium", type=int, default=0, help="medium texts (~200 characters)")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--asr", action="store_true", help="PocketSphinx word error rates")
    ap.add_argument("--wavs", type=Path, help="write the first text's renderings here")
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args(argv)
    engine = Engine(dataclasses.replace(load(), warmup=False, window_schedule="80"))
    if engine.vocoder is None or engine.norms is None:
        print("the streaming vocoder with fed statistics is off here", file=sys.stderr)
        return 1
    voices = [v for v in args.voices.split(";") if v]
    sizes = [int(s) for s in args.sizes.split(",")]
    missing = [v for v in voices if engine.norms.for_parts(
        engine.voices.parts_of(engine.voice_style(v)) or []) is None]
    if missing:
        print(f"no statistics for {', '.join(missing)}: `kokorod model norms VOICE`",
              file=sys.stderr)
    if args.wavs:
        args.wavs.mkdir(parents=True, exist_ok=True)
    rows = []
    for v in voices:
        for i, text in enumerate(quality_texts(args.texts, args.medium)):
            rows += measure(engine, v, text, sizes, args.asr, args.wavs if i == 0 else None)
            print(f"{v}: text {i + 1}", file=sys.stderr, flush=True)
    summary = table(rows)
    print(f"{'mode':<7} {'size':>4} {'n':>4} {'LSD dB':>7} {'MCD dB':>7} {'silence':>8} "
          f"{'whole':>6} {'seam':>5} {'WER/whole':>9} {'WER/text':>8}")
    for s in summary:
        print(f"{s['mode']:<7} {s['size']:>4} {s['n']:>4} {s['lsd_db']:>7.2f} "
              f"{s['mcd_db']:>7.2f} {s['silence_dbfs']:>8.1f} {s['whole_silence_dbfs']:>6.1f} "
              f"{s['seam_jump_ratio']:>5.2f} {s.get('wer_vs_whole', float('nan')):>9.3f} "
              f"{s.get('wer_vs_text', float('nan')):>8.3f}")
    if args.json:
        report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "command": " ".join(["python", "bench/vocoder_quality.py",
                                       *(argv if argv is not None else sys.argv[1:])]),
                  "machine": machine.describe(REPO), "voices": voices, "sizes": sizes,
                  "summary": summary, "rows": rows}
        from run_bench import write_report
        write_report(args.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
