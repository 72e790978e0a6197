"""Voices: loading packs, naming (language/gender), blending and the language a voice implies.

A voice is a (510, 1, 256) table of style vectors indexed by token count. A blend
"af_bella:0.6,af_sky:0.4" is the weighted mean of those tables, as Kokoro-FastAPI
does it; weights are validated and normalised to sum to 1.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from kokorod.store.voice_packs import VOICE_SHA256
from kokorod_common.protocol import ErrorCode, ProtocolError
from kokorod_common.voice_names import describe

V1_VOICES = frozenset(VOICE_SHA256)

Style = NDArray[np.float32]

MAX_BLEND_VOICES = 8
MAX_SPEC_CHARS = 512
_BLEND_CACHE = 32

# Languages whose script is not Latin: their voices read Latin-script text as English.
_NON_LATIN = {"ja", "cmn", "hi"}
_LATIN_ONLY = re.compile(r"^[\x00-\u024f\u1e00-\u1eff\u2000-\u206f\u20a0-\u20cf]*$")
_WEIGHT = re.compile(r"^\s*([^:()\s]+)\s*(?::\s*([^()\s]+)|\(\s*([^()\s]+)\s*\))?\s*$")
FALLBACK_LANG = "en-us"


class VoiceError(ValueError):
    """A voices file that cannot be read."""


def load_pack(path: Path | str) -> dict[str, Style]:
    """Both formats kokoro-onnx accepts (.bin and .npz are numpy archives)."""
    try:
        with np.load(path) as data:
            voices = {name: np.asarray(data[name], dtype=np.float32) for name in data.files}
    except Exception as exc:
        raise VoiceError(f"cannot read voices file {path}: {exc}") from None
    bad = [name for name, style in voices.items() if style.ndim < 2 or style.shape[-1] != 256]
    if bad:
        raise VoiceError(f"voices file {path}: {', '.join(bad[:5])} are not Kokoro style tables")
    return voices


def parse_spec(spec: str) -> list[tuple[str, float]]:
    """"a:0.6,b:0.4" / "a(2)+b(1)" / "a" → [(name, weight)] with weights summing to 1."""
    if len(spec) > MAX_SPEC_CHARS:
        raise ProtocolError(ErrorCode.BAD_VOICE, f"voice spec longer than {MAX_SPEC_CHARS} chars")
    parts = re.split(r"[,+]", spec)
    if not spec.strip() or any(not p.strip() for p in parts):
        raise ProtocolError(ErrorCode.BAD_VOICE, f"empty voice name in {spec[:64]!r}")
    weights: dict[str, float] = {}
    for part in parts:
        m = _WEIGHT.match(part)
        if m is None:
            raise ProtocolError(ErrorCode.BAD_VOICE, f"cannot read {part.strip()[:64]!r}; "
                                "write voice or voice:weight, e.g. af_bella:0.6,af_sky:0.4")
        name, raw = m.group(1), m.group(2) or m.group(3)
        try:
            weight = float(raw) if raw is not None else 1.0
        except ValueError:
            raise ProtocolError(ErrorCode.BAD_VOICE,
                                f"weight {raw[:32]!r} of {name[:64]!r} is not a number") from None
        if not math.isfinite(weight) or weight <= 0:
            raise ProtocolError(ErrorCode.BAD_VOICE,
                                f"weight of {name[:64]!r} must be a positive number, got {raw}")
        weights[name] = weights.get(name, 0.0) + weight
    if len(weights) > MAX_BLEND_VOICES:
        raise ProtocolError(ErrorCode.BAD_VOICE,
                            f"a blend takes at most {MAX_BLEND_VOICES} voices, got {len(weights)}")
    total = sum(weights.values())
    return [(name, w / total) for name, w in weights.items()]


class VoiceTable:
    """The installed voices plus a small cache of blends built from them."""

    def __init__(self, voices: dict[str, Style]) -> None:
        self.voices = voices
        self._by_lower = {name.lower(): name for name in voices}
        self._blends: OrderedDict[str, Style] = OrderedDict()
        self._blend_parts: dict[str, list[tuple[str, float]]] = {}

    def names(self) -> list[str]:
        return list(self.voices)

    def _installed(self, name: str) -> Style:
        style = self.voices.get(self._by_lower.get(name.lower(), name))
        if style is None:
            raise ProtocolError(ErrorCode.UNKNOWN_VOICE, self._unknown(name))
        return style

    def _unknown(self, name: str) -> str:
        """Did you mean …, and how to install the v1.0 voices when that is what is missing."""
        close = difflib.get_close_matches(name.lower(), list(self._by_lower), n=3, cutoff=0.6)
        message = f"voice {name[:64]!r} is not installed"
        if close:
            message += f"; did you mean {', '.join(self._by_lower[c] for c in close)}?"
        shown = list(self.voices)
        listing = ", ".join(shown[:12]) + (f", … ({len(shown)} in all)" if len(shown) > 12
                                           else "")
        message += f"; installed: {listing}"
        if name.lower() in V1_VOICES:
            message += ("; it is one of the 54 v1.0 voices: install them with "
                        "`kokorod model fetch voices --use`")
        return message

    def canonical(self, name: str) -> str:
        """The installed spelling of a voice name (names are matched ignoring case)."""
        return self._by_lower.get(name.lower(), name)

    def style(self, spec: str) -> Style:
        """The style table for a voice name or a blend spec."""
        if spec in self.voices:
            return self.voices[spec]
        if spec.lower() in self._by_lower:
            return self.voices[self._by_lower[spec.lower()]]
        cached = self._blends.get(spec)
        if cached is not None:
            self._blends.move_to_end(spec)
            return cached
        parts = parse_spec(spec)
        tables = [(self._installed(name), w) for name, w in parts]
        shapes = {t.shape for t, _ in tables}
        if len(shapes) > 1:
            raise ProtocolError(ErrorCode.BAD_VOICE, "these voices have different style shapes "
                                f"({', '.join(map(str, shapes))}) and cannot be blended")
        blended = sum((t.astype(np.float64) * w for t, w in tables),
                      start=np.zeros(tables[0][0].shape))
        style = np.asarray(blended, dtype=np.float32)
        self._blends[spec] = style
        self._blend_parts[spec] = [(self.canonical(name), w) for name, w in parts]
        while len(self._blends) > _BLEND_CACHE:
            self._blend_parts.pop(self._blends.popitem(last=False)[0], None)
        return style

    def parts_of(self, style: Style) -> list[tuple[str, float]] | None:
        """The voices (and weights) a style table returned by `style` is made of; None
        for a table this one did not hand out."""
        for name, table in self.voices.items():
            if table is style:
                return [(name, 1.0)]
        for spec, table in self._blends.items():
            if table is style:
                return self._blend_parts.get(spec)
        return None

    def lang_for(self, spec: str, text: str) -> str:
        """The espeak language a voice implies for this text.

        The first voice of a blend decides. Voices of non-Latin-script languages
        (ja, cmn, hi) read Latin-only text as English — the embedded Japanese
        voices speak English that way.
        """
        first = parse_spec(spec)[0][0] if spec not in self.voices else spec
        first = self.canonical(first)
        lang = describe(first)["language"] or FALLBACK_LANG
        if lang in _NON_LATIN and _LATIN_ONLY.match(text):
            return FALLBACK_LANG
        return lang
