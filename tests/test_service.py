"""Service control: generated plist/unit files and the exact launchctl/systemctl calls,
run against recording stand-ins of the binaries (this machine has neither manager)."""

from __future__ import annotations

import json
import os
import plistlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import raw_conn, start_daemon

from kokorod.ctl import service
from kokorod.ctl.service import launchd
from kokorod.ctl.service.base import NoServiceManager, ServiceError, run_command
from kokorod_common.launcher import socket_is_live

STAND_IN = """#!{python}
import json, os, sys
name = os.path.basename(sys.argv[0])
with open(os.environ["RECORD"], "a") as fh:
    fh.write(json.dumps([name, *sys.argv[1:]]) + "\\n")
verb = sys.argv[1] if len(sys.argv) > 1 else ""
replies = (json.loads(os.environ.get("REPLIES") or "null") or dict()).get(verb)
if replies:  # scripted: the n-th call of this verb gets the n-th [status, message]
    count = os.environ["RECORD"] + "." + verb
    n = int(open(count).read()) if os.path.exists(count) else 0
    open(count, "w").write(str(n + 1))
    status, message = replies[min(n, len(replies) - 1)]
    print(message, file=sys.stderr)
    sys.exit(status)
fail = json.loads(os.environ.get("FAIL", "[]"))
if sys.argv[1:2] and sys.argv[1] in fail:
    sys.exit(3)
if sys.argv[1:2] == ["print"]:
    print("com.kokorod.daemon = {{\\n\\tstate = running\\n\\tpid = 4242\\n}}")
if "is-active" in sys.argv:
    print("active")
if "is-enabled" in sys.argv:
    print("enabled")
"""


