"""How many frames each window of a request's audio holds, planned from this machine's costs.

The first window decides a request's first audio: the smaller, the sooner. Every later
window must be ready before the audio ahead of it has played, and what that allows
depends on the machine (CPUs of one kind run the generator ~2× apart) and on the moment
(a laptop on battery, a compile in the background). So the plan starts from costs
measured once (calibrate.py) or given in the config (`KOKORO_WINDOW_SCHEDULE`), and:

- each window is the largest whose modelled cost fits in a share (SAFETY) of the audio
  modelled to be ahead of the listener (the audio made so far against the modelled
  cost of making it: a model of playback, not a clock);
- the costs are scaled by how much slower or faster than planned the windows have really
  run lately (`Observed`), so a machine twice as slow as measured gets windows sized
  for it instead of a stall;
- a request that starts while others are synthesizing gets a smaller first window, so
  several clients at once all start soon.

Window size does not shape the sound: the generator is fed the batch's predicted
statistics (norm_stats.py), and windows of 16 and 80 frames are equally close to the
whole. (Where it cannot be — no table for the voice, a model that cannot be rewritten —
the engine vocodes a batch at a time.) With KOKORO_WINDOW_ADAPT=0 the plan is pinned:
it follows neither the observed speed, nor the text, nor the load, so the same text gives
the same audio bit for bit (the tests rely on it).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from kokorod.setting_values import WINDOW_FRAMES, read_window_schedule
from kokorod_common.protocol import SAMPLE_RATE

log = logging.getLogger(__name__)

FRAME_S = 0.0125  # one frame of features is 12.5 ms of audio
WINDOW_CONTEXT = 8  # frames either side of a window: keeps the convolutions' view
FADE_FRAMES = 2  # overshoot cross-faded into the next window
MIN_REST_FRAMES = 8  # a window that would leave fewer takes them too
# Frames kept before a batch's first token (the decoder sounds a token a little before
# its slot); the silence before them is not vocoded, and these may be trimmed.
LEAD_FRAMES = 8
MIN_WINDOW_FRAMES = WINDOW_FRAMES[0]  # smaller windows cost more context than audio
SOURCE_MARGIN = 2  # frames of F0 past a window its source needs to equal the whole's
# A batch's source is causal: a prefix's samples are the whole's. The first run reaches
# the first window's end; each later one at least this many times as far as the last, and
# one that would pass a third of the batch runs it whole: a step pays only for a prefix (a
# long sentence's second window does not wait for its whole source) and all runs together
# cost at most 1.5× the whole's, plus the first head.
SOURCE_GROWTH = 3
MAX_FIRST_FRAMES = 160
MAX_WINDOW_FRAMES = WINDOW_FRAMES[1]  # 5 s
MAX_WINDOW_S = 1.0  # a window's modelled cost: bounds how long another request waits
# Where less fits, a window still costs at most this share of the audio it makes: a
# smaller one loses ground every step (at 8 ms a frame, 16-frame windows cost 1.3× their
# audio and fell further behind with each).
GAIN = 0.8
SAFETY = 0.5  # a window may use this share of the audio modelled to be ahead
# How far the observed speed may move the costs (real / planned), and after how many
# windows it is trusted.
SPEED_RANGE = (0.5, 4.0)
SPEED_AFTER = 3
SPEED_DEADBAND = 0.1  # within ±10 % of the plan (one window's noise): the plan as it is
SLOWER_WARNING = 1.6  # real / planned past which the log says so (once)


@dataclass(frozen=True)
class Costs:
    """Seconds the generator takes per frame and per call, the front (+ source) per call
    and per frame of the audio it prepares, and the source alone per frame: a request's
    first window runs only the source's head, and the rest comes with the second window."""

    gen_frame_s: float
    gen_call_s: float
    front_call_s: float
    front_frame_s: float
    source_frame_s: float = 0.0

    def gen(self, span: int) -> float:
        return self.gen_call_s + self.gen_frame_s * span

    def front(self, frames: int) -> float:
        return self.front_call_s + self.front_frame_s * frames

    def scaled(self, factor: float) -> Costs:
        return Costs(*(v * factor for v in asdict(self).values()))


# Where nothing is measured (a failed measurement, a first window given alone in the
# config): a first window of FALLBACK_FIRST (or the one given), the rest planned from a
# CPU slower than any measured and corrected by the observed speed.
FALLBACK_COSTS = Costs(8e-3, 30e-3, 70e-3, 1.7e-3, 0.6e-3)
FALLBACK_FIRST = 80


