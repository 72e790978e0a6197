"""`kokorod`'s commands as a user meets them: a bad setting judged the same way by every
command, a reader that closes the pipe early, a service previewed before it is installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO


def kokorod(*args: str, env: dict[str, str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kokorod", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120, **kw)  # type: ignore


@pytest.fixture
def user(tmp_path: Path) -> dict[str, str]:
    """A user's environment: own HOME (log, state), own socket, a config file to write."""
    home = tmp_path / "home"
    home.mkdir()
    return {**os.environ, "HOME": str(home), "XDG_STATE_HOME": str(home / ".state"),
            "KOKORO_CONFIG": str(tmp_path / "config.toml"),
            "KOKORO_SOCKET": str(tmp_path / "k.sock")}


def test_bad_settings_get_one_verdict_from_every_command(user: dict[str, str]) -> None:
    Path(user["KOKORO_CONFIG"]).write_text('chunk_ms = 5000\nthreads = "lots"\n')
    log = Path(user["XDG_STATE_HOME"]) / "kokorod" / "log" / "kokorod.log"
    log.parent.mkdir(parents=True)
    log.write_text("ALSA lib pcm.c:2666:(snd_pcm_open_noupdate) Unknown PCM default\n"
                   "an older run's line\n")
    shown, start, run = (kokorod(cmd, env=user) for cmd in ("config", "start", "run"))
    verdict = [line for line in start.stderr.splitlines() if line.strip()]
    assert len(verdict) == 2, start.stderr  # one line per bad setting, said once
    assert any("KOKORO_CHUNK_MS" in line and "5000" in line for line in verdict)
    assert any("KOKORO_THREADS" in line and "'lots'" in line for line in verdict)
    assert all(line.startswith("kokorod: configuration error: ") for line in verdict)
    for result in (shown, start, run):
        assert result.returncode == 2, (result.args, result.stderr)
        assert result.stderr.strip().splitlines() == verdict, (result.args, result.stderr)
        assert "ALSA" not in result.stderr and "older run" not in result.stderr
        assert "Traceback" not in result.stderr and "using the default" not in result.stderr
    assert "KOKORO_CHUNK_MS=5000  [config file: not usable" in shown.stdout
    said = subprocess.run([sys.executable, "-m", "kokorod_client.say", "-o", "x.wav", "Hi."],
                          env=user, cwd=Path(user["HOME"]), capture_output=True, text=True,
                          timeout=120)  # its autostart: the daemon's own verdict, nothing else
    assert said.returncode == 1, said.stderr
    assert said.stderr.strip().splitlines() == [f"kokoro-say: {line}" for line in verdict], \
        said.stderr  # each line says who speaks
    assert not Path(user["KOKORO_SOCKET"]).exists()  # no daemon was started


