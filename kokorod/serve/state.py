"""What a connection sees of the daemon: its requests, its settings, two callbacks.

Connections get this, not the Daemon (as uvicorn hands its protocols a small
ServerState): they can admit and stop requests, read the current settings and
engine, and ask for `status` or a `reload` — nothing of the lifecycle.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kokorod.config import Config
from kokorod.serve.requests import Requests
from kokorod.synth.engine import Engine


class ReloadError(RuntimeError):
    """The new settings or model could not be loaded; the old ones keep serving."""


@dataclass
class ServerState:
    version: str
    requests: Requests
    status: Callable[[], dict[str, Any]]
    reload: Callable[[bool], Awaitable[dict[str, Any]]]  # rebuild → reply; ReloadError

    @property
    def config(self) -> Config:
        return self.requests.config

    @property
    def engine(self) -> Engine:
        return self.requests.engine

    @property
    def counters(self) -> Counter[str]:
        return self.requests.counters