def largest(costs: Costs, sharing: int = 1) -> int:
    """The largest window: `sharing` requests' windows together cost at most
    MAX_WINDOW_S, so none waits longer than that for its next turn."""
    fit = int((MAX_WINDOW_S / sharing - costs.gen_call_s) / costs.gen_frame_s)
    return max(MIN_WINDOW_FRAMES, min(MAX_WINDOW_FRAMES, fit - 2 * WINDOW_CONTEXT))


def source_reach(have: int, hi: int, frames: int) -> int:
    """How far a batch of `frames` runs its source when a window needs it through frame
    `hi` and it has run through `have` (the vocoder runs it; the plan models it)."""
    upto = max(hi + SOURCE_MARGIN, SOURCE_GROWTH * have)
    if frames - upto < MIN_REST_FRAMES or (have and SOURCE_GROWTH * upto > frames):
        return frames  # (the first run stays a head: it is paid before the first audio)
    return upto


def second_source(first: int, batch: int, second: int) -> int:
    """Frames of source a batch's second window runs, after a first of `first` frames."""
    have = source_reach(0, first + WINDOW_CONTEXT, batch)
    return 0 if have >= batch else source_reach(have, first + second + WINDOW_CONTEXT,
                                                batch)


def first_window(costs: Costs, safety: float = SAFETY, batch: int | None = None,
                 more: bool = True, second: int = MIN_WINDOW_FRAMES) -> int:
    """The smallest first window (multiple of 8 frames) after which the next step can be
    ready in time. Not knowing the text (`batch` None): whatever that step is, a smallest
    window, or the next sentence's front and one. Knowing the first batch's frames from
    its origin (`batch`), whether anything follows it (`more`) and the smallest later
    window (`second`): that step exactly."""
    smallest = costs.gen(MIN_WINDOW_FRAMES + 2 * WINDOW_CONTEXT)
    for first in range(MIN_WINDOW_FRAMES, MAX_FIRST_FRAMES + 1, 8):
        budget = safety * (first - LEAD_FRAMES) * FRAME_S
        if batch is None:
            nxt = costs.front(first) + smallest
        elif batch - first < MIN_REST_FRAMES:  # the whole batch in this window
            if not more:
                return first
            nxt = costs.front(first) + smallest
        else:  # the second window: more of the source, then at least `second` frames
            size = second if batch - first - second >= MIN_REST_FRAMES else batch - first
            nxt = (costs.source_frame_s * second_source(first, batch, size)
                   + costs.gen(size + 2 * WINDOW_CONTEXT))
        if nxt <= budget:
            return first
    return MAX_FIRST_FRAMES


@dataclass
class Observed:
    """How long the generator's windows really take against the costs they were planned
    by: a moving average over the last ~10 windows, and the slowest."""

    windows: int = 0
    recent: float = 1.0
    slowest: float = 0.0
    warned: bool = False

    def add(self, real_s: float, planned_s: float) -> None:
        ratio = real_s / max(planned_s, 1e-6)
        self.windows += 1
        self.recent = ratio if self.windows == 1 else 0.9 * self.recent + 0.1 * ratio
        self.slowest = max(self.slowest, ratio)
        if self.windows >= 10 and self.recent > SLOWER_WARNING and not self.warned:
            self.warned = True
            log.warning("windows take %.1f× the costs they were planned by: this machine "
                        "is slower than measured (load, heat, power saving); windows are "
                        "sized for it, and `kokorod tune` measures it again", self.recent)

    def speed(self) -> float:
        """The factor the costs are scaled by (1 until enough windows were seen)."""
        if self.windows < SPEED_AFTER or abs(self.recent - 1.0) <= SPEED_DEADBAND:
            return 1.0
        return round(min(SPEED_RANGE[1], max(SPEED_RANGE[0], self.recent)) * 20) / 20

    def status(self) -> dict[str, Any]:
        return {"windows": self.windows, "real_to_planned": round(self.recent, 2),
                "slowest": round(self.slowest, 2)}


