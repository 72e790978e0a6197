"""What every service manager offers, and the command runner they share."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kokorod_common import paths

Runner = Callable[[Sequence[str]], "Result"]


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


class ServiceError(RuntimeError):
    """A service command failed; the message has the command and its output."""


def run_command(argv: Sequence[str]) -> Result:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return Result(127, "", f"{argv[0]}: not found")
    return Result(done.returncode, done.stdout, done.stderr)


def daemon_command() -> list[str]:
    """The installed `kokorod run`, by absolute interpreter path (services have no PATH)."""
    return [sys.executable, "-m", "kokorod", "run"]


class Manager:
    name = "none"
    sleep = staticmethod(time.sleep)  # tests wait for nothing

    def __init__(self, runner: Runner = run_command, home: Path | None = None) -> None:
        self.runner = runner
        self.home = home or Path.home()

    @property
    def path(self) -> Path:
        """The service definition file this manager writes."""
        raise NotImplementedError

    def _require_installed(self) -> None:
        if not self.path.exists():
            raise ServiceError(f"not installed; run 'kokorod service install' ({self.path})")

    def run(self, *argv: str, check: bool = True) -> Result:
        result = self.runner(argv)
        if check and result.returncode != 0:
            raise ServiceError(f"{' '.join(argv)} failed ({result.returncode}): "
                               f"{(result.stderr or result.stdout).strip()}")
        return result

    def install(self, env: dict[str, str]) -> Path:
        raise NotImplementedError

    def preview(self, env: dict[str, str]) -> tuple[str, list[list[str]]]:
        """What `install` would write to `path`, and the commands it would then run."""
        raise NotImplementedError

    def uninstall(self) -> Path:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def restart(self) -> None:
        raise NotImplementedError

    def status(self) -> str:
        raise NotImplementedError

    def logs(self, lines: int = 50) -> str:
        raise NotImplementedError


class NoServiceManager(Manager):
    """No launchd or systemd here (e.g. a container): point at `kokorod start`."""

    def __init__(self, why: str) -> None:
        super().__init__()
        self.why = why

    def _refuse(self, *_: object, **__: object) -> None:
        raise ServiceError(f"no service manager available ({self.why}); run the daemon "
                           "with 'kokorod start' (background) or 'kokorod run' (foreground)")

    install = uninstall = start = stop = restart = status = _refuse  # type: ignore[assignment]

    def logs(self, lines: int = 50) -> str:
        """No service's log here: the log of a daemon started by `kokorod start`."""
        log = paths.log_file()
        if not log.exists():
            return f"no service manager ({self.why}) and no log yet at {log}"
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join([f"(no service manager: {self.why}; this is {log})", *tail])
