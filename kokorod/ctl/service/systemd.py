"""Linux systemd user unit (~/.config/systemd/user/kokorod.service), via systemctl --user."""

from __future__ import annotations

from pathlib import Path

from kokorod.ctl.service.base import Manager, daemon_command
from kokorod_common import atomic

UNIT = "kokorod.service"


def unit_path(home: Path) -> Path:
    return home / ".config" / "systemd" / "user" / UNIT


def _quote(value: str) -> str:
    """A systemd-safe double-quoted word (specifiers need %% in unit files)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"'


def unit_text(env: dict[str, str], program: list[str] | None = None) -> str:
    argv = program or daemon_command()
    lines = [
        "[Unit]",
        "Description=kokorod local text-to-speech daemon",
        "After=sound.target",
        "",
        "[Service]",
        "Type=simple",
        "ExecStart=" + " ".join(_quote(a) for a in argv),
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartSec=2",
        "RestartPreventExitStatus=2",  # settings, model, already running: a restart cannot help
        "TimeoutStopSec=20",
        *(f"Environment={_quote(f'{k}={v}')}" for k, v in env.items()),
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


class SystemdManager(Manager):
    name = "systemd"

    @property
    def path(self) -> Path:
        return unit_path(self.home)

    def systemctl(self, *args: str, check: bool = True) -> str:
        return self.run("systemctl", "--user", *args, check=check).stdout

    def install(self, env: dict[str, str]) -> Path:
        atomic.write_text(self.path, unit_text(env))
        self.systemctl("daemon-reload")
        self.systemctl("enable", "--now", UNIT)
        return self.path

    def preview(self, env: dict[str, str]) -> tuple[str, list[list[str]]]:
        return unit_text(env), [["systemctl", "--user", "daemon-reload"],
                                ["systemctl", "--user", "enable", "--now", UNIT]]

    def uninstall(self) -> Path:
        self.systemctl("disable", "--now", UNIT, check=False)
        self.path.unlink(missing_ok=True)
        self.systemctl("daemon-reload", check=False)
        return self.path

    def start(self) -> None:
        self._require_installed()
        self.systemctl("start", UNIT)

    def stop(self) -> None:
        self._require_installed()
        self.systemctl("stop", UNIT)

    def restart(self) -> None:
        self._require_installed()
        self.systemctl("restart", UNIT)

    def status(self) -> str:
        active = self.systemctl("is-active", UNIT, check=False).strip() or "unknown"
        enabled = self.systemctl("is-enabled", UNIT, check=False).strip() or "unknown"
        return f"{UNIT}: {active} ({enabled})"

    def logs(self, lines: int = 50) -> str:
        result = self.run("journalctl", "--user", "-u", UNIT, "-n", str(lines), "--no-pager",
                          check=False)
        return result.stdout or result.stderr or "no logs"
