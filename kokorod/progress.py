"""One-time work at a start (assembling the model, cutting it, installing voices) said as it
happens: lines with PROGRESS_PREFIX on stderr (the log, for a background daemon), which
`kokorod start` and a client's autostart echo while they wait."""

from __future__ import annotations

import sys

from kokorod_common.launcher import NOTE_PREFIX, PROGRESS_PREFIX


def say(message: str) -> None:
    print(f"{PROGRESS_PREFIX} {message}", file=sys.stderr, flush=True)


def note(message: str) -> None:
    """A start's note for whoever started the daemon (echoed like progress lines)."""
    print(f"{NOTE_PREFIX} {message}", file=sys.stderr, flush=True)
