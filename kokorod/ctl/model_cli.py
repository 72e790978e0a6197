"""`kokorod model list | fetch | use | verify | remove`: the model store from the shell."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kokorod.config import Config, load
from kokorod.store import inventory, models
from kokorod_common import control, launcher
from kokorod_common.messages import DaemonError
from kokorod_common.protocol import ProtocolError


def _size(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.1f} MB"


def _print_rows(rows: list[dict[str, Any]]) -> None:
    print(f"  {'name':<24} {'kind':<7} {'size':>9}  {'check':<22} about")
    for r in rows:
        mark = "*" if r["active"] else " "
        print(f"{mark} {r['name']:<24} {r['kind']:<7} {_size(r['size']):>9}  "
              f"{r['check']:<22} {r['about']}")
    print("(* = active)")


def tell_daemon(config: Config, client_name: str = "kokorod-model") -> None:
    """Swap the running daemon onto the new choice, or say when it takes effect."""
    if config.model_path or config.voices_path:
        print("note: KOKORO_MODEL_PATH / KOKORO_VOICES_PATH are set and override this choice",
              file=sys.stderr)
    path = config.socket_path
    if not launcher.socket_is_live(path):
        print("kokorod is not running; the choice applies at its next start")
        return
    try:
        reply = control.call(path, "reload", client_name=client_name, timeout=300)
    except DaemonError as exc:
        print(f"kokorod could not switch: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    how = "loaded without a restart" if reply["rebuilt"] else "already in use"
    print(f"kokorod: {reply['model_path']} + {reply['voices_path']} {how}")


def cmd_list(args: argparse.Namespace) -> int:
    rows = inventory.inventory()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_rows(rows)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    rows = inventory.inventory(full=True)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_rows(rows)
    bad = [r["name"] for r in rows if r["check"] == "MISMATCH"]
    if bad:
        print(f"corrupt: {', '.join(bad)}; fetch again with `kokorod model fetch NAME`",
              file=sys.stderr)
        return 1
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from kokorod.store.download import tqdm_progress

    config = load(socket=args.socket)
    base_url = args.base_url or config.model_base_url
    for name in args.names:
        path, digest = models.fetch(name, base_url, sha256=args.sha256, pin=args.pin,
                                    progress=tqdm_progress(args.quiet), retries=args.retries,
                                    source=args.source)
        print(f"{path.name}: sha256 {digest} ok → {path}")
        if args.use:
            models.use(name)
            print(f"now using {path.name}")
    if args.use:
        tell_daemon(config)
    return 0


def cmd_use(args: argparse.Namespace) -> int:
    kind = models.use(args.name)
    print(f"active {kind}: {args.name}")
    tell_daemon(load(socket=args.socket))
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    removed = models.remove(args.name)
    if not removed:
        print(f"{args.name} is not installed")
    for path in removed:
        print(f"removed {path}")
    return 0


def cmd_norms(args: argparse.Namespace) -> int:
    """Fit the generator's norm statistics for voices (norm_stats.py), in this process."""
    import dataclasses
    import time

    from kokorod.synth.engine import Engine

    config = dataclasses.replace(load(socket=args.socket), warmup=False,
                                 window_schedule="80")  # no calibration: nothing is timed
    engine = Engine(config)
    if engine.norms is None:
        print("this model's generator cannot take norm statistics from outside; windows use "
              "their own", file=sys.stderr)
        return 1
    names, unknown = [], []
    for n in engine.voices.names() if args.all else args.voices or ["af_heart"]:
        try:
            names.append(engine.norm_name(n))  # a blend ("a:0.6,b:0.4") gets its own
        except ProtocolError as exc:
            unknown.append(f"{n} ({exc.message})")
    if unknown:
        print(f"not installed: {', '.join(unknown)}", file=sys.stderr)
        return 2
    todo = names if args.again else [n for n in names if not engine.norms.has(n)]
    print(f"{len(names) - len(todo)} of {len(names)} voices have statistics already; "
          f"fitting {len(todo)} (~{len(norm_texts())} texts each)")
    for i, name in enumerate(todo, 1):
        started = time.perf_counter()
        engine.build_norms(name)
        print(f"[{i}/{len(todo)}] {name}: {time.perf_counter() - started:.1f} s", flush=True)
    if args.out:
        engine.norms.export(args.out, names)
        print(f"wrote {len(names)} voices' statistics to {args.out}")
    return 0


def norm_texts() -> tuple[str, ...]:
    from kokorod.synth.norm_stats import FIT_TEXTS

    return FIT_TEXTS


def add_parser(sub: Any) -> None:
    model = sub.add_parser("model", help="installed models and voice packs; fetch, use, verify")
    msub = model.add_subparsers(dest="model_command", required=True)
    ls = msub.add_parser("list", help="installed files, sizes, checksum state, which is active")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    fetch = msub.add_parser(
        "fetch", help="download published files (progress, resume, sha256, atomic)",
        description="Names: voices (the 54 v1.0 voices, from --source), " + ", ".join(
            f"{e.name} ({'/'.join(e.aliases)})" for e in models.CATALOG))
    fetch.add_argument("names", nargs="+", metavar="NAME")
    fetch.add_argument("--base-url", help="download from here (default: KOKORO_MODEL_BASE_URL)")
    fetch.add_argument("--sha256", help="expected checksum for a file without a published one")
    fetch.add_argument("--source", choices=models.VOICE_SOURCES, default="auto",
                       help="where `voices` comes from: npm (kokoro-js, through your npm "
                            "configuration), the release URL, or auto (npm when it is installed)")
    fetch.add_argument("--pin", action="store_true",
                       help="no published checksum: trust this download and pin its sha256")
    fetch.add_argument("--use", action="store_true", help="make it active once verified")
    fetch.add_argument("--retries", type=int, default=3,
                       help="resume this many times after a dropped connection")
    fetch.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    fetch.set_defaults(func=cmd_fetch)
    use = msub.add_parser("use", help=f"make a model or voice pack active ({models.EMBEDDED} / "
                                      f"{models.EMBEDDED_VOICES} to go back)")
    use.add_argument("name")
    use.set_defaults(func=cmd_use)
    verify = msub.add_parser("verify", help="re-read every installed file and check its sha256")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(func=cmd_verify)
    rm = msub.add_parser("remove", help="delete a fetched file (not the active one)")
    rm.add_argument("name")
    rm.set_defaults(func=cmd_remove)
    norms = msub.add_parser(
        "norms", help="fit voices' statistics for the streaming vocoder (once per voice)",
        description="Windows of audio sound like the whole batch when the generator is given "
                    "the batch's statistics, predicted per voice. The embedded model's voices "
                    "come with theirs; this fits them for another model or a new voice "
                    "(~10 texts vocoded whole per voice: 10-25 s each).")
    norms.add_argument("voices", nargs="*", metavar="VOICE", help="default: af_heart")
    norms.add_argument("--all", action="store_true", help="every installed voice")
    norms.add_argument("--again", action="store_true", help="fit voices that have statistics")
    norms.add_argument("--out", type=Path, help="also write these voices' statistics to FILE "
                                                 "(the form kokorod ships)")
    norms.set_defaults(func=cmd_norms)
