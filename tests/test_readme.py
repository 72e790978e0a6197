"""README's first command, exactly as written, against the system Python where that Python
is externally managed (PEP 668: Debian's, Homebrew's): it must install and speak."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    REPO,
    STEADY_SCHEDULE,
    DaemonProc,
    alsa_home,
    read_alsa_capture,
    short_tmpdir,
    without_silence,
)

SYSTEM_PYTHON = Path("/usr/bin/python3")


def first_command() -> str:
    """The first line of the first ```sh block in README.md."""
    readme = (REPO / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert block, "README.md has no ```sh block"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(lines) == 1, f"README's first command is not one line: {lines}"
    return lines[0]


def externally_managed(python: Path) -> str:
    """'' when `python` is externally managed and can make a venv, else why not."""
    if not python.exists():
        return f"no {python} here"
    probe = subprocess.run(
        [str(python), "-c", "import ensurepip, os, sysconfig; print(os.path.exists("
         "os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED')))"],
        capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        return f"{python} cannot make a venv (no ensurepip: python3-venv missing)"
    if probe.stdout.strip() != "True":
        return f"{python} is not externally managed (PEP 668)"
    return ""


def test_the_first_command_is_one_line_with_a_venv() -> None:
    line = first_command()
    assert "python3 -m venv" in line and "pip install -e ." in line
    assert "python3 -m pip install" not in line  # refused by an externally managed Python
    assert "kokoro-say" in line


def test_readmes_first_command_speaks_on_an_externally_managed_python(
        data_dir: Path, daemon: DaemonProc) -> None:
    """Run the line with `python3` being the system Python, in a fresh HOME whose ALSA
    default device writes what it plays to a file. (`daemon`: the session's first start
    has put the v1.0 voices into `data_dir`, which this run shares.)"""
    why = externally_managed(SYSTEM_PYTHON)
    if why:
        pytest.skip(why)
    line = first_command()
    run = short_tmpdir("kv")
    home, capture = alsa_home(run)
    sock = run / "k.sock"
    bin_dir = run / "bin"  # `python3` is the system Python, whatever else is on PATH
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(SYSTEM_PYTHON)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KOKORO_", "PYTHON", "VIRTUAL_ENV", "PYENV", "XDG_"))}
    env.update(HOME=str(home), PATH=f"{bin_dir}:/usr/bin:/bin", KOKORO_SOCKET=str(sock),
               KOKORO_DATA_DIR=str(data_dir), KOKORO_CONFIG=str(run / "none.toml"),
               KOKORO_WINDOW_SCHEDULE=STEADY_SCHEDULE, KOKORO_OFFLINE="1")
    venv = home / ".local/share/kokorod/venv"
    try:
        done = subprocess.run(["bash", "-c", line], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "Traceback" not in done.stderr, done.stderr
        assert "externally-managed-environment" not in done.stderr
        assert (venv / "bin/kokorod").exists()
        speech = without_silence(read_alsa_capture(capture))  # the sentence: ~3.5 s
        assert speech.size > 2 * 24_000, speech.size
        assert float(np.sqrt(np.mean(speech ** 2))) > 0.02
    finally:
        subprocess.run([sys.executable, "-m", "kokorod", "stop"], cwd=REPO, timeout=60,
                       env={**env, "PATH": os.environ["PATH"]}, capture_output=True)
        shutil.rmtree(run, ignore_errors=True)
