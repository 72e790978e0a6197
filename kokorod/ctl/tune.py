"""`kokorod tune`: measure this machine's settings and keep the fastest.

Each candidate (threads, streaming vocoder on/off, graph optimisation, inter-op
parallelism, another installed model) gets its own engine, its window plan measured
afresh, then the time to a new short text's first audio (median of several texts the
engine has not read) and the real-time factor of a paragraph streamed to its end.
The winner has the lowest first audio among those that keep up (RTF ≤ MAX_RTF) — but
a change must beat the configured settings by more than this machine's own noise: the
configured settings are measured again after the others, and a candidate must be faster
than the better of those two by MIN_GAIN or by their spread, whichever is larger (two
identical runs a minute apart differed by 28 % on a shared VM). Its settings go into the
config file (not with --dry-run) and a running daemon reloads.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from kokorod.config import Config, ConfigError, config_file_path, load, write_settings
from kokorod.synth import windows
from kokorod_common.protocol import SAMPLE_RATE

# onnxruntime and the engine load only when tuning runs (not for `kokorod --help`)

MAX_RTF = 0.8  # a setting must make audio this much faster than it plays
MIN_GAIN = 0.10  # a change must cut the configured first audio by this share at least
AGAIN = "as configured, again"
SHORT = ["Your build finished just now.", "Three new messages are waiting.",
         "The meeting moved to Thursday.", "Remember to water the ferns.",
         "The printer ran out of paper.", "Someone is ringing the bell.",
         "Backup completed without errors."]
PARAGRAPH = ("The town woke slowly that morning. A thin fog lay over the harbour, and the "
             "gulls seemed to have agreed to wait until it lifted. Down by the slipway two "
             "fishermen argued softly about the weather, while a dog watched them patiently.")
TUNED = ("threads", "streaming_vocoder", "graph_optimization", "inter_op_threads",
         "window_schedule")


@dataclass
class Result:
    name: str
    changes: dict[str, Any]
    first_audio_ms: float | None = None
    rtf: float | None = None
    schedule: str = ""
    error: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def keeps_up(self) -> bool:
        return self.rtf is not None and self.rtf <= MAX_RTF


def candidates(config: Config) -> list[tuple[str, dict[str, Any]]]:
    from kokorod.store import inventory, models
    from kokorod.synth import providers

    cores = os.cpu_count() or 1
    out: list[tuple[str, dict[str, Any]]] = [("as configured", {})]
    for n in sorted({1, 2, cores} - {providers.thread_count(config)}):
        if n <= cores:
            out.append((f"{n} thread{'s' if n > 1 else ''}", {"threads": n}))
    out.append(("streaming vocoder off", {"streaming_vocoder": False}))
    for level in ("extended", "basic"):
        if level != config.graph_optimization:
            out.append((f"graph optimisation {level}", {"graph_optimization": level}))
    if cores > 1:
        out.append(("inter-op parallel (2)", {"inter_op_threads": 2}))
    current = models.resolve(config.model_path, config.voices_path).model
    for row in inventory.inventory():
        if row["kind"] == "model" and row["installed"] and row["path"] != str(current):
            out.append((f"model {row['name']}", {"model_path": row["path"]}))
    return out


def measure(config: Config, name: str, changes: dict[str, Any], texts: int) -> Result:
    from kokorod.synth import calibrate
    from kokorod.synth.engine import Engine
    from kokorod.synth.segment import Segment

    result = Result(name, changes)
    try:
        engine = Engine(dataclasses.replace(config, **changes, window_schedule="80"))
    except Exception as exc:  # a candidate that cannot load is reported, not fatal
        result.error = f"{type(exc).__name__}: {exc}"[:200]
        return result
    if engine.streaming:
        engine.schedule = windows.from_costs(calibrate.measure(engine))
        result.schedule = engine.schedule.text()
    voice = engine.voice_style(None)
    firsts = []
    for i, text in enumerate(SHORT[:texts]):
        plan = windows.Windows(engine.schedule) if engine.streaming else None
        started = time.perf_counter()
        pieces = engine.begin(Segment(text, 0.0, i), voice, 1.0, "en-us", plan)
        pieces.step()
        firsts.append(time.perf_counter() - started)
        while pieces.step() is not None:
            pass
    started, samples = time.perf_counter(), 0
    plan = windows.Windows(engine.schedule) if engine.streaming else None
    pieces = engine.begin(Segment(PARAGRAPH, 0.0, 0), voice, 1.0, "en-us", plan)
    while (audio := pieces.step()) is not None:
        samples += audio.size
    result.rtf = round((time.perf_counter() - started) / max(1, samples) * SAMPLE_RATE, 3)
    result.first_audio_ms = round(1000 * statistics.median(firsts), 1)
    result.settings = {"threads": engine.config.threads or os.cpu_count() or 1,
                       "streaming_vocoder": engine.streaming,
                       "graph_optimization": engine.config.graph_optimization,
                       "inter_op_threads": engine.config.inter_op_threads}
    if engine.streaming:
        result.settings["window_schedule"] = result.schedule
    if "model_path" in changes:
        result.settings["model_path"] = changes["model_path"]
    del engine, pieces
    gc.collect()
    return result


def noise(results: list[Result]) -> float:
    """The spread between the configured settings' two runs, as a share of the faster."""
    runs = [r.first_audio_ms for r in results if not r.changes and not r.error
            and r.first_audio_ms]
    return (max(runs) - min(runs)) / min(runs) if len(runs) > 1 else 0.0


