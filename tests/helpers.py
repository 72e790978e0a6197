"""Test helpers: real daemon subprocesses on short socket paths, raw socket frames."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testkit import processes
from testkit.load import Frames  # the frame connection the mixed load uses too
from testkit.pulse_sink import (  # noqa: F401  (the clocked sink, for the tests that use it)
    PulseSink,
    PulseUnavailable,
    Recording,
    zero_runs,
)

from kokorod_common.launcher import socket_is_live

REPO = Path(__file__).resolve().parent.parent

START_TIMEOUT = 120.0
# The window plan follows the machine's measured costs (windows.py), and the windows shape
# the audio, so a daemon that calibrated itself would make audio that depends on this CPU's
# speed at that moment (CPUs of this kind run ~2x apart, and one machine drifts within an
# hour). Test daemons and engines plan from these fixed costs instead (the generator's as
# `kokorod tune` measures today's layout on an AMD EPYC; the front's a Xeon's; the source's
# per frame timed alone); calibration itself is tested on its own (test_vocoder.py). The
# generator's were a Xeon's of an older layout (5.3 ms a frame, 27 a call): windows planned
# for a machine slower than the one running the suite, ~13 % more synthesis time.
STEADY_SCHEDULE = "88:3.770,13.77,27.00,0.930,0.250"


def short_tmpdir(prefix: str = "kt") -> Path:
    """A private dir with a short path: Unix socket paths must stay under ~104 bytes."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o700)
    return path


def daemon_env(socket_path: Path, data_dir: Path, home: Path | None = None,
               **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOKORO_")}
    # No warm-up run (~2.7 s of CPU per start, ~60 starts in the suite): the warm-up only
    # moves the first request's set-up earlier; the session's shared daemons keep it, and
    # test_daemon.py checks that it runs.
    env.update(KOKORO_SOCKET=str(socket_path), KOKORO_DATA_DIR=str(data_dir),
               KOKORO_CONFIG=str(data_dir / "no-config.toml"), PYTHONUNBUFFERED="1",
               KOKORO_WINDOW_SCHEDULE=STEADY_SCHEDULE, KOKORO_WINDOW_ADAPT="0",
               KOKORO_WARMUP="0")
    if home is not None:
        env["HOME"] = str(home)
    env.update(extra)
    return env


@dataclass
class DaemonProc:
    socket: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        return processes.end(self.proc, sig, timeout)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_daemon(socket_path: Path, data_dir: Path, wait: bool = True,
                 **extra: str) -> DaemonProc:
    env = daemon_env(socket_path, data_dir, **extra)
    log = socket_path.parent / f"daemon-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "kokorod", "run"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO)
    handle = DaemonProc(socket_path, env, proc, log)
    if wait:
        try:
            wait_live(handle)
        except RuntimeError:
            handle.stop(signal.SIGKILL, timeout=5)  # never leak a daemon from a failed start
            raise
    return handle


def kokorod_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`kokorod …` in a subprocess, with this process's environment plus `env`."""
    return subprocess.run([sys.executable, "-m", "kokorod", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=300)


def wait_live(handle: DaemonProc, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if socket_is_live(handle.socket):
            return
        if handle.proc.poll() is not None:
            raise RuntimeError(f"daemon exited ({handle.proc.returncode}):\n{handle.log_text()}")
        time.sleep(0.05)
    raise RuntimeError(f"daemon did not start:\n{handle.log_text()}")


class RawConn(Frames):
    """A bare socket speaking frames, for protocol-level tests."""

    def __init__(self, path: Path, timeout: float = 60.0) -> None:
        super().__init__(path, timeout)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def frames(self) -> Iterator[dict[str, Any]]:
        while True:
            while self.pending:
                yield self.pending.pop(0)
            data = self.sock.recv(1 << 16)
            if not data:
                return
            self.decoder.feed(data)
            self.pending.extend(self.decoder)

    def recv(self) -> dict[str, Any]:
        for frame in self.frames():
            return frame
        raise ConnectionError("closed")

    def until_final(self, rid: Any, cancel_at_seq: int | None = None) -> list[dict[str, Any]]:
        """All frames for `rid` up to and including its end/error.

        With cancel_at_seq, a `cancel` is sent once that chunk has arrived.
        """
        out = []
        for frame in self.frames():
            if frame.get("id") == rid:
                out.append(frame)
                if frame["op"] == "chunk" and frame["seq"] == cancel_at_seq:
                    self.send({"op": "cancel", "id": rid})
                if frame["op"] in ("end", "error"):
                    return out
        raise ConnectionError(f"connection closed before request {rid!r} ended")

    def closed_by_peer(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except OSError:
            return True


@contextmanager
def raw_conn(path: Path) -> Iterator[RawConn]:
    conn = RawConn(path)
    try:
        yield conn
    finally:
        conn.close()


def alsa_home(tmp: Path) -> tuple[Path, Path]:
    """A HOME whose ALSA default device is a `file` plugin over `null`: whatever
    sounddevice plays there lands in the returned capture file."""
    home = tmp / "home"
    home.mkdir()
    capture = tmp / "played.wav"
    (home / ".asoundrc").write_text(
        'pcm.!default {\n  type file\n  slave.pcm "null"\n'
        f'  file "{capture}"\n  format "wav"\n}}\n'
    )
    return home, capture


def clocked_sink() -> PulseSink:
    """A private PulseAudio null sink (a device that plays in real time); skips the test
    where PulseAudio is not installed (fails on CI, which installs it)."""
    import pytest

    try:
        return PulseSink()
    except PulseUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc}; .ci/run installs it from Debian")
        pytest.skip(str(exc))


def read_alsa_capture(path: Path) -> Any:
    """Samples written by ALSA's `file` plugin.

    For FLOAT_LE streams the plugin writes a WAV header that claims 32-bit
    integer PCM while the data is float32, so the header is used only for its
    size and the data read as float32.
    """
    import numpy as np

    raw = path.read_bytes()
    data_at = raw.index(b"data") + 8
    return np.frombuffer(raw[data_at:data_at + (len(raw) - data_at) // 4 * 4], dtype="<f4")


def without_silence(samples: Any, run: int = 64) -> Any:
    """The samples with every run of >= `run` exact zeros removed (pre-buffer fill,
    pauses, underruns on a slow machine)."""
    import numpy as np

    zero = samples == 0
    keep = np.ones(samples.size, dtype=bool)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], zero.astype(np.int8), [0]])))
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if end - start >= run:
            keep[start:end] = False
    return samples[keep]


