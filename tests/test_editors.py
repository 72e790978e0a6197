"""The editor plugins' own headless tests (Emacs ERT in --batch, a Neovim Lua script in
--headless), run against a real daemon that plays into ALSA's file sink."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from conftest import Speaker
from helpers import REPO, read_alsa_capture, without_silence

EDITORS = REPO / "client" / "editors"


def editor(name: str) -> str:
    """The editor binary; CI installs both (.ci/run), so only a local run may skip."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; .ci/run installs it from Debian")
        pytest.skip(f"{name} is not installed (apt-get install emacs-nox neovim)")
    return path


def run(cmd: list[str], speaker: Speaker) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KOKORO_SOCKET": str(speaker.socket), "HOME": str(speaker.capture.parent)}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600,
                          cwd=REPO, stdin=subprocess.DEVNULL)


def assert_speech_landed(speaker: Speaker) -> None:
    """The last utterance an editor let play to the end reached the (ALSA file) device."""
    speech = without_silence(read_alsa_capture(speaker.capture))
    assert speech.size > 0.5 * 24_000
    assert float(np.sqrt(np.mean(speech ** 2))) > 0.01


def test_emacs_package_speaks_a_region_and_stops_it(speaker: Speaker) -> None:
    result = run([editor("emacs"), "--batch", "-Q", "-L", str(EDITORS / "emacs"),
                  "-l", "kokoro-tests.el", "-f", "ert-run-tests-batch-and-exit"], speaker)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "Ran 10 tests, 10 results as expected" in out, out
    assert_speech_landed(speaker)


def test_neovim_plugin_speaks_a_region_and_stops_it(speaker: Speaker) -> None:
    result = run([editor("nvim"), "--headless", "-u", "NONE", "-i", "NONE",
                  "--cmd", f"set rtp^={EDITORS / 'nvim'}", "-c", "runtime plugin/kokoro.lua",
                  "-c", f"luafile {EDITORS / 'nvim' / 'tests' / 'kokoro_test.lua'}"], speaker)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "10 tests, 0 failed" in out, out
    assert_speech_landed(speaker)
