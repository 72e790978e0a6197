"""Ending a child process: a signal, a wait, then SIGKILL if it does not go (bench, tests)."""

from __future__ import annotations

import signal
import subprocess
from typing import Any


def end(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
    """Send `sig` unless it has exited, wait up to `timeout` s, then kill; its exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
