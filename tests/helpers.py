"""Test helpers: real daemon subprocesses on short socket paths, raw socket frames."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kokorod_common.launcher import socket_is_live

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from load import Frames  # noqa: E402  (the frame connection the bench's load uses too)

START_TIMEOUT = 120.0
# The window plan follows the machine's measured costs (windows.py), and the windows shape
# the audio, so a daemon that calibrated itself would make audio that depends on this CPU's
# speed at that moment (CPUs of this kind run ~2x apart, and one machine drifts within an
# hour). Test daemons and engines plan from these fixed costs instead (a Xeon's, measured
# with `kokorod tune`; the source's per frame timed alone); calibration itself is tested on
# its own (test_vocoder.py).
STEADY_SCHEDULE = "88:5.300,27.00,27.00,0.930,0.250"


def short_tmpdir(prefix: str = "kt") -> Path:
    """A private dir with a short path: Unix socket paths must stay under ~104 bytes."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o700)
    return path


def daemon_env(socket_path: Path, data_dir: Path, home: Path | None = None,
               **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOKORO_")}
    env.update(KOKORO_SOCKET=str(socket_path), KOKORO_DATA_DIR=str(data_dir),
               KOKORO_CONFIG=str(data_dir / "no-config.toml"), PYTHONUNBUFFERED="1",
               KOKORO_WINDOW_SCHEDULE=STEADY_SCHEDULE, KOKORO_WINDOW_ADAPT="0")
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
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

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