def closed_pipe_run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    """`kokorod … | head -0`, deterministically: the reader has gone before any write."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "kokorod", *args], env=env, cwd=REPO,
                              stdout=write, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(write)


@pytest.mark.parametrize("args", [("config",), ("model", "list"), ("--help",),
                                  ("service", "install", "--dry-run")])
def test_a_reader_that_goes_away_gets_no_traceback(args: tuple[str, ...],
                                                   user: dict[str, str]) -> None:
    result = closed_pipe_run(*args, env=user)
    assert result.stderr.decode() == "" and result.returncode == 0, result.stderr.decode()
    piped = subprocess.run(f"{sys.executable} -m kokorod {' '.join(args)} | head -1",
                           shell=True, env=user, cwd=REPO, capture_output=True, text=True,
                           timeout=120)
    assert piped.stdout.count("\n") == 1 and "Traceback" not in piped.stderr, piped.stderr


def test_service_install_dry_run_previews_and_writes_nothing(user: dict[str, str]) -> None:
    result = kokorod("service", "install", "--dry-run", env={**user, "KOKORO_VOICE": "bf_emma"})
    assert result.returncode == 0, result.stderr
    home = Path(user["HOME"])
    out = result.stdout
    if sys.platform == "darwin":
        assert "Library/LaunchAgents/com.kokorod.daemon.plist" in out and "<plist" in out
        assert "launchctl bootstrap" in out
    else:
        assert f"{home}/.config/systemd/user/kokorod.service" in out
        assert "ExecStart=" in out and '"-m" "kokorod" "run"' in out
        assert 'Environment="KOKORO_VOICE=bf_emma"' in out
        assert "systemctl --user enable --now kokorod.service" in out
    assert "nothing written" in out
    assert not any(home.rglob("kokorod.service")) and not any(home.rglob("*.plist"))
    wrong = kokorod("service", "start", "--dry-run", env=user)
    assert wrong.returncode == 2 and "install" in wrong.stderr


def test_a_removed_socket_is_found_by_pid_and_waited_for_aloud(run_dir: Path,
                                                               data_dir: Path) -> None:
    """`rm $(kokorod socket)` while it runs: status finds the daemon by its pid file and
    lock; kokoro-say says what it waits for, and speaks once the socket is back."""
    from helpers import start_daemon

    sock = run_dir / "k.sock"
    handle = start_daemon(sock, data_dir, KOKORO_RUNTIME_CHECK_S="4", KOKORO_WARMUP="0")
    env = {**handle.env, "XDG_STATE_HOME": str(run_dir / "state")}
    try:
        sock.unlink()
        status = kokorod("status", env=env)
        assert status.returncode == 1, status.stdout + status.stderr
        assert f"running (pid {handle.proc.pid})" in status.stdout
        assert "socket" in status.stdout and "missing" in status.stdout
        assert "kokorod restart" in status.stdout  # what to do if it stays gone
        said = subprocess.run([sys.executable, "-m", "kokorod_client.say", "-o",
                               str(run_dir / "x.wav"), "Back again."], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        assert said.returncode == 0, said.stderr
        waiting = [line for line in said.stderr.splitlines() if "waiting" in line]
        assert len(waiting) == 1 and f"pid {handle.proc.pid}" in waiting[0], said.stderr
        assert (run_dir / "x.wav").stat().st_size > 10_000
        assert kokorod("status", env=env).returncode == 0
        assert handle.proc.poll() is None  # the same daemon serves; no second one
    finally:
        handle.stop()


def test_restart_stops_and_starts_and_names_the_new_pid(user: dict[str, str],
                                                         data_dir: Path) -> None:
    """`kokorod restart`, which the notes name (a newly installed extra needs it): the new
    daemon's pid is said (the pid file is written before the socket listens)."""
    import re

    env = {**user, "KOKORO_DATA_DIR": str(data_dir), "KOKORO_WARMUP": "0"}
    try:
        first = kokorod("restart", env=env)  # nothing ran: it just starts
        assert first.returncode == 0, first.stderr
        assert "kokorod is not running" in first.stdout
        old = re.search(r"kokorod started \(pid (\d+)\)", first.stdout)
        again = kokorod("restart", env=env)
        assert again.returncode == 0, again.stderr
        new = re.search(r"kokorod started \(pid (\d+)\)", again.stdout)
        assert old and new and old.group(1) != new.group(1), (first.stdout, again.stdout)
        assert f"kokorod stopped (pid {old.group(1)})" in again.stdout
    finally:
        kokorod("stop", env=env)


def test_stop_counts_a_daemon_its_parent_has_not_reaped_as_stopped(run_dir: Path,
                                                                     data_dir: Path) -> None:
    """A daemon started as a child of a long-lived process (an editor, a client library
    that autostarted it, this test) stays a zombie after it exits until that parent
    reaps it. `kokorod stop` must see it as stopped, not wait out its timeout and then
    SIGKILL a process that has already ended."""
    import psutil
    from helpers import start_daemon

    from kokorod_common import launcher

    sock = run_dir / "k.sock"
    handle = start_daemon(sock, data_dir, KOKORO_WARMUP="0")
    try:
        proc = psutil.Process(handle.proc.pid)
        assert not launcher._exited(proc)  # serving
        stopped = kokorod("stop", env=handle.env)
        assert stopped.returncode == 0 and f"pid {handle.proc.pid}" in stopped.stdout
        # not reaped yet: still a zombie, and counted as exited
        assert proc.status() == psutil.STATUS_ZOMBIE and launcher._exited(proc)
        assert handle.proc.wait(5) == 0  # its own clean exit on SIGTERM, not a SIGKILL
        assert launcher._exited(proc)  # reaped: gone
    finally:
        handle.stop()
