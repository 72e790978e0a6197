"""The optional parts (pyproject's extras): whether one is installed, and the one line that
says how to install it. Nothing optional ever ends the daemon with a traceback."""

from __future__ import annotations

import importlib
import importlib.util
import logging

# extra → (the module it brings, what it is for)
EXTRAS: dict[str, tuple[str, str]] = {
    "http": ("aiohttp", "OpenAI's speech API (KOKORO_HTTP_PORT)"),
    "ja": ("pyopenjtalk", "Kokoro's own Japanese reading"),
    "wyoming": ("wyoming", "the Wyoming protocol for Home Assistant (KOKORO_WYOMING_URI)"),
}


def installed(extra: str) -> bool:
    """Whether the extra's module imports (found but broken counts as missing)."""
    module, _ = EXTRAS[extra]
    try:
        if importlib.util.find_spec(module) is None:
            return False
        importlib.import_module(module)
    except (ImportError, ValueError):
        return False
    return True


def install_hint(extra: str) -> str:
    return f"pip install 'kokorod[{extra}]'"


def missing(extra: str, wanted_by: str = "") -> str:
    """One line: what is missing, for what, and the command that installs it."""
    _, purpose = EXTRAS[extra]
    if wanted_by:  # it names the setting already: "KOKORO_HTTP_PORT=8880 needs …"
        purpose = purpose.split(" (KOKORO_")[0]
    by = f"{wanted_by} needs" if wanted_by else "needs"
    return f"{by} the {extra} extra ({purpose}): {install_hint(extra)}"


def off_without(extra: str, wanted_by: str, at_start: bool) -> str | None:
    """Why a front-end that needs `extra` stays off ("off: …", logged, and said by
    `kokorod start` at a start), or None when the extra is installed."""
    if installed(extra):
        return None

    return off(missing(extra, wanted_by), at_start)


def off(message: str, at_start: bool) -> str:
    """A front-end stays off for `message` (its extra is missing, its port is taken):
    "off: …", logged, and said by `kokorod start` at a start."""
    from kokorod import progress

    why = f"off: {message}"
    logging.getLogger(__name__).warning("%s%s", "" if at_start else "reload: ", why)
    if at_start:
        progress.note(why)
    return why
