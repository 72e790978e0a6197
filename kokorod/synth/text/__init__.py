"""Text cleanup before synthesis: what the request's `text_format` means.

    plain     numbers, dates, units, symbols and abbreviations said in words
    markdown  read as prose first (no `#` or `*`, links by their text), then as plain
    code      identifiers split, operators spoken, then as plain

The English rules apply only when the language is English (en-us, en-gb);
other languages get the structural cleanup (markdown, code) alone.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# The formats cleaned here; "ssml" and "plain+ipa" (kokorod/spoken.py) use "plain" per run.
TEXT_FORMATS = ("plain", "markdown", "code")

__all__ = ["TEXT_FORMATS", "prepare_text", "speakable", "written_in"]


_SAY_COMMAND = re.compile(r"\[\[\s*[a-zA-Z]{4}\b[^\]]{0,64}\]\]")
# A few of each language's commonest words: enough to tell a paragraph's language.
_STOPWORDS = {
    "en": "the and is are was of to in that it with for this you not have be on".split(),
    "fr": "le la les des est une dans pour pas que qui sur avec il elle nous vous ce".split(),
    "de": "der die das und ist nicht ein eine mit auf für den dem ich sie wir es zu".split(),
    "es": "el los las del es una por para con que se no lo su al como pero más".split(),
    "it": "il gli della è una per con che non sono del nel alla questo anche".split(),
    "pt": "os das não uma para com que se por mais como mas ao dos em é".split(),
}


def written_in(text: str) -> str | None:
    """The language a text looks written in, from its commonest words (None: too little
    to tell). English number words in a French sentence would be wrong."""
    words = re.findall(r"[^\W\d_]+", text[:4000].lower())
    counts = {lang: sum(1 for w in words if w in set(ws)) for lang, ws in _STOPWORDS.items()}
    best = max(counts, key=lambda lang: counts[lang])
    if counts[best] < 2 or counts[best] <= counts["en"]:
        return None if counts["en"] < 2 else "en"
    return best


@lru_cache(maxsize=2)
def _english(british: bool):
    from kokorod.synth.text.english import EnglishNormalizer

    return EnglishNormalizer(british)


def prepare_text(text: str, text_format: str = "plain", lang: str = "en-us",
                 normalize: bool = True) -> str:
    """The words to speak for `text` written in `text_format`."""
    text = _SAY_COMMAND.sub(" ", text)  # macOS say's [[slnc 500]], [[rate 200]]…: dropped
    if text_format == "markdown":
        from kokorod.synth.text.markdown import markdown_to_speech

        text = markdown_to_speech(text)
    elif text_format == "code":
        from kokorod.synth.text.code import code_to_speech

        text = code_to_speech(text)
    elif text_format != "plain":
        raise ValueError(f"text_format must be one of {', '.join(TEXT_FORMATS)}")
    if normalize and lang.lower().startswith("en") and written_in(text) in (None, "en"):
        text = _english(lang.lower() == "en-gb")(text)
    return text


def speakable(text: str) -> bool:
    """Is there anything to say: a letter or a digit, in any script? Punctuation, symbols,
    rules (`---`) and emoji alone would only make the model babble."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)
