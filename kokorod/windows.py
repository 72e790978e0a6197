"""How many frames each window of a request's audio holds, planned from this machine's costs.

The first window decides a request's first audio: the smaller, the sooner. Every later
window must be ready before the audio ahead of it has played, and what that allows
depends on the machine (CPUs of one kind run the generator ~2× apart). So the
generator's and the front's costs are measured once (`calibrate`, at the first start
on a machine; kept in the data dir per CPU, model, threads and onnxruntime) or given
in the config (`KOKORO_WINDOW_SCHEDULE`, which `kokorod tune` writes), and fixed for
the daemon's life.

Within a request the windows follow a model of playback, not a clock: each window is
the largest whose modelled cost fits in a share (SAFETY) of the audio modelled to be
ahead of the listener. The model counts only the audio already made and the costs
fixed at start, so one text always gives the same windows and the same audio.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kokorod_common import paths
from kokorod_common.protocol import SAMPLE_RATE

log = logging.getLogger(__name__)

FRAME_S = 0.0125  # one frame of features is 12.5 ms of audio
WINDOW_CONTEXT = 8  # frames either side of a window: keeps the convolutions' view
FADE_FRAMES = 2  # overshoot cross-faded into the next window
# The last window of a batch is run over at least this many frames (more context to
# its left), so it holds speech: a window of mostly silence is normalised (instance norm
# over the window) into noise, which the trim then keeps. Measured over 30 texts, the
# last 100 ms exceed the whole model's tail by RMS 0.009 at 24 frames, ≤ 0.0013 at 48
# and 0 at 80 — and at 48 the kept noise made speech up to 8 % longer than one-shot's
# and PocketSphinx's word error rate 0.17 against 0.06 (tests/test_prosody.py,
# tests/test_intelligibility.py); at 80 both hold.
MIN_TAIL_FRAMES = 80
MIN_REST_FRAMES = 8  # a window that would leave fewer takes them too
# Frames kept before a batch's first token (the decoder sounds a token a little before
# its slot); the silence before them is not vocoded, and these may be trimmed.
LEAD_FRAMES = 8
MIN_WINDOW_FRAMES = 16  # smaller windows cost more context than audio, and sound worse
MAX_FIRST_FRAMES = 160
MAX_WINDOW_FRAMES = 400  # 5 s
MAX_WINDOW_S = 1.0  # a window's modelled cost: bounds how long another request waits
# Where less fits, a window still costs at most this share of the audio it makes: a
# smaller one loses ground every step. At 8 ms a frame the plan shrank to 16-frame windows
# (1.3× their audio in cost) for the rest of a long sentence after a short one, falling
# further behind with each, and left noise after the speech's end that split the pause
# (tests/test_prosody.py failed with that calibration). The floor is 24 frames at this
# machine's 5.3 ms, 60 at an EPYC's 7.5 ms (larger windows also sound more like the whole).
GAIN = 0.8
SLOWER_WARNING = 1.6  # real / planned window cost (recent) past which the log says so
SAFETY = 0.5  # a window may use this share of the audio modelled to be ahead (the
# machine may run slower than when measured: 2× was seen within one bench run)
# Where nothing is measured (the whole model, a failed measurement): today's fixed start.
FALLBACK_FIRST = 80
CALIBRATION_VERSION = 2  # 2: the source's own cost


@dataclass(frozen=True)
class Costs:
    """Seconds the generator takes per frame and per call, the front (+ source) per call
    and per frame of the audio it prepares, and the source alone per frame: a request's
    first window runs only the source's head, and the rest (0.23–0.25 ms a frame here:
    170 ms for a 666-frame sentence) comes with the second window, a request's tightest
    step."""

    gen_frame_s: float
    gen_call_s: float
    front_call_s: float
    front_frame_s: float
    source_frame_s: float = 0.0

    def gen(self, span: int) -> float:
        return self.gen_call_s + self.gen_frame_s * span

    def front(self, frames: int) -> float:
        return self.front_call_s + self.front_frame_s * frames

    def tail(self) -> float:
        """The most a batch's last window can cost, however few frames it adds."""
        return self.gen(MIN_TAIL_FRAMES + WINDOW_CONTEXT)


def first_window(costs: Costs, safety: float = SAFETY) -> int:
    """The smallest first window (multiple of 8 frames) after which the next window can
    be ready in time whatever it is: the batch's tail, or the next sentence's front and
    a smallest window. (A batch whose tail comes second had its source run whole with
    the first window; a longer one's rest of the source is planned into the second.)"""
    for first in range(MIN_WINDOW_FRAMES, MAX_FIRST_FRAMES + 1, 8):
        budget = safety * (first - LEAD_FRAMES) * FRAME_S
        nxt = max(costs.tail(), costs.front(first) + costs.gen(MIN_WINDOW_FRAMES
                                                                + 2 * WINDOW_CONTEXT))
        if nxt <= budget:
            return first
    return MAX_FIRST_FRAMES


