"""Client library for kokorod: blocking `Client`, asyncio `AsyncClient`, and the player."""

from kokorod_client.client import Client, Stream
from kokorod_common import __version__
from kokorod_common.messages import Chunk, ConnectionLost, DaemonError, End, Mark

__all__ = ["Chunk", "Client", "ConnectionLost", "DaemonError", "End", "Mark", "Stream",
           "__version__"]
