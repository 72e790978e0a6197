"""The window plan: the first window from this machine's costs, later windows from a model
of playback — deterministic, bounded, and never planned to starve the listener."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kokorod.config import ConfigError, load
from kokorod.synth import calibrate, windows
from kokorod.synth.windows import (
    FRAME_S,
    MAX_WINDOW_S,
    MIN_WINDOW_FRAMES,
    SAMPLE_RATE,
    WINDOW_CONTEXT,
    Costs,
    Schedule,
    Windows,
)

# This machine kind's two CPUs (ms per frame of the generator: Xeon ~3.6, EPYC ~2×).
# The source alone: ~0.2 ms a frame here (a 446-frame sentence's, 80–120 ms).
XEON = Costs(0.0036, 0.016, 0.035, 0.00047, 0.0002)
EPYC = Costs(0.0075, 0.03, 0.07, 0.001, 0.0004)


def run(schedule: Schedule, batches: list[int]) -> list[tuple[int, float, float, bool]]:
    """Plays the plan out on batches of these frame counts: (frames, ahead before the
    window, its modelled cost, whether it ends its batch) per window, as the engine
    reports to Windows."""
    now = [0.0]  # windows take exactly their modelled cost: the observed speed stays 1
    w = Windows(schedule, clock=lambda: now[0])
    costs = schedule.costs
    out = []
    for frames in batches:
        w.front(frames, frames)  # as the engine does: the first batch's frames are known
        done = 0
        while done < frames:
            n = w.next_frames()
            if frames - (done + n) < windows.MIN_REST_FRAMES:
                n = frames - done
            span = n + WINDOW_CONTEXT if done + n == frames else n + 2 * WINDOW_CONTEXT
            cost = w._pending_s + w.costs.gen(span)
            out.append((n, w.ahead_s, cost, done + n == frames))
            now[0] += costs.gen(span)
            w.spent(n * int(FRAME_S * SAMPLE_RATE), span)
            done += n
    return out


def test_slower_cpu_gets_a_larger_first_window() -> None:
    fast, slow = windows.from_costs(XEON), windows.from_costs(EPYC)
    assert MIN_WINDOW_FRAMES <= fast.first < slow.first <= windows.MAX_FIRST_FRAMES
    assert fast.first % 8 == 0 and slow.first % 8 == 0
    # the slower CPU's windows are capped sooner: a window's cost bounds another's wait
    assert windows.largest(EPYC) < windows.largest(XEON)
    assert EPYC.gen(windows.largest(EPYC) + 2 * WINDOW_CONTEXT) <= MAX_WINDOW_S + 0.01


@settings(max_examples=200, deadline=None)
@given(per_frame=st.floats(0.001, 0.009), per_call=st.floats(0.0, 0.05),
       front_call=st.floats(0.0, 0.1), front_frame=st.floats(0.0, 0.001),
       source_frame=st.floats(0.0, 0.0005),
       batches=st.lists(st.integers(20, 1500), min_size=1, max_size=5))
def test_later_windows_fit_in_the_audio_ahead(per_frame: float, per_call: float,
                                              front_call: float, front_frame: float,
                                              source_frame: float,
                                              batches: list[int]) -> None:
    """Every window after the first is planned within SAFETY × the audio modelled ahead
    (or is the smallest window, where nothing fits), on any machine and any text."""
    schedule = windows.from_costs(Costs(per_frame, per_call, front_call, front_frame,
                                        source_frame))
    plan = run(schedule, batches)
    assert plan[0][0] <= max(schedule.first, batches[0])
    for n, ahead, cost, _ in plan[1:]:
        assert n <= windows.largest(schedule.costs) + windows.MIN_REST_FRAMES
        if n > schedule.floor() + windows.MIN_REST_FRAMES:  # chosen, not the floor
            assert cost <= schedule.safety * ahead + 1e-9
    pinned = dataclasses.replace(schedule, adapt=False)
    assert run(pinned, batches) == run(pinned, batches)  # pinned: one text, one plan


def test_a_slow_cpu_keeps_windows_that_gain_on_the_listener() -> None:
    """Behind the listener (a long sentence after a short one, its front to pay first),
    windows no smaller than the floor, which still makes more audio than it costs: before
    the floor, an 8 ms/frame CPU shrank to 16-frame windows costing 1.3× their audio for
    the rest of the sentence, falling further behind with each."""
    for costs in (EPYC, Costs(0.008, 0.014, 0.121, 0.0008)):
        schedule = windows.from_costs(costs)
        assert costs.gen(schedule.floor() + 2 * WINDOW_CONTEXT) <= \
            windows.GAIN * schedule.floor() * FRAME_S + 1e-9
        later = run(schedule, [124, 492])[1:]
        sizes = [n for n, _, _, last in later if not last]  # a batch's last takes the rest
        assert min(sizes) >= schedule.floor() > MIN_WINDOW_FRAMES
        assert sizes == sorted(sizes)  # gaining: the lead grows, and with it the windows


def test_first_window_leaves_time_for_the_next() -> None:
    for costs in (XEON, EPYC):
        s = windows.from_costs(costs)
        ahead = (s.first - windows.LEAD_FRAMES) * FRAME_S
        assert costs.front(s.first) + costs.gen(MIN_WINDOW_FRAMES + 2 * WINDOW_CONTEXT) \
            <= s.safety * ahead


def test_the_second_step_pays_for_a_prefix_of_the_source_not_the_whole() -> None:
    """A request's first window runs only the head of its batch's source; the second runs
    it further (a prefix, SOURCE_GROWTH times the head), not to the end of a long batch,
    and is planned around that."""
    schedule = windows.from_costs(XEON)
    plan = run(schedule, [600])
    first, (n, ahead, cost, _) = plan[0][0], plan[1]
    reach = windows.second_source(first, 600, schedule.floor())
    assert first + n + 2 * WINDOW_CONTEXT <= reach < 600  # enough for it, not the whole
    assert cost <= schedule.safety * ahead + 1e-9  # source included
    assert abs(cost - XEON.source_frame_s * reach - XEON.gen(n + 2 * WINDOW_CONTEXT)) < 1e-9
    # a batch the first window covers was sourced whole: nothing pending
    w = Windows(schedule)
    w.front(schedule.first, schedule.first)
    w.next_frames()
    assert w._pending_s == 0.0


def test_source_runs_grow_and_cost_at_most_one_and_a_half_wholes() -> None:
    """Window after window, the source's runs reach every window's end, each at least
    SOURCE_GROWTH times as far as the last, and end at the batch's end."""
    for frames in (40, 200, 900, 3000):
        have, runs, hi = 0, [], 0
        for hi in range(24, frames + 40, 24):
            hi = min(hi, frames)
            if hi + windows.SOURCE_MARGIN > have and have < frames:
                have = windows.source_reach(have, hi, frames)
                runs.append(have)
            assert have >= min(frames, hi + windows.SOURCE_MARGIN)
        assert runs[-1] == frames and runs == sorted(runs)
        assert sum(runs) <= 1.5 * frames + 2 * (24 + windows.SOURCE_MARGIN)


