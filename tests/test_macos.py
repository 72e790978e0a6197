"""macOS behaviour tested up to the boundary this Linux machine allows: paths computed for a
Mac home, runtime files swept while the daemon runs, provider plans for a CoreML build,
stand-in launchctl, injected failing sessions and stalled audio streams."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import kokorod_cli, raw_conn, start_daemon

from kokorod.service import launchd
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
