"""Where the running daemon's front-ends are, as it says (the caller's environment is not
the daemon's): `kokorod http`, `kokorod reload`, and what `kokorod start` says when a
daemon already runs with other front-end settings than this start's."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from kokorod.config import Config
from kokorod.ctl import status_text
from kokorod_common import control
from kokorod_common.messages import DaemonError

HTTP_OFF = ("off: set KOKORO_HTTP_PORT (e.g. 8880) before 'kokorod start', or http_port in "
            "the config file and run 'kokorod reload'; needs pip install 'kokorod[http]'")


def not_running(path: Path) -> int:
    print(f"kokorod is not running (socket {path})", file=sys.stderr)
    return 3


def http(path: Path) -> int:
    """The URL of OpenAI's speech API (exit 0), or why it is off (exit 1)."""
    try:
        front = control.call(path, "status", client_name="kokorod-http").get("http")
    except (FileNotFoundError, ConnectionRefusedError):
        return not_running(path)
    if front and front.get("url"):
        print(front["url"])
        return 0
    print(front.get("error") if front and front.get("error") else HTTP_OFF)
    return 1


def reload(path: Path) -> int:
    """`kill -HUP` with an answer: the daemon reads its settings again (the model too, if
    it changed), then says where its front-ends are now; or why nothing was reloaded."""
    try:
        reply = control.call(path, "reload", client_name="kokorod-reload", timeout=300)
        status = control.call(path, "status", client_name="kokorod-reload")
    except (FileNotFoundError, ConnectionRefusedError):
        return not_running(path)
    except DaemonError as exc:  # reload_failed: the old settings serve on
        print(f"kokorod reload: not reloaded, the current settings serve on: {exc.message}",
              file=sys.stderr)
        return 1
    model = "a new engine for the model" if reply.get("rebuilt") else "the same model"
    print(f"reloaded: {model} ({reply.get('model_path')})")
    print(f"http         {status_text.http_line(status.get('http'))}")
    wyoming = status.get("wyoming") or {}
    print(f"wyoming      {wyoming.get('uri') or wyoming.get('error') or 'off'}")
    return 0


def unlike_the_running_daemon(config: Config, path: Path) -> None:
    """`KOKORO_HTTP_PORT=8899 kokorod start` while a daemon already runs (autostarted
    earlier without it): this start's front-end settings are not the daemon's; say which
    differ, and how to apply them."""
    try:
        status: dict[str, Any] = control.call(path, "status", client_name="kokorod-start")
    except (OSError, RuntimeError, DaemonError):
        return
    front, wyoming = status.get("http") or {}, status.get("wyoming") or {}
    differ = []
    if "port" in front and config.http_port and config.http_port != front["port"]:
        there = front["port"] or "off"  # (what this start asks for, not what it leaves out)
        differ.append(f"KOKORO_HTTP_PORT={config.http_port} here, {there} there")
    if "uri" in wyoming and config.wyoming_uri and not (wyoming.get("uri") or
                                                        wyoming.get("error")):
        differ.append(f"KOKORO_WYOMING_URI={config.wyoming_uri} here, off there")
    if differ:
        print(f"kokorod: the running daemon keeps its own settings ({'; '.join(differ)}): "
              "'kokorod restart' applies these, or put them in the config file and run "
              "'kokorod reload'", file=sys.stderr)