def test_without_measured_costs_windows_are_planned_for_a_slow_cpu() -> None:
    """A failed measurement, or a first window given alone: that first window (the
    fallback's 80 frames, or the one given), the rest planned for a CPU slower than any
    measured, so the windows keep ahead on it (and grow on a faster one)."""
    for schedule in (windows.fixed(), windows.parse("48")):
        assert schedule is not None and schedule.costs == windows.FALLBACK_COSTS
        assert not schedule.status()["calibrated"] and not schedule.pinned
        assert schedule.first == (48 if schedule.source == "config" else
                                  windows.FALLBACK_FIRST)
        for batches in ([40], [120, 900], [700]):
            plan = run(schedule, batches)
            assert plan[0][0] == min(schedule.first, batches[0])
            for n, ahead, cost, last in plan[1:]:
                assert last or cost <= schedule.safety * ahead + 1e-9 or n == schedule.floor()
    # a new plan each time: one engine's observed speed is not another's
    assert windows.fixed() is not windows.fixed()
    assert windows.fixed().observed is not windows.fixed().observed
    assert windows.fixed(adapt=False).pinned


def test_config_values_round_trip_and_bad_ones_are_refused() -> None:
    s = windows.from_costs(XEON)
    back = windows.parse(s.text())
    assert back is not None and back.first == s.first and back.source == "config"
    assert abs(back.costs.gen_frame_s - XEON.gen_frame_s) < 1e-6
    assert abs(back.costs.source_frame_s - XEON.source_frame_s) < 1e-6
    older = windows.parse("88:5.300,27.00,27.00,0.930")  # four numbers: no source cost
    assert older is not None and older.costs.source_frame_s == 0
    assert windows.parse("auto") is None and windows.parse("") is None
    assert windows.parse("48") == Schedule(48, windows.FALLBACK_COSTS, "config")
    for bad in ("x", "4", "100000", "48:1,2", "48:1,1,1,1,1,1", "48:-1,0,0,0", "48:0,1,1,1",
                "48:nan,1,1,1"):
        with pytest.raises(ValueError):
            windows.parse(bad)
        with pytest.raises(ConfigError, match="KOKORO_WINDOW_SCHEDULE"):
            load({"KOKORO_WINDOW_SCHEDULE": bad})


