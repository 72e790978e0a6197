"""Playback: a jitter buffer in front of a sounddevice OutputStream.

Chunks arrive tagged with seq; the buffer puts them back in order, holds
playback until `prebuffer` chunks are in (or the stream has ended), and counts
what a listener hears go wrong: underruns (the device asked for audio we did not
have yet: silence until the pre-buffer refills, `underrun_seconds` long in all) and
device underflows (the device ran dry because our callback came late); and arrival
gaps. Counted at a device that plays in real time these are heard; at one without a
clock (ALSA's file plugin) the callbacks run ahead of the audio and they mean nothing.
The output stream is opened before the first chunk so opening the device does
not add to the time to first audio; it is started once the pre-buffer is full.
The sink is injectable for tests; the default is a real sounddevice stream.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kokorod_common.protocol import SAMPLE_RATE

if TYPE_CHECKING:  # the player itself needs no numpy: it moves float32 bytes
    import numpy as np

F32 = 4  # bytes per sample

STALL_AFTER_S = 5.0  # a started device that asks for nothing this long has stopped


class NoAudioDevice(RuntimeError):
    """No usable output device (PortAudio missing, or no output device)."""


class DeviceStalled(NoAudioDevice):
    """The device stopped asking for audio mid-stream (unplugged, asleep, user switched):
    CoreAudio then simply stops calling back, and nothing else would ever say so."""


@dataclass
class PlaybackStats:
    chunks: int = 0
    samples_in: int = 0
    samples_played: int = 0
    underruns: int = 0
    underrun_seconds: float = 0.0  # the silence they put in the audio, in all
    underrun_at: list[float] = field(default_factory=list)  # seconds into the audio
    device_underflows: int = 0
    reordered: int = 0
    duplicates: int = 0
    arrival_gaps: list[float] = field(default_factory=list)
    first_chunk_at: float | None = None
    first_sound_at: float | None = None

    def summary(self) -> dict[str, Any]:
        gaps = sorted(self.arrival_gaps)
        return {
            "chunks": self.chunks,
            "audio_seconds": round(self.samples_in / SAMPLE_RATE, 3),
            "underruns": self.underruns,
            "underrun_seconds": round(self.underrun_seconds, 3),
            "underrun_at_s": [round(a, 3) for a in self.underrun_at],
            "device_underflows": self.device_underflows,
            "reordered": self.reordered,
            "gap_median_ms": round(1000 * gaps[len(gaps) // 2], 1) if gaps else None,
            "gap_max_ms": round(1000 * gaps[-1], 1) if gaps else None,
        }


class JitterBuffer:
    """Reorders by seq and releases samples once `prebuffer` chunks are held.

    push() runs on the network thread, read() on the audio callback thread.
    """

    def __init__(self, prebuffer: int = 2, clock: Callable[[], float] = time.perf_counter) -> None:
        if not 1 <= prebuffer <= 16:
            raise ValueError("prebuffer must be between 1 and 16 chunks")
        self.prebuffer = prebuffer
        self.clock = clock
        self.stats = PlaybackStats()
        self._lock = threading.Lock()
        self._ready: deque[bytes] = deque()  # float32 LE, in order
        self._ready_chunks = 0
        self._ready_samples = 0
        self._head_offset = 0
        self._early: dict[int, bytes] = {}
        self._next_seq = 0
        self._playing = False
        self._dry = False  # ran dry mid-stream: the silence until it plays again is heard
        self._finished = False
        self.paused = False  # read() gives silence and keeps its place
        self._last_arrival: float | None = None
        self.last_read_at: float | None = None  # the device's last callback
        # The playing clock, (time, samples) where it (re)started: heard() runs at the
        # sample rate from there, capped by what the device was handed (so a gap in the
        # audio holds it); a pause stops it. A device may take a second of audio in a
        # burst of callbacks, or (ALSA's null device) all of it at once.
        self._clock: tuple[float, int] | None = None
        self._heard = 0  # where the clock stopped (paused)
        self.drained = threading.Event()

    def push(self, seq: int, samples: bytes | memoryview | np.ndarray) -> None:
        """`samples`: float32 little-endian bytes (as the daemon sends them), or an array."""
        samples = as_f32_bytes(samples)
        now = self.clock()
        with self._lock:
            st = self.stats
            if self._last_arrival is not None:
                st.arrival_gaps.append(now - self._last_arrival)
            else:
                st.first_chunk_at = now
            self._last_arrival = now
            if seq < self._next_seq or seq in self._early:
                st.duplicates += 1
                return
            st.chunks += 1
            st.samples_in += len(samples) // F32
            if seq != self._next_seq:
                st.reordered += 1
                self._early[seq] = samples
                return
            self._append(samples)
            while self._next_seq in self._early:
                self._append(self._early.pop(self._next_seq))

    def _append(self, samples: bytes) -> None:
        self._ready.append(samples)
        self._ready_chunks += 1
        self._ready_samples += len(samples) // F32
        self._next_seq += 1

    def finish(self) -> None:
        """No more chunks will come; play out what is held."""
        with self._lock:
            self._finished = True
            # Chunks that never got their predecessor are played in order anyway.
            for seq in sorted(self._early):
                self._ready.append(self._early.pop(seq))
                self._ready_chunks += 1
                self._ready_samples += len(self._ready[-1]) // F32
            if not self._ready_samples:
                self.drained.set()

    def ready(self) -> bool:
        """Enough is held to start playing (or everything there is has arrived)."""
        with self._lock:
            return self._ready_chunks >= self.prebuffer or (
                self._finished and self._ready_chunks > 0)

    def buffered_seconds(self) -> float:
        with self._lock:
            return (self._ready_samples - self._head_offset) / SAMPLE_RATE

    def heard(self) -> int:
        """Samples heard by now: the time sound has been flowing, at the sample rate, but
        never more than the device was handed (a device that takes a second of audio in a
        burst of callbacks is not heard a second at a time)."""
        with self._lock:
            return self._heard_now()

    def _heard_now(self) -> int:
        if self._clock is None:
            return self._heard
        at, base = self._clock
        flowing = int((self.clock() - at) * SAMPLE_RATE)
        return max(self._heard, min(self.stats.samples_played, base + flowing))

    def _stop_clock(self) -> None:
        if self._clock is not None:
            self._heard = self._heard_now()
            self._clock = None

    def read(self, out: Any, device_underflow: bool = False) -> bool:
        """Fill `out` (a writable buffer of float32 samples: a device's raw buffer or a
        1-D float32 array); returns False once everything has been played.
        `device_underflow`: the device says it ran dry before this call (came late)."""
        dst = memoryview(out).cast("B")
        frames = len(dst) // F32
        with self._lock:
            self.last_read_at = self.clock()
            if device_underflow and self._playing:
                self.stats.device_underflows += 1
            if self.paused:
                self._stop_clock()
                dst[:] = bytes(len(dst))
                return True
            if not self._playing:
                if self._ready_chunks >= self.prebuffer or (self._finished and self._ready):
                    self._playing = True
                else:
                    dst[:] = bytes(len(dst))
                    if self._dry:
                        self.stats.underrun_seconds += frames / SAMPLE_RATE
                    return not self.drained.is_set()
            self._dry = False
            filled = 0
            while filled < frames and self._ready:
                head = self._ready[0]
                size = len(head) // F32
                take = min(frames - filled, size - self._head_offset)
                dst[filled * F32:(filled + take) * F32] = \
                    head[self._head_offset * F32:(self._head_offset + take) * F32]
                filled += take
                self._head_offset += take
                if self._head_offset >= size:
                    self._ready.popleft()
                    self._ready_chunks -= 1
                    self._ready_samples -= size
                    self._head_offset = 0
            if filled and self.stats.first_sound_at is None:
                self.stats.first_sound_at = self.clock()
            if filled and self._clock is None:
                self._clock = (self.last_read_at, self._heard)
            self.stats.samples_played += filled
            if filled < frames:
                dst[filled * F32:] = bytes((frames - filled) * F32)
                if self._finished:
                    self.drained.set()
                    return False
                # Ran dry mid-stream: count it and wait for the pre-buffer again.
                self.stats.underruns += 1
                self.stats.underrun_seconds += (frames - filled) / SAMPLE_RATE
                self.stats.underrun_at.append(self.stats.samples_played / SAMPLE_RATE)
                self._playing = False
                self._dry = True
            return True


def as_f32_bytes(samples: bytes | memoryview | np.ndarray) -> bytes:
    """float32 little-endian bytes of `samples` (bytes pass through as they are)."""
    if isinstance(samples, bytes):
        return samples
    if isinstance(samples, (bytearray, memoryview)):
        return bytes(samples)
    import numpy as np

    return np.ascontiguousarray(samples, dtype="<f4").tobytes()


class Sink(Protocol):
    """What the player needs from an output: start pulling, stop, close."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...


