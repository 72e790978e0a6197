"""Jitter buffer and player, on a simulated clock and an injected sink."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest

from kokorod_common.player import (
    DeviceStalled,
    JitterBuffer,
    Player,
    refresh_devices,
    stream_settings,
)


def chunk(seq: int, n: int = 1200) -> np.ndarray:
    return np.full(n, seq + 1, dtype=np.float32)


def drain(buf: JitterBuffer, frames: int = 600, limit: int = 10_000) -> np.ndarray:
    out = []
    for _ in range(limit):
        block = np.empty(frames, np.float32)
        more = buf.read(block)
        out.append(block)
        if not more:
            break
    return np.concatenate(out)


def test_holds_until_prebuffer_then_plays_in_order() -> None:
    buf = JitterBuffer(prebuffer=2)
    block = np.empty(600, np.float32)
    buf.push(0, chunk(0))
    assert buf.read(block) and not block.any()  # still buffering: silence
    buf.push(1, chunk(1))
    buf.finish()
    played = drain(buf)
    nz = played[played != 0]
    assert list(np.unique(nz)) == [1, 2] and nz.size == 2400
    assert buf.stats.underruns == 0 and buf.drained.is_set()


def test_reorders_out_of_order_chunks() -> None:
    buf = JitterBuffer(prebuffer=1)
    for seq in (2, 0, 1, 3):
        buf.push(seq, chunk(seq, 100))
    buf.finish()
    played = drain(buf, 50)
    values = played[played != 0]
    assert list(dict.fromkeys(values.tolist())) == [1, 2, 3, 4]
    assert buf.stats.reordered == 1 and buf.stats.chunks == 4


def test_duplicates_ignored() -> None:
    buf = JitterBuffer(prebuffer=1)
    buf.push(0, chunk(0, 10))
    buf.push(0, chunk(0, 10))
    assert buf.stats.duplicates == 1 and buf.stats.samples_in == 10


def test_underrun_counted_and_prebuffer_refilled() -> None:
    buf = JitterBuffer(prebuffer=2)
    buf.push(0, chunk(0, 600))
    buf.push(1, chunk(1, 600))
    block = np.empty(600, np.float32)
    assert buf.read(block) and buf.read(block)
    assert buf.read(block)  # ran dry mid-stream
    assert buf.stats.underruns == 1 and not block.any()
    buf.push(2, chunk(2, 600))
    assert buf.read(block) and not block.any()  # waiting for 2 chunks again
    buf.push(3, chunk(3, 600))
    assert buf.read(block) and (block == 3).all()
    # What a listener heard: one gap, 1200 samples into the audio, two blocks of silence.
    assert buf.stats.underrun_at == [0.05] and buf.stats.underrun_seconds == 1200 / 24_000
    assert buf.stats.summary()["underrun_at_s"] == [0.05]


def test_device_underflow_counted_while_playing() -> None:
    """PortAudio's output_underflow (our callback came late: the device ran dry) is heard
    too, but only once sound is playing; before the pre-buffer fills it is silence anyway."""
    buf = JitterBuffer(prebuffer=1)
    block = np.empty(600, np.float32)
    buf.read(block, device_underflow=True)
    buf.push(0, chunk(0, 1200))
    buf.read(block)
    buf.read(block, device_underflow=True)
    assert buf.stats.device_underflows == 1 and buf.stats.underruns == 0


def test_missing_chunk_played_at_finish() -> None:
    buf = JitterBuffer(prebuffer=1)
    buf.push(1, chunk(1, 10))  # seq 0 never arrives
    buf.finish()
    assert (drain(buf, 10) == 2).sum() == 10


def test_prebuffer_bounds() -> None:
    with pytest.raises(ValueError):
        JitterBuffer(prebuffer=0)


class ThreadSink:
    """Pulls from the player like a device would, as fast as possible."""

    def __init__(self, fill: Callable[[np.ndarray], bool], samplerate: int) -> None:
        self.fill = fill
        self.got: list[np.ndarray] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopped.is_set():
            block = np.empty(240, np.float32)
            more = self.fill(block)
            self.got.append(block)
            if not more:
                return
            self.stopped.wait(0.001)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()

    def close(self) -> None:
        self.stopped.set()


def test_player_with_injected_sink_plays_everything() -> None:
    sinks: list[ThreadSink] = []

    def factory(fill: Callable[[np.ndarray], bool], rate: int) -> ThreadSink:
        sinks.append(ThreadSink(fill, rate))
        return sinks[-1]

    player = Player(prebuffer=3, sink=factory)
    for seq in range(10):
        player.feed(seq, chunk(seq, 1200))
    player.finish()
    assert player.wait(5)
    got = np.concatenate(sinks[0].got)
    assert (got != 0).sum() == 12_000
    assert player.buffer.stats.first_sound_at is not None


def test_a_device_that_stops_calling_back_is_reported_stalled() -> None:
    clock = {"now": 0.0}
    pulls: list[Callable[[np.ndarray], bool]] = []

    class SilentSink:
        def start(self) -> None: ...
        def stop(self) -> None: ...
        def close(self) -> None: ...

    def factory(fill: Callable[[np.ndarray], bool], samplerate: int) -> SilentSink:
        pulls.append(fill)
        return SilentSink()

    player = Player(prebuffer=1, sink=factory)
    player.buffer.clock = lambda: clock["now"]
    assert not player.stalled(5.0)  # not started yet: nothing is owed
    player.feed(0, chunk(0, 24_000))
    pulls[0](np.empty(600, np.float32))  # the device asks once, then goes quiet
    clock["now"] = 4.0
    assert not player.stalled(5.0)
    clock["now"] = 6.0
    assert player.stalled(5.0)
    with pytest.raises(DeviceStalled, match="stopped playing"):
        player.check(5.0)
    pulls[0](np.empty(600, np.float32))  # it came back
    assert not player.stalled(5.0)


def test_stream_settings_match_the_jitter_buffer() -> None:
    mac = stream_settings("darwin")
    assert mac["latency"] >= 0.02 and mac["blocksize"] >= 512  # not CoreAudio's 64 frames
    # not PulseAudio's 8.7 ms "low" either: a callback that late is heard (test_clocked_sink)
    assert stream_settings("linux")["latency"] >= 0.02


def test_devices_are_enumerated_afresh_before_each_utterance_on_macos() -> None:
    calls: list[str] = []

    class PortAudio:
        def _terminate(self) -> None:
            calls.append("terminate")

        def _initialize(self) -> None:
            calls.append("initialize")

    refresh_devices("darwin", PortAudio())
    refresh_devices("linux", PortAudio())
    assert calls == ["terminate", "initialize"]
