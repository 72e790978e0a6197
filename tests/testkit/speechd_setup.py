"""A private speech-dispatcher for tests and the bench: its own HOME, runtime and config
dirs, ALSA's file sink for audio, kokorod's module installed with `kokorod speechd install`
and made the default. Nothing of the user's speech-dispatcher is touched."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from testkit import processes

REPO = Path(__file__).resolve().parents[2]


def short_tmpdir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o700)
    return path


@dataclass
class Speechd:
    root: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]

    def say(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["spd-say", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def start_say(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(["spd-say", *args], env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def sink(self) -> np.ndarray:
        files = sorted(self.root.glob("sink-*.raw*"))
        data = b"".join(f.read_bytes() for f in files)
        return np.frombuffer(data[:len(data) // 2 * 2], "<i2").astype(np.float32) / 32767

    def module_log(self) -> str:
        log = self.root / "log" / "kokoro.log"
        return log.read_text(errors="replace") if log.exists() else ""


def start_speechd(kokoro_socket: Path, data_dir: Path, log_level: int = 3) -> Speechd:
    root = short_tmpdir("sd")
    home, run, cfg, log = root / "home", root / "run", root / "cfg", root / "log"
    for d in (home / ".local" / "share", run, cfg / "speech-dispatcher", log):
        d.mkdir(parents=True)
    run.chmod(0o700)
    (home / ".asoundrc").write_text(
        f'pcm.!default {{ type file slave.pcm "null" file "{root}/sink-%r-%c-%b.raw" '
        'format "raw" truncate false }\n')
    (cfg / "speech-dispatcher" / "speechd.conf").write_text(
        f'LogLevel {log_level}\nLogDir "{log}"\nAudioOutputMethod "alsa"\nDefaultModule kokoro\n'
        "DefaultVolume 100\n")  # as the distribution's speechd.conf has it
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KOKORO_", "SPEECHD_", "XDG_"))}
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(run), XDG_CONFIG_HOME=str(cfg),
               KOKORO_SOCKET=str(kokoro_socket), KOKORO_DATA_DIR=str(data_dir),
               PYTHONPATH=str(REPO))
    installed = subprocess.run([sys.executable, "-m", "kokorod", "speechd", "install"],
                               env=env, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert installed.returncode == 0, installed.stderr
    proc = subprocess.Popen(["speech-dispatcher", "-s", "-t", "0", "-P", str(root / "sd.pid")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sock = run / "speech-dispatcher" / "speechd.sock"
    deadline = time.monotonic() + 30
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sock.exists(), "speech-dispatcher did not start"
    return Speechd(root, env, proc)


def stop_speechd(sd: Speechd) -> None:
    processes.end(sd.proc, signal.SIGTERM, 10)
    shutil.rmtree(sd.root, ignore_errors=True)