# (fill, rate): fill(buffer) or fill(buffer, device_underflow)
SinkFactory = Callable[[Callable[..., bool], int], Sink]


def stream_settings(platform: str = sys.platform) -> dict[str, Any]:
    """Device buffer for the output stream: 50 ms. latency="low" is a 64-frame buffer on
    CoreAudio and 8.7 ms on PulseAudio: the Python callback would have to win the GIL every
    few ms beside onnxruntime's threads, and it does not (measured at a PulseAudio null
    sink, a medium text beside the daemon: 25 device underflows, 2.2 s of gaps heard,
    none of them in the jitter buffer's count). The jitter buffer already holds 100 ms,
    so a 50 ms device buffer costs nothing audible."""
    if platform == "darwin":
        return {"latency": 0.05, "blocksize": SAMPLE_RATE // 20}
    return {"latency": 0.05, "blocksize": 0}


def refresh_devices(platform: str = sys.platform, sd: Any = None) -> None:
    """Let PortAudio see the devices as they are now. It enumerates CoreAudio devices once,
    at initialisation: headphones connected later would never be used, and a removed
    device would break opening. Call only while no stream is open."""
    if platform != "darwin":
        return
    if sd is None:
        import sounddevice as sd
    sd._terminate()
    sd._initialize()


def sounddevice_sink(device: int | str | None = None) -> SinkFactory:
    """A factory for a real sounddevice OutputStream that pulls from `fill`; the device is
    opened once, by the factory (NoAudioDevice when it cannot be)."""
    try:
        import sounddevice as sd
    except OSError as exc:  # PortAudio library not installed
        raise NoAudioDevice(f"PortAudio is not available ({exc})") from None

    def factory(fill: Callable[..., bool], samplerate: int) -> Sink:
        def callback(outdata: Any, frames: int, _time: Any, status: Any) -> None:
            # a raw buffer of float32 mono: no numpy on this path
            if not fill(outdata, bool(status) and status.output_underflow):
                raise sd.CallbackStop

        try:
            return sd.RawOutputStream(samplerate=samplerate, channels=1, dtype="float32",
                                      device=device, callback=callback, **stream_settings())
        except Exception as exc:  # PortAudioError, or ValueError for a device not found
            why = ("there is no default output device" if "device -1" in str(exc)
                   else f"no usable audio output device ({exc})")
            raise NoAudioDevice(why) from None

    return factory


class Player:
    """Feed chunks from any thread; `wait()` returns when the audio has played out."""

    def __init__(self, prebuffer: int = 2, sink: SinkFactory | None = None,
                 device: int | str | None = None) -> None:
        self.buffer = JitterBuffer(prebuffer)
        factory = sink or sounddevice_sink(device)
        # Opened now (the slow part: PortAudio set-up), started once the pre-buffer
        # is full, so an unpaced device does not spin on silence meanwhile.
        self._sink = factory(self.buffer.read, SAMPLE_RATE)
        self.started = False
        self._started_at = 0.0

    def _start_when_ready(self) -> None:
        if not self.started and self.buffer.ready():
            self.started = True
            self._started_at = self.buffer.clock()
            self._sink.start()

    def feed(self, seq: int, samples: bytes | memoryview | np.ndarray) -> None:
        self.buffer.push(seq, samples)
        self._start_when_ready()

    def backlogged(self, ahead_s: float) -> bool:
        """More than `ahead_s` of audio waits to be played: a feeder pauses (and stops reading
        its source, so the backpressure reaches the daemon) until this is False again."""
        return self.buffer.buffered_seconds() > ahead_s

    def stalled(self, after_s: float = STALL_AFTER_S) -> bool:
        """Started, and the device has not asked for audio for `after_s` (paused or not: a
        paused stream still plays silence). The feeders' watchdog."""
        if not self.started or self.buffer.drained.is_set():
            return False
        last = self.buffer.last_read_at or self._started_at
        return self.buffer.clock() - last > after_s

    def check(self, after_s: float = STALL_AFTER_S) -> None:
        """DeviceStalled if the device stopped taking audio."""
        if self.stalled(after_s):
            raise DeviceStalled(f"the audio device stopped playing (nothing asked for in "
                                f"{after_s:.0f} s: disconnected, asleep, or another user's?)")

    def played_out(self) -> bool:
        """finish() was called and the device has been handed every sample."""
        return self.buffer.drained.is_set()

    def finish(self) -> None:
        self.buffer.finish()
        if not self.buffer.drained.is_set():
            self._start_when_ready()

    def wait(self, timeout: float | None = None) -> bool:
        done = self.buffer.drained.wait(timeout)
        # Let the device play out its last block before closing.
        time.sleep(0.05)
        self.close()
        return done

    def pause(self) -> None:
        """Hold playback where it is (the device plays silence meanwhile)."""
        self.buffer.paused = True

    def resume(self) -> None:
        self.buffer.paused = False

    def stop(self) -> None:
        """Stop at once (Ctrl-C): drop what is buffered."""
        try:
            if self.started:
                self._sink.stop()
        finally:
            self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a device that already stopped
            self._sink.close()
