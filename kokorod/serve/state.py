"""What a connection sees of the daemon: its requests, its speaker, two callbacks.

Connections get this, not the Daemon (as uvicorn hands its protocols a small
ServerState): they can admit and stop requests (`requests`, which also holds the
current settings and engine: a reload swaps them there), pause or query the
speaker, and ask for `status` or a `reload` — nothing of the lifecycle.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kokorod.serve.requests import Requests
from kokorod.serve.speech_queue import SpeechQueue


class ReloadError(RuntimeError):
    """The new settings or model could not be loaded; the old ones keep serving."""


@dataclass
class ServerState:
    version: str
    requests: Requests
    speech: SpeechQueue
    status: Callable[[], dict[str, Any]]
    reload: Callable[[bool], Awaitable[dict[str, Any]]]  # rebuild → reply; ReloadError
