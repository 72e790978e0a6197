"""macOS LaunchAgent: plist generated with plistlib, modern launchctl verbs with fallbacks."""

from __future__ import annotations

import os
import plistlib
import re
import sys
from pathlib import Path
from typing import Any

from kokorod.ctl.service.base import Manager, ServiceError
from kokorod_common import atomic
from kokorod_common.paths import LOG_NAME, macos_log_dir

LABEL = "com.kokorod.daemon"
THROTTLE_S = 5
# What launchd runs: `kokorod run`, except that a Python that lost kokorod (an upgrade) says
# so and exits 0 — KeepAlive restarts every non-zero exit, and no restart can fix that.
BOOTSTRAP = """import sys
try:
    from kokorod.ctl.cli import main
except ImportError as exc:
    print(f"kokorod cannot start: {exc}; reinstall kokorod with this Python, then run "
          "'kokorod service install' again", file=sys.stderr)
    sys.exit(0)
sys.exit(main(sys.argv[1:]))
"""


BOOTSTRAP_ATTEMPTS = 5
GONE_POLLS, GONE_POLL_S = 50, 0.2  # up to 10 s for a booted-out job to go
_STILL_GOING = re.compile(r"\b5: Input/output error")
_ALREADY_LOADED = re.compile(r"\b37: Operation already in progress|already (loaded|bootstrapped)",
                             re.I)
_NO_GUI_SESSION = re.compile(r"\b125: Domain does not support|Could not find domain", re.I)


def program() -> list[str]:
    return [sys.executable, "-c", BOOTSTRAP, "run"]


def plist_path(home: Path) -> Path:
    return home / "Library" / "LaunchAgents" / f"{LABEL}.plist"


def plist_dict(home: Path, env: dict[str, str], program_args: list[str] | None = None) -> dict[str,
                                                                                          Any]:
    log = str(macos_log_dir(home) / LOG_NAME)  # the file `kokorod start` writes, too
    return {
        "Label": LABEL,
        "ProgramArguments": program_args or program(),
        "RunAtLoad": True,
        # Restart after a crash or kill, not after a clean exit (kokorod stop).
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": THROTTLE_S,
        "ProcessType": "Interactive",
        "StandardOutPath": log,
        "StandardErrorPath": log,
        "EnvironmentVariables": dict(env),
        "WorkingDirectory": str(home),
    }


def plist_bytes(home: Path, env: dict[str, str],
                program_args: list[str] | None = None) -> bytes:
    return plistlib.dumps(plist_dict(home, env, program_args), fmt=plistlib.FMT_XML)


class LaunchdManager(Manager):
    name = "launchd"

    @property
    def domain(self) -> str:
        return f"gui/{os.getuid()}"

    @property
    def target(self) -> str:
        return f"{self.domain}/{LABEL}"

    @property
    def path(self) -> Path:
        return plist_path(self.home)

    def install(self, env: dict[str, str]) -> Path:
        macos_log_dir(self.home).mkdir(parents=True, exist_ok=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():  # reinstall: unload the old definition, and wait until it is
            self.run("launchctl", "bootout", self.target, check=False)  # gone for real
            self._wait_gone()
        atomic.write_bytes(self.path, plist_bytes(self.home, env))
        self._bootstrap()
        return self.path

    def preview(self, env: dict[str, str]) -> tuple[str, list[list[str]]]:
        return plist_bytes(self.home, env).decode(), [
            ["launchctl", "bootstrap", self.domain, str(self.path)]]

    def _loaded(self) -> bool:
        return self.run("launchctl", "print", self.target, check=False).returncode == 0

    def _wait_gone(self) -> None:
        """bootout returns before launchd has let go of the job; a bootstrap meanwhile fails
        with "5: Input/output error"."""
        for _ in range(GONE_POLLS):
            if not self._loaded():
                return
            self.sleep(GONE_POLL_S)

    def _bootstrap(self) -> None:
        delay = 0.5
        for _ in range(BOOTSTRAP_ATTEMPTS):
            result = self.run("launchctl", "bootstrap", self.domain, str(self.path),
                              check=False)
            said = f"{result.stdout}\n{result.stderr}"
            if result.returncode == 0 or _ALREADY_LOADED.search(said):
                return
            if _NO_GUI_SESSION.search(said):
                raise ServiceError(
                    f"launchd has no GUI session for {self.domain} (as over ssh without a "
                    "login at the Mac): log in at the Mac once, then install again; until "
                    "then 'kokorod start' runs the daemon in the background")
            if not _STILL_GOING.search(said):
                break  # not the teardown race: try the legacy verb
            self._wait_gone()
            self.sleep(delay)
            delay *= 2
        result = self.run("launchctl", "load", "-w", str(self.path), check=False)
        if result.returncode != 0 and not _ALREADY_LOADED.search(result.stderr):
            raise ServiceError(f"launchctl could not load {self.path}: "
                               f"{(result.stderr or result.stdout).strip()}")

    def uninstall(self) -> Path:
        if self.run("launchctl", "bootout", self.target, check=False).returncode != 0:
            self.run("launchctl", "unload", "-w", str(self.path), check=False)
        self.path.unlink(missing_ok=True)
        return self.path

    def start(self) -> None:
        self._require_installed()
        if self.run("launchctl", "kickstart", self.target, check=False).returncode != 0:
            self.run("launchctl", "start", LABEL)

    def stop(self) -> None:
        self._require_installed()
        # SIGTERM → clean exit → KeepAlive does not restart it.
        if self.run("launchctl", "kill", "SIGTERM", self.target, check=False).returncode != 0:
            self.run("launchctl", "stop", LABEL)

    def restart(self) -> None:
        self._require_installed()
        if self.run("launchctl", "kickstart", "-k", self.target, check=False).returncode != 0:
            self.run("launchctl", "stop", LABEL, check=False)
            self.run("launchctl", "start", LABEL)

    def status(self) -> str:
        result = self.run("launchctl", "print", self.target, check=False)
        if result.returncode != 0:
            installed = "installed" if self.path.exists() else "not installed"
            return f"{LABEL}: not loaded ({installed})"
        state = re.search(r"^\s*state = (.+)$", result.stdout, re.MULTILINE)
        pid = re.search(r"^\s*pid = (\d+)$", result.stdout, re.MULTILINE)
        return (f"{LABEL}: {state.group(1) if state else 'loaded'}"
                + (f" (pid {pid.group(1)})" if pid else ""))

    def logs(self, lines: int = 50) -> str:
        path = macos_log_dir(self.home) / LOG_NAME
        if not path.exists():
            return f"no log yet at {path}"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
