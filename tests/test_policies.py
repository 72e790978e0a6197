"""The daemon's policies without the model: who synthesizes next (scheduler), the vocoder's
window schedule, and the speech queue's priority rules — engine, worker and player
injected, so these run in milliseconds and say exactly which rule broke."""

from __future__ import annotations

import asyncio
import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from kokorod.config import Config
from kokorod.serve.job import Job, final_frame
from kokorod.serve.scheduler import Scheduler
from kokorod.serve.speech_queue import SpeechQueue, Utterance
from kokorod.synth import windows
from kokorod.synth.segment import Segment
from kokorod_common.player import DeviceStalled
from kokorod_common.protocol import SAMPLE_RATE, ErrorCode, SynthesizeRequest

VOICE = np.zeros((510, 1, 256), np.float32)
PIECE = 2400  # samples a stand-in inference step yields (0.1 s)
_ids = itertools.count(1)


def make_job(text: str = "Hello there.", *, priority: str = "text", mode: str = "queue",
             client: str = "a") -> Job:
    req = SynthesizeRequest(next(_ids), text, priority=priority, mode=mode, chunk_ms=100)
    return Job(req, VOICE, "en-us", client)


def sentences(tag: str, n: int) -> str:
    """n segments' worth of text (each sentence is one segment at segment_chars=40)."""
    return " ".join(f"{tag} number {i} stands alone." for i in range(n))


class Steps:
    """Stands in for guard.SegmentAudio: `pieces` steps of audio, each one logged."""

    def __init__(self, log: list[str], tag: str, pieces: int) -> None:
        self.log, self.tag, self.left = log, tag, pieces
        self.interrupted = False
        self.words: list[Any] = []

    def step(self) -> np.ndarray | None:
        if self.left == 0:
            return None
        self.left -= 1
        self.log.append(self.tag)
        return np.full(PIECE, 0.1, np.float32)

    def interrupt(self) -> None:
        self.interrupted = True


class StandInEngine:
    """begin() like Engine's: the tag is the segment's first word, two steps a segment."""

    files = type("Files", (), {"sha256": "stand-in"})()
    default_voice = "af_heart"
    streaming = True
    schedule = windows.fixed()

    def __init__(self) -> None:
        self.log: list[str] = []
        self.begun: list[Steps] = []

    def begin(self, segment: Segment, voice: Any, speed: float, lang: str,
              windows: Any = None, words: bool = False) -> Steps:
        steps = Steps(self.log, segment.rest.split()[0], 2)
        self.begun.append(steps)
        return steps


async def consume(job: Job) -> int:
    return sum([piece.audio.size async for piece in job.drain()  # type: ignore[union-attr]
                ])


def run_scheduler(*jobs: Job) -> list[str]:
    """Submit the jobs (in this order) before the worker starts; read them all; the order
    in which their steps ran."""
    engine = StandInEngine()
    config = Config(first_segment_chars=20, segment_chars=40, audio_cache_mb=0)

    async def main() -> list[str]:
        sched = Scheduler(engine, config, ThreadPoolExecutor(1))  # type: ignore[arg-type]
        for job in jobs:
            sched.submit(job)
        readers = [asyncio.create_task(consume(job)) for job in jobs]
        sched.start()
        await asyncio.wait_for(asyncio.gather(*readers), 10)
        await sched.stop()
        return engine.log

    return asyncio.run(main())


def picks(sched: Scheduler, n: int) -> list[Job | None]:
    """The scheduler's next n choices, each job's turn taken as if it produced a piece."""
    out = []
    for _ in range(n):
        job = sched.pick()
        out.append(job)
        if job is not None:
            job.segments += 1
    return out


def policy_only(*jobs: Job) -> Scheduler:
    sched = Scheduler(StandInEngine(), Config(audio_cache_mb=0), ThreadPoolExecutor(1))  # type: ignore[arg-type]
    for job in jobs:
        sched.submit(job)
    return sched


# ---------------------------------------------------------------- scheduler


def test_a_fresh_request_goes_before_one_that_has_spoken() -> None:
    async def main() -> None:
        long, short = make_job(sentences("long", 6)), make_job("short one.")
        long.segments = 3  # it has had turns already
        assert policy_only(long, short).pick() is short
        older, newer = make_job(), make_job()
        assert policy_only(newer, older).pick() is older  # both fresh: the older first

    asyncio.run(main())


def test_equals_take_turns_and_higher_priority_goes_first() -> None:
    async def main() -> None:
        a, b, c = make_job(), make_job(), make_job()
        for job in (a, b, c):
            job.segments = 1
        assert picks(policy_only(a, b, c), 6) == [a, b, c, a, b, c]
        low = make_job(priority="notification")
        high = make_job(priority="important")
        high.segments = low.segments = 1
        assert picks(policy_only(low, high), 3) == [high, high, high]

    asyncio.run(main())


