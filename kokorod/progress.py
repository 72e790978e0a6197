"""One-time work at a start (assembling the model, cutting it, installing voices) said as it
happens: lines with PROGRESS_PREFIX on stderr (the log, for a background daemon), which
`kokorod start` and a client's autostart echo while they wait."""

from __future__ import annotations

import sys

from kokorod_common.launcher import PROGRESS_PREFIX


def say(message: str) -> None:
    print(f"{PROGRESS_PREFIX} {message}", file=sys.stderr, flush=True)
