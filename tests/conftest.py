"""Shared fixtures: one warm daemon subprocess (real model, real socket) for the session."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import DaemonProc, short_tmpdir, start_daemon


@pytest.fixture(scope="session")
def data_dir() -> Iterator[Path]:
    """A per-session data dir: the embedded model is assembled into it once."""
    path = short_tmpdir("kd")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def daemon(data_dir: Path) -> Iterator[DaemonProc]:
    run_dir = short_tmpdir("ks")
    # A short idle timeout so the idle-connection test need not wait 30 s.
    handle = start_daemon(run_dir / "k.sock", data_dir, KOKORO_IDLE_TIMEOUT_S="3")
    yield handle
    code = handle.stop()
    shutil.rmtree(run_dir, ignore_errors=True)
    assert code == 0, f"daemon exited with {code}:\n{handle.log_text()}"


@pytest.fixture
def run_dir() -> Iterator[Path]:
    path = short_tmpdir("kr")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    """No test reads the user's real config, data or socket."""
    for key in list(os.environ):
        if key.startswith("KOKORO_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("KOKORO_DATA_DIR", str(data_dir))
    monkeypatch.setenv("KOKORO_CONFIG", str(data_dir / "no-config.toml"))
