"""What the Wyoming server says about itself (`describe` → `info`) and how a Wyoming voice
request (a name, or only a language) becomes a Kokoro voice.

Home Assistant lists a TTS engine's languages from its voices' `languages`, and offers
each voice by `name` with its `description`; Kokoro's names say their language and
gender (kokorod_common/voice_names.py), so every installed voice is described from them.
"""

from __future__ import annotations

from typing import Any

from wyoming.info import Attribution, Info, TtsProgram, TtsVoice

from kokorod import __version__
from kokorod_common.protocol import ErrorCode, ProtocolError
from kokorod_common.voice_names import describe

# espeak language of a Kokoro voice → the BCP 47 tag Home Assistant matches languages by
LANGUAGE_TAGS = {"en-us": "en-US", "en-gb": "en-GB", "es": "es-ES", "fr-fr": "fr-FR",
                 "hi": "hi-IN", "it": "it-IT", "ja": "ja-JP", "pt-br": "pt-BR", "cmn": "zh-CN"}
LANGUAGE_NAMES = {"en-us": "American English", "en-gb": "British English", "es": "Spanish",
                  "fr-fr": "French", "hi": "Hindi", "it": "Italian", "ja": "Japanese",
                  "pt-br": "Brazilian Portuguese", "cmn": "Mandarin Chinese"}
KOKORO = Attribution(name="hexgrad (Kokoro-82M)", url="https://huggingface.co/hexgrad/Kokoro-82M")


def voice_languages(name: str) -> list[str]:
    lang = describe(name)["language"]
    return [LANGUAGE_TAGS.get(lang, lang)] if lang else []


def voice_description(name: str) -> str:
    info = describe(name)
    said = ", ".join(x for x in (LANGUAGE_NAMES.get(info["language"], info["language"]),
                                 info["gender"]) if x)
    return f"{name} ({said})" if said else name


def info(voices: list[str]) -> Info:
    """One TTS program with every installed voice, streaming synthesis supported."""
    return Info(tts=[TtsProgram(
        name="kokorod", description="Kokoro-82M, kept warm by kokorod", attribution=KOKORO,
        installed=True, version=__version__, supports_synthesize_streaming=True,
        voices=[TtsVoice(name=name, description=voice_description(name), attribution=KOKORO,
                         installed=True, version=None, languages=voice_languages(name))
                for name in voices])])


def _same_language(a: str, b: str, loose: bool) -> bool:
    """en-US is en-US; loosely, en-AU is English too."""
    a, b = a.replace("_", "-").lower(), b.replace("_", "-").lower()
    return a == b or (loose and a.split("-")[0] == b.split("-")[0])


def voice_for(voice: dict[str, Any] | None, installed: list[str], default: str) -> str | None:
    """The Kokoro voice (or blend) a Wyoming `voice` object asks for; None: the daemon's
    default. A name wins over a language; a language alone picks the daemon's default
    voice when it speaks it, else the first installed voice that does (en-AU: any en)."""
    if not voice:
        return None
    name = voice.get("name")
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            raise ProtocolError(ErrorCode.BAD_VOICE, "voice name must be a non-empty string")
        return name.strip()
    language = voice.get("language")
    if language is None:
        return None
    if not isinstance(language, str):
        raise ProtocolError(ErrorCode.BAD_LANG, "voice language must be a string")
    for loose in (False, True):
        for candidate in [default, *installed]:
            if any(_same_language(language, tag, loose) for tag in voice_languages(candidate)):
                return candidate
    raise ProtocolError(ErrorCode.UNKNOWN_VOICE,
                        f"no installed voice speaks {language[:32]!r}; installed languages: "
                        f"{', '.join(sorted({t for v in installed for t in voice_languages(v)}))}")
