"""`kokorod run | start | stop | status | config | socket | service | model …`."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import textwrap
import time
from typing import Any

from kokorod import __version__, logs
from kokorod.config import SETTINGS, Config, ConfigError, config_file_path, load, origins
from kokorod.ctl import fronts_cli, lexicon_cli, model_cli, status_text, tune
from kokorod.store.models import ModelError
from kokorod_common import control, launcher
from kokorod_common.command_line import Parser, any_bytes, run_main


def _config(args: argparse.Namespace, strict: bool = False) -> Config:
    """The settings. A bad one is the same verdict everywhere (ConfigError.verdict, said
    once): `run`, `start` and `config` stop on it (exit 2); `status`, `stop`, `socket`
    say it and go on with that setting's default, so they still find a running daemon."""
    try:
        return load(socket=getattr(args, "socket", None))
    except ConfigError as exc:
        if strict:
            raise
        print(exc.verdict(), file=sys.stderr)
        return load(socket=getattr(args, "socket", None), on_error=lambda _: None)


# `kokorod run` exits 2 for what a restart cannot fix (settings, model, already running).
# launchd's KeepAlive restarts every non-zero exit, so under launchd it says why and exits 0.
EXIT_PERMANENT = 2


def _under_launchd() -> bool:
    from kokorod.ctl.service.launchd import LABEL

    return os.environ.get("XPC_SERVICE_NAME") == LABEL


def _cannot_start(message: str) -> int:
    print(f"kokorod: {message}", file=sys.stderr)
    if _under_launchd():
        print("kokorod: a restart cannot fix this, so launchd will not retry; fix it, then "
              "run 'kokorod service restart'", file=sys.stderr)
        return 0
    return EXIT_PERMANENT


def cmd_run(args: argparse.Namespace) -> int:
    # From the first moment: a SIGTERM during start-up (a first warm-up is long) is a clean
    # stop, not a death by signal that a service manager would restart.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    from kokorod.serve import server
    from kokorod.serve.runtime_files import AlreadyRunning
    from kokorod_common.paths import PathError

    try:
        config = _config(args, strict=True)
    except ConfigError as exc:
        return _cannot_start(exc.verdict().removeprefix("kokorod: "))
    logs.setup(config.verbose_logs)
    try:
        server.run(config)
    except (AlreadyRunning, ModelError, PathError) as exc:
        return _cannot_start(str(exc))
    except RuntimeError as exc:  # e.g. onnxruntime could not load the model
        return _cannot_start(f"cannot start: {str(exc).splitlines()[0]}")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    config = _config(args, strict=True)  # a bad setting: said here, no daemon spawned
    path = config.socket_path
    if launcher.socket_is_live(path):
        print(f"kokorod is already running on {path}")
        fronts_cli.unlike_the_running_daemon(config, path)
        return 0
    started = time.monotonic()
    try:
        follower = launcher.LogFollower(launcher.echo_stderr)
        launcher.wait_ready(path, launcher.spawn(path), args.timeout, follower)
    except launcher.StartError as exc:
        said = str(exc)
        print(said if said.startswith("kokorod: ") else f"kokorod: {said}", file=sys.stderr)
        return 1
    pid = launcher.daemon_pid(path)
    print(f"kokorod started (pid {pid}) on {path} in {time.monotonic() - started:.1f}s")
    try:  # where its front-ends listen (why one is off was said above, as a note)
        status = control.call(path, "status", client_name="kokorod-start")
    except (OSError, RuntimeError):
        status = {}
    if (status.get("http") or {}).get("url"):
        print(f"OpenAI speech API on {status['http']['url']}")
    if (status.get("wyoming") or {}).get("uri"):
        print(f"Wyoming server on {status['wyoming']['uri']}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    path = _config(args).socket_path
    pid = launcher.stop(path)
    if pid is None:
        print("kokorod is not running")
        return 0
    print(f"kokorod stopped (pid {pid})")
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    """Stop the running daemon (if one runs), then start one: what a newly installed extra
    or a changed socket path needs."""
    cmd_stop(args)
    return cmd_start(args)


def cmd_status(args: argparse.Namespace) -> int:
    path = _config(args).socket_path
    try:
        status = control.call(path, "status", client_name="kokorod-status")
    except (FileNotFoundError, ConnectionRefusedError):
        pid = launcher.daemon_pid(path)  # by its pid file and lock, not the socket alone
        if pid is not None or launcher.instance_lock_held(path):
            state = (f"kokorod is running (pid {pid}) but its socket {path} is missing; it "
                     "puts it back within KOKORO_RUNTIME_CHECK_S (5 s unless set); if it "
                     "does not, run 'kokorod restart'" if pid is not None else
                     f"kokorod is starting (its lock is held; socket {path} not yet there)")
            if args.json:
                print(json.dumps({"running": True, "pid": pid, "socket": str(path),
                                  "socket_missing": True, "state": state}))
            else:
                print(state)
            return 1
        if args.json:
            print(json.dumps({"running": False, "socket": str(path)}))
        else:
            print(f"kokorod is not running (socket {path})")
        return 3
    status.pop("op", None)
    status.pop("id", None)
    if args.verbose:  # the session ops too
        for op in ("session-status", "optimization-status"):
            reply = control.call(path, op, client_name="kokorod-status")
            status[op.replace("-", "_")] = {k: v for k, v in reply.items()
                                            if k not in ("op", "id")}
    if args.json:
        print(json.dumps({"running": True, **status}, indent=2))
    else:
        print(status_text.status_lines(status))
        for key in ("session_status", "optimization_status"):
            if key in status:
                print(f"\n{key.replace('_', ' ')}:\n{json.dumps(status[key], indent=2)}")
    return 0


def cmd_socket(args: argparse.Namespace) -> int:
    """Print the socket path: editor plugins ask this once instead of guessing."""
    print(_config(args).socket_path)
    return 0


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value) if value != "" else "(empty)"


