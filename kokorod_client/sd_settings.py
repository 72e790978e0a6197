"""speech-dispatcher's settings as kokorod's: SSIP's rate, volume and voice type (in a
language) → a Kokoro speed, a gain and a voice name. Pure functions: sd_kokoro asks
them for every message, tests ask them without speech-dispatcher."""

from __future__ import annotations

from typing import Any

from kokorod_common.protocol import SPEED_RANGE

_VOICE_TYPES = ("male", "female")


def speed_for(rate: int) -> float:
    """SSIP rate -100…100 → Kokoro speed 0.5…2.0 (0 is 1.0, each 100 doubles)."""
    lo, hi = SPEED_RANGE
    return min(hi, max(lo, 2.0 ** (rate / 100)))


def gain_for(volume: int) -> float:
    """SSIP volume -100…100 → 0…1 (100, the default, leaves the samples as they are)."""
    return min(1.0, max(0.0, (volume + 100) / 200))


def choose_voice(voices: list[dict[str, Any]], voice_type: str, language: str,
                 default: str = "") -> str | None:
    """SSIP's `male1`, `female2`, `child_male`… in a language → the n-th Kokoro voice of that
    gender and language, the daemon's default first where it is one of them (None: the
    daemon's default)."""
    kind = voice_type.lower().removeprefix("child_")
    gender = next((g for g in _VOICE_TYPES if kind.startswith(g)), None)
    number = int(kind[len(gender):] or 1) if gender and kind[len(gender):].isdigit() else 1
    lang = language.lower().replace("_", "-")
    if gender is None or not lang or lang in ("c", "none"):
        return None
    matching = [v["name"] for v in voices if same_language(str(v.get("language", "")), lang)
                and str(v.get("gender", "")).lower() == gender]
    if not matching:
        return None
    if default in matching:
        matching.remove(default)
        matching.insert(0, default)
    return matching[(number - 1) % len(matching)]


def same_language(voice_lang: str, wanted: str) -> bool:
    """`en-us` matches only en-us; `en` matches every English voice."""
    voice_lang = voice_lang.lower()
    return voice_lang == wanted or ("-" not in wanted and voice_lang.split("-")[0] == wanted)
