"""Client library for kokorod: blocking `Client` and asyncio `AsyncClient` (`kokorod_client.aio`).

The player that plays a stream is shared with the daemon: `kokorod_common.player`.

The names below load on first use: `kokoro-say` imports this package on its way to
asking, and must not pay for the Client's threads and queues before it has asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kokorod_common import __version__

if TYPE_CHECKING:
    from kokorod_client.client import Client, Stream
    from kokorod_common.messages import Chunk, ConnectionLost, DaemonError, End, Mark

_WHERE = {"Client": "kokorod_client.client", "Stream": "kokorod_client.client",
          **dict.fromkeys(("Chunk", "ConnectionLost", "DaemonError", "End", "Mark"),
                          "kokorod_common.messages")}

__all__ = ["Chunk", "Client", "ConnectionLost", "DaemonError", "End", "Mark", "Stream",
           "__version__"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_WHERE[name]), name)