@pytest.fixture
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """launchctl/systemctl/journalctl stand-ins on PATH that record their argv."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("launchctl", "systemctl", "journalctl"):
        exe = bindir / name
        exe.write_text(STAND_IN.format(python=sys.executable))
        exe.chmod(0o755)
    record = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("RECORD", str(record))
    return record


def calls(record: Path) -> list[list[str]]:
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]


def test_plist_has_the_keys_with_the_right_types(tmp_path: Path) -> None:
    data = plistlib.loads(launchd.plist_bytes(tmp_path, {"KOKORO_VOICE": "jm_kumo"}))
    assert data["Label"] == launchd.LABEL
    args = data["ProgramArguments"]
    assert isinstance(args, list) and args[:2] == [sys.executable, "-c"] and args[-1] == "run"
    assert args[2] == launchd.BOOTSTRAP
    assert data["RunAtLoad"] is True
    assert data["KeepAlive"] == {"SuccessfulExit": False}
    assert isinstance(data["ThrottleInterval"], int) and data["ThrottleInterval"] > 0
    assert data["ProcessType"] == "Interactive"
    for key in ("StandardOutPath", "StandardErrorPath"):  # the file `kokorod start` writes
        assert data[key] == str(tmp_path / "Library" / "Logs" / "kokorod" / "kokorod.log")
    assert data["EnvironmentVariables"] == {"KOKORO_VOICE": "jm_kumo"}


def test_launchd_install_uses_bootstrap_and_writes_plist(tmp_path: Path,
                                                         stand_ins: Path) -> None:
    mgr = service.detect("darwin", home=tmp_path)
    assert isinstance(mgr, service.LaunchdManager)
    path = mgr.install({"KOKORO_CHUNK_MS": "40"})
    assert path == tmp_path / "Library/LaunchAgents/com.kokorod.daemon.plist"
    assert plistlib.loads(path.read_bytes())["EnvironmentVariables"] == {"KOKORO_CHUNK_MS": "40"}
    domain = f"gui/{os.getuid()}"
    assert calls(stand_ins) == [["launchctl", "bootstrap", domain, str(path)]]
    mgr.start()
    mgr.stop()
    mgr.restart()
    assert "running (pid 4242)" in mgr.status()
    target = f"{domain}/{launchd.LABEL}"
    assert calls(stand_ins)[1:] == [
        ["launchctl", "kickstart", target],
        ["launchctl", "kill", "SIGTERM", target],
        ["launchctl", "kickstart", "-k", target],
        ["launchctl", "print", target],
    ]
    mgr.uninstall()
    assert not path.exists()
    assert calls(stand_ins)[-1] == ["launchctl", "bootout", target]


def test_launchd_falls_back_to_legacy_verbs(tmp_path: Path, stand_ins: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIL", json.dumps(["bootstrap", "bootout", "kickstart", "kill"]))
    mgr = service.detect("darwin", home=tmp_path)
    path = mgr.install({})
    mgr.start()
    mgr.stop()
    mgr.uninstall()
    legacy = [c for c in calls(stand_ins) if c[1] in ("load", "unload", "start", "stop")]
    assert legacy == [["launchctl", "load", "-w", str(path)],
                      ["launchctl", "start", launchd.LABEL],
                      ["launchctl", "stop", launchd.LABEL],
                      ["launchctl", "unload", "-w", str(path)]]


def test_systemd_unit_and_commands(tmp_path: Path, stand_ins: Path) -> None:
    mgr = service.detect("linux", home=tmp_path, systemd_booted=True)
    assert isinstance(mgr, service.SystemdManager)
    path = mgr.install({"KOKORO_VOICE": 'odd "value" 100%'})
    assert path == tmp_path / ".config/systemd/user/kokorod.service"
    unit = path.read_text()
    assert f'ExecStart="{sys.executable}" "-m" "kokorod" "run"' in unit
    assert "Restart=on-failure" in unit and "WantedBy=default.target" in unit
    assert 'Environment="KOKORO_VOICE=odd \\"value\\" 100%%"' in unit
    mgr.start()
    mgr.stop()
    mgr.restart()
    assert mgr.status() == "kokorod.service: active (enabled)"
    mgr.logs(10)
    mgr.uninstall()
    assert not path.exists()
    sc = [c[1:] for c in calls(stand_ins)]
    assert sc == [
        ["--user", "daemon-reload"],
        ["--user", "enable", "--now", "kokorod.service"],
        ["--user", "start", "kokorod.service"],
        ["--user", "stop", "kokorod.service"],
        ["--user", "restart", "kokorod.service"],
        ["--user", "is-active", "kokorod.service"],
        ["--user", "is-enabled", "kokorod.service"],
        ["--user", "-u", "kokorod.service", "-n", "10", "--no-pager"],
        ["--user", "disable", "--now", "kokorod.service"],
        ["--user", "daemon-reload"],
    ]


def test_commands_before_install_say_so(tmp_path: Path, stand_ins: Path) -> None:
    for platform in ("darwin", "linux"):
        with pytest.raises(ServiceError, match="not installed"):
            service.detect(platform, home=tmp_path, systemd_booted=True).start()


def test_failed_command_is_a_service_error(tmp_path: Path, stand_ins: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIL", json.dumps(["--user"]))
    with pytest.raises(ServiceError, match="daemon-reload"):
        service.detect("linux", home=tmp_path, systemd_booted=True).install({})


def test_no_manager_here_points_at_kokorod_start() -> None:
    mgr = service.detect("plan9")
    assert isinstance(mgr, NoServiceManager)
    with pytest.raises(ServiceError, match="kokorod start"):
        mgr.install({})
    assert run_command(["/nonexistent/binary"]).returncode == 127


def test_cli_service_without_manager(tmp_path: Path) -> None:
    if not isinstance(service.detect(), NoServiceManager):
        pytest.skip("this machine has a service manager; covered by the stand-in tests")
    result = subprocess.run([sys.executable, "-m", "kokorod", "service", "install"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "kokorod start" in result.stderr


def test_sighup_reloads_settings_without_dropping_connections(run_dir: Path,
                                                              data_dir: Path) -> None:
    conf = run_dir / "config.toml"
    conf.write_text("chunk_ms = 50\n")
    handle = start_daemon(run_dir / "k.sock", data_dir, KOKORO_CONFIG=str(conf))
    try:
        with raw_conn(handle.socket) as c:
            c.send({"op": "synthesize", "id": 1, "text": "Before the reload."})
            before = c.until_final(1)
            assert max(f["samples"] for f in before if f["op"] == "chunk") == 1200
            conf.write_text("chunk_ms = 100\n")
            handle.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                c.send({"op": "status", "id": "s"})
                if c.recv()["reloads"] == 1:
                    break
                time.sleep(0.1)
            c.send({"op": "synthesize", "id": 2, "text": "After the reload."})
            after = c.until_final(2)  # same connection, still open
            assert max(f["samples"] for f in after if f["op"] == "chunk") == 2400
            conf.write_text("chunk_ms = 5\n")  # invalid: keeps the current settings
            handle.proc.send_signal(signal.SIGHUP)
            time.sleep(1)
            c.send({"op": "ping", "id": 3})
            assert c.recv()["op"] == "pong"
        assert handle.proc.poll() is None
    finally:
        assert handle.stop() == 0


def test_two_daemons_started_at_once_exactly_one_survives(run_dir: Path,
                                                          data_dir: Path) -> None:
    first = start_daemon(run_dir / "k.sock", data_dir, wait=False)
    second = start_daemon(run_dir / "k.sock", data_dir, wait=False)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            codes = [first.proc.poll(), second.proc.poll()]
            if codes.count(None) == 1 and socket_is_live(run_dir / "k.sock"):
                break
            time.sleep(0.1)
        survivors = [h for h in (first, second) if h.proc.poll() is None]
        losers = [h for h in (first, second) if h.proc.poll() is not None]
        assert len(survivors) == 1 and len(losers) == 1
        assert losers[0].proc.returncode == 2 and "already" in losers[0].log_text()
        with raw_conn(run_dir / "k.sock") as c:
            c.send({"op": "ping", "id": 1})
            assert c.recv()["op"] == "pong"
    finally:
        first.stop()
        second.stop()


def test_the_service_gets_the_config_file_and_socket_in_effect(tmp_path: Path) -> None:
    from kokorod.config import load

    config_file = tmp_path / "kokorod.toml"
    config_file.write_text('socket = "run/k.sock"\nvoice = "bf_emma"\n')
    environ = {"KOKORO_CONFIG": str(config_file), "KOKORO_THREADS": "2", "HOME": "/h"}
    env = service.user_env(load(environ), environ)
    assert env["KOKORO_THREADS"] == "2" and "HOME" not in env
    assert env["KOKORO_CONFIG"] == str(config_file.resolve())  # named, not copied
    assert Path(env["KOKORO_SOCKET"]).is_absolute() and env["KOKORO_SOCKET"].endswith("run/k.sock")
    assert "KOKORO_VOICE" not in env  # the file stays the one place of its settings


def _launchd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             **replies: list[list[object]]) -> service.LaunchdManager:
    monkeypatch.setenv("REPLIES", json.dumps(replies))
    mgr = service.detect("darwin", home=tmp_path)
    assert isinstance(mgr, service.LaunchdManager)
    mgr.sleep = lambda s: None  # type: ignore[method-assign]
    return mgr


def test_launchd_reinstall_waits_out_the_bootout(tmp_path: Path, stand_ins: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    mgr = _launchd(tmp_path, monkeypatch,
                   print=[[0, "state = running"], [0, "state = running"], [113, "not found"]],
                   bootstrap=[[5, "Bootstrap failed: 5: Input/output error"], [0, ""]])
    mgr.path.parent.mkdir(parents=True)
    mgr.path.write_bytes(b"old")
    mgr.install({})
    verbs = [c[1] for c in calls(stand_ins)]
    assert verbs == ["bootout", "print", "print", "print", "bootstrap", "print", "bootstrap"]


def test_launchd_already_loaded_is_installed(tmp_path: Path, stand_ins: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    mgr = _launchd(tmp_path, monkeypatch,
                   bootstrap=[[37, "Bootstrap failed: 37: Operation already in progress"]])
    mgr.install({})
    assert [c[1] for c in calls(stand_ins)] == ["bootstrap"]


def test_launchd_without_a_gui_session_says_what_to_do(tmp_path: Path, stand_ins: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    mgr = _launchd(tmp_path, monkeypatch, bootstrap=[
        [125, "Bootstrap failed: 125: Domain does not support specified action"]])
    with pytest.raises(ServiceError, match="log in at the Mac"):
        mgr.install({})
    assert "load" not in [c[1] for c in calls(stand_ins)]


def test_logs_without_a_service_manager_show_the_daemons_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))  # not the user's own log
    mgr = service.detect("plan9")
    assert "no log yet" in mgr.logs(5)
    from kokorod_common import paths

    paths.log_file().parent.mkdir(parents=True, exist_ok=True)
    paths.log_file().write_text("line one\nkokorod 0.1.0 serving on x\n")
    shown = mgr.logs(5)
    assert "no service manager" in shown and shown.endswith("serving on x")
