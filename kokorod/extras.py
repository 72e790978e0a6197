"""The optional parts (pyproject's extras): whether one is installed, and the one line that
says how to install it. Nothing optional ever ends the daemon with a traceback."""

from __future__ import annotations

import importlib.util

# extra → (the module it brings, what it is for)
EXTRAS: dict[str, tuple[str, str]] = {
    "http": ("aiohttp", "OpenAI's speech API (KOKORO_HTTP_PORT)"),
    "ja": ("pyopenjtalk", "Kokoro's own Japanese reading"),
}


def installed(extra: str) -> bool:
    module, _ = EXTRAS[extra]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def install_hint(extra: str) -> str:
    return f"pip install 'kokorod[{extra}]'"


def missing(extra: str, wanted_by: str = "") -> str:
    """One line: what is missing, for what, and the command that installs it."""
    _, purpose = EXTRAS[extra]
    by = f"{wanted_by} needs" if wanted_by else "needs"
    return f"{by} the {extra} extra ({purpose}): {install_hint(extra)}"
