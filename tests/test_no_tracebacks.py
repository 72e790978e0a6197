"""Every console entry point (pyproject's [project.scripts]: kokoro-say, kokorod and each of
its subcommands, sd_kokoro) given (a) bad input — bad flags, bad values, bytes that are not
UTF-8, empty input —, (b) a closed standard output (`| head -1`), and (c) a missing
optional extra (a package on PYTHONPATH that fails to import, as a user without the extra
has it): whatever happens, the user never sees a Python traceback.

kokorod's commands are read from its own parser, so a new subcommand is walked too.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import REPO, DaemonProc, short_tmpdir

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


def kokorod_commands() -> list[list[str]]:
    """Every kokorod command (['status'], ['model', 'list'], …), from its parser."""
    from kokorod.ctl.cli import build_parser

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> Iterator[list[str]]:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield path
            return
        for name, sub in subs[0].choices.items():
            yield from walk(sub, [*path, name])

    return list(walk(build_parser(), []))


NOT_UTF8 = b"Un caf\xe9"
RANDOM = os.urandom(4096)
SPEAK_NOWHERE = ["--no-autostart", "-o", "/dev/null", "--file-format", "raw"]
# Commands that only read (safe to run for real), with what they need.
KOKOROD_READERS: list[tuple[list[str], bool]] = [
    (["status"], False), (["status"], True), (["status", "--json"], True),
    (["status", "-v"], True), (["config"], False), (["socket"], False), (["http"], True),
    (["model", "list"], False), (["model", "list", "--json"], False),
    (["lexicon", "list"], False), (["lexicon", "list", "--json"], False),
    (["lexicon", "say", "hello", "--phonemes"], True), (["speechd", "status"], False),
    (["service", "status"], False), (["service", "logs"], False),
    (["service", "install", "--dry-run"], False), (["stop"], False), (["--version"], False),
]

SAY_CASES = [
    # (a) bad input: bytes that are not UTF-8, everywhere text comes in
    Case("kokoro-say", ["--no-autostart", NOT_UTF8]),
    Case("kokoro-say", ["--no-autostart"], stdin=b"caf\xe9", what="< latin-1"),
    Case("kokoro-say", ["--no-autostart"], stdin=RANDOM, what="< urandom"),
    Case("kokoro-say", ["--no-autostart"], stdin="Hi there.".encode("utf-16-le"),
         what="< utf-16 without a mark"),
    Case("kokoro-say", ["--no-autostart", "-f", "/dev/urandom"]),  # endless: read ~64 KiB
    Case("kokoro-say", ["--no-autostart", "-f", "/dev/zero"]),
    Case("kokoro-say", ["--no-autostart"], stdin=b"y\n" * (33 << 20), what="< yes"),
    Case("kokoro-say", ["--no-autostart", "-v", NOT_UTF8, "hi"]),
    Case("kokoro-say", ["--no-autostart", "--encoding", NOT_UTF8, "hi"]),
    Case("kokoro-say", ["--no-autostart", "--encoding", "klingon", "hi"]),
    Case("kokoro-say", ["--no-autostart", "--encoding", "utf-16-le"], stdin=b"\x00\xd8",
         what="< a lone surrogate"),
    # empty input
    Case("kokoro-say", ["--no-autostart"], what="< nothing"),
    Case("kokoro-say", ["--no-autostart", ""]),
    Case("kokoro-say", ["--no-autostart", "-f", "/dev/null"]),
    # bad flags and values
    Case("kokoro-say", ["--bogus"]),
    Case("kokoro-say", ["-v"]),
    Case("kokoro-say", ["--no-autostart", "-r", "50", "hi"]),
    Case("kokoro-say", ["--no-autostart", "-r", "fast", "hi"]),
    Case("kokoro-say", ["--no-autostart", "--speed", "nan", "hi"]),
    Case("kokoro-say", ["--no-autostart", "--chunk-ms", "5", "hi"]),
    Case("kokoro-say", ["--no-autostart", "--prebuffer", "-1", "hi"]),
    Case("kokoro-say", ["--no-autostart", "-o", "a.mp3", "hi"]),
    Case("kokoro-say", ["--no-autostart", "-o", "x.wav", "--data-format", "foo", "hi"]),
    Case("kokoro-say", ["--no-autostart", "-o", "/nonexistent/x.wav", "hi"]),
    Case("kokoro-say", ["--no-autostart", "-f", "/nonexistent/t.txt"]),
    Case("kokoro-say", ["--no-autostart", "-f", "/"]),
    Case("kokoro-say", ["--no-autostart", "-a", "7", "-o", "b.wav", "hi"]),
    Case("kokoro-say", ["--no-autostart", "--daemon-play", "--prebuffer", "3", "hi"]),
    Case("kokoro-say", ["--no-autostart", "-v", "no_such_voice", *SPEAK_NOWHERE[1:], "hi"],
         daemon=True),
    Case("kokoro-say", ["--no-autostart", "-v", "?", "--socket", "/nonexistent/k.sock"]),
    # (b) a closed standard output
    Case("kokoro-say", ["--help"], closed_stdout=True),
    Case("kokoro-say", ["--version"], closed_stdout=True),
    Case("kokoro-say", ["--stop"], closed_stdout=True),
    Case("kokoro-say", ["--no-autostart", "-v", "?"], closed_stdout=True, daemon=True),
    Case("kokoro-say", [*SPEAK_NOWHERE, "-i", "Hello there."], closed_stdout=True, daemon=True),
    Case("kokoro-say", [*SPEAK_NOWHERE, "--json-stats", "Hi."], closed_stdout=True, daemon=True),
    Case("kokoro-say", ["--no-autostart", "-o", "-", "Hi."], closed_stdout=True, daemon=True),
]

SD_CASES = [  # speech-dispatcher's end of the pipe
    Case("sd_kokoro", [], stdin=b"NONSENSE\n\xff\xfe\nSET\nfoo\n.\nQUIT\n", what="< nonsense"),
    Case("sd_kokoro", [], stdin=RANDOM, what="< urandom"),
    Case("sd_kokoro", [], what="< nothing"),
    Case("sd_kokoro", [NOT_UTF8, "--bogus"]),
    Case("sd_kokoro", [], stdin=b"INIT\nSPEAK\nUn caf\xe9.\n.\nQUIT\n", daemon=True,
         what="< latin-1 speech"),
    Case("sd_kokoro", [], stdin=b"INIT\nLIST VOICES\nQUIT\n", closed_stdout=True, daemon=True,
         what="< INIT"),
    Case("sd_kokoro", [], stdin=b"SPEAK\nHello there.\n.\n", closed_stdout=True, daemon=True,
         what="< SPEAK"),
]


def kokorod_cases() -> list[Case]:
    out = []
    for path in kokorod_commands():
        out += [Case("kokorod", [*path, "--no-such-flag"]),
                Case("kokorod", [*path, NOT_UTF8]),
                Case("kokorod", [*path, "--help"], closed_stdout=True)]
    out += [Case("kokorod", []), Case("kokorod", ["bogus"]), Case("kokorod", ["--help"],
                                                                   closed_stdout=True),
            Case("kokorod", ["lexicon", "add", NOT_UTF8, "kafay"]),
            Case("kokorod", ["lexicon", "say", ""], daemon=True),
            Case("kokorod", ["model", "use", ""]),
            Case("kokorod", ["start", "--timeout", "soon"]),
            Case("kokorod", ["--socket", NOT_UTF8, "status"])]
    out += [Case("kokorod", args, closed_stdout=True, daemon=daemon)
            for args, daemon in KOKOROD_READERS]
    return out


CASES = SAY_CASES + SD_CASES + kokorod_cases()


def test_every_console_script_and_kokorod_command_is_walked() -> None:
    assert {case.script for case in CASES} == set(SCRIPTS)
    walked = [c.args for c in CASES if c.script == "kokorod"]
    for path in kokorod_commands():
        assert any(args[:len(path)] == path for args in walked), path


def case_env(case: Case, daemon: DaemonProc, tmp_path: Path) -> dict[str, str]:
    env = dict(daemon.env) if case.daemon else {
        **{k: v for k, v in daemon.env.items() if k != "KOKORO_SOCKET"},
        "KOKORO_SOCKET": str(tmp_path / "none.sock")}
    # Nothing of the user's (and no sound device: no .asoundrc).
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"),
               XDG_STATE_HOME=str(tmp_path / "state"))
    return env


@pytest.mark.parametrize("case", [pytest.param(c, id=str(c)) for c in CASES])
def test_no_traceback_reaches_the_user(case: Case, daemon: DaemonProc, tmp_path: Path) -> None:
    result = run_case(case, case_env(case, daemon, tmp_path))
    err = result.stderr.decode(errors="replace")
    assert not any(n in err for n in NOISE), err
    assert result.returncode in (0, 1, 2, 3), (result.returncode, err)
    said_nothing = case.script == "kokoro-say" or (case.script == "kokorod"
                                                    and result.returncode == 0)
    if case.closed_stdout and said_nothing:  # as `head` wants: not a word
        assert err == "", err  # (sd_kokoro logs to stderr; a failing command says why)
    elif result.returncode == 2:  # a bad command line: one line, as argparse says it
        assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("pipeline", [
    "kokorod config | head -1", "kokorod model list | head -4", "kokorod --help | head -1",
    "kokorod lexicon --help | head -1", "kokoro-say --help | head -2",
])
def test_a_pipe_into_head_ends_quietly(pipeline: str, daemon: DaemonProc,
                                       tmp_path: Path) -> None:
    """Issue 36 row 21, typed as a user does: a real `head` closes the pipe after its
    lines; the command ends quietly and the pipeline succeeds (under pipefail too)."""
    script, rest = pipeline.split(" ", 1)
    args, head = rest.split(" | ")
    command = shlex.join(os.fsdecode(a) for a in entry_command(script, args.split()))
    result = subprocess.run(["bash", "-o", "pipefail", "-c", f"{command} | {head}"],
                            capture_output=True, text=True, timeout=120,
                            env=case_env(Case(script, []), daemon, tmp_path), cwd=REPO)
    assert result.stderr == "", result.stderr
    assert result.returncode == 0, result
    assert len(result.stdout.splitlines()) == int(head.split()[-1][1:]), result.stdout


def hidden_extras(where: Path) -> Path:
    """A directory that, first on PYTHONPATH, makes the optional extras fail to import
    as they do where they are not installed (and PortAudio be missing, as on a server)."""
    for module in ("aiohttp", "wyoming", "pyopenjtalk"):
        (where / module).mkdir(parents=True)
        (where / module / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{module}'\", name='{module}')\n")
    (where / "sounddevice").mkdir()
    (where / "sounddevice" / "__init__.py").write_text(
        "raise OSError('PortAudio library not found')\n")
    return where


def test_missing_extras_are_one_line_each(data_dir: Path, tmp_path: Path) -> None:
    """(c) Without the http, wyoming and ja extras and without PortAudio: a daemon started
    by kokoro-say with the HTTP and Wyoming front-ends asked for serves anyway, says what
    to install, and nothing anywhere shows a traceback (the daemon's log included)."""
    run_dir = short_tmpdir("kx")
    hide = hidden_extras(tmp_path / "hide")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KOKORO_", "XDG_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(hide), str(REPO)]), HOME=str(tmp_path),
               XDG_STATE_HOME=str(tmp_path / "state"), KOKORO_SOCKET=str(run_dir / "k.sock"),
               KOKORO_DATA_DIR=str(data_dir), KOKORO_CONFIG=str(tmp_path / "none.toml"),
               KOKORO_HTTP_PORT="18931", KOKORO_WYOMING_URI="tcp://127.0.0.1:18933",
               KOKORO_WINDOW_SCHEDULE="88:5.300,27.00,27.00,0.930,0.250",
               KOKORO_WINDOW_ADAPT="0")

    def run(script: str, *args: str) -> tuple[int, str]:
        result = subprocess.run(entry_command(script, list(args)), capture_output=True,
                                env=env, timeout=300, cwd=tmp_path)
        err = result.stderr.decode(errors="replace")
        assert not any(n in err for n in NOISE), (args, err)
        return result.returncode, err

    try:
        code, err = run("kokoro-say", "-o", "x.wav", "Hello there.")  # starts the daemon
        assert code == 0, err
        for extra, setting in (("http", "KOKORO_HTTP_PORT=18931"),
                               ("wyoming", "KOKORO_WYOMING_URI=tcp://127.0.0.1:18933")):
            lines = [line for line in err.splitlines() if f"kokorod[{extra}]" in line]
            assert len(lines) == 1 and setting in lines[0], err  # one line each (row 3)
            assert f"pip install 'kokorod[{extra}]'" in lines[0]
        code, err = run("kokoro-say", "-v", "jf_alpha", "-o", "j.wav", "こんにちは。")
        assert code == 0, err
        code, err = run("kokoro-say", "Hello.")  # no PortAudio: the file instead
        assert code == 0 and "wrote the audio to kokoro-say.wav" in err, err
        assert (tmp_path / "kokoro-say.wav").stat().st_size > 10_000
        code, err = run("kokoro-say", "-a", "?")
        assert code == 1 and len(err.splitlines()) == 1, err
        status = subprocess.run(entry_command("kokorod", ["status"]), capture_output=True,
                                env=env, timeout=120, cwd=tmp_path)
        said = status.stdout.decode()
        assert status.returncode == 0, said
        assert "http         off:" in said and "pip install 'kokorod[http]'" in said
        assert "wyoming      off:" in said and "pip install 'kokorod[wyoming]'" in said
        code, _ = run("kokorod", "http")
        assert code == 1
    finally:
        code, err = run("kokorod", "stop")
        log = next((tmp_path / "state").rglob("kokorod.log"), None)
        assert log is not None and "Traceback" not in log.read_text(errors="replace")


def test_a_socket_path_that_is_a_file_is_never_replaced(data_dir: Path,
                                                        tmp_path: Path) -> None:
    """`--socket notes.txt` by mistake: one line, and the file is as it was (the daemon
    used to unlink whatever was at its socket path and listen there)."""
    notes = tmp_path / "notes.txt"
    notes.write_text("precious")
    env = {**os.environ, "HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state"),
           "KOKORO_DATA_DIR": str(data_dir), "KOKORO_CONFIG": str(tmp_path / "none.toml")}
    for script, args in (("kokoro-say", ["--socket", str(notes), "-o", "x.wav", "Hi."]),
                         ("kokorod", ["--socket", str(notes), "start"])):
        result = subprocess.run(entry_command(script, list(args)), capture_output=True,
                                env=env, timeout=120, cwd=tmp_path)
        err = result.stderr.decode()
        assert result.returncode == 1 and "is not a socket" in err, err
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert notes.read_text() == "precious"
    assert [p.name for p in tmp_path.glob("notes*")] == ["notes.txt"]  # no .lock, no .pid
