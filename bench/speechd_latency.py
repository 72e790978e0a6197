"""Time to first audio through speech-dispatcher: kokorod's module against speech-dispatcher's
own espeak-ng module, and kokorod's own `kokoro-say`, on the same texts.

From the moment `spd-say` is started to the first audio the server receives from the
module (its log's "Got audio" line, microsecond timestamps, log level 5): that is
where both modules hand audio to the same server-side playback, so the comparison
is fair. `kokoro-say` is timed from its start to the first sample handed to the
device (ALSA's file sink). Every trial has a new text (cold cache).

    python bench/speechd_latency.py --trials 10 --json bench/results/speechd.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import machine
import texts
from run_bench import REPO, BenchDaemon, alsa_home, say_end_to_end, write_report
from speechd_setup import Speechd, start_speechd, stop_speechd

from kokorod_common import paths

_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4}) : (\d+)\] speechd:.*Got audio")


def first_audio_after(sd: Speechd, offset: int) -> float | None:
    """Unix time of the first audio the server got after byte `offset` of its log."""
    log = sd.root / "log" / "speech-dispatcher.log"
    with log.open("rb") as fh:
        fh.seek(offset)
        for raw in fh:
            m = _STAMP.match(raw.decode(errors="replace"))
            if m:
                when = dt.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
                return when.timestamp() + int(m.group(2)) / 1e6
    return None


def spd_say_first_audio(sd: Speechd, module: str, text: str) -> float | None:
    log = sd.root / "log" / "speech-dispatcher.log"
    offset = log.stat().st_size
    t0 = time.time()
    done = sd.say("-w", "-o", module, text, timeout=120)
    if done.returncode != 0:
        return None
    time.sleep(0.05)  # the log is written by another process
    first = first_audio_after(sd, offset)
    return None if first is None else first - t0


def p50(values: list[float]) -> float | None:
    return round(statistics.median(values) * 1000, 1) if values else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--text-offset", type=int, default=300)
    p.add_argument("--json", help="write the report here")
    args = p.parse_args()
    if shutil.which("speech-dispatcher") is None:
        raise SystemExit("speech-dispatcher is not installed")
    home = alsa_home()
    daemon = BenchDaemon(None, verbose=False, home=home)
    sd = start_speechd(daemon.socket, paths.data_dir(), log_level=5)
    rows: dict[str, list[float]] = {"sd_kokoro": [], "sd_espeak-ng": [], "kokoro-say": []}
    say_args = argparse.Namespace(prebuffer=2)
    try:
        sd.say("-w", "-o", "kokoro", "Warm.")  # module and connection up, as in daily use
        sd.say("-w", "-o", "espeak-ng", "Warm.")
        for i in range(args.trials):
            text = texts.PRESETS["short"](args.text_offset + i)
            for module, key in (("kokoro", "sd_kokoro"), ("espeak-ng", "sd_espeak-ng")):
                t = spd_say_first_audio(sd, module, text)
                if t is not None:
                    rows[key].append(t)
            other = texts.PRESETS["short"](args.text_offset + 1000 + i)
            said = say_end_to_end(daemon.socket, other, say_args, home)
            if said.get("e2e_first_sound_s") is not None:
                rows["kokoro-say"].append(said["e2e_first_sound_s"])
    finally:
        stop_speechd(sd)
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)
    info = machine.describe(REPO)
    version = subprocess.run(["speech-dispatcher", "-v"], capture_output=True, text=True)
    info["speech_dispatcher"] = version.stdout.split()[1]
    print(f"CPU: {info['cpu_model']} ({info['cores']} cores)  speech-dispatcher "
          f"{info['speech_dispatcher']}")
    print(f"command: python bench/speechd_latency.py --trials {args.trials}")
    print(f"{'':34}{'first audio p50':>16}{'min':>8}{'max':>8}{'n':>4}")
    for key, label in (("sd_kokoro", "spd-say → sd_kokoro (kokorod)"),
                       ("sd_espeak-ng", "spd-say → sd_espeak-ng"),
                       ("kokoro-say", "kokoro-say → first sample")):
        v = rows[key]
        lo, hi = (round(min(v) * 1000), round(max(v) * 1000)) if v else (None, None)
        print(f"{label:34}{p50(v)!s:>13} ms{lo!s:>8}{hi!s:>8}{len(v):>4}")
    if args.json:
        write_report(args.json, {"machine": info, "trials": args.trials,
                                 "command": " ".join(sys.argv),
                                 "first_audio_s": {k: [round(x, 4) for x in v]
                                                   for k, v in rows.items()},
                                 "p50_ms": {k: p50(v) for k, v in rows.items()}})


if __name__ == "__main__":
    main()
