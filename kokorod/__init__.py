"""kokorod: a warm local Kokoro text-to-speech daemon."""

from kokorod_common import __version__

__all__ = ["__version__"]
