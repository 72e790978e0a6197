"""The engine in-process: audio shape, and faults injected into the real session."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import raw_conn, short_tmpdir

from kokorod.config import load
from kokorod.serve.server import Daemon
from kokorod.synth import guard
from kokorod.synth.engine import Engine
from kokorod.synth.guard import EngineError
from kokorod.synth.segment import Segment
from kokorod_common.protocol import ErrorCode


class FlakySession:
    """Wraps the real InferenceSession; fails the next `fail` runs."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.fail = 0

    def run(self, *args: Any, **kwargs: Any) -> Any:
        if self.fail > 0:
            self.fail -= 1
            raise RuntimeError("injected inference fault")
        return self.real.run(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def inject_faults(engine: Engine) -> FlakySession:
    """Wrap the session that makes the audio (the generator part, or the whole model)."""
    if engine.vocoder is not None:
        flaky = FlakySession(engine.vocoder.parts["gen"])
        engine.vocoder.parts["gen"] = flaky  # type: ignore[assignment]
    else:
        flaky = FlakySession(engine.whole)
        engine.whole = flaky  # type: ignore[assignment]
    return flaky


def audio_session(engine: Engine) -> Any:
    return engine.vocoder.parts["gen"] if engine.vocoder is not None else engine.whole


def test_segment_audio_is_trimmed_with_pause(engine: Engine) -> None:
    voice = engine.voice_style(None)
    a = engine.synthesize(Segment("Hello there.", 0.25, 0), voice, 1.0, "en-us")
    b = engine.synthesize(Segment("Hello there.", 0.0, 0), voice, 1.0, "en-us")
    assert a.dtype == np.float32 and a.size - b.size == int(0.25 * 24_000)
    assert not a[-6000:].any() and np.abs(b[:2400]).max() > 0.005  # speech starts at once
    faster = engine.synthesize(Segment("Hello there.", 0.0, 0), voice, 2.0, "en-us")
    assert faster.size < 0.75 * b.size


def test_deterministic(engine: Engine) -> None:
    voice = engine.voice_style("jm_kumo")
    seg = Segment("Same input, same output.", 0.0, 0)
    assert np.array_equal(engine.synthesize(seg, voice, 1.0, "en-us"),
                          engine.synthesize(seg, voice, 1.0, "en-us"))


def test_more_phonemes_than_one_batch(engine: Engine) -> None:
    text = " ".join(["supercalifragilistic expialidocious"] * 16)
    assert len(engine.phonemize(text, "en-us")) > 510
    audio = engine.synthesize(Segment(text, 0.0, 0), engine.voice_style(None), 2.0, "en-us")
    assert audio.size / 24_000 > 10


def test_fault_becomes_error_then_rebuild(engine: Engine) -> None:
    voice = engine.voice_style(None)
    seg = Segment("Fault tolerance.", 0.0, 0)
    flaky = inject_faults(engine)
    failures, rebuilds = engine.stats.failures, engine.stats.rebuilds
    flaky.fail = 1
    with pytest.raises(EngineError, match="injected"):
        engine.synthesize(seg, voice, 1.0, "en-us")
    assert engine.synthesize(seg, voice, 1.0, "en-us").size > 0  # still usable
    flaky.fail = guard.REBUILD_AFTER_FAILURES
    for _ in range(guard.REBUILD_AFTER_FAILURES):
        with pytest.raises(EngineError):
            engine.synthesize(seg, voice, 1.0, "en-us")
    assert engine.stats.failures == failures + 1 + guard.REBUILD_AFTER_FAILURES
    assert engine.stats.rebuilds == rebuilds + 1
    assert audio_session(engine) is not flaky  # a fresh session replaced the failing one
    assert engine.synthesize(seg, voice, 1.0, "en-us").size > 0


@pytest.fixture(scope="module")
def inproc_daemon(engine: Engine) -> Iterator[tuple[Daemon, Path]]:
    """A real Daemon (socket, scheduler, connections) in a thread, on the shared engine."""
    run_dir = short_tmpdir("ki")
    config = load({"KOKORO_SOCKET": str(run_dir / "k.sock")})
    daemon = Daemon(config)
    daemon.engine = engine
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(daemon.serve(),),
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not (run_dir / "k.sock").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    yield daemon, run_dir / "k.sock"
    loop.call_soon_threadsafe(daemon.request_stop)
    thread.join(30)


def test_inference_fault_is_that_requests_error_frame(engine: Engine,
                                                      inproc_daemon: tuple[Daemon, Path]) -> None:
    _, sock = inproc_daemon
    flaky = inject_faults(engine)
    flaky.fail = 1
    with raw_conn(sock) as c:
        c.send({"op": "synthesize", "id": "bad", "text": "This one fails."})
        frames = c.until_final("bad")
        assert frames[-1]["op"] == "error" and frames[-1]["code"] == ErrorCode.ENGINE_ERROR
        assert "injected" in frames[-1]["message"]
        c.send({"op": "synthesize", "id": "good", "text": "This one works."})
        frames = c.until_final("good")
        assert frames[-1]["op"] == "end" and frames[-1]["chunks"] > 0
        c.send({"op": "status", "id": "s"})
        st = c.recv()
    assert st["engine"]["failures"] >= 1 and "injected" in st["engine"]["last_error"]
    assert "rebuilds" in st["engine"]
