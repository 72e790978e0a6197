"""What every console entry point (kokorod, kokoro-say, sd_kokoro) does the same way at its
edges, so that no user ever sees a Python traceback:

- a bad command line is one line, `prog: error: …`, and exit status 2 (argparse's own
  errors, values out of range, flags that would be ignored, text that is not UTF-8);
- a closed standard output (`kokorod config | head -1`) ends the command quietly;
- Ctrl-C is exit status 130, and anything unexpected one line (the details with
  KOKORO_VERBOSE_LOGS=1).

Cheap to import (argparse, os, sys): kokoro-say loads it before anything else.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

EXIT_ERROR = 1
EXIT_USAGE = 2  # argparse's status for a bad command line
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports it

log = logging.getLogger(__name__)


def any_bytes(value: str) -> str:
    """An argument `type` for values taken as bytes (file names; kokoro-say's text, which
    it decodes itself): Parser leaves them unchecked. Any other text must be UTF-8."""
    return value


def shown(value: str) -> str:
    """An argument as the user typed it, bytes that are not UTF-8 as \\xNN."""
    return os.fsencode(value).decode("utf-8", "backslashreplace")


def is_utf8(value: str) -> bool:
    """False for an argument holding bytes that were not UTF-8 (surrogate escapes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (`prog: error: …`, exit 2) and a check that every
    text argument is UTF-8 (not for `any_bytes` or `Path` ones). Subparsers made from it
    are Parsers too."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None,
                         ) -> tuple[argparse.Namespace, list[str]]:
        parsed, rest = super().parse_known_args(args, namespace)
        for action in self._text_actions():
            values = getattr(parsed, action.dest, None)
            for value in values if isinstance(values, list) else [values]:
                if isinstance(value, str) and not is_utf8(value):
                    name = "/".join(action.option_strings) or action.metavar or action.dest
                    self.error(f"argument {name}: '{shown(value)}' is not UTF-8 text")
        return parsed, rest

    def _text_actions(self) -> Iterator[argparse.Action]:
        """This parser's arguments and its subcommands', whose values are text."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    if isinstance(sub, Parser):
                        yield from sub._text_actions()
            elif action.type not in (any_bytes, Path) and action.dest != argparse.SUPPRESS:
                yield action


def stdout_closed() -> bool:
    """Has the reader of standard output gone (`kokoro-say -v '?' | head -1`)? Told apart
    from a socket, whose end raises the same BrokenPipeError."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll, or stdout is not a file
        return False


def quiet_exit(status: int) -> int:
    """Standard output was closed by its reader: stop without a word (as `head` wants), and
    without Python's complaint when it flushes standard output at exit."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return status


def run_main(prog: str, body: Callable[[], int], closed_status: int = 0) -> int:
    """`body()`'s exit status, whatever happens: a closed standard output gives
    `closed_status` and no word; Ctrl-C 130; an unexpected error one line."""
    _quiet_threads(prog, closed_status)
    try:
        status = body()
        sys.stdout.flush()  # here, where a closed pipe can still be caught
        return status
    except BrokenPipeError as exc:
        if stdout_closed():
            return quiet_exit(closed_status)
        return unexpected(prog, exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: one line for the user, the details in the debug log
        return unexpected(prog, exc)


def _quiet_threads(prog: str, closed_status: int) -> None:
    """The same for the command's other threads (kokoro-say's -i lines are printed by its
    feedback thread): a closed standard output silences the rest of the output (the work
    itself goes on: the audio file is still written), anything else is one line."""
    import threading

    def hook(info: threading.ExceptHookArgs) -> None:
        if info.exc_type is SystemExit:
            return
        if issubclass(info.exc_type, BrokenPipeError) and stdout_closed():
            quiet_exit(closed_status)
            return
        unexpected(prog, info.exc_value or info.exc_type())

    threading.excepthook = hook


def unexpected(prog: str, exc: BaseException) -> int:
    log.debug("unexpected error", exc_info=exc)
    if os.environ.get("KOKORO_VERBOSE_LOGS") == "1":
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    with contextlib.suppress(OSError, ValueError):
        print(f"{prog}: unexpected error: {type(exc).__name__}: {exc} (KOKORO_VERBOSE_LOGS=1 "
              "shows the details; please report it)", file=sys.stderr)
    return EXIT_ERROR

