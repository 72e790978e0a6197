"""Login-service integration: launchd on macOS, a systemd user unit on Linux.

`detect()` picks the manager for this machine; each manager only builds files
and command lines and runs them through an injectable runner, so the exact
launchctl/systemctl invocations are testable on any machine.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from kokorod.service.base import Manager, NoServiceManager, Runner, ServiceError, run_command
from kokorod.service.launchd import LaunchdManager
from kokorod.service.systemd import SystemdManager

__all__ = ["LaunchdManager", "Manager", "NoServiceManager", "ServiceError", "SystemdManager",
           "detect"]


def detect(platform: str | None = None, runner: Runner = run_command,
           home: Path | None = None, systemd_booted: bool | None = None) -> Manager:
    """The service manager of this machine, or NoServiceManager saying why there is none.

    `platform` and `systemd_booted` default to this machine's; tests set them to
    exercise the other platform's command lines against stand-in binaries.
    """
    platform = platform or sys.platform
    if platform == "darwin":
        if shutil.which("launchctl") or runner is not run_command:
            return LaunchdManager(runner=runner, home=home)
        return NoServiceManager("launchctl was not found")
    if platform.startswith("linux"):
        booted = (Path("/run/systemd/system").is_dir() if systemd_booted is None
                  else systemd_booted)
        if (shutil.which("systemctl") and booted) or runner is not run_command:
            return SystemdManager(runner=runner, home=home)
        why = "systemd is not running here" if shutil.which("systemctl") else \
            "systemctl was not found"
        return NoServiceManager(why)
    return NoServiceManager(f"no supported service manager on {platform}")


def user_env() -> dict[str, str]:
    """The user's KOKORO_* settings, carried into the service's environment."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith("KOKORO_")}
