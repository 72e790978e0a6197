"""Where the front's time goes before a batch's first audio (issue: window the front too?).

The front runs once per batch, whole, before its first window: the text encoder, BERT and
the duration predictor (per token), then the F0/energy predictor and the decoder's
encode/decode blocks, which run per frame of audio and so grow with the sentence. This
times the cut front on first sentences of three lengths (the short preset's, the medium
preset's, and the ~300-character one of the first-sentence preset) and splits its kernel
time by part with onnxruntime's profiler: the frame-rate parts are what windowing the front
could take off a long first sentence's first audio.

    python bench/front_share.py --json bench/results/front-share.json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import onnxruntime as ort

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import machine  # noqa: E402
import texts  # noqa: E402

from kokorod.config import load  # noqa: E402
from kokorod.synth import providers  # noqa: E402
from kokorod.synth.engine import Engine  # noqa: E402
from kokorod.synth.vocoder import cut_model  # noqa: E402

# Kernel-name markers of the parts (onnx node names from the PyTorch module paths).
PARTS = (("decoder blocks (per frame)", ("decoder/decoder/encode", "decoder/decoder/decode.",
                                        "decoder.decoder.encode", "decoder.decoder.decode.")),
         ("F0/energy predictor (per frame)", ("/F0", ".F0", "/N.", ".N.", "N_proj", "F0_proj")),
         ("text, BERT, durations (per token)", ("",)))


def part_of(kernel: str) -> str:
    return next(name for name, marks in PARTS if any(m in kernel for m in marks))


def sentences(n: int) -> dict[str, list[str]]:
    return {"short": [texts.short(i) for i in range(n)],
            "medium first sentence": [texts.SENTENCES[i] for i in range(n)],
            "300-character sentence": [texts.first_sentence_pair(i)[1] for i in range(n)]}


def kernel_time_by_run(session: ort.InferenceSession) -> list[Counter[str]]:
    """Ends `session`'s profiling: kernel microseconds by part, for each of its runs."""
    path = Path(session.end_profiling())
    trace = json.loads(path.read_text())
    path.unlink()
    runs = [(e["ts"], e["ts"] + e["dur"]) for e in trace if e.get("name") == "model_run"]
    out: list[Counter[str]] = [Counter() for _ in runs]
    for event in trace:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            k = next(i for i, (lo, hi) in enumerate(runs) if lo <= event["ts"] <= hi)
            out[k][part_of(event["name"])] += event["dur"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=5, help="sentences per length")
    ap.add_argument("--trials", type=int, default=5, help="timed runs per sentence")
    ap.add_argument("--voice", default="af_heart")
    ap.add_argument("--json", metavar="OUT")
    args = ap.parse_args(argv)
    config = dataclasses.replace(load(), warmup=False)
    engine = Engine(config)
    cut = cut_model(engine.files.model, engine.files.sha256)
    if cut is None or engine.vocoder is None:
        print("the model cannot be cut here", file=sys.stderr)
        return 1
    timed = engine.vocoder.parts["front"]  # the front as the daemon runs it
    options = providers.session_options(config)  # one more, profiling every run
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.gettempdir()) / "front")
    profiled = ort.InferenceSession(str(cut.front), options, providers=["CPUExecutionProvider"])
    style = engine.voice_style(args.voice)
    rows = []
    for length, group in sentences(args.texts).items():
        for text in group:
            tokens = engine._tokens(engine.phonemize(text, "en-us"))
            feed = engine._feed(timed, tokens, style, 1.0)
            frames = int(timed.run(None, feed)[0].shape[2])  # (warm-up)
            seconds = []
            for _ in range(args.trials):
                started = time.perf_counter()
                timed.run(None, feed)
                seconds.append(time.perf_counter() - started)
            for _ in range(2):  # the first of the two pays for allocation: not counted
                profiled.run(None, feed)
            rows.append({"length": length, "chars": len(text), "tokens": len(tokens),
                         "frames": frames, "front_ms": round(statistics.median(seconds) * 1000, 1)})
            print(f"{length}: {len(text)} chars, {frames} frames, front "
                  f"{rows[-1]['front_ms']} ms", file=sys.stderr, flush=True)
    for row, by_part in zip(rows, kernel_time_by_run(profiled)[1::2], strict=True):
        total = sum(by_part.values())
        row["share"] = {name: round(by_part[name] / total, 3) for name, _ in PARTS}
    summary = []
    for length in sentences(0):
        group = [r for r in rows if r["length"] == length]
        front = statistics.median(r["front_ms"] for r in group)
        share = {name: round(statistics.mean(r["share"][name] for r in group), 3)
                 for name, _ in PARTS}
        chars = round(statistics.mean(r["chars"] for r in group))
        summary.append({"length": length, "chars": chars,
                        "frames": round(statistics.mean(r["frames"] for r in group)),
                        "front_ms_p50": front, "share": share})
    print(f"{'first sentence':<24} {'chars':>5} {'frames':>6} {'front ms':>9}  shares")
    for s in summary:
        shares = ", ".join(f"{name} {v:.0%}" for name, v in s["share"].items())
        print(f"{s['length']:<24} {s['chars']:>5} {s['frames']:>6} {s['front_ms_p50']:>9.1f}  "
              f"{shares}")
    if args.json:
        report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "command": " ".join(["python", "bench/front_share.py",
                                       *(argv if argv is not None else sys.argv[1:])]),
                  "machine": machine.describe(REPO), "voice": args.voice,
                  "summary": summary, "rows": rows}
        from run_bench import write_report
        write_report(args.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