def cmd_config(args: argparse.Namespace) -> int:
    """Every setting: its value, where it came from, what it does (one setting a block)."""
    bad: dict[str, str] = {}  # env var → why its value cannot be used
    try:
        config = load(socket=getattr(args, "socket", None))
        verdict = None
    except ConfigError as exc:
        verdict = exc
        config = load(socket=getattr(args, "socket", None), on_error=lambda _: None)
        for problem in exc.problems:
            bad[problem.split(" ", 1)[0]] = problem.split(": ", 1)[-1]
    try:
        where, raw, file_path = origins(socket=getattr(args, "socket", None))
    except ConfigError:  # the file itself: said in the verdict below
        where, raw, file_path = {s.name: "default" for s in SETTINGS}, {}, config_file_path()
    state = "found" if file_path.exists() else "not found"
    print(f"config file: {file_path} ({state})")
    print("  its keys are the names below in lower case without KOKORO_: chunk_ms = 40")
    for s in SETTINGS:
        source = where[s.name]
        source = "config file" if source == str(file_path) else source
        if s.env in bad:
            print(f"{s.env}={raw[s.name]!r}  [{source}: not usable, see below]")
        else:
            print(f"{s.env}={_shown(getattr(config, s.name))}  [{source}]")
        print(textwrap.fill(s.help, width=88, initial_indent="    ",
                            subsequent_indent="    "))
    if verdict is not None:
        sys.stdout.flush()
        print(verdict.verdict(), file=sys.stderr)
        return 2
    return 0


def cmd_service(args: argparse.Namespace) -> int:
    from kokorod.ctl import service

    manager = service.detect()
    action = args.action
    if args.dry_run:
        return _service_preview(manager, action, args)
    try:
        if action == "install":
            path = manager.install(service.user_env(_config(args)))
            print(f"installed {path} ({manager.name}); kokorod now starts at login")
        elif action == "uninstall":
            print(f"removed {manager.uninstall()}")
        elif action in ("start", "stop", "restart"):
            getattr(manager, action)()
            print(f"{action}: ok ({manager.name})")
        elif action == "status":
            print(manager.status())
        elif action == "logs":
            print(manager.logs(args.lines))
    except service.ServiceError as exc:
        print(f"kokorod service {action}: {exc}", file=sys.stderr)
        return 1
    return 0


def _service_preview(manager: Any, action: str, args: argparse.Namespace) -> int:
    """`service install --dry-run`: the unit or plist and the commands, nothing written."""
    from kokorod.ctl import service

    if action != "install":
        print(f"kokorod service {action}: --dry-run previews 'install' only", file=sys.stderr)
        return 2
    would = manager if not isinstance(manager, service.NoServiceManager) else \
        service.for_platform()
    if would is None:
        print(f"kokorod service install: {manager.why}; nothing to preview", file=sys.stderr)
        return 1
    text, commands = would.preview(service.user_env(_config(args)))
    print(f"# would write {would.path} ({would.name}):")
    print(text.rstrip("\n"))
    print("# then run: " + "; ".join(" ".join(c) for c in commands))
    if isinstance(manager, service.NoServiceManager):
        print(f"# (here it would fail: {manager.why})")
    print("# dry run: nothing written")
    return 0


