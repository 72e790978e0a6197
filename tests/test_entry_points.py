"""Every console entry point (pyproject's [project.scripts]) given bad input, a closed
standard output (`| head -1`) and a missing optional extra: whatever happens, the user
never sees a Python traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import REPO, DaemonProc

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

SCRIPTS: dict[str, str] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
    "scripts"]
NOISE = ("Traceback", "Exception ignored", "unexpected error")


@dataclass(frozen=True)
class Case:
    script: str
    args: list[str | bytes]
    stdin: bytes = b""
    closed_stdout: bool = False
    daemon: bool = False  # run against the session daemon (else: no daemon at all)
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 120.0
    what: str = ""  # for the test id, when the args do not say it

    def __str__(self) -> str:
        args = " ".join(a.decode("latin-1") if isinstance(a, bytes) else a for a in self.args)
        tail = " > closed" if self.closed_stdout else ""
        return " ".join(filter(None, [self.script, args, self.what])) + tail


def entry_command(script: str, args: list[str | bytes]) -> list[bytes]:
    """What the installed console script runs: its function, from the tree under test."""
    module, func = SCRIPTS[script].split(":")
    code = (f"import sys; sys.argv[0] = {script!r}; from {module} import {func}; "
            f"sys.exit({func}())")
    return [sys.executable.encode(), b"-c", code.encode(),
            *(a if isinstance(a, bytes) else a.encode() for a in args)]


def run_case(case: Case, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    stdout: int = subprocess.PIPE
    if case.closed_stdout:  # the reader has gone before anything is written (`| head -0`)
        read_end, stdout = os.pipe()
        os.close(read_end)
    try:
        return subprocess.run(entry_command(case.script, case.args), input=case.stdin,
                              stdout=stdout, stderr=subprocess.PIPE, env={**env, **case.env},
                              timeout=case.timeout, cwd=REPO)
    finally:
        if case.closed_stdout:
            os.close(stdout)


NOT_UTF8 = b"Un caf\xe9"
RANDOM = os.urandom(4096)
SPEAK_NOWHERE = ["--no-autostart", "-o", "/dev/null", "--file-format", "raw"]

CASES = [
    # kokoro-say
    Case("kokoro-say", ["--no-autostart", NOT_UTF8]),
    Case("kokoro-say", ["--no-autostart"], stdin=b"caf\xe9", what="< latin-1"),
    Case("kokoro-say", ["--no-autostart"], stdin=RANDOM, what="< urandom"),
    Case("kokoro-say", ["--no-autostart", "-v", NOT_UTF8, "hi"]),
    Case("kokoro-say", ["--no-autostart", "-r", "50", "hi"]),
    Case("kokoro-say", ["--no-autostart", "--chunk-ms", "5", "hi"]),
    Case("kokoro-say", ["--no-autostart", "-o", "a.mp3", "hi"]),
    Case("kokoro-say", ["--bogus"]),
    Case("kokoro-say", ["--help"], closed_stdout=True),
    Case("kokoro-say", ["--version"], closed_stdout=True),
    Case("kokoro-say", ["--stop"], closed_stdout=True),
    Case("kokoro-say", ["--no-autostart", "-v", "?"], closed_stdout=True, daemon=True),
    Case("kokoro-say", [*SPEAK_NOWHERE, "-i", "Hello there."], closed_stdout=True, daemon=True),
    Case("kokoro-say", [*SPEAK_NOWHERE, "--json-stats", "Hi."], closed_stdout=True, daemon=True),
    Case("kokoro-say", ["--no-autostart", "-o", "-", "Hi."], closed_stdout=True, daemon=True),
    # sd_kokoro: speech-dispatcher's end of the pipe
    Case("sd_kokoro", [], stdin=b"NONSENSE\n\xff\xfe\nSET\nfoo\n.\nQUIT\n", what="< nonsense"),
    Case("sd_kokoro", [], stdin=RANDOM, what="< urandom"),
    Case("sd_kokoro", [], stdin=b"INIT\nLIST VOICES\nQUIT\n", closed_stdout=True, daemon=True,
         what="< INIT"),
    Case("sd_kokoro", [], stdin=b"SPEAK\nHello there.\n.\n", closed_stdout=True, daemon=True,
         what="< SPEAK"),
    # kokorod: the daemon's command line
    Case("kokorod", ["bogus"]),
    Case("kokorod", ["status", NOT_UTF8]),
    Case("kokorod", ["--help"], closed_stdout=True),
    Case("kokorod", ["status"], closed_stdout=True),
    Case("kokorod", ["socket"], closed_stdout=True),
    Case("kokorod", ["status", "--json"], closed_stdout=True, daemon=True),
    Case("kokorod", ["config"], closed_stdout=True),
    Case("kokorod", ["model", "list"], closed_stdout=True),
]


def _param(case: Case) -> object:
    return pytest.param(case, id=str(case))


def test_every_console_script_is_walked() -> None:
    assert {case.script for case in CASES} == set(SCRIPTS)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_no_traceback_reaches_the_user(case: Case, daemon: DaemonProc, tmp_path: Path) -> None:
    env = dict(daemon.env) if case.daemon else {
        **{k: v for k, v in daemon.env.items() if k != "KOKORO_SOCKET"},
        "KOKORO_SOCKET": str(tmp_path / "none.sock")}
    env["HOME"] = str(tmp_path)  # nothing of the user's (and no sound device: no .asoundrc)
    result = run_case(case, env)
    err = result.stderr.decode(errors="replace")
    assert not any(n in err for n in NOISE), err
    assert result.returncode in (0, 1, 2, 3), (result.returncode, err)
    if case.closed_stdout and case.script == "kokoro-say":  # as `head` wants: not a word
        assert err == "", err


def test_a_missing_optional_extra_is_one_line(daemon: DaemonProc, tmp_path: Path) -> None:
    """Issue 36 row 3: KOKORO_HTTP_PORT and KOKORO_WYOMING_URI set without their extras
    (aiohttp and wyoming hidden from this interpreter), and a plain kokoro-say that
    autostarts the daemon: one line each naming the pip command, the daemon speaks."""
    hide = tmp_path / "hide"
    hide.mkdir()
    for module in ("aiohttp", "wyoming"):
        (hide / f"{module}.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{module}'\", name='{module}')\n")
    sock = tmp_path / "k.sock"
    env = {**daemon.env, "KOKORO_SOCKET": str(sock), "HOME": str(tmp_path),
           "XDG_STATE_HOME": str(tmp_path / "state"), "KOKORO_HTTP_PORT": "18931",
           "KOKORO_WYOMING_URI": "tcp://127.0.0.1:18932", "KOKORO_WARMUP": "0",
           "PYTHONPATH": os.pathsep.join([str(hide), str(REPO)])}
    wav = tmp_path / "x.wav"
    try:
        said = subprocess.run(entry_command("kokoro-say", ["-o", str(wav), "Still speaking."]),
                              capture_output=True, env=env, cwd=REPO, timeout=300)
        err = said.stderr.decode(errors="replace")
        assert said.returncode == 0 and "Traceback" not in err, err
        for extra, setting in (("http", "KOKORO_HTTP_PORT=18931"),
                               ("wyoming", "KOKORO_WYOMING_URI=tcp://127.0.0.1:18932")):
            lines = [line for line in err.splitlines() if f"kokorod[{extra}]" in line]
            assert len(lines) == 1 and setting in lines[0], err
            assert f"pip install 'kokorod[{extra}]'" in lines[0]
        assert wav.stat().st_size > 24_000  # it spoke
        status = subprocess.run(entry_command("kokorod", ["status"]), capture_output=True,
                                env=env, cwd=REPO, timeout=120).stdout.decode()
        assert "http         off:" in status and "pip install 'kokorod[http]'" in status
        assert "wyoming      off:" in status and "pip install 'kokorod[wyoming]'" in status
    finally:
        subprocess.run(entry_command("kokorod", ["stop"]), capture_output=True, env=env,
                       cwd=REPO, timeout=120)
