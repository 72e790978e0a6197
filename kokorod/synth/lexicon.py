"""The user lexicon: how the user wants words and phrases read, kept in a TOML file
beside the configuration and read again whenever it changes (no restart).

    # a table per language: "en-us", "en" (every English), "*" (every language)
    [en]
    Kokoro = "/kˈOkəɹO/"                     # phonemes, Kokoro's set, between slashes
    nginx = "engine x"                        # a respelling, read as plain text
    "New York" = "/nuː jˈɔːɹk/"               # a phrase
    SQL = { say = "sequel", case = "exact" }   # only as written ("sql" is left alone)

A word matches whole, case ignored unless `case = "exact"`; longer entries win.
Each entry is checked against the model's phoneme set when the file is read: a bad
one is skipped with a warning naming its line, the others apply. A match keeps its
written words in the text and carries its reading (overrides.py), so word marks
still point at what was written, and the caches, which key by the text, hear a
change at once.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from kokorod.synth import overrides

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger(__name__)

CASES = ("any", "exact")


@dataclass(frozen=True)
class Entry:
    written: str
    lang: str  # the table it is in: "en-us", "en", "*"
    phonemes: str | None = None
    say: str | None = None
    case: str = "any"

    def value(self) -> str | dict[str, str]:
        """As the file writes it."""
        plain = f"/{self.phonemes}/" if self.phonemes is not None else str(self.say)
        if self.case == "any":
            return plain
        key = "phonemes" if self.phonemes is not None else "say"
        return {key: self.phonemes if self.phonemes is not None else str(self.say),
                "case": self.case}


def entry(written: str, lang: str, value: object) -> Entry:
    """An entry from the file's value; ValueError saying what is wrong."""
    case = "any"
    if isinstance(value, dict):
        case = str(value.get("case", "any"))
        if case not in CASES:
            raise ValueError(f"case must be one of {', '.join(CASES)}")
        if "phonemes" in value or "ipa" in value:
            value = f"/{str(value.get('phonemes', value.get('ipa'))).strip('/')}/"
        elif "say" in value:
            value = str(value["say"])
        else:
            raise ValueError("give phonemes = \"…\" or say = \"…\"")
    if not isinstance(value, str) or not value.strip():
        raise ValueError("the reading must be a non-empty string")
    if not written.strip() or not any(ch.isalnum() for ch in written):
        raise ValueError("the written form must have a letter or digit")
    value = value.strip()
    if len(value) > 1 and value.startswith("/") and value.endswith("/"):
        return Entry(" ".join(written.split()), lang, phonemes=" ".join(value[1:-1].split()),
                     case=case)
    return Entry(" ".join(written.split()), lang, say=value, case=case)


def _line_of(raw: str, written: str) -> int:
    for number, line in enumerate(raw.splitlines(), 1):
        key = line.split("=", 1)[0].strip().strip("\"'")
        if key == written:
            return number
    return 0


def read(path: Path, vocab: dict[str, int] | None) -> tuple[list[Entry], list[str]]:
    """The file's good entries, and a warning for each bad one (naming its line)."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], []
    except (OSError, UnicodeDecodeError) as exc:
        return [], [f"{path}: cannot be read: {exc}"]
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        return [], [f"{path}: not valid TOML ({exc}); no entry applies"]
    entries, warnings = [], []
    for lang, table in data.items():
        if not isinstance(table, dict):
            warnings.append(f"{path}: {lang!r} is not a [language] table; skipped")
            continue
        for written, value in table.items():
            where = f"{path}:{_line_of(raw, written)}"
            try:
                item = entry(written, lang.lower(), value)
            except ValueError as exc:
                warnings.append(f"{where}: {written!r}: {exc}; skipped")
                continue
            bad = sorted({c for c in item.phonemes or "" if vocab is not None
                          and c not in vocab and not c.isspace()})
            if bad:
                warnings.append(f"{where}: {written!r}: symbols outside Kokoro's phoneme "
                                f"set: {' '.join(bad)}; skipped")
                continue
            entries.append(item)
    return entries, warnings


def _applies(table: str, lang: str) -> bool:
    lang = lang.lower()
    return table in ("*", lang) or lang.split("-")[0] == table


class Lexicon:
    """The file's entries, read again when its modification time or size changes."""

    def __init__(self, path: Path, vocab: dict[str, int] | None = None) -> None:
        self.path = path
        self.vocab = vocab
        self.entries: list[Entry] = []
        self.warnings: list[str] = []
        self._stamp: tuple[int, int] | None = None
        self._patterns: dict[str, re.Pattern[str] | None] = {}
        self._lock = threading.Lock()

    def _fresh(self) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = (0, -1)
        with self._lock:
            if stamp == self._stamp:
                return
            self.entries, self.warnings = read(self.path, self.vocab)
            for warning in self.warnings:
                log.warning("lexicon: %s", warning)
            if self._stamp is not None or self.entries:
                log.info("lexicon: %d entries from %s", len(self.entries), self.path)
            self._patterns = {}
            self._stamp = stamp

    def status(self) -> dict[str, object]:
        self._fresh()
        return {"path": str(self.path), "entries": len(self.entries),
                "warnings": list(self.warnings)}

    def _pattern(self, lang: str) -> re.Pattern[str] | None:
        if lang not in self._patterns:
            used = sorted((e for e in self.entries if _applies(e.lang, lang)),
                          key=lambda e: -len(e.written))
            parts = []
            for e in used:
                body = r"\s+".join(re.escape(w) for w in e.written.split())
                parts.append(body if e.case == "exact" else f"(?i:{body})")
            self._patterns[lang] = re.compile(
                r"(?<![\w'’])(?:" + "|".join(parts) + r")(?![\w'’])") if parts else None
        return self._patterns[lang]

    def _find(self, written: str, lang: str) -> Entry | None:
        best = None
        for e in self.entries:
            if not _applies(e.lang, lang) or " ".join(written.split()).casefold() \
                    != e.written.casefold():
                continue
            if e.case == "exact" and " ".join(written.split()) != e.written:
                continue
            # the most specific table wins: "en-us" over "en" over "*"
            rank = 2 if e.lang == lang.lower() else 1 if e.lang != "*" else 0
            if best is None or rank > best[0]:
                best = (rank, e)
        return best[1] if best else None

    def apply(self, text: str, lang: str) -> str:
        """`text` (spoken plain text, no markup) with the entries' readings marked in."""
        self._fresh()
        with self._lock:
            pattern = self._pattern(lang.lower()) if self.entries else None
            if pattern is None:
                return text

            def marked(m: re.Match[str]) -> str:
                e = self._find(m.group(0), lang)
                if e is None:
                    return m.group(0)
                if e.phonemes is not None:
                    return overrides.reading(m.group(0), e.phonemes)
                return overrides.respelled(m.group(0), str(e.say))

            return pattern.sub(marked, text)
