"""`kokorod speechd install | uninstall | status`: make kokorod a speech-dispatcher voice.

speech-dispatcher (0.11+) finds output modules named `sd_*` in the user's module
directory by itself, as long as the user's speechd.conf lists no `AddModule` lines
(the distribution's default); install puts a small launcher for this Python's
`sd_kokoro` there. Which module speaks by default is the user's choice: `spd-say -o
kokoro …`, or `DefaultModule kokoro` in speechd.conf.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from kokorod_common import atomic

MODULE = "kokoro"
LAUNCHER = f"sd_{MODULE}"


def module_dir(home: Path | None = None) -> Path:
    return (home or Path.home()) / ".local" / "libexec" / "speech-dispatcher-modules"


def user_conf(environ: dict[str, str] | None = None, home: Path | None = None) -> Path:
    env = os.environ if environ is None else environ
    config = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else \
        (home or Path.home()) / ".config"
    return config / "speech-dispatcher" / "speechd.conf"


def launcher_text(python: str = sys.executable) -> str:
    return (f"#!/bin/sh\n# kokorod's speech-dispatcher module (kokorod speechd install)\n"
            f'exec "{python}" -m kokorod_client.sd_kokoro "$@"\n')


def install(home: Path | None = None) -> Path:
    target = module_dir(home) / LAUNCHER
    target.parent.mkdir(parents=True, exist_ok=True)
    # speech-dispatcher builds the module dir from ~/.local/share; it must exist
    ((home or Path.home()) / ".local" / "share").mkdir(parents=True, exist_ok=True)
    atomic.write_text(target, launcher_text(), mode=0o755)
    return target


def uninstall(home: Path | None = None) -> Path:
    target = module_dir(home) / LAUNCHER
    target.unlink(missing_ok=True)
    return target


def status(home: Path | None = None, environ: dict[str, str] | None = None) -> list[str]:
    """What a user needs to know, one line each."""
    target = module_dir(home) / LAUNCHER
    lines = [f"module: {target} ({'installed' if target.exists() else 'not installed'})"]
    binary = shutil.which("speech-dispatcher")
    if binary is None:
        lines.append("speech-dispatcher: not found (Debian/Ubuntu: apt install speech-dispatcher)")
    else:
        version = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10)
        first = version.stdout.splitlines()[0] if version.stdout else binary
        lines.append(f"speech-dispatcher: {first}")
    conf = user_conf(environ, home)
    text = conf.read_text(errors="replace") if conf.exists() else ""
    if re.search(r"^\s*AddModule\b", text, re.M):
        lines.append(f"{conf} lists modules itself, so it does not look for new ones: add\n"
                     f'  AddModule "{MODULE}" "{target}" "{MODULE}.conf"')
    default = re.search(r"^\s*DefaultModule\s+(\S+)", text, re.M)
    if default and default.group(1) == MODULE:
        lines.append(f"default module: {MODULE}")
    else:
        lines.append(f"to speak with kokorod: spd-say -o {MODULE} \"Hello\", or make it the "
                     f"default with 'DefaultModule {MODULE}' in {conf} (then restart "
                     "speech-dispatcher)")
    return lines