@dataclass
class Observed:
    """How long the generator's windows really take against the plan's costs. The plan is
    fixed for the daemon's life (one text, one audio), so a machine that has become
    slower than when it was measured (load, heat, another CPU) shows here first: past
    1/SAFETY the plan's margin is gone and the listener can run dry."""

    windows: int = 0
    recent: float = 1.0  # real / planned, a moving average over the last ~10 windows
    slowest: float = 0.0
    warned: bool = False

    def add(self, real_s: float, planned_s: float) -> None:
        ratio = real_s / max(planned_s, 1e-6)
        self.windows += 1
        self.recent = ratio if self.windows == 1 else 0.9 * self.recent + 0.1 * ratio
        self.slowest = max(self.slowest, ratio)
        if self.windows >= 10 and self.recent > SLOWER_WARNING and not self.warned:
            self.warned = True
            log.warning("windows take %.1f× the costs they are planned by: this machine is "
                        "slower than when it was measured, and playback may stall; "
                        "`kokorod tune` measures it again", self.recent)

    def status(self) -> dict[str, Any]:
        return {"windows": self.windows, "real_to_planned": round(self.recent, 2),
                "slowest": round(self.slowest, 2)}


@dataclass(frozen=True)
class Schedule:
    """A daemon's windows: its first window and the costs later ones are planned by."""

    first: int
    costs: Costs | None  # None: no model of playback (fixed growth from `first`)
    source: str  # "calibrated", "saved", "config", "fixed"
    safety: float = SAFETY
    machine: str = ""  # what it was measured for (calibrate.key): reused only there
    observed: Observed = field(default_factory=Observed, compare=False, repr=False)

    @property
    def max_frames(self) -> int:
        if self.costs is None:
            return MAX_WINDOW_FRAMES
        fit = int((MAX_WINDOW_S - self.costs.gen_call_s) / self.costs.gen_frame_s)
        return max(MIN_TAIL_FRAMES, min(MAX_WINDOW_FRAMES, fit - 2 * WINDOW_CONTEXT))

    @property
    def floor(self) -> int:
        """The smallest window that gains on the listener (cost ≤ GAIN × its audio)."""
        if self.costs is None:
            return MIN_WINDOW_FRAMES
        gain_per_frame = GAIN * FRAME_S - self.costs.gen_frame_s
        if gain_per_frame <= 0:  # no window gains: the largest loses least
            return self.max_frames
        need = (self.costs.gen_call_s + 2 * WINDOW_CONTEXT * self.costs.gen_frame_s) \
            / gain_per_frame
        return min(self.max_frames, max(MIN_WINDOW_FRAMES, math.ceil(need / 4) * 4))

    def key(self) -> tuple[Any, ...]:
        """Everything that decides the windows (the audio cache keys by it)."""
        return (self.first, self.safety, self.costs and astuple_rounded(self.costs))

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"first_window_frames": self.first,
                               "first_window_ms": round(self.first * FRAME_S * 1000),
                               "max_window_frames": self.max_frames,
                               "min_window_frames": self.floor,
                               "source": self.source, "calibrated": self.costs is not None,
                               "safety": self.safety}
        if self.costs is not None:
            out["observed"] = self.observed.status()
            out["costs_ms"] = {"generator_per_frame": round(self.costs.gen_frame_s * 1000, 3),
                               "generator_per_call": round(self.costs.gen_call_s * 1000, 2),
                               "front_per_call": round(self.costs.front_call_s * 1000, 2),
                               "front_per_frame": round(self.costs.front_frame_s * 1000, 3),
                               "source_per_frame": round(self.costs.source_frame_s * 1000, 3)}
        return out

    def text(self) -> str:
        """The config value that gives this schedule (`kokorod tune` writes it)."""
        if self.costs is None:
            return str(self.first)
        c = self.costs
        return (f"{self.first}:{c.gen_frame_s * 1000:.3f},{c.gen_call_s * 1000:.2f},"
                f"{c.front_call_s * 1000:.2f},{c.front_frame_s * 1000:.3f},"
                f"{c.source_frame_s * 1000:.3f}")


def astuple_rounded(costs: Costs) -> tuple[float, ...]:
    return tuple(round(v, 6) for v in asdict(costs).values())


FIXED = Schedule(FALLBACK_FIRST, None, "fixed")