@dataclass(frozen=True)
class Schedule:
    """A daemon's windows: its first window and the costs later ones are planned by. Not
    `pinned`: each request's follow the observed speed, its text and the load."""

    first: int
    costs: Costs
    source: str  # "calibrated", "saved", "config", "fixed"
    safety: float = SAFETY
    machine: str = ""  # what it was measured for (calibrate.key): reused only there
    adapt: bool = True  # follow the observed speed, the text and the load
    observed: Observed = field(default_factory=Observed, compare=False, repr=False)
    recent: list[dict[str, Any]] = field(default_factory=list, compare=False, repr=False)

    @property
    def pinned(self) -> bool:
        return not self.adapt

    @property
    def measured(self) -> bool:
        """Costs measured or given, not the fallback's: only they fit the first window."""
        return self.costs != FALLBACK_COSTS

    def speed(self) -> float:
        return 1.0 if self.pinned else self.observed.speed()

    def floor(self, costs: Costs | None = None, sharing: int = 1) -> int:
        """The smallest window that gains on the listener (cost ≤ GAIN × its audio) while
        `sharing` requests take turns (each step then takes that many times as long): the
        call and the context are paid per window, so when the machine is shared, larger
        windows make more audio per second of it (4 clients on 16-frame windows each fell
        further behind every turn). At most the shared cap, so no request's next turn
        waits more than ~MAX_WINDOW_S, but never below the floor of a request alone (on a
        CPU whose alone floor costs more than MAX_WINDOW_S / n, that floor wins)."""
        costs = costs or self.costs
        alone = _gaining(costs, 1, largest(costs))
        if sharing <= 1:
            return alone
        return max(alone, _gaining(costs, sharing, largest(costs, sharing)))

    def key(self) -> tuple[Any, ...]:
        """Everything fixed that decides the windows (the audio cache keys by it)."""
        return (self.first, self.safety, self.adapt,
                astuple_rounded(self.costs))

    def status(self) -> dict[str, Any]:
        c = self.costs
        return {"first_window_frames": self.first,
                "first_window_ms": round(self.first * FRAME_S * 1000),
                "max_window_frames": largest(c), "min_window_frames": self.floor(),
                "source": self.source, "calibrated": self.measured,
                "pinned": self.pinned, "safety": self.safety, "speed": round(self.speed(), 2),
                "observed": self.observed.status(), "recent_windows": list(self.recent),
                "costs_ms": {"generator_per_frame": round(c.gen_frame_s * 1000, 3),
                             "generator_per_call": round(c.gen_call_s * 1000, 2),
                             "front_per_call": round(c.front_call_s * 1000, 2),
                             "front_per_frame": round(c.front_frame_s * 1000, 3),
                             "source_per_frame": round(c.source_frame_s * 1000, 3)}}

    def text(self) -> str:
        """The config value that gives this schedule (`kokorod tune` writes it)."""
        c = self.costs
        return (f"{self.first}:{c.gen_frame_s * 1000:.3f},{c.gen_call_s * 1000:.2f},"
                f"{c.front_call_s * 1000:.2f},{c.front_frame_s * 1000:.3f},"
                f"{c.source_frame_s * 1000:.3f}")


def astuple_rounded(costs: Costs) -> tuple[float, ...]:
    return tuple(round(v, 6) for v in asdict(costs).values())


def _gaining(costs: Costs, sharing: int, cap: int) -> int:
    """The smallest window (of 4 frames) with `sharing` × its cost ≤ GAIN × its audio;
    `cap` where none is (the largest loses least)."""
    gain_per_frame = GAIN * FRAME_S - sharing * costs.gen_frame_s
    if gain_per_frame <= 0:
        return cap
    need = sharing * (costs.gen_call_s + 2 * WINDOW_CONTEXT * costs.gen_frame_s) \
        / gain_per_frame
    return min(cap, max(MIN_WINDOW_FRAMES, math.ceil(need / 4) * 4))


RECENT_KEPT = 8  # windows `status` shows with their reasons


def from_costs(costs: Costs, source: str = "calibrated", machine: str = "") -> Schedule:
    return Schedule(first_window(costs), costs, source, machine=machine)


def fixed(adapt: bool = True) -> Schedule:
    """The plan where nothing is measured: a first window of FALLBACK_FIRST, the rest from
    the fallback costs (a new one each time: its observed speed is its own)."""
    return Schedule(FALLBACK_FIRST, FALLBACK_COSTS, "fixed", adapt=adapt)


def parse(text: str) -> Schedule | None:
    """A KOKORO_WINDOW_SCHEDULE value as a Schedule (None: "auto", calibrate); the config
    reads its text form (setting_values.read_window_schedule). ValueError says what is wrong."""
    read = read_window_schedule(text)
    if read is None:
        return None
    first, costs = read
    return Schedule(first, FALLBACK_COSTS if costs is None else Costs(*costs), "config")