def test_a_full_or_cancelled_job_is_passed_over() -> None:
    async def main() -> None:
        full, cancelled, ready = make_job(), make_job(), make_job()
        full.out.put_nowait(np.ones(1, np.float32))
        full.out.put_nowait(np.ones(1, np.float32))  # SEGMENTS_AHEAD pieces nobody read
        cancelled.cancel()
        sched = policy_only(full, cancelled, ready)
        assert sched.pick() is ready and sched.paused_jobs == 1 and sched.active_jobs == 2

    asyncio.run(main())


def test_the_worker_interleaves_a_short_request_with_a_long_one() -> None:
    log = run_scheduler(make_job(sentences("long", 6)), make_job("short one."))
    assert log[:2] == ["long", "short"]  # the short one waited one step, not the long text
    assert log.count("long") == 12 and log.count("short") == 2


def test_the_worker_serves_priority_before_arrival() -> None:
    log = run_scheduler(make_job(sentences("low", 3), priority="notification"),
                        make_job(sentences("high", 3), priority="important"))
    assert log == ["high"] * 6 + ["low"] * 6


def test_a_job_nobody_reads_is_paused_at_its_queue_limit() -> None:
    async def main() -> tuple[int, int]:
        engine = StandInEngine()
        sched = Scheduler(engine, Config(segment_chars=40, audio_cache_mb=0),  # type: ignore[arg-type]
                          ThreadPoolExecutor(1))
        sched.start()
        job = make_job(sentences("idle", 10))
        sched.submit(job)
        await asyncio.sleep(0.3)
        produced, paused = len(engine.log), sched.paused_jobs
        job.cancel()
        await sched.stop()
        return produced, paused

    produced, paused = asyncio.run(main())
    assert produced == 2 and paused == 1  # SEGMENTS_AHEAD pieces, then it waits


def test_cancel_wakes_the_scheduler_and_stops_the_running_step() -> None:
    async def main() -> tuple[bool, bool]:
        engine = StandInEngine()
        sched = Scheduler(engine, Config(segment_chars=40, audio_cache_mb=0),  # type: ignore[arg-type]
                          ThreadPoolExecutor(1))
        job = make_job(sentences("gone", 3))
        sched.submit(job)
        job.segment = engine.begin(Segment("gone now.", 0.0, 0), VOICE, 1.0, "en-us")
        sched._running = (job, job.segment)  # type: ignore[assignment]
        job.cancel("stopped")
        await sched.stop()
        return job.segment.interrupted, job.out.get_nowait() is not None  # type: ignore[union-attr]

    interrupted, queued_sentinel = asyncio.run(main())
    assert interrupted and queued_sentinel


# ---------------------------------------------------------------- final frames


def drained(job: Job, marks: bool = False) -> list[Any]:
    async def main() -> list[Any]:
        return [item async for item in job.drain(marks)]

    return asyncio.run(main())


def test_final_frame_for_each_way_a_request_ends() -> None:
    job = make_job()
    assert final_frame(job)["code"] == ErrorCode.EMPTY_TEXT
    job.deliver(np.ones(SAMPLE_RATE + 1, dtype=np.float32), 0.1)  # 1 s and a sample
    job.finish()
    pieces = drained(job)
    assert [p.seq for p in pieces] == list(range(11))  # chunk_ms 100: ten and one sample
    end = final_frame(job)  # reads what the drain handed out
    assert end["op"] == "end" and end["reason"] == "done" and end["chunks"] == 11
    assert end["samples"] == SAMPLE_RATE + 1 and "play" not in end
    assert end["timings"]["segments"] == 0
    job.cancel("stopped")
    played = final_frame(job, played_samples=SAMPLE_RATE)
    assert played["cancelled"] and played["reason"] == "stopped" and played["play"]
    assert played["audio_seconds"] == 1.0


