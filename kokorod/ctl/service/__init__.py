"""Login-service integration: launchd on macOS, a systemd user unit on Linux.

`detect()` picks the manager for this machine; each manager only builds files
and command lines and runs them through an injectable runner, so the exact
launchctl/systemctl invocations are testable on any machine.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from kokorod.config import Config, config_file_path
from kokorod.ctl.service.base import Manager, NoServiceManager, Runner, ServiceError, run_command
from kokorod.ctl.service.launchd import LaunchdManager
from kokorod.ctl.service.systemd import SystemdManager

__all__ = ["LaunchdManager", "Manager", "NoServiceManager", "ServiceError", "SystemdManager",
           "detect", "for_platform"]


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


def for_platform(platform: str | None = None, home: Path | None = None) -> Manager | None:
    """The manager this platform uses, whether or not it runs here (for a preview)."""
    platform = platform or sys.platform
    if platform == "darwin":
        return LaunchdManager(home=home)
    if platform.startswith("linux"):
        return SystemdManager(home=home)
    return None


def user_env(config: Config, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment the service's daemon needs to run as this shell's would: the user's
    KOKORO_* variables, the config file in effect by its absolute path (a login service
    starts elsewhere; the file is named, not copied, so later edits and `reload` still
    apply), and the socket, however it was chosen (`--socket`, variable or file)."""
    env = os.environ if environ is None else environ
    out = {k: v for k, v in sorted(env.items()) if k.startswith("KOKORO_")}
    config_file = config_file_path(env)
    if config_file.exists():
        out["KOKORO_CONFIG"] = str(config_file.resolve())
    if config.socket:
        out["KOKORO_SOCKET"] = str(Path(config.socket).expanduser().resolve())
    return out