def cmd_http(args: argparse.Namespace) -> int:
    """Where the running daemon serves OpenAI's speech API, or why it does not."""
    return fronts_cli.http(_config(args).socket_path)


def cmd_reload(args: argparse.Namespace) -> int:
    # the daemon judges the settings it reads (said once, by it), not this command
    return fronts_cli.reload(load(socket=getattr(args, "socket", None),
                                  on_error=lambda _: None).socket_path)


def cmd_speechd(args: argparse.Namespace) -> int:
    """speech-dispatcher's output module: install, uninstall, status."""
    from kokorod.ctl import speechd

    if args.action == "install":
        path = speechd.install()
        print(f"installed {path}")
    elif args.action == "uninstall":
        print(f"removed {speechd.uninstall()}")
    for line in speechd.status():
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="kokorod", description="Warm local Kokoro TTS daemon.")
    p.add_argument("--version", action="version", version=f"kokorod {__version__}")
    p.add_argument("--socket", type=any_bytes,
                   help="socket path (default: $KOKORO_SOCKET or per-user)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the daemon in the foreground").set_defaults(func=cmd_run)
    start = sub.add_parser("start", help="start the daemon in the background")
    start.add_argument("--timeout", type=float, default=launcher.DEFAULT_START_TIMEOUT)
    start.set_defaults(func=cmd_start)
    sub.add_parser("stop", help="stop the background daemon").set_defaults(func=cmd_stop)
    restart = sub.add_parser("restart", help="stop the daemon if it runs, then start it")
    restart.add_argument("--timeout", type=float, default=launcher.DEFAULT_START_TIMEOUT)
    restart.set_defaults(func=cmd_restart)
    status = sub.add_parser("status", help="is it running, and how is it doing")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--verbose", "-v", action="store_true",
                        help="also each inference session and what is optimised how")
    status.set_defaults(func=cmd_status)
    sub.add_parser("config", help="show the effective settings").set_defaults(func=cmd_config)
    sub.add_parser("socket", help="print the socket path (for editor plugins and scripts)"
                   ).set_defaults(func=cmd_socket)
    svc = sub.add_parser("service", help="login service: launchd (macOS) / systemd (Linux)")
    svc.add_argument("action", choices=["install", "uninstall", "start", "stop", "restart",
                                        "status", "logs"])
    svc.add_argument("-n", "--lines", type=int, default=50, help="log lines to show")
    svc.add_argument("--dry-run", action="store_true",
                     help="install: print the unit/plist and the commands, write nothing")
    svc.set_defaults(func=cmd_service)
    sub.add_parser("http", help="print the OpenAI-compatible API's address"
                   ).set_defaults(func=cmd_http)
    sub.add_parser("reload", help="read the settings again (as kill -HUP), say what serves "
                   "where").set_defaults(func=cmd_reload)
    spd = sub.add_parser("speechd", help="speech-dispatcher output module (spd-say, Orca, "
                                          "speechd-el speak with kokorod)")
    spd.add_argument("action", choices=["install", "uninstall", "status"])
    spd.set_defaults(func=cmd_speechd)
    model_cli.add_parser(sub)
    lexicon_cli.add_parser(sub)
    tune.add_parser(sub)
    return p


def _socket_first(argv: list[str]) -> list[str]:
    """`--socket X` is accepted after the subcommand too (`kokorod status --socket X`)."""
    out, moved = [], []
    it = iter(argv)
    for arg in it:
        if arg == "--socket":
            moved += [arg, next(it, "")]
        elif arg.startswith("--socket="):
            moved.append(arg)
        else:
            out.append(arg)
    return moved + out


def main(argv: list[str] | None = None) -> int:
    """The exit status; a closed standard output (`kokorod config | head -1`) ends the
    command quietly with 0, and nothing reaches the user as a traceback (command_line)."""

    def body() -> int:
        try:
            args = build_parser().parse_args(
                _socket_first(sys.argv[1:] if argv is None else argv))
            return int(args.func(args))
        except ConfigError as exc:
            print(exc.verdict(), file=sys.stderr)
            return 2
        except ModelError as exc:
            print(f"kokorod: {exc}", file=sys.stderr)
            return 1

    return run_main("kokorod", body)