def parse(text: str) -> Schedule | None:
    """A KOKORO_WINDOW_SCHEDULE value: "auto" (None: calibrate), "N" (first window of N
    frames, fixed growth) or "N:gen_frame,gen_call,front_call,front_frame[,source_frame]"
    (ms, what `kokorod tune` writes). ValueError says what is wrong."""
    text = text.strip().lower()
    if text in ("", "auto"):
        return None
    first_text, _, costs_text = text.partition(":")
    try:
        first = int(first_text)
    except ValueError:
        raise ValueError(f"window schedule {text!r}: expected auto, N or N:a,b,c,d[,e] "
                         "(N frames of 12.5 ms)") from None
    if not MIN_WINDOW_FRAMES <= first <= MAX_WINDOW_FRAMES:
        raise ValueError(f"window schedule: first window {first} frames is outside "
                         f"{MIN_WINDOW_FRAMES}…{MAX_WINDOW_FRAMES}")
    if not costs_text:
        return Schedule(first, None, "config")
    try:
        values = [float(v) / 1000 for v in costs_text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (4, 5) or min(values) < 0 or values[0] <= 0 or not all(
            math.isfinite(v) for v in values):
        raise ValueError(f"window schedule {text!r}: costs must be four or five numbers of "
                         "ms (generator per frame > 0, per call, front per call, per frame, "
                         "source per frame)")
    return Schedule(first, Costs(*values), "config")


class Windows:
    """One request's windows: the first from the schedule, each later one the largest
    whose modelled cost fits in SAFETY × the audio modelled to be ahead of the listener.
    The engine reports what each step made (`spent`) and each batch's front (`front`)."""

    def __init__(self, schedule: Schedule = FIXED,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.schedule = schedule
        self.windows = 0  # windows handed out so far
        self.ahead_s = 0.0  # modelled audio ahead of the listener when the next step starts
        self._pending_s = 0.0  # modelled cost of this step so far (a batch's front)
        self._clock = clock
        self._handed_at = 0.0  # when the last window was handed out (its run follows)

    def front(self, frames: int) -> None:
        """A batch's front runs in the coming step (for the request's first batch, before
        the listener starts: only the rest of its source counts, in the second step)."""
        costs = self.schedule.costs
        if costs is None:
            return
        if self.windows:
            self._pending_s += costs.front(frames)
        elif frames > self.schedule.first + MIN_TAIL_FRAMES:  # (else it was run whole)
            self._pending_s += costs.source_frame_s * frames

    def next_frames(self) -> int:
        s = self.schedule
        k, self.windows = self.windows, self.windows + 1
        self._handed_at = self._clock()
        if k == 0:
            return s.first
        if s.costs is None:  # fixed growth: two of `first`, then ×1.25 to the cap
            return min(s.max_frames, int(s.first * 1.25 ** max(0, k - 1)))
        budget = s.safety * self.ahead_s - self._pending_s
        fit = int((budget - s.costs.gen_call_s) / s.costs.gen_frame_s) - 2 * WINDOW_CONTEXT
        return max(s.floor, min(s.max_frames, fit // 4 * 4))

    def spent(self, samples: int, span: int, sourced: bool = False) -> None:
        """The step just run made `samples` of audio over a `span` of frames (`sourced`:
        it ran the source too, as a batch's first and second windows do)."""
        costs = self.schedule.costs
        if costs is None:
            return
        if not self._pending_s and not sourced:  # the generator alone ran
            self.schedule.observed.add(self._clock() - self._handed_at, costs.gen(span))
        made = samples / SAMPLE_RATE
        if self.windows <= 1:  # the listener starts with the first window's audio
            self.ahead_s = made  # (the rest of the first batch's source stays pending)
            return
        self.ahead_s = max(0.0, self.ahead_s - self._pending_s - costs.gen(span)) + made
        self._pending_s = 0.0


# ---------------------------------------------------------------- calibration
def _saved_file() -> Path:
    return paths.data_dir() / "window-schedule.json"


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


def saved(key: str) -> Schedule | None:
    try:
        data = json.loads(_saved_file().read_text())
        entry = data[key]
        return Schedule(int(entry["first"]), Costs(**entry["costs"]), "saved", machine=key)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(key: str, schedule: Schedule) -> None:
    if schedule.costs is None:
        return
    path = _saved_file()
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(data, dict):
            data = {}
        data[key] = {"first": schedule.first, "costs": asdict(schedule.costs),
                     "cpu": cpu_model(), "measured_at": time.time()}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)
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


def from_costs(costs: Costs, source: str = "calibrated", machine: str = "") -> Schedule:
    return Schedule(first_window(costs), costs, source, machine=machine)
