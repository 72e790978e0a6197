"""Numbers as English words: cardinals, ordinals, years, decimals, money.

A thin layer over num2words that shapes its output for speech: no commas
(each would become a pause), American English without the "and" of
"one hundred and five" unless British English is asked for.
"""

from __future__ import annotations

import re

from num2words import num2words

_BIG_DIGITS = 15  # longer numbers are read digit by digit


def _tidy(words: str, british: bool) -> str:
    words = words.replace(",", "")
    if not british:
        words = re.sub(r"\band\b ", "", words)
    return re.sub(r"\s+", " ", words).strip()


def digits(text: str) -> str:
    """Read each digit on its own: '0042' → 'zero zero four two'."""
    return " ".join(num2words(int(d)) for d in text if d.isdigit())


def cardinal(value: int | str, british: bool = False) -> str:
    """'1234' or 1234 → 'one thousand two hundred thirty-four'."""
    text = str(value).replace(",", "")
    if len(text.lstrip("-+")) > _BIG_DIGITS:  # a serial number, not a quantity
        return ("minus " if text.startswith("-") else "") + digits(text)
    return _tidy(num2words(int(text), lang="en"), british)


def ordinal(value: int | str, british: bool = False) -> str:
    """'21' → 'twenty-first'."""
    text = str(value).replace(",", "")
    if len(text) > _BIG_DIGITS:
        return cardinal(text, british)
    number = int(text)
    return _tidy(num2words(number, lang="en", to="ordinal"), british)


def year(value: int | str) -> str:
    """'1999' → 'nineteen ninety-nine', '2005' → 'two thousand five'."""
    number = int(value)
    return _tidy(num2words(number, lang="en", to="year"), british=False)


def decimal(text: str, british: bool = False) -> str:
    """'3.14' → 'three point one four' (digits after the point one by one)."""
    whole, _, frac = text.replace(",", "").partition(".")
    negative = whole.startswith("-")
    whole = whole.lstrip("-+") or "0"
    spoken = cardinal(whole, british)
    if frac:
        spoken += " point " + digits(frac)
    return ("minus " if negative else "") + spoken


def number(text: str, british: bool = False) -> str:
    """Any plain number as written: '1,234', '-5', '3.5'."""
    return decimal(text, british) if "." in text else cardinal(text, british)


def plural(count_text: str, singular: str, plural_form: str | None = None) -> str:
    """The unit name that goes with the number as written ('1 kg' → kilogram)."""
    try:
        one = float(count_text.replace(",", "")) == 1.0 and "." not in count_text
    except ValueError:
        one = False
    return singular if one else (plural_form or singular + "s")


CURRENCIES: dict[str, tuple[str, str, str, str]] = {
    # symbol: (major singular, major plural, minor singular, minor plural)
    "$": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "¥": ("yen", "yen", "sen", "sen"),
    "₹": ("rupee", "rupees", "paisa", "paise"),
}
SCALES = {"k": "thousand", "K": "thousand", "m": "million", "M": "million",
          "b": "billion", "B": "billion", "bn": "billion", "T": "trillion",
          "thousand": "thousand", "million": "million", "billion": "billion",
          "trillion": "trillion"}


def money(symbol: str, amount: str, scale: str = "", british: bool = False) -> str:
    """'$', '1,234.50' → 'one thousand two hundred thirty-four dollars and fifty cents'."""
    major1, major_n, minor1, minor_n = CURRENCIES[symbol]
    amount = amount.replace(",", "")
    if scale:
        return f"{number(amount, british)} {SCALES[scale]} {major_n}"
    whole, _, frac = amount.partition(".")
    if len(whole) > _BIG_DIGITS:
        return f"{cardinal(whole, british)} {major_n}"
    whole_i = int(whole or "0")
    spoken = f"{cardinal(whole_i, british)} {major1 if whole_i == 1 else major_n}"
    if frac:
        cents = int((frac + "0")[:2])
        if cents:
            spoken += f" and {cardinal(cents, british)} {minor1 if cents == 1 else minor_n}"
    return spoken


def fraction(numerator: int | str, denominator: int | str, british: bool = False) -> str:
    """1/2 → "one half", 3/4 → "three quarters", 5/8 → "five eighths"."""
    top, bottom = int(numerator), int(denominator)
    names = {2: ("half", "halves"), 4: ("quarter", "quarters")}
    one, many = names.get(bottom, (ordinal(bottom, british), ordinal(bottom, british) + "s"))
    return f"{cardinal(top, british)} {one if top == 1 else many}"


DECADES = {"10": "tens", "20": "twenties", "30": "thirties", "40": "forties", "50": "fifties",
           "60": "sixties", "70": "seventies", "80": "eighties", "90": "nineties"}
