#!/usr/bin/env python3
"""The daemon's memory round by round under the same load: a trend, not one reading.

    python bench/memory_rounds.py --rounds 6 --json bench/results/memory.json
    MALLOC_ARENA_MAX=2 python bench/memory_rounds.py --rounds 6   # env reaches the daemon

Each round is the reliability test's mixed load (8 clients, 64 requests: short,
cancelled and bad ones); after it the daemon is left idle for a moment and its
`status` read: RSS, anonymous memory, malloc's bytes in use / free but kept /
mmapped, Python's allocated blocks, fds, tasks, threads. Round 0 is the reading
before any load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import load  # noqa: E402
import machine  # noqa: E402
from run_bench import BenchDaemon, write_report  # noqa: E402

COLUMNS = ("round", "rss_mib", "anonymous_mib", "heap_in_use_mib", "heap_free_mib",
           "heap_mmapped_mib", "python_blocks", "fds", "tasks", "threads")


def print_rounds(readings: list[dict[str, Any]]) -> None:
    print("  ".join(f"{c:>16}" for c in COLUMNS))
    for row in readings:
        cells = []
        for c in COLUMNS:
            v = row.get(c)
            cells.append(f"{v:16.1f}" if isinstance(v, float) else f"{v!s:>16}")
        print("  ".join(cells))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=64)
    p.add_argument("--socket", help="measure an already running daemon")
    p.add_argument("--json", metavar="OUT")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    info = machine.describe(REPO)
    print(f"cpu: {info.get('cpu_model')}")
    daemon = BenchDaemon(args.socket, args.verbose)
    try:
        readings = load.rounds(daemon.socket, args.rounds, args.clients, args.requests)
    finally:
        daemon.stop()
    print_rounds(readings)
    report = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/memory_rounds.py", *(argv or sys.argv[1:])]),
        "machine": info,
        "env": {k: v for k, v in os.environ.items()
                if k.startswith(("KOKORO_", "MALLOC_", "OMP_", "ORT_"))},
        "rounds": readings,
    }
    if args.json:
        write_report(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
