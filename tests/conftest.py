"""Shared fixtures: one warm daemon subprocess (real model, real socket) for the session."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import (
    STEADY_SCHEDULE,
    DaemonProc,
    alsa_home,
    raw_conn,
    short_tmpdir,
    start_daemon,
)


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
    handle = start_daemon(run_dir / "k.sock", data_dir, KOKORO_IDLE_TIMEOUT_S="3",
                          KOKORO_WARMUP="1")  # as users run it
    yield handle
    code = handle.stop()
    shutil.rmtree(run_dir, ignore_errors=True)
    assert code == 0, f"daemon exited with {code}:\n{handle.log_text()}"


@pytest.fixture(scope="session")
def engine(data_dir: Path, daemon: DaemonProc) -> Any:
    """One warm in-process engine (real model) for the tests that drive it directly,
    planning its windows from the same fixed costs as the test daemons. After the
    session daemon's first start: that installs the English voices (the default)."""
    from kokorod.config import load
    from kokorod.synth.engine import Engine

    os.environ["KOKORO_DATA_DIR"] = str(data_dir)  # paths read it (models, calibration)
    return Engine(load({"KOKORO_DATA_DIR": str(data_dir),
                        "KOKORO_WINDOW_SCHEDULE": STEADY_SCHEDULE,
                        "KOKORO_WINDOW_ADAPT": "0"}))


@dataclass
class Speaker:
    """A daemon whose sound output is ALSA's file plugin: daemon-side playback lands in
    `capture`. `config` is its config file (write settings, then send `reload`)."""

    daemon: DaemonProc
    capture: Path
    config: Path

    @property
    def socket(self) -> Path:
        return self.daemon.socket


@pytest.fixture(scope="session")
def speaker(data_dir: Path) -> Iterator[Speaker]:
    run_dir = short_tmpdir("kp")
    home, capture = alsa_home(run_dir)
    config = run_dir / "kokorod.toml"
    handle = start_daemon(run_dir / "p.sock", data_dir, HOME=str(home),
                          KOKORO_CONFIG=str(config), KOKORO_WARMUP="1")
    yield Speaker(handle, capture, config)
    code = handle.stop()
    shutil.rmtree(run_dir, ignore_errors=True)
    assert code == 0, f"speaker daemon exited with {code}:\n{handle.log_text()}"


@pytest.fixture(scope="session")
def one_shot(daemon: DaemonProc) -> Any:
    """Plain kokoro-onnx on the daemon's model and voices, loaded once: (Kokoro, the
    daemon's default voice) — what kokorod's output is compared with."""
    from kokoro_onnx import Kokoro

    with raw_conn(daemon.socket) as conn:
        conn.send({"op": "status", "id": 0})
        engine = conn.recv()["engine"]
    return Kokoro(engine["model_path"], engine["voices_path"]), engine["default_voice"]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data dir for this test (the session's store stays untouched)."""
    data = tmp_path / "data"
    monkeypatch.setenv("KOKORO_DATA_DIR", str(data))
    return data


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


def pytest_configure(config: pytest.Config) -> None:
    """`-m "not model"`: the fast tier also runs fewer property-test examples."""
    import tiers

    if tiers.is_fast_tier(config.getoption("markexpr", "")):
        os.environ[tiers.FAST_ENV] = "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that need the model or a daemon are marked `model` (tests/tiers.py)."""
    import tiers

    tiers.mark(items)