def best(results: list[Result]) -> Result | None:
    """The fastest that keeps up; the configured settings unless it beats them by more
    than MIN_GAIN and the measured noise."""
    ok = [r for r in results if not r.error and r.keeps_up]
    if not ok:
        return None
    top = min(ok, key=lambda r: (r.first_audio_ms, r.rtf))
    configured = [r for r in ok if not r.changes]
    if top.changes and configured:
        ref = min(configured, key=lambda r: r.first_audio_ms or 0.0)
        if (top.first_audio_ms or 0.0) > (ref.first_audio_ms or 0.0) * (
                1 - max(MIN_GAIN, noise(results))):
            return ref
    return top


def progress_line(r: Result) -> str:
    """One candidate's outcome, said as soon as it is measured."""
    if r.error:
        return f"  {r.name}: failed ({r.error})"
    pace = "keeps up" if r.keeps_up else f"does not keep up: RTF above {MAX_RTF}"
    return f"  {r.name}: first audio {r.first_audio_ms:.0f} ms, RTF {r.rtf:.3f} ({pace})"


def verdict(results: list[Result], winner: Result | None, dry_run: bool) -> str:
    """What is (or would be) kept, and why, in words."""
    would = "would keep" if dry_run else "keeps"
    measured = [r for r in results if not r.error and r.first_audio_ms is not None]
    if winner is None:
        if not measured:
            return "no candidate could be measured; the config is left as it is"
        fastest = min(measured, key=lambda r: r.rtf or 0.0)
        return (f"none keeps up (RTF ≤ {MAX_RTF}: audio made faster than it plays) on this "
                f"machine now — the fastest, {fastest.name}, made audio at RTF {fastest.rtf:.3f}"
                "; the config is left as it is (a busy machine measures slow: try again "
                "when it is idle)")
    need = max(MIN_GAIN, noise(results))
    configured = [r for r in measured if not r.changes and r.keeps_up]
    ref = min(configured, key=lambda r: r.first_audio_ms or 0.0) if configured else None
    if not winner.changes:
        rivals = [r for r in measured if r.changes and r.keeps_up]
        if not rivals:
            return (f"{would} the configured settings: no other candidate keeps up "
                    f"(RTF ≤ {MAX_RTF})")
        best_rival = min(rivals, key=lambda r: r.first_audio_ms or 0.0)
        gain = 1 - (best_rival.first_audio_ms or 0.0) / (winner.first_audio_ms or 1.0)
        return (f"{would} the configured settings: the fastest change, {best_rival.name}, "
                f"starts audio {gain:.0%} sooner, and a change must be {need:.0%} sooner "
                "(more than this machine's noise) to be kept")
    if ref is None:
        return (f"{would} {winner.name}: the configured settings do not keep up "
                f"(RTF ≤ {MAX_RTF}) and it does, with the first audio soonest")
    gain = 1 - (winner.first_audio_ms or 0.0) / (ref.first_audio_ms or 1.0)
    return (f"{would} {winner.name}: first audio {winner.first_audio_ms:.0f} ms against "
            f"{ref.first_audio_ms:.0f} ms as configured ({gain:.0%} sooner; {need:.0%} needed)")


