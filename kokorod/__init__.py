"""kokorod: a warm local Kokoro text-to-speech daemon."""

__version__ = "0.1.0"
