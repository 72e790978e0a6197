"""This machine's costs for the window plan (windows.py): the generator's per frame and
per call, the front's (with the source) per call and per frame of audio, each the
median of a few runs on the warm sessions. Measured once per CPU, model, threads,
provider and onnxruntime, and kept in the data dir; `kokorod tune` measures again."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import onnxruntime as ort

from kokorod import providers, windows
from kokorod.segment import Segment
from kokorod.windows import WINDOW_CONTEXT, Costs, Schedule

if TYPE_CHECKING:
    from kokorod.vocoder import Prepared

Engine = Any  # kokorod.engine.Engine, which calls in here (not imported: no cycle)

log = logging.getLogger(__name__)

SHORT = "The kettle is boiling again."
LONG = ("The old lighthouse stood at the edge of the harbour, its white paint peeling in "
        "the salt wind, and every evening the keeper climbed the stairs.")
SPANS = (16, 64)  # window frames measured (context added)


def key(engine: Engine) -> str:
    return "|".join([windows.cpu_model(), engine.files.sha256[:16],
                     f"threads={providers.thread_count(engine.config)}",
                     f"inter={engine.config.inter_op_threads}",
                     f"graph={engine.config.graph_optimization}",
                     engine.provider.provider, f"onnxruntime={ort.__version__}",
                     f"v{windows.CALIBRATION_VERSION}"])


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
        took = windows.median_time(lambda t=text: prepare(t), runs)
        fronts[n] = (batches[text].frames, took)
    batch = batches[LONG]
    source = windows.median_time(lambda: vocoder.run_source(f0s[LONG]), runs)
    gens = []
    for frames in SPANS:
        def window(frames: int = frames) -> None:
            batch.next, batch.fade_tail = WINDOW_CONTEXT, None
            vocoder.window(batch, frames, trim=False)
        gens.append((frames + 2 * WINDOW_CONTEXT, windows.median_time(window, runs)))
    gen_frame, gen_call = windows.fit(gens)
    front_frame, front_call = windows.fit(fronts)
    return Costs(gen_frame, gen_call, front_call, front_frame, source / batch.frames)


def schedule_for(engine: Engine, given: Schedule | None = None) -> Schedule:
    """The config's schedule, else `given` (the daemon's, kept across reloads), else the
    one kept for this machine, else measured now and kept."""
    configured = windows.parse(engine.config.window_schedule)
    if configured is not None:
        return configured
    if engine.vocoder is None:
        return windows.FIXED
    k = key(engine)
    if given is not None and given.machine == k:
        return given
    kept = windows.saved(k)
    if kept is not None:
        return kept
    try:
        costs = measure(engine)
    except Exception as exc:  # a measurement must never keep the daemon from serving
        log.warning("could not measure the window costs (%s); using the fixed schedule", exc)
        return windows.FIXED
    schedule = windows.from_costs(costs, machine=k)
    windows.save(k, schedule)
    log.info("window schedule: first window %d frames (%s)", schedule.first, schedule.status())
    return schedule