def table(results: list[Result], winner: Result | None) -> str:
    rows = [f"{'candidate':<28} {'first audio':>12} {'RTF':>6}  window plan"]
    for r in results:
        mark = "*" if r is winner else " "
        if r.error:
            rows.append(f"{mark}{r.name:<27} failed: {r.error}")
            continue
        rows.append(f"{mark}{r.name:<27} {r.first_audio_ms:>9.1f} ms {r.rtf:>6.3f}  "
                    f"{r.schedule or '(whole segments)'}")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    from kokorod.synth import calibrate

    try:
        config = load(socket=args.socket)
    except ConfigError as exc:
        print(f"kokorod tune: {exc}", file=sys.stderr)
        return 2
    print(f"kokorod tune on {calibrate.cpu_model()}, {os.cpu_count()} cores "
          f"({'dry run: ' if args.dry_run else ''}{args.texts} short texts per candidate)",
          flush=True)
    results = []
    chosen_names = [n.lower() for n in args.only or []]
    for name, changes in candidates(config):
        if chosen_names and not any(name.lower().startswith(n) for n in chosen_names):
            continue
        print(f"  measuring: {name} …", flush=True)
        results.append(measure(config, name, changes, args.texts))
        print(progress_line(results[-1]), flush=True)
    if len(results) > 1 and any(not r.changes for r in results):
        print(f"  measuring: {AGAIN} (this machine's noise) …", flush=True)
        results.append(measure(config, AGAIN, {}, args.texts))
        print(progress_line(results[-1]), flush=True)
    winner = best(results)
    print(table(results, winner))
    spread = noise(results)
    if spread:
        print(f"noise: the configured settings' two runs differ by {spread:.0%}; a change "
              f"must be {max(MIN_GAIN, spread):.0%} faster to be kept")
    report = {"cpu": calibrate.cpu_model(), "cores": os.cpu_count(),
              "results": [dataclasses.asdict(r) for r in results],
              "noise": round(spread, 3), "best": winner.name if winner else None}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    print(verdict(results, winner, args.dry_run))
    if winner is None:
        if args.dry_run:
            print("dry run: nothing written")
            return 0  # the dry run did what it was asked: measured and said so
        return 1
    chosen = {k: v for k, v in winner.settings.items() if k in TUNED or k == "model_path"}
    print(f"best: {winner.name} → " + ", ".join(f"{k} = {v}" for k, v in chosen.items()))
    if args.dry_run:
        print("dry run: nothing written")
        return 0
    path = config_file_path()
    write_settings(path, chosen)
    print(f"written to {path}")
    from kokorod.ctl.model_cli import tell_daemon
    tell_daemon(load(socket=args.socket), "kokorod-tune")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("tune", help="measure this machine's settings and keep the fastest")
    p.add_argument("--dry-run", action="store_true", help="print the table, write nothing")
    p.add_argument("--texts", type=int, default=5, choices=range(1, len(SHORT) + 1),
                   metavar=f"1…{len(SHORT)}", help="short texts timed per candidate")
    p.add_argument("--json", metavar="FILE", help="also write the measurements here")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="measure only candidates whose name starts so (repeatable)")
    p.set_defaults(func=run)