def test_saved_schedule_is_reused_only_for_its_machine(store: object) -> None:
    s = windows.from_costs(EPYC, machine="cpu A|model|threads=2")
    calibrate.save("cpu A|model|threads=2", s)
    kept = calibrate.saved("cpu A|model|threads=2")
    assert kept is not None and kept.first == s.first and kept.source == "saved"
    assert kept.costs == EPYC
    assert calibrate.saved("cpu B|model|threads=2") is None


def test_windows_slower_than_planned_are_observed_said_once_and_planned_for(
        caplog: pytest.LogCaptureFixture) -> None:
    """How far the machine has drifted from its measured costs shows in `status`, past
    SLOWER_WARNING once in the log, and the next requests' windows are sized for the speed
    observed: on a machine twice as slow, the same lead buys half the frames, and the
    first window grows so the second can be ready in time."""
    schedule = windows.from_costs(XEON)
    now = [0.0]

    def request(slowdown: float) -> list[int]:
        w = Windows(schedule, clock=lambda: now[0])
        w.front(2000)
        sizes = []
        for _ in range(12):
            n = w.next_frames()
            sizes.append(n)
            now[0] += slowdown * XEON.gen(n + 2 * WINDOW_CONTEXT)
            w.spent(n * int(FRAME_S * SAMPLE_RATE), n + 2 * WINDOW_CONTEXT)
        return sizes

    steady = request(1.0)
    seen = schedule.observed.status()
    # steps 1-3 ran the source too (growing prefixes of the 2000 frames, the last whole):
    # not the generator alone
    assert seen["windows"] == 9 and seen["real_to_planned"] == 1.0
    assert schedule.speed() == 1.0
    w = Windows(schedule, clock=lambda: now[0])  # a step that ran the source (a later
    w.next_frames()  # batch's second window runs it whole) is not the generator alone
    now[0] += 10.0
    w.spent(8000, 120, sourced=True)
    assert schedule.observed.status() == seen
    with caplog.at_level("WARNING", logger="kokorod.synth.windows"):
        request(2.0)
        slow = request(2.0)
    seen = schedule.status()["observed"]
    assert seen["windows"] == 27 and 1.6 < seen["real_to_planned"] <= 2.0
    assert seen["slowest"] == 2.0
    assert sum("slower than" in r.message for r in caplog.records) == 1
    assert 1.6 <= schedule.speed() <= 2.0
    assert slow[0] > steady[0]  # a larger first window: time for the second
    assert windows.from_costs(XEON) == schedule  # observed: no part of the plan's key
    pinned = dataclasses.replace(schedule, adapt=False)
    pinned.observed.add(3.0, 1.0)
    assert pinned.speed() == 1.0 and Windows(pinned).next_frames() == pinned.first
    assert schedule.status()["recent_windows"][-1]["why"]  # each window says why


