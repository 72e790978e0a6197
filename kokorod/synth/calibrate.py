"""This machine's costs for the window plan (windows.py): the generator's per frame and
per call, the front's (with the source) per call and per frame of audio, each the
median of a few runs on the warm sessions. Measured once per CPU, model, threads,
provider and onnxruntime, and kept in the data dir; `kokorod tune` measures again. A
measurement taken while other processes kept the CPU busy is used for that run only
(the plan then follows the speed it observes) and taken again at the next start.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import onnxruntime as ort
import psutil

from kokorod import progress
from kokorod.config import Config
from kokorod.store.models import ModelFiles
from kokorod.synth import providers, windows
from kokorod.synth.segment import Segment
from kokorod.synth.windows import WINDOW_CONTEXT, Costs, Schedule
from kokorod_common import atomic, paths

if TYPE_CHECKING:
    from kokorod.synth.vocoder import Audio, Prepared, Vocoder


class Engine(Protocol):
    """What calibration reads of the engine (kokorod.synth.engine.Engine, which calls in
    here while it starts, so it is described rather than imported)."""

    config: Config
    files: ModelFiles
    provider: providers.ProviderChoice
    vocoder: Vocoder | None

    def voice_style(self, name: str | None) -> Audio: ...

    def prepare(self, segment: Segment, voice: Audio, speed: float,
                lang: str) -> list[Prepared]: ...


log = logging.getLogger(__name__)

SHORT = "The kettle is boiling again."
LONG = ("The old lighthouse stood at the edge of the harbour, its white paint peeling in "
        "the salt wind, and every evening the keeper climbed the stairs.")
SPANS = (16, 64)  # window frames measured (context added)
VERSION = 3  # 3: kept only when measured on a quiet machine
# Other processes using more than this share of one core while the costs were measured:
# the machine was busy, and what was measured is not kept (a first start on a loaded
# machine once chose a 160-frame first window and kept it: 2.3-2.8 s to every first chunk).
BUSY_CORES = 0.3


def key(engine: Engine) -> str:
    return "|".join([cpu_model(), engine.files.sha256[:16],
                     f"threads={providers.thread_count(engine.config)}",
                     f"inter={engine.config.inter_op_threads}",
                     f"graph={engine.config.graph_optimization}",
                     engine.provider.provider, f"onnxruntime={ort.__version__}",
                     f"v{VERSION}"])


def measure(engine: Engine, runs: int = 3) -> Costs:
    """The costs, timed on the engine's own sessions (medians: a cold first run is out)."""
    vocoder = engine.vocoder
    assert vocoder is not None
    voice = engine.voice_style(None)
    batches: dict[str, Prepared] = {}
    f0s: dict[str, Any] = {}  # each batch's F0, kept to time the source alone below

    def prepare(text: str) -> None:
        batches[text] = engine.prepare(Segment(text, 0.0, 0), voice, 1.0, "en-us")[0]
        f0s[text] = batches[text].f0
        vocoder.whole_source(batches[text])  # the source: its cost comes with the front

    fronts = [(0, 0.0), (0, 0.0)]
    for n, text in enumerate((SHORT, LONG)):
        took = median_time(lambda t=text: prepare(t), runs)
        fronts[n] = (batches[text].frames, took)
    batch = batches[LONG]
    source = median_time(lambda: vocoder.run_source(f0s[LONG]), runs)
    gens = []
    for frames in SPANS:
        def window(frames: int = frames) -> None:
            batch.next, batch.fade_tail = WINDOW_CONTEXT, None
            vocoder.window(batch, frames, trim=False)
        gens.append((frames + 2 * WINDOW_CONTEXT, median_time(window, runs)))
    gen_frame, gen_call = fit(gens)
    front_frame, front_call = fit(fronts)
    return Costs(gen_frame, gen_call, front_call, front_frame, source / batch.frames)


def schedule_for(engine: Engine, given: Schedule | None = None) -> Schedule:
    """The config's schedule, else `given` (the daemon's, kept across reloads), else the
    one kept for this machine, else measured now (and kept if the machine was quiet)."""
    configured = windows.parse(engine.config.window_schedule)
    adapt = engine.config.window_adapt
    if configured is not None:
        return dataclasses.replace(configured, adapt=adapt)
    if engine.vocoder is None:
        return windows.fixed(adapt)
    k = key(engine)
    if given is not None and given.machine == k:
        return dataclasses.replace(given, adapt=adapt)
    kept = saved(k)
    if kept is not None:
        return dataclasses.replace(kept, adapt=adapt)
    progress.say("measuring this machine's speed for the streaming windows (once, a few "
                 "seconds)")
    try:
        others = OtherLoad()
        costs = measure(engine)
        busy = others.cores()
    except Exception as exc:  # a measurement must never keep the daemon from serving
        log.warning("could not measure the window costs (%s); planning for a slow CPU until "
                    "the next start", exc)
        return windows.fixed(adapt)
    schedule = dataclasses.replace(windows.from_costs(costs, machine=k), adapt=adapt)
    if busy > BUSY_CORES:
        progress.say(f"other processes kept {busy:.1f} cores busy meanwhile: this measure is "
                     "used for now and taken again at the next start")
    else:
        save(k, schedule)
    log.info("window schedule: first window %d frames (%s)", schedule.first, schedule.status())
    return schedule


class OtherLoad:
    """CPU time other processes take from now on (cores, on average)."""

    def __init__(self) -> None:
        self._me = psutil.Process()
        self._start = self._sample()

    def _sample(self) -> tuple[float, float, float]:
        system = psutil.cpu_times()
        busy = system.user + system.system + getattr(system, "nice", 0.0)
        mine = self._me.cpu_times()
        return time.monotonic(), busy, mine.user + mine.system

    def cores(self) -> float:
        t1, busy1, mine1 = self._sample()
        t0, busy0, mine0 = self._start
        return max(0.0, (busy1 - busy0) - (mine1 - mine0)) / max(1e-3, t1 - t0)


def cpu_model() -> str:
    """The CPU's model name (the calibration is kept per CPU; the bench prints it)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:  # macOS
        return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                              text=True, timeout=5).stdout.strip() or platform.processor()
    except (OSError, subprocess.SubprocessError):
        return platform.processor() or platform.machine() or "unknown"


def _saved_file() -> Path:
    return paths.data_dir() / "window-schedule.json"


def saved(key: str) -> Schedule | None:
    try:
        data = json.loads(_saved_file().read_text())
        entry = data[key]
        return Schedule(int(entry["first"]), Costs(**entry["costs"]), "saved", machine=key)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(key: str, schedule: Schedule) -> None:
    path = _saved_file()
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(data, dict):
            data = {}
        data[key] = {"first": schedule.first, "costs": asdict(schedule.costs),
                     "cpu": cpu_model(), "measured_at": time.time(), "pid": os.getpid()}
        atomic.write_text(path, json.dumps(data, indent=1))
    except (OSError, ValueError) as exc:
        log.warning("could not keep the window schedule: %s", exc)


def median_time(fn: Callable[[], object], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """(per unit, per call) of a line through two measured points, neither negative."""
    (x0, y0), (x1, y1) = points
    per = max(1e-6, (y1 - y0) / max(1, x1 - x0))
    return per, max(0.0, y0 - per * x0)
