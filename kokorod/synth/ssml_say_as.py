"""SSML `<say-as>`: the written text of each `interpret-as` turned into what is spoken.

Letters and digits read one by one keep each written character as the word the
listener follows (word marks point at it) and read it alone, as the phonemizer
reads a single character: its name in the voice's language. Numbers go through
num2words in the language when it knows it; dates and times in English through
the same rules as plain text; anything else is read as written.
"""

from __future__ import annotations

import logging
import re

from kokorod.synth import overrides

log = logging.getLogger(__name__)

INTERPRETATIONS = ("characters", "spell-out", "cardinal", "number", "ordinal", "digits",
                   "date", "time", "telephone")
MONTHS = ("January February March April May June July August September October November "
          "December").split()
_DATE_ORDERS = {"mdy": "mdy", "dmy": "dmy", "ymd": "ymd", "md": "md", "dm": "dm", "ym": "ym",
                "my": "my", "y": "y", "m": "m", "d": "d"}


def _num2words_lang(lang: str) -> str:
    """num2words' name of an espeak language ('en-gb' → 'en', 'pt-br' → 'pt_BR')."""
    base, _, region = lang.lower().partition("-")
    if base == "pt" and region == "br":
        return "pt_BR"
    return {"cmn": "zh", "zh": "zh"}.get(base, base)


def _words(number: str, lang: str, to: str) -> str:
    from num2words import num2words

    if lang.lower().startswith("en"):  # as plain English text says them
        from kokorod.synth.text import numbers as n

        british = lang.lower() == "en-gb"
        return n.cardinal(number, british) if to == "cardinal" else n.ordinal(number, british)
    try:
        return num2words(int(number), lang=_num2words_lang(lang), to=to).replace(",", "")
    except (NotImplementedError, ValueError, OverflowError, TypeError):
        return number  # the phonemizer reads it in the language


def spelled(text: str) -> str:
    """Each letter or digit read alone, as its name (punctuation and spaces left out)."""
    return " ".join(overrides.respelled(ch, ch.lower()) for ch in text if ch.isalnum())


def _telephone(text: str) -> str:
    groups = [g for g in re.split(r"[^\d+]+", text) if g.strip("+")]
    if not groups:
        return text
    said = []
    for group in groups:
        plus = "plus " if group.startswith("+") else ""
        said.append(plus + spelled(group.lstrip("+")))
    return ", ".join(said)


def _date(text: str, fmt: str, lang: str) -> str:
    parts = [p for p in re.split(r"[^\d]+", text) if p]
    order = _DATE_ORDERS.get(fmt.lower(), "ymd" if len(parts) == 3 and len(parts[0]) == 4
                             else "mdy" if lang.lower() == "en-us" else "dmy")
    if len(parts) != len(order) or not lang.lower().startswith("en"):
        return text
    fields = dict(zip(order, (int(p) for p in parts), strict=True))
    from kokorod.synth.text import numbers as n

    month = fields.get("m")
    if month is not None and not 1 <= month <= 12:
        return text
    said = []
    if month is not None:
        said.append(MONTHS[month - 1])
    if "d" in fields:
        said.append(n.ordinal(fields["d"]))
    text_out = " ".join(said)
    if "y" in fields:
        text_out = f"{text_out}, {n.year(fields['y'])}" if text_out else n.year(fields["y"])
    return text_out


def say_as(text: str, interpret_as: str, fmt: str, lang: str) -> str:
    """The spoken (marked) text for `text` read as `interpret_as`."""
    kind = interpret_as.lower()
    text = " ".join(text.split())
    if kind in ("characters", "spell-out"):
        return spelled(text)
    if kind == "digits":
        return spelled(re.sub(r"\D", "", text)) or text
    if kind == "telephone":
        return _telephone(text)
    number = text.replace(",", "").replace(" ", "")
    if kind in ("cardinal", "number") and re.fullmatch(r"[-+]?\d+", number):
        return _words(number, lang, "cardinal")
    if kind == "ordinal" and re.fullmatch(r"\d+(?:st|nd|rd|th|\.|º|ª|e|er)?", number):
        return _words(re.sub(r"\D", "", number), lang, "ordinal")
    if kind == "date":
        return _date(text, fmt, lang)
    if kind == "time" and lang.lower().startswith("en"):
        from kokorod.synth.text import prepare_text

        return prepare_text(text, "plain", lang)
    if kind not in INTERPRETATIONS:
        log.info("say-as interpret-as=%r is not supported: read as written", interpret_as)
    return text
