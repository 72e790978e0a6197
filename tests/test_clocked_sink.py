"""Playback at a clocked device: a private PulseAudio null sink (tests/testkit/pulse_sink.py),
which plays in real time like a sound card, unlike ALSA's file plugin. What kokoro-say
counts there (underruns, device underflows) is checked against what the sink played,
recorded from its monitor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import (
    DaemonProc,
    PulseSink,
    Recording,
    Relay,
    clocked_sink,
    short_tmpdir,
    stream_audio,
    zero_runs,
)

SHORT = "Hello from the speech daemon."
GAP = 1200  # 50 ms of exact zeros: a gap heard (kokorod's speech has none in SHORT)


@pytest.fixture
def clocked() -> Iterator[PulseSink]:
    """A fresh sink for each test: nothing one test did to the server reaches the next."""
    sink = clocked_sink()
    yield sink
    sink.stop()


def body(samples: Any) -> Any:
    """From the first to the last sound."""
    nz = np.flatnonzero(samples)
    return samples[nz[0]:nz[-1] + 1] if nz.size else samples[:0]


def offset_in(part: Any, whole: Any) -> int | None:
    """Where `part` sits in `whole` sample for sample (None if it is not an exact piece of
    it): the sink's monitor starts and stops a little after the player, never in between."""
    if part.size == 0:
        return None
    middle = part.size // 2
    for at in np.flatnonzero(whole == part[middle]) - middle:  # where its middle sample is
        if 0 <= at <= whole.size - part.size and np.array_equal(whole[at:at + part.size], part):
            return int(at)
    return None


def assert_played_whole(heard: Any, sent: Any) -> None:
    """The sink played `sent` sample for sample (nothing dropped, repeated or altered), of
    which its monitor missed at most a quarter second at each end."""
    at = offset_in(heard, sent)
    assert at is not None, "what the sink played is not the daemon's audio, sample for sample"
    assert at < 0.25 * 24_000 and sent.size - (at + heard.size) < 0.25 * 24_000, \
        (at, heard.size, sent.size)


def say_through(sink: PulseSink, daemon: DaemonProc, socket: Path, recording: Recording,
                text: str = SHORT) -> tuple[dict[str, Any], Any]:
    """kokoro-say at the clocked sink, over `socket`: its playback stats, and the samples
    the sink played (from `recording`, started before)."""
    result = subprocess.run([sys.executable, "-m", "kokorod_client.say", "--no-autostart",
                             "--json-stats", text],
                            env={**daemon.env, **sink.env, "KOKORO_SOCKET": str(socket)},
                            capture_output=True, text=True, timeout=180)
    time.sleep(0.2)  # the sink's last block
    played = recording.stop()
    assert result.returncode == 0, result.stderr
    assert "wrote the audio" not in result.stderr  # it really played
    return json.loads(result.stdout.strip().splitlines()[-1])["playback"], played


def test_clocked_sink_plays_in_real_time(clocked: PulseSink, tmp_path: Path) -> None:
    """N seconds of audio take about N seconds to play (never much less: a device with no
    clock takes them at once). Only a lower bound: no test hinges on this CPU's speed."""
    seconds = 2.0
    code = ("import time, numpy as np, sounddevice as sd\n"
            f"x = np.full(int(24000 * {seconds}), 0.1, np.float32)\n"
            "sd.play(x, 24000); t = time.monotonic(); sd.wait()\n"
            "print(time.monotonic() - t)")
    recording = clocked.record(tmp_path / "tone.raw")
    result = subprocess.run([sys.executable, "-c", code], env={**os.environ, **clocked.env},
                            capture_output=True, text=True, timeout=60)
    played = recording.stop()
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.strip().splitlines()[-1]) >= 0.8 * seconds
    assert np.count_nonzero(played == np.float32(0.1)) >= 0.9 * seconds * 24_000  # it played


def test_say_counts_no_underrun_when_the_audio_is_there(clocked: PulseSink,
                                                        daemon: DaemonProc) -> None:
    """The daemon far ahead (the relay hands over each request's audio whole): kokoro-say
    counts 0 underruns and 0 device underflows, and the sink played the speech without a
    gap, as long as it is."""
    run = short_tmpdir("kc")
    relay = Relay(run / "r.sock", daemon.socket, whole=True)
    try:
        stats, played = say_through(clocked, daemon, relay.path, clocked.record(run / "r.raw"))
    finally:
        relay.close()
    sent = body(stream_audio(daemon.socket, "src", SHORT))
    heard = body(played)
    assert stats["underruns"] == 0 and stats["device_underflows"] == 0, stats
    assert zero_runs(heard, GAP) == [] and zero_runs(sent, GAP) == []
    assert_played_whole(heard, sent)


def test_say_counts_the_underruns_a_listener_hears(clocked: PulseSink,
                                                   daemon: DaemonProc) -> None:
    """Starved for real: once 0.5 s of the daemon's audio has passed, the relay holds the
    rest until 1.5 s after the sink began to play. kokoro-say counts the underrun and the
    silence it put in, and the sink's recording agrees: as many gaps, as much longer than
    the speech."""
    run = short_tmpdir("kc")
    recording = clocked.record(run / "r.raw")
    relay = Relay(run / "r.sock", daemon.socket, stall_after_s=0.5, stall_s=1.5,
                  playing=lambda: recording.path.stat().st_size > 0)
    try:
        stats, played = say_through(clocked, daemon, relay.path, recording)
    finally:
        relay.close()
    assert relay.stalls == 1
    sent = body(stream_audio(daemon.socket, "src", SHORT))
    heard = body(played)
    gaps = zero_runs(heard, GAP)
    assert stats["underruns"] >= 1 and stats["underrun_seconds"] > 0.5, stats
    assert stats["underruns"] <= len(gaps) <= stats["underruns"] + stats["device_underflows"], \
        (gaps, stats)
    silent_s = sum(length for _, length in gaps) / 24_000
    assert abs(silent_s - stats["underrun_seconds"]) < 0.25, (silent_s, stats)
    keep = np.ones(heard.size, bool)
    for start, length in gaps:
        keep[start:start + length] = False
    assert_played_whole(heard[keep], sent)  # around the silence, the speech as sent