def stream_audio(path: Path, rid: Any, text: str, **fields: Any) -> Any:
    """One streamed synthesize on its own connection: its float32 audio (asserts it ended)."""
    import numpy as np

    with raw_conn(path) as conn:
        conn.send({"op": "synthesize", "id": rid, "text": text, **fields})
        frames = conn.until_final(rid)
    assert frames[-1]["op"] == "end", frames[-1]
    return np.concatenate([np.frombuffer(f["pcm"], np.float32)
                           for f in frames if f["op"] == "chunk"])



class Relay:
    """A Unix socket in front of the daemon's, frame by frame: requests pass as they are;
    the audio replies are either held for `stall_s` once `stall_after_s` of audio has
    passed (a daemon or a network that falls behind), or, with `whole`, held until their
    request's end and then passed all at once (a daemon far ahead of playback). A real
    client and its real player on the other side, for its underrun counter to judge.
    `playing`: the stall's `stall_s` counts from when this says playback has begun (the
    device takes its time to open, and a stall before then would be no stall)."""

    def __init__(self, listen: Path, target: Path, stall_after_s: float | None = None,
                 stall_s: float = 0.0, whole: bool = False,
                 playing: Callable[[], bool] | None = None) -> None:
        import socket
        import threading

        self.target, self.stall_after_s, self.stall_s, self.whole = \
            target, stall_after_s, stall_s, whole
        self.playing = playing
        self.path = listen
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(listen))
        self.server.listen(8)
        self.stalls = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(str(self.target))
            threading.Thread(target=self._pass, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._replies, args=(upstream, client),
                             daemon=True).start()

    @staticmethod
    def _close(*socks: Any) -> None:
        for s in socks:
            with suppress(OSError):
                s.shutdown(2)

    def _pass(self, src: Any, dst: Any) -> None:
        with suppress(OSError):
            while data := src.recv(1 << 16):
                dst.sendall(data)
        self._close(src, dst)

    def _replies(self, src: Any, dst: Any) -> None:
        from kokorod_common.protocol import FrameDecoder, encode_frame

        decoder = FrameDecoder(64 << 20)
        audio_s, stalled, held = 0.0, False, []
        try:
            while data := src.recv(1 << 16):
                decoder.feed(data)
                for frame in decoder:
                    if frame.get("op") == "chunk":
                        if self.whole:
                            held.append(frame)
                            continue
                        audio_s += len(frame["pcm"]) / 4 / 24_000
                    elif frame.get("op") in ("end", "error") and held:
                        dst.sendall(b"".join(encode_frame(f) for f in held))
                        held = []
                    dst.sendall(encode_frame(frame))
                    if (self.stall_after_s is not None and not stalled
                            and audio_s >= self.stall_after_s):
                        stalled = True
                        self.stalls += 1
                        deadline = time.monotonic() + 60
                        while (self.playing is not None and not self.playing()
                               and time.monotonic() < deadline):
                            time.sleep(0.01)
                        time.sleep(self.stall_s)
        except OSError:
            pass
        self._close(src, dst)

    def close(self) -> None:
        self.server.close()
