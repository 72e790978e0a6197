"""English text normalisation: what a reader says for numbers, dates, units, symbols.

espeak reads "2026-11-26" as a subtraction and "5km" letter by letter; this
turns such tokens into the words a person would say before phonemisation.
Rules are ordered, most specific first (a date before a range, money before a
plain number). Only applied when the request's language is English.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from kokorod.synth.text import numbers as n
from kokorod_common.abbreviations import ABBREVIATIONS, NEVER_END

MONTHS = ("January February March April May June July August September October November "
          "December").split()

# Units after a number: symbol → (singular, plural).
UNITS: dict[str, tuple[str, str]] = {
    "km": ("kilometer", "kilometers"), "m": ("meter", "meters"),
    "cm": ("centimeter", "centimeters"), "mm": ("millimeter", "millimeters"),
    "mi": ("mile", "miles"), "ft": ("foot", "feet"), "yd": ("yard", "yards"),
    "kg": ("kilogram", "kilograms"), "g": ("gram", "grams"), "mg": ("milligram", "milligrams"),
    "lb": ("pound", "pounds"), "lbs": ("pound", "pounds"), "oz": ("ounce", "ounces"),
    "l": ("liter", "liters"), "L": ("liter", "liters"), "ml": ("milliliter", "milliliters"),
    "mL": ("milliliter", "milliliters"),
    "ms": ("millisecond", "milliseconds"), "µs": ("microsecond", "microseconds"),
    "us": ("microsecond", "microseconds"), "ns": ("nanosecond", "nanoseconds"),
    "s": ("second", "seconds"), "sec": ("second", "seconds"), "secs": ("second", "seconds"),
    "min": ("minute", "minutes"), "mins": ("minute", "minutes"), "h": ("hour", "hours"),
    "hr": ("hour", "hours"), "hrs": ("hour", "hours"),
    "mph": ("mile per hour", "miles per hour"), "km/h": ("kilometer per hour",
                                                        "kilometers per hour"),
    "kph": ("kilometer per hour", "kilometers per hour"),
    "°C": ("degree Celsius", "degrees Celsius"), "°F": ("degree Fahrenheit",
                                                      "degrees Fahrenheit"),
    "°": ("degree", "degrees"),
    "B": ("byte", "bytes"), "KB": ("kilobyte", "kilobytes"), "kB": ("kilobyte", "kilobytes"),
    "MB": ("megabyte", "megabytes"), "GB": ("gigabyte", "gigabytes"),
    "TB": ("terabyte", "terabytes"), "KiB": ("kibibyte", "kibibytes"),
    "MiB": ("mebibyte", "mebibytes"), "GiB": ("gibibyte", "gibibytes"),
    "Hz": ("hertz", "hertz"), "kHz": ("kilohertz", "kilohertz"),
    "MHz": ("megahertz", "megahertz"), "GHz": ("gigahertz", "gigahertz"),
    "W": ("watt", "watts"), "kW": ("kilowatt", "kilowatts"), "V": ("volt", "volts"),
    "mAh": ("milliamp hour", "milliamp hours"), "kWh": ("kilowatt hour", "kilowatt hours"),
    "fps": ("frame per second", "frames per second"),
    "kbps": ("kilobit per second", "kilobits per second"),
    "Mbps": ("megabit per second", "megabits per second"),
    "Gbps": ("gigabit per second", "gigabits per second"),
    "x": ("times", "times"), "×": ("times", "times"),
}

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_B = r"(?<![\w.])"  # a token starts here: not after a letter, digit or dot


def _units_re() -> re.Pattern[str]:
    names = sorted(UNITS, key=len, reverse=True)
    alt = "|".join(re.escape(u) for u in names)
    return re.compile(rf"{_B}(-?)({_NUM})\s?({alt})(?![\w/])")


def _stop(m: re.Match[str], capital_ends: bool = True) -> str:
    """'.' when the match swallowed a full stop that also ended the sentence: at the end of
    the text or a line, or (`capital_ends`) before a capital letter."""
    if not m.group(0).endswith("."):
        return ""
    rest = m.string[m.end():]
    ends = (not rest.strip() or rest.lstrip(" ")[:1] == "\n"
            or (capital_ends and re.match(r"\s+[A-Z]", rest)))
    return "." if ends else ""


# The word "version" written just before or after "v1.2.3", across markup and punctuation.
_VERSION_BEFORE = re.compile(r"(?i)\bversion[\s*_`'\"(\[:=#–—-]{0,6}$")
_VERSION_AFTER = re.compile(r"(?i)[\s*_`'\")\]]{0,6}version\b")


Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]


class EnglishNormalizer:
    """Apply the rules in order; `british` reads dates day-first and keeps 'and'."""

    def __init__(self, british: bool = False) -> None:
        self.british = british
        self.rules: list[Rule] = self._rules()

    def __call__(self, text: str) -> str:
        for pattern, replace in self.rules:
            text = pattern.sub(replace, text)
        return re.sub(r"[ \t]{2,}", " ", text)

    # -------------------------------------------------------------- rules
    def _rules(self) -> list[Rule]:
        b = self.british
        abbrev = "|".join(re.escape(a) for a in sorted(ABBREVIATIONS, key=len, reverse=True))
        return [
            (re.compile(r"\b(?:https?://|www\.)[^\s<>()\"']+[^\s<>()\"'.,;:!?]", re.I),
             self._url),
            # The lookbehind starts a match only where a run begins: linear, not quadratic.
            (re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@([\w-]+(?:\.[\w-]+)+)\b"), self._email),
            # Abbreviations before the rules that rewrite what follows them: whether their
            # full stop ends the sentence is decided on the text as written (the sentence
            # splitter's rule, kokorod_common/sentences.py). "St. John" is a saint,
            # "Main St." a street.
            (re.compile(r"\b([A-Z][a-z]+) St\.(?=\s|$)"),
             lambda m: f"{m.group(1)} Street" + _stop(m)),
            (re.compile(r"(?<![\w])St\.(?=\s+[A-Z])"), lambda m: "Saint"),
            (re.compile(r"(?<![\w])(" + abbrev + r")(?=\s|$|[,;:)])"), self._abbreviation),
            (re.compile(rf"{_B}(\d{{1,2}}):(\d{{2}})(?::(\d{{2}}))?"
                        r"(?:\s?([ap])\.?m\.?(?![\w]))?(?![\w:])", re.I), self._time),
            (re.compile(rf"{_B}(\d{{1,2}})\s?([ap])\.?m\.?(?!\w)", re.I), self._hour_half),
            (re.compile(rf"{_B}(\d{{4}})-(\d{{2}})-(\d{{2}})(?![\w-])"), self._iso_date),
            (re.compile(rf"{_B}(\d{{1,2}})/(\d{{1,2}})/(\d{{4}})(?![\w/])"), self._slash_date),
            (re.compile(r"([$€£¥₹])\s?(" + _NUM + r")(?:\s?(bn|[kKmMbBT])\b|\s(thousand|million|"
                        r"billion|trillion)\b)?"), self._money),
            (re.compile(rf"{_B}(-?{_NUM})\s?%"), lambda m: n.number(m.group(1), b) + " percent"),
            (re.compile(r"(?<![\w.,])(1[1-9]\d\d|20\d\d)s\b"), self._decade),
            # "the 90s", "'90s": a decade, not ninety seconds
            (re.compile(r"(?:['’]|(?<=\bthe\s)|(?<=\bThe\s))([1-9]0)s\b"),
             lambda m: n.DECADES[m.group(1)]),
            # phone numbers digit by digit: 555-1234, 555-123-4567, (555) 123-4567
            (re.compile(r"(?<![\w.-])(?:\((\d{3})\)\s?|(\d{3})-)?(\d{3})-(\d{4})(?![\w-])"),
             self._phone),
            (re.compile(r"(?<![\w/.])(\d{1,2})/(\d{1,2})(?![\w/])"),
             lambda m: n.fraction(m.group(1), m.group(2), b)),
            (_units_re(), self._unit),
            (re.compile(rf"{_B}(\d+)(st|nd|rd|th)\b", re.I),
             lambda m: n.ordinal(m.group(1), b)),
            # "v1.2.3": "version one point two point three", but one "version" when the
            # word is written beside it ("Version **v1.2.3**", "Version: v1.2", "the v2 version")
            (re.compile(r"(?<![A-Za-z0-9])[vV](\d+(?:\.\d+)+|\d+)(?![A-Za-z0-9]|\.\d)"),
             self._version),
            (re.compile(r"\b(\d+)\.(\d+)\.(\d+)(?:\.(\d+))?\b"),
             lambda m: " point ".join(n.cardinal(g, b) for g in m.groups() if g is not None)),
            (re.compile(r"(?:#|\bNo\.\s?)(\d+)\b"),
             # "No." keeps its capital (a sentence cut before it stays there)
             lambda m: m.group(0)[0].replace("#", "n") + "umber " + n.cardinal(m.group(1), b)),
            (re.compile(rf"{_B}({_NUM})\s?[-–]\s?({_NUM})(?!\w|\.\d)"),
             lambda m: f"{n.number(m.group(1), b)} to {n.number(m.group(2), b)}"),
            (re.compile(rf"(?:(?<=\s)|^)[-−]({_NUM})(?![\w.])"),
             lambda m: "minus " + n.number(m.group(1), b)),
            (re.compile(r"(?<![\w.,])(1[1-9]\d\d|20\d\d)(?![\w.,]\d|\d)"),
             lambda m: n.year(m.group(1))),
            (re.compile(rf"(?<![\w])(?:{_NUM})(?![\w])"), lambda m: n.number(m.group(0), b)),
            (re.compile(r"(?<=\d)(?=[A-Za-z])|(?<=[A-Za-z])(?=\d)"), lambda m: " "),
            (re.compile(r"\d+"), lambda m: n.number(m.group(0), b)),
            (re.compile(r"\s&\s"), lambda m: " and "),
            (re.compile(r"(?<=\s)[=]\s"), lambda m: "equals "),
            (re.compile(r"(?<=\s)[+]\s"), lambda m: "plus "),
            (re.compile(r"(?<=\s)[~≈]\s?(?=\w)"), lambda m: "about "),
            (re.compile(r"\s@\s"), lambda m: " at "),
        ]

    # -------------------------------------------------------------- replacers
    @staticmethod
    def _url(m: re.Match[str]) -> str:
        host = re.sub(r"^(?:https?://)?(?:www\.)?", "", m.group(0), flags=re.I).split("/")[0]
        host = host.split(":")[0]
        return "a link to " + host.replace(".", " dot ") if host else "a link"

    @staticmethod
    def _email(m: re.Match[str]) -> str:
        user, _, host = m.group(0).partition("@")
        user = re.sub(r"[._+-]", " ", user)
        return f"{user} at {host.replace('.', ' dot ')}"

    def _date(self, year: int, month: int, day: int) -> str | None:
        if not (1 <= month <= 12 and 1 <= day <= 31):
            return None
        day_w = n.ordinal(day)
        if self.british:
            return f"the {day_w} of {MONTHS[month - 1]}, {n.year(year)}"
        return f"{MONTHS[month - 1]} {day_w}, {n.year(year)}"

    def _iso_date(self, m: re.Match[str]) -> str:
        y, mo, d = (int(g) for g in m.groups())
        return self._date(y, mo, d) or m.group(0)

    def _slash_date(self, m: re.Match[str]) -> str:
        a, b, y = (int(g) for g in m.groups())
        month, day = (b, a) if self.british else (a, b)
        return self._date(y, month, day) or m.group(0)

    def _time(self, m: re.Match[str]) -> str:
        hour, minute, second, half = m.group(1), int(m.group(2)), m.group(3), m.group(4)
        h = int(hour)
        if h > 23 or minute > 59:
            return m.group(0)
        words = n.cardinal(h)
        if minute == 0:
            words += "" if half or h > 12 or h == 0 else " o'clock"
            if h > 12 or h == 0:
                words += " hundred"
        elif minute < 10:
            words += " oh " + n.cardinal(minute)
        else:
            words += " " + n.cardinal(minute)
        if second and int(second):
            words += f" and {n.cardinal(int(second))} seconds"
        if half:
            words += (" A M" if half.lower() == "a" else " P M") + _stop(m)
        return words

    def _hour_half(self, m: re.Match[str]) -> str:
        hour = int(m.group(1))
        if not 1 <= hour <= 12:
            return m.group(0)
        return f"{n.cardinal(hour)} {'A M' if m.group(2).lower() == 'a' else 'P M'}" + _stop(m)

    @staticmethod
    def _abbreviation(m: re.Match[str]) -> str:
        """The words; a full stop stays when the abbreviation also ended the sentence."""
        words = ABBREVIATIONS[m.group(1)]
        return words + _stop(m, capital_ends=m.group(1) not in NEVER_END)

    def _money(self, m: re.Match[str]) -> str:
        scale = m.group(3) or m.group(4) or ""
        return n.money(m.group(1), m.group(2), scale, self.british)

    def _unit(self, m: re.Match[str]) -> str:
        sign, value, unit = m.groups()
        singular, plural = UNITS[unit]
        if unit in ("x", "×"):
            return f"{n.number(value, self.british)} times"
        spoken = n.number(value, self.british)
        return f"{'minus ' if sign else ''}{spoken} {n.plural(value, singular, plural)}"

    @staticmethod
    def _phone(m: re.Match[str]) -> str:
        groups = [g for g in m.groups() if g]
        return ", ".join(n.digits(g) for g in groups)

    def _version(self, m: re.Match[str]) -> str:
        spoken = " point ".join(n.cardinal(p, self.british) for p in m.group(1).split("."))
        named = (_VERSION_BEFORE.search(m.string, 0, m.start())
                 or _VERSION_AFTER.match(m.string, m.end()))
        return spoken if named else "version " + spoken

    @staticmethod
    def _decade(m: re.Match[str]) -> str:
        spoken = n.year(m.group(1))
        if spoken.endswith("y"):
            return spoken[:-1] + "ies"
        return spoken + "s"
