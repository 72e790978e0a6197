"""Text cleanup before synthesis: what the request's `text_format` means.

    plain     numbers, dates, units, symbols and abbreviations said in words
    markdown  read as prose first (no `#` or `*`, links by their text), then as plain
    code      identifiers split, operators spoken, then as plain

The English rules apply only when the language is English (en-us, en-gb);
other languages get the structural cleanup (markdown, code) alone.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from kokorod_common.protocol import TEXT_FORMATS

__all__ = ["TEXT_FORMATS", "prepare_text", "speakable"]


@lru_cache(maxsize=2)
def _english(british: bool):
    from kokorod.text.english import EnglishNormalizer

    return EnglishNormalizer(british)


def prepare_text(text: str, text_format: str = "plain", lang: str = "en-us",
                 normalize: bool = True) -> str:
    """The words to speak for `text` written in `text_format`."""
    if text_format == "markdown":
        from kokorod.text.markdown import markdown_to_speech

        text = markdown_to_speech(text)
    elif text_format == "code":
        from kokorod.text.code import code_to_speech

        text = code_to_speech(text)
    elif text_format != "plain":
        raise ValueError(f"text_format must be one of {', '.join(TEXT_FORMATS)}")
    if normalize and lang.lower().startswith("en"):
        text = _english(lang.lower() == "en-gb")(text)
    return text


def speakable(text: str) -> bool:
    """Is there anything to say: a letter or a digit, in any script? Punctuation, symbols,
    rules (`---`) and emoji alone would only make the model babble."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)
