"""Where things live on disk, per platform: socket, pid, lock, data, config, logs.

The socket sits in a private (0700) per-user directory. Unix socket paths are
limited to ~104 bytes on macOS (108 on Linux), so the default location is kept
short and a too-long path is reported instead of failing obscurely in bind().
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

# tempfile and platformdirs are imported where they are used: a client that only needs
# the socket under $XDG_RUNTIME_DIR (kokoro-say's hot path) loads neither.

APP = "kokorod"
SOCKET_NAME = "kokorod.sock"
MACOS_MAX_SOCKET_PATH = 104  # sun_path on macOS; 108 on Linux
MAX_SOCKET_PATH = MACOS_MAX_SOCKET_PATH if sys.platform == "darwin" else 108


class PathError(OSError):
    """A location is unusable (unsafe permissions, too long); message says how to fix."""


def macos_runtime_dir(home: Path, uid: int) -> Path:
    """~/Library/Application Support/kokorod/run: nothing sweeps it. $TMPDIR (and /tmp)
    are cleaned of files untouched for ~3 days, which would take a long-running daemon's
    socket, pid and lock away. Only when that path is too long for a socket (a very long
    home directory) /tmp/kokorod-<uid> is used, and the daemon re-creates what is swept."""
    run = home / "Library" / "Application Support" / APP / "run"
    if len(os.fsencode(run / SOCKET_NAME)) < MACOS_MAX_SOCKET_PATH:
        return run
    return Path("/tmp") / f"{APP}-{uid}"


def runtime_dir() -> Path:
    """Per-user directory for the socket, pid and lock files."""
    if sys.platform == "darwin":
        return macos_runtime_dir(Path.home(), os.getuid())
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and Path(xdg).is_dir():
        return Path(xdg) / APP
    import tempfile

    return Path(tempfile.gettempdir()) / f"{APP}-{os.getuid()}"


def default_socket_path() -> Path:
    return runtime_dir() / SOCKET_NAME


def resolve_socket(path: str | Path | None = None) -> Path:
    """The socket a client uses: the one it was given, else KOKORO_SOCKET, else the default."""
    if path:
        return Path(path)
    env = os.environ.get("KOKORO_SOCKET")
    return Path(env) if env else default_socket_path()


def pid_file(socket_path: Path) -> Path:
    return socket_path.with_suffix(".pid")


def lock_file(socket_path: Path) -> Path:
    return socket_path.with_suffix(".lock")


def data_dir() -> Path:
    """Models and voices live here (assembled embedded model, fetched models)."""
    override = os.environ.get("KOKORO_DATA_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir(APP, appauthor=False))


def models_dir() -> Path:
    return data_dir() / "models"


def config_file() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir(APP, appauthor=False)) / "config.toml"


LOG_NAME = "kokorod.log"


def macos_log_dir(home: Path) -> Path:
    """~/Library/Logs/kokorod: where Console.app looks, for launchd's and `kokorod start`'s."""
    return home / "Library" / "Logs" / APP


def log_dir() -> Path:
    if sys.platform == "darwin":
        return macos_log_dir(Path.home())
    import platformdirs

    return Path(platformdirs.user_state_dir(APP, appauthor=False)) / "log"


def log_file() -> Path:
    """The daemon's log when it runs in the background (started by hand or by a client)."""
    return log_dir() / LOG_NAME


def ensure_private_dir(directory: Path) -> None:
    """Create `directory` 0700 if missing; refuse one that others could tamper with."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = directory.stat()
    if st.st_uid != os.getuid():
        raise PathError(
            f"socket directory {directory} is owned by uid {st.st_uid}, not by you "
            f"(uid {os.getuid()}); remove it or set KOKORO_SOCKET elsewhere"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PathError(
            f"socket directory {directory} is writable by others "
            f"(mode {stat.S_IMODE(st.st_mode):o}); run: chmod 700 {directory}"
        )


def check_socket_path(path: Path) -> None:
    """A path the daemon may listen on: short enough, and nothing but a (stale) socket
    there — a file given by mistake (`--socket notes.txt`) is never replaced."""
    if len(os.fsencode(path)) >= MAX_SOCKET_PATH:
        raise PathError(
            f"socket path {path} is {len(os.fsencode(path))} bytes; Unix sockets allow fewer "
            f"than {MAX_SOCKET_PATH}. Set KOKORO_SOCKET to a shorter path."
        )
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not (stat.S_ISSOCK(mode) or stat.S_ISLNK(mode)):
        raise PathError(f"{path} is not a socket (a file is there, which kokorod will not "
                        "replace); set KOKORO_SOCKET (or --socket) to another path")