def test_a_request_starting_beside_others_gets_a_smaller_first_window() -> None:
    """Four clients at once: each fresh request's first window runs before anyone's second,
    so each is smaller when others are synthesizing (not when the plan is pinned)."""
    schedule = windows.from_costs(EPYC)
    alone = Windows(schedule).next_frames()
    beside = [Windows(schedule, load=lambda n=n: n).next_frames() for n in (2, 4)]
    assert alone > beside[0] > beside[1] >= MIN_WINDOW_FRAMES
    pinned = dataclasses.replace(schedule, adapt=False)
    assert Windows(pinned, load=lambda: 4).next_frames() == pinned.first
    # asked as the window is chosen: three requests that came in while this one's front
    # ran count (the first of four arriving together no longer takes a window for one)
    def first_of(w: Windows) -> int:
        w.front(120, 120)
        return w.next_frames()

    load = [1]
    w = Windows(schedule, load=lambda: load[0])
    w.front(120, 120)
    load[0] = 4
    assert w.next_frames() == first_of(Windows(schedule, load=lambda: 4)) \
        < first_of(Windows(schedule)) and w.sharing == 4


def test_requests_taking_turns_get_windows_that_gain_on_their_listeners() -> None:
    """n requests taking turns: each step takes ~n times as long, so a window behind its
    listener is the smallest with n × its cost ≤ GAIN × its audio; where none is (4
    clients on this CPU), the largest whose turn, n times over, fits MAX_WINDOW_S. Per-call
    and context costs make small windows the least audio per second of the machine: 4
    clients on 16-frame windows each fell further behind every turn."""
    def per_second(costs: Costs, frames: int) -> float:
        return frames * FRAME_S / costs.gen(frames + 2 * WINDOW_CONTEXT)

    for costs in (XEON, EPYC):
        schedule = windows.from_costs(costs)
        assert schedule.floor(costs, 1) == schedule.floor()
        for n in (2, 3, 4):
            f, cap = schedule.floor(costs, n), windows.largest(costs, n)
            assert n * costs.gen(cap + 2 * WINDOW_CONTEXT) <= MAX_WINDOW_S + 1e-9 or \
                cap == MIN_WINDOW_FRAMES
            assert schedule.floor() <= f <= max(cap, schedule.floor())  # never below alone's
            if schedule.floor() < f < cap:
                assert n * costs.gen(f + 2 * WINDOW_CONTEXT) <= \
                    windows.GAIN * f * FRAME_S + 1e-9
            assert per_second(costs, f) > 1.3 * per_second(costs, MIN_WINDOW_FRAMES)
        # behind the listener with three others: a window of the shared floor
        w = Windows(schedule, load=lambda: 4)
        w.front(600, 600)
        first = w.next_frames()
        w.spent(first * int(FRAME_S * SAMPLE_RATE), first + 2 * WINDOW_CONTEXT, sourced=True)
        w.ahead_s = 0.0
        assert w.next_frames() == schedule.floor(costs, 4)
        w.ahead_s = 30.0  # far ahead: still at most the shared cap (others wait ≤ ~1 s)
        assert w.next_frames() <= max(schedule.floor(costs, 4), windows.largest(costs, 4))
    xeon = windows.from_costs(XEON)
    assert xeon.floor(XEON, 4) > xeon.floor(XEON, 1) == MIN_WINDOW_FRAMES


def test_the_first_window_fits_the_text() -> None:
    """Knowing the first sentence, the first window is the smallest after which that
    sentence's next window is ready in time: a sentence that ends the text may be vocoded
    in one small window, a long one starts with a window sized for what follows."""
    for costs in (XEON, EPYC):
        schedule = windows.from_costs(costs)
        short_alone = Windows(schedule)
        short_alone.more = False
        short_alone.front(60, 40)
        assert short_alone.next_frames() <= 40
        long_first = Windows(schedule)
        long_first.front(700, 690)
        n = long_first.next_frames()
        second = schedule.floor()
        assert costs.source_frame_s * windows.second_source(n, 690, second) + \
            costs.gen(second + 2 * WINDOW_CONTEXT) <= \
            schedule.safety * (n - windows.LEAD_FRAMES) * FRAME_S
        pinned = dataclasses.replace(schedule, adapt=False)
        fixed = Windows(pinned)
        fixed.front(60, 40)
        assert fixed.next_frames() == pinned.first
