"""A private PulseAudio null sink: a silent audio device that plays in real time.

ALSA's `file` plugin over `null` takes audio as fast as it is handed over: PortAudio's
callbacks spin, take a core from the daemon, and a player's underrun counter then counts
artefacts. PulseAudio's null sink runs on a real-time clock, headless (as root too), so
what a player counts there is what a listener would hear. The bench (`--stream`) and the
suite's playback tests both use it:

    with pulse_sink() as sink:
        subprocess.run(["kokoro-say", "Hello."], env={**os.environ, **sink.env})

`sink.env` holds HOME (whose .asoundrc routes ALSA's default device to PulseAudio) and
PULSE_SERVER. `sink.record(path)` captures what the sink played, from its monitor.
Needs Debian's `pulseaudio libasound2-plugins` (and `pulseaudio-utils` to record);
PulseUnavailable says what is missing.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from testkit import processes

log = logging.getLogger("pulse_sink")

SINK = "nullsink"
RATE = 24_000  # kokorod's rate: PulseAudio resamples nothing
START_TIMEOUT_S = 15.0
PACKAGES = "pulseaudio libasound2-plugins"
RECORD_ATTEMPTS = 3


class PulseUnavailable(RuntimeError):
    """PulseAudio (or ALSA's pulse plugin) is not installed, or would not start."""


def missing() -> str | None:
    """Why a clocked sink cannot be had here (None when it can)."""
    if shutil.which("pulseaudio") is None:
        return f"pulseaudio is not installed (Debian: apt-get install {PACKAGES})"
    plugin = [p for pattern in ("/usr/lib/*/alsa-lib", "/usr/lib*/alsa-lib")
              for p in glob.glob(f"{pattern}/libasound_module_pcm_pulse.so")]
    if not plugin:
        return f"ALSA's pulse plugin is not installed (Debian: apt-get install {PACKAGES})"
    return None


class Recording:
    """What the sink plays from now on, captured from its monitor by `parec` as raw
    float32 mono at 24 kHz (exactly the samples played: no format change on the way)."""

    def __init__(self, sink: PulseSink, path: Path) -> None:
        if shutil.which("parec") is None:
            raise PulseUnavailable("parec is not installed (Debian: pulseaudio-utils)")
        self.path = path
        self._out = path.open("wb")
        self._err = path.with_suffix(".parec.log")
        # A loaded machine can make one connection fail (parec exits 1): try again, and
        # say why (parec's words and the server's log) if it never connects.
        for attempt in range(1, RECORD_ATTEMPTS + 1):
            sink.check()
            with self._err.open("wb") as err:
                self.proc = subprocess.Popen(
                    ["parec", "-d", f"{SINK}.monitor", "--format=float32le", f"--rate={RATE}",
                     "--channels=1", "--latency-msec=20", "--raw"],
                    env={**os.environ, **sink.env}, stdout=self._out, stderr=err,
                    stdin=subprocess.DEVNULL)
            if self._connected(sink):
                return
            log.warning("parec attempt %d: %s", attempt, self._why())
            time.sleep(0.5 * attempt)
        self._out.close()
        raise PulseUnavailable(f"parec could not record: {self._why()}; "
                               f"server: {sink.log_tail()}")

    def _connected(self, sink: PulseSink) -> bool:
        """Wait until the sink lists the recording (audio played before is not captured)."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if sink.listing("source-outputs"):
                return True
            time.sleep(0.02)
        processes.end(self.proc, signal.SIGINT, 5)
        return False

    def _why(self) -> str:
        said = self._err.read_text(errors="replace").strip()[-300:]
        return f"exit {self.proc.returncode}: {said or 'nothing said'}"

    def stop(self) -> Any:
        """Stop recording; the samples (a float32 numpy array)."""
        import numpy as np

        processes.end(self.proc, signal.SIGINT, 5)
        self._out.close()
        raw = self.path.read_bytes()
        return np.frombuffer(raw[:len(raw) // 4 * 4], dtype="<f4")


class PulseSink:
    """A PulseAudio server of our own (private HOME and runtime dir, its own socket) with
    one null sink, the default, at 24 kHz float32 mono."""

    name = SINK

    def __init__(self, base: Path | None = None) -> None:
        why = missing()
        if why:
            raise PulseUnavailable(why)
        # A short path: the Unix socket's must stay under ~104 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="pa", dir=base or "/tmp"))
        self.dir.chmod(0o700)
        self.socket = self.dir / "pulse.sock"
        self.home = self.dir / "home"  # the clients' HOME: its .asoundrc routes to pulse
        self.home.mkdir()
        (self.home / ".asoundrc").write_text("pcm.!default { type pulse }\n"
                                             "ctl.!default { type pulse }\n")
        server_home = self.dir / "server"
        server_home.mkdir()
        conf = self.dir / "null.pa"
        conf.write_text(
            f"load-module module-null-sink sink_name={SINK} rate={RATE} channels=1 "
            "format=float32le\n"
            f"set-default-sink {SINK}\n"
            f"load-module module-native-protocol-unix auth-anonymous=1 socket={self.socket}\n")
        self.log = self.dir / "pulseaudio.log"
        self.env: dict[str, str] = {"HOME": str(self.home),
                                    "PULSE_SERVER": f"unix:{self.socket}"}
        server_env = {**os.environ, "HOME": str(server_home),
                      "XDG_RUNTIME_DIR": str(self.dir), "XDG_CONFIG_HOME": str(server_home)}
        server_env.pop("PULSE_SERVER", None)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                # No CPU limiter (it kills the server on a loaded machine), no real-time
                # or raised priority (root would get them): a plain process, like a test's.
                ["pulseaudio", "-n", "-F", str(conf), "--exit-idle-time=-1",
                 "--daemonize=no", "--use-pid-file=no", "--disallow-exit", "--no-cpu-limit",
                 "--realtime=no", "--high-priority=no", "--log-time=yes"],
                env=server_env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        log.debug("PulseAudio null sink at %s (pid %d)", self.socket, self.proc.pid)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            self.check()
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                try:
                    s.connect(str(self.socket))
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        raise PulseUnavailable(f"pulseaudio did not start in {START_TIMEOUT_S:.0f} s")

    def log_tail(self) -> str:
        """The server's last words (why it stopped, or what it complained of)."""
        with suppress(OSError):
            return self.log.read_text(errors="replace")[-800:].strip() or "(empty log)"
        return "(no log)"

    def check(self) -> None:
        """PulseUnavailable, with the server's log, if it is no longer running."""
        if self.proc.poll() is not None:
            raise PulseUnavailable(f"pulseaudio exited ({self.proc.returncode}): "
                                   f"{self.log_tail()}")

    def listing(self, kind: str) -> list[str]:
        """`pactl list short KIND` (sink-inputs: streams playing now; source-outputs:
        recordings); ["?"] when pactl is not installed, so a wait for one ends."""
        if shutil.which("pactl") is None:
            return ["?"]
        out = subprocess.run(["pactl", "list", "short", kind], capture_output=True,
                             text=True, env={**os.environ, **self.env}, timeout=10)
        return out.stdout.splitlines()

    def record(self, path: Path) -> Recording:
        return Recording(self, path)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        with suppress(OSError):
            shutil.rmtree(self.dir)

    def __enter__(self) -> PulseSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def pulse_sink(base: Path | None = None) -> Iterator[PulseSink]:
    """A running private null sink for the `with` block (PulseUnavailable if none)."""
    sink = PulseSink(base)
    try:
        yield sink
    finally:
        sink.stop()


def zero_runs(samples: Any, min_run: int) -> list[tuple[int, int]]:
    """(start, length) of every run of at least `min_run` exact zeros in `samples`:
    where a player handed the device nothing (speech's own quiet is never exactly 0)."""
    import numpy as np

    zero = np.concatenate([[0], (samples == 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(zero))
    return [(int(s), int(e - s)) for s, e in zip(edges[::2], edges[1::2], strict=True)
            if e - s >= min_run]
