"""macOS behaviour tested up to the boundary this Linux machine allows: paths computed for a
Mac home, runtime files swept while the daemon runs, provider plans for a CoreML build,
stand-in launchctl, injected failing sessions and stalled audio streams."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest
from helpers import kokorod_cli, raw_conn, start_daemon

from kokorod.config import load
from kokorod.ctl.service import launchd
from kokorod.synth import providers
from kokorod.synth.engine import Engine
from kokorod.synth.guard import EngineError
from kokorod.synth.segment import Segment
from kokorod_common import paths


def test_runtime_files_live_where_nothing_sweeps_them() -> None:
    home = Path("/Users/someone")
    run = paths.macos_runtime_dir(home, 501)
    assert run == home / "Library" / "Application Support" / "kokorod" / "run"
    assert len(str(run / paths.SOCKET_NAME)) < paths.MACOS_MAX_SOCKET_PATH
    deep = Path("/Users") / ("x" * 80)
    assert paths.macos_runtime_dir(deep, 501) == Path("/tmp/kokorod-501")  # too long: short


def test_swept_runtime_files_are_put_back(run_dir: Path, data_dir: Path) -> None:
    sock = run_dir / "k.sock"
    handle = start_daemon(sock, data_dir, KOKORO_RUNTIME_CHECK_S="0.2", KOKORO_WARMUP="0")
    try:
        lock, pid = paths.lock_file(sock), paths.pid_file(sock)
        for path in (sock, lock, pid):
            path.unlink()
        deadline = time.monotonic() + 20
        while not all(p.exists() for p in (sock, lock, pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sock.exists() and lock.exists(), handle.log_text()
        assert pid.read_text().strip() == str(handle.proc.pid)
        with raw_conn(sock) as conn:
            conn.send({"op": "ping", "id": 1})
            assert conn.recv()["op"] == "pong"
        second = kokorod_cli("run", env=handle.env)  # the lock is held again: refused
        assert second.returncode == 2 and "already" in second.stderr
        stopped = kokorod_cli("stop", env=handle.env)
        assert stopped.returncode == 0 and str(handle.proc.pid) in stopped.stdout
        assert handle.proc.wait(20) == 0
    finally:
        handle.stop()
    assert "was removed" in handle.log_text()


def test_launchd_bootstrap_runs_kokorod_and_stops_quietly_without_it(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-c", launchd.BOOTSTRAP, "--version"],
                        capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert ok.returncode == 0 and ok.stdout.startswith("kokorod ")
    # -S: no site-packages, as after a Python upgrade that lost kokorod
    lost = subprocess.run([sys.executable, "-S", "-c", launchd.BOOTSTRAP, "run"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert lost.returncode == 0 and "reinstall kokorod" in lost.stderr


def test_errors_a_restart_cannot_fix_do_not_make_launchd_loop() -> None:
    bad = {"KOKORO_THREADS": "many"}
    plain = kokorod_cli("run", env=bad)
    assert plain.returncode == 2 and "KOKORO_THREADS" in plain.stderr
    launched = kokorod_cli("run", env={**bad, "XPC_SERVICE_NAME": launchd.LABEL})
    assert launched.returncode == 0 and "launchd will not retry" in launched.stderr


def test_sigterm_during_startup_is_a_clean_stop(run_dir: Path, data_dir: Path) -> None:
    sock = run_dir / "k.sock"
    handle = start_daemon(sock, data_dir, wait=False)
    try:
        deadline = time.monotonic() + 60
        while not paths.lock_file(sock).exists() and time.monotonic() < deadline:
            time.sleep(0.01)  # the lock is taken just before the model loads
        handle.proc.send_signal(signal.SIGTERM)
        assert handle.proc.wait(60) == 0, handle.log_text()
    finally:
        handle.stop()


class CoreMLish:
    """A real CPU session that says it runs on CoreML, and fails its runs on demand (as
    CoreML does on shapes it compiled badly)."""

    failing = False

    def __init__(self, real: Any) -> None:
        self.real = real

    def get_providers(self) -> list[str]:
        return [providers.COREML, providers.CPU]

    def get_provider_options(self) -> dict[str, dict[str, str]]:
        return {providers.COREML: {"MLComputeUnits": "CPUOnly"}}

    def run(self, *args: Any, **kwargs: Any) -> Any:
        if CoreMLish.failing:
            raise RuntimeError("CoreML: shape mismatch in partition 12")
        return self.real.run(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture
def coreml_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """onnxruntime as a macOS build would plan it: CoreML available, its sessions CoreMLish."""
    real_create = providers.create_session

    def factory(path: str, sess_options: Any, providers: list[Any]) -> Any:
        session = ort.InferenceSession(path, sess_options=sess_options,
                                       providers=["CPUExecutionProvider"])
        return CoreMLish(session) if isinstance(providers[0], tuple) else session

    def create(model: Path, config: Any, check: Any = None, whole: Any = None) -> Any:
        return real_create(model, config, check=check, whole=whole,
                           available=[providers.COREML, providers.CPU], factory=factory)

    monkeypatch.setattr(providers, "create_session", create)
    failures = tmp_path / "coreml-failures.json"
    monkeypatch.setattr(providers, "_failures_file", lambda: failures)
    CoreMLish.failing = False
    return failures


def test_int8_model_stays_on_cpu_under_auto(coreml_build: Path, data_dir: Path) -> None:
    engine = Engine(load({"KOKORO_DATA_DIR": str(data_dir), "KOKORO_WARMUP": "0"}))
    assert engine.provider.provider == providers.CPU and "int8" in engine.provider.reason
    assert not engine.on_coreml


def test_coreml_that_fails_at_run_time_moves_to_cpu_and_is_remembered(
        coreml_build: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load({"KOKORO_DATA_DIR": str(data_dir), "KOKORO_PROVIDER": "coreml",
                   "KOKORO_WARMUP": "0"})
    engine = Engine(config)
    assert engine.on_coreml and engine.provider.provider == providers.COREML
    assert engine.provider.options == {"MLComputeUnits": "CPUOnly"}  # what the session took
    voice = engine.voice_style(None)
    CoreMLish.failing = True
    with pytest.raises(EngineError, match="shape mismatch"):
        engine.synthesize(Segment("A shape CoreML chokes on.", 0.0, 0), voice, 1.0, "en-us")
    assert not engine.on_coreml and engine.provider.provider == providers.CPU
    assert engine.provider.fallback_from == providers.COREML
    assert engine.synthesize(Segment("Fine on CPU.", 0.0, 0), voice, 1.0, "en-us").size > 0
    remembered = json.loads(coreml_build.read_text())
    assert ["shape mismatch" in v for v in remembered.values()] == [True]
    monkeypatch.setattr(providers, "quantized", lambda model: False)  # as an fp32 model
    later = providers.plan(load({}), [providers.COREML, providers.CPU], engine.files.model)
    assert later[0].provider == providers.CPU  # a later start does not try CoreML again
    assert "failed with this model before" in later[0].reason


def test_coreml_warmup_is_the_check_even_with_warmup_off(coreml_build: Path,
                                                        data_dir: Path) -> None:
    CoreMLish.failing = True
    engine = Engine(load({"KOKORO_DATA_DIR": str(data_dir), "KOKORO_PROVIDER": "coreml",
                          "KOKORO_WARMUP": "0"}))
    assert engine.streaming and engine.provider.provider == providers.CPU
    assert "CoreML failed" in engine.provider.reason


def test_threads_follow_the_performance_cores_on_apple_silicon() -> None:
    config = load({})
    assert providers.thread_count(config, "darwin", lambda: 4) == 4
    assert providers.thread_count(config, "darwin", lambda: None) == (os.cpu_count() or 1)
    assert providers.thread_count(load({"KOKORO_THREADS": "3"}), "darwin", lambda: 4) == 3
    assert providers.thread_count(config, "linux", lambda: 4) == (os.cpu_count() or 1)


def test_coreml_cache_is_keyed_by_content_and_pruned(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"first")
    first = providers.coreml_cache_dir(model, {"A": "1"}, tmp_path / "cache")
    model.write_bytes(b"second model")  # replaced at the same path
    second = providers.coreml_cache_dir(model, {"A": "1"}, tmp_path / "cache")
    assert first != second and second.is_dir() and not first.exists()
    assert providers.coreml_cache_dir(model, {"A": "2"}, tmp_path / "cache") != second


def test_large_uids_are_read_unsigned() -> None:
    from kokorod.serve import peercred

    uid = 2**31 + 5  # directory-service uids on macOS can be this large
    mac = peercred._XUCRED.pack(0, uid, 1, *([20] * 16))
    assert peercred._XUCRED.unpack(mac)[1] == uid
    assert peercred._UCRED.unpack(peercred._UCRED.pack(1, uid, 20))[1] == uid


def test_macos_heap_release_is_zone_pressure_relief() -> None:
    from kokorod.synth import heap

    calls: list[tuple[Any, int]] = []

    class LibSystem:
        def malloc_zone_pressure_relief(self, zone: Any, goal: int) -> int:
            calls.append((zone, goal))
            return 0

    release = heap.load_release("darwin", LibSystem())
    assert release is not None
    release()
    assert calls == [(None, 0)]  # every zone, as much as it can
    assert heap.load_release("plan9") is None


def test_downloads_trust_certifi_on_macos() -> None:
    import certifi

    from kokorod.store import download

    with open(certifi.where()) as bundle:
        certifi_cas = bundle.read().count("BEGIN CERTIFICATE")
    assert download.tls_context("darwin").cert_store_stats()["x509_ca"] >= certifi_cas