def test_the_drain_puts_marks_before_their_chunk_and_keeps_an_engine_error() -> None:
    from kokorod.synth.guard import EngineError

    job = make_job()
    job.marks.extend([{"kind": "segment", "sample": 0}, {"kind": "word", "sample": 3000}])
    job.deliver(np.ones(SAMPLE_RATE // 5, dtype=np.float32), 0.1)  # two chunks of 2400
    job.finish(EngineError("inference failed: boom"))
    items = drained(job, marks=True)
    kinds = [i["kind"] if isinstance(i, dict) else i.seq for i in items]
    assert kinds == ["segment", 0, "word", 1]  # sample 3000 is in the second chunk
    final = final_frame(job)
    assert final["op"] == "error" and final["code"] == ErrorCode.ENGINE_ERROR


# ---------------------------------------------------------------- speech queue


class StandInPlayer:
    """What the speech queue needs of a Player; plays everything at once."""

    def __init__(self, stalls: bool = False) -> None:
        self.stalls = stalls
        self.samples = 0
        self.buffer = self
        self.stats = self
        self.first_sound_at: float | None = None
        self.samples_played = 0

    def feed(self, seq: int, samples: np.ndarray) -> None:
        self.samples_played += samples.size
        self.first_sound_at = 0.0

    def backlogged(self, ahead_s: float) -> bool:
        return False

    def played_out(self) -> bool:
        return not self.stalls

    def check(self) -> None:
        if self.stalls:
            raise DeviceStalled("the audio device stopped playing")

    def finish(self) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def stop(self) -> None: ...


class Heard:
    """The frames each utterance sends back, by request id."""

    def __init__(self) -> None:
        self.frames: dict[Any, list[dict[str, Any]]] = {}

    def utterance(self, job: Job) -> Utterance:
        async def send(frame: dict[str, Any]) -> None:
            self.frames.setdefault(job.request.id, []).append(frame)
        return Utterance(job, send)

    def final(self, job: Job) -> dict[str, Any]:
        return self.frames[job.request.id][-1]


def queue_only() -> SpeechQueue:
    """A queue whose player loop is not running: add() and stop() alone are judged."""
    return SpeechQueue(lambda job: None, player=lambda device, prebuffer: StandInPlayer())


def test_notification_is_spoken_only_into_silence() -> None:
    async def main() -> None:
        heard, q = Heard(), queue_only()
        first, later = make_job(priority="notification"), make_job(priority="notification")
        q.add(heard.utterance(first))
        q.add(heard.utterance(later))
        await asyncio.sleep(0)
        assert [u.job for u in q.waiting] == [first]
        assert heard.final(later)["reason"] == "discarded"

    asyncio.run(main())


@pytest.mark.parametrize(("playing", "arriving", "interrupts"), [
    ("text", "important", True), ("notification", "message", True), ("notification", "text", True),
    ("text", "text", False), ("important", "message", False), ("message", "text", False),
])
def test_what_interrupts_what(playing: str, arriving: str, interrupts: bool) -> None:
    async def main() -> None:
        heard, q = Heard(), queue_only()
        current = heard.utterance(make_job(priority=playing))
        q.current = current
        q.add(heard.utterance(make_job(priority=arriving)))
        assert (current.reason == "interrupted") is interrupts

    asyncio.run(main())


def test_waiting_order_is_priority_then_arrival_and_interrupt_mode_jumps_its_rank() -> None:
    async def main() -> None:
        heard, q = Heard(), queue_only()
        text1, msg, text2 = (make_job(priority=p) for p in ("text", "message", "text"))
        urgent_text = make_job(priority="text", mode="interrupt")
        for job in (text1, msg, text2, urgent_text):
            q.add(heard.utterance(job))
        assert [u.job for u in q.waiting] == [msg, urgent_text, text1, text2]

    asyncio.run(main())


def test_higher_priority_drops_waiting_notifications_and_stop_is_per_client() -> None:
    async def main() -> None:
        heard, q = Heard(), queue_only()
        note = make_job(priority="notification", client="bar")
        q.add(heard.utterance(note))
        mine, theirs = make_job(client="me"), make_job(client="you")
        q.add(heard.utterance(mine))
        q.add(heard.utterance(theirs))
        assert q.stop("me") == 1
        await asyncio.sleep(0)
        assert heard.final(note)["reason"] == "discarded"
        assert heard.final(mine)["reason"] == "stopped"
        assert [u.job for u in q.waiting] == [theirs]

    asyncio.run(main())


def play_through(jobs: list[Job], players: list[StandInPlayer]) -> dict[Any, list[Any]]:
    """The jobs played by a running SpeechQueue, one stand-in device each (synthesis
    stood in too: one piece a job); the frames each sent back."""
    async def main() -> dict[Any, list[Any]]:
        heard, devices = Heard(), iter(players)

        def synthesize(job: Job) -> None:
            job.out.put_nowait(np.ones(PIECE, np.float32))
            job.out.put_nowait(None)

        q = SpeechQueue(synthesize, player=lambda device, prebuffer: next(devices))
        q.start()
        for job in jobs:
            q.add(heard.utterance(job))
        last = jobs[-1].request.id
        for _ in range(500):
            if last in heard.frames and heard.frames[last][-1]["op"] in ("end", "error"):
                break
            await asyncio.sleep(0.01)
        await q.close()
        return heard.frames

    return asyncio.run(main())


def test_played_request_ends_with_the_samples_the_device_took() -> None:
    job = make_job("Two pieces.")
    frames = play_through([job], [StandInPlayer()])[job.request.id]
    assert [f["op"] for f in frames] == ["playing", "end"]
    assert frames[-1]["samples"] == PIECE and frames[-1]["reason"] == "done"


def test_a_stalled_device_ends_that_utterance_and_the_queue_goes_on() -> None:
    first, second = make_job("On a device that dies."), make_job("On the next one.")
    frames = play_through([first, second], [StandInPlayer(stalls=True), StandInPlayer()])
    dead, alive = frames[first.request.id], frames[second.request.id]
    assert dead[-1]["op"] == "error" and dead[-1]["code"] == ErrorCode.NO_AUDIO_DEVICE
    assert alive[-1]["op"] == "end" and alive[-1]["reason"] == "done"