class Windows:
    """One request's windows: the first from the schedule (smaller when others synthesize
    too), each later one the largest whose modelled cost fits in SAFETY × the audio
    modelled to be ahead of the listener. `load` says how many requests take turns at the
    worker (this one included); it is asked as each window is chosen, so requests that
    arrived during this one's front count. The engine reports what each step made
    (`spent`) and each batch's front (`front`)."""

    def __init__(self, schedule: Schedule, load: Callable[[], int] = lambda: 1,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.schedule = schedule
        self._load = load
        self.sharing = 1  # requests taking turns when the last window was chosen
        self.speed = schedule.speed()  # fixed for the request once it starts
        self.costs = schedule.costs.scaled(self.speed)
        self.windows = 0  # windows handed out so far
        self.ahead_s = 0.0  # modelled audio ahead of the listener when the next step starts
        self._pending_s = 0.0  # modelled cost of this step so far (a batch's front)
        self._clock = clock
        self._handed_at = 0.0  # when the last window was handed out (its run follows)
        self._batch: int | None = None  # the first batch's frames from its origin
        self._source = (0, 0)  # the first batch's frames, and its source's reach so far
        self._at = 0  # frames of the first batch handed out
        self.more = True  # whether anything follows the first batch (the scheduler says)

    def front(self, frames: int, audio_frames: int | None = None) -> None:
        """A batch's front runs in the coming step (for the request's first batch, before
        the listener starts: only the rest of its source counts, in the second step).
        `audio_frames`: the frames it will vocode (from its origin)."""
        if self.windows:
            self._pending_s += self.costs.front(frames)
        else:  # its source's next part is added once the first window is chosen
            self._batch, self._source = audio_frames, (frames, 0)

    def _first(self) -> tuple[int, str]:
        s, costs = self.schedule, self.costs
        if s.pinned or not s.measured:  # (a slow CPU's costs say nothing of this one)
            return s.first, "plan"
        first = first_window(costs, s.safety, self._batch, self.more, s.floor(costs))
        why = "fitted to the first sentence" if self._batch is not None else "plan"
        if self.speed != 1.0:
            why += f", observed speed ×{self.speed:.2f}"
        if self.sharing > 1:  # the others' first windows run before this one's second
            first = max(MIN_WINDOW_FRAMES, 2 * first // (self.sharing + 1) // 8 * 8)
            why += f", {self.sharing} requests synthesizing"
        return first, why

    def next_frames(self) -> int:
        s, costs = self.schedule, self.costs
        k, self.windows = self.windows, self.windows + 1
        self._handed_at = self._clock()
        self.sharing = 1 if s.pinned else max(1, self._load())
        if k == 0:
            frames, why = self._first()
            self._source_s(frames, take=True)  # its head runs before the listener starts
        else:
            # Others take their turns between this request's windows: each of its steps
            # takes about `sharing` times as long in wall time.
            floor = s.floor(costs, self.sharing)
            cap = max(floor, largest(costs, self.sharing))
            source_s = self._source_s(floor)  # more of the first batch's source, if needed
            for _ in range(2):  # (a larger window may need more of it: fitted again)
                budget = (s.safety * self.ahead_s - self._pending_s - source_s) / self.sharing
                fit = int((budget - costs.gen_call_s) / costs.gen_frame_s) - 2 * WINDOW_CONTEXT
                frames = max(floor, min(cap, fit // 4 * 4))
                if self._source_s(frames) <= source_s:
                    break
                source_s = self._source_s(frames)
            self._pending_s += self._source_s(frames, take=True)
            why = ("floor: behind the listener" if frames == floor and fit < floor else
                   "cap" if frames == cap else f"fits {s.safety:.0%} of {self.ahead_s:.2f} s")
            if self.speed != 1.0:
                why += f", observed speed ×{self.speed:.2f}"
            if self.sharing > 1:
                why += f", {self.sharing} requests synthesizing"
        log.debug("window %d: %d frames (%s)", k, frames, why)
        s.recent.append({"frames": frames, "why": why})
        del s.recent[:-RECENT_KEPT]
        return frames

    def _source_s(self, frames: int, take: bool = False) -> float:
        """The modelled cost of the first batch's source that the next window of `frames`
        runs (`take`: it is handed out, so the source reaches that far now)."""
        total, have = self._source
        hi = min(total, self._at + frames + WINDOW_CONTEXT)
        if have >= total or hi + SOURCE_MARGIN <= have:
            reach = have
        else:
            reach = source_reach(have, hi, total)
        if take:
            self._source, self._at = (total, reach), self._at + frames
        if reach == have:
            return 0.0
        return self.costs.source_frame_s * reach

    def spent(self, samples: int, span: int, sourced: bool = False) -> None:
        """The step just run made `samples` of audio over a `span` of frames (`sourced`:
        it ran the source too, as a batch's first and second windows do)."""
        base, costs = self.schedule.costs, self.costs
        if not self._pending_s and not sourced:  # the generator alone ran
            self.schedule.observed.add(self._clock() - self._handed_at, base.gen(span))
        made = samples / SAMPLE_RATE
        if self.windows <= 1:  # the listener starts with the first window's audio
            self.ahead_s = made  # (the rest of the first batch's source stays pending)
            return
        self.ahead_s = max(0.0, self.ahead_s - self._pending_s - costs.gen(span)) + made
        self._pending_s = 0.0
