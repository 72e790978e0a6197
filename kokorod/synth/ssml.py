"""SSML → runs: stretches of spoken text, each with one voice, language and rate.

Parsed with the standard library's expat, never by pattern: a document type
declaration (and with it any entity declaration, the way to billion-laughs
expansion or an external fetch) is refused, the five predefined entities,
character references and CDATA are read as text, and a malformed document is a
`bad_ssml` error naming its line and column — no tag is ever read aloud.

A run ends where the voice, language or rate changes, at `<p>` and `<s>`, and at
`<break>`, whose time becomes the exact silence after it (ssml_stream.py). What a
run says is marked text (overrides.py): `<phoneme>`, `<sub>` and `<say-as>` keep
their written words and carry their reading; `<mark>` stands where it was written.
Supported elements, and those read without effect, are listed in
docs/pronunciation.md.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.parsers import expat

from kokorod.synth import overrides
from kokorod.synth.ssml_say_as import say_as
from kokorod_common.protocol import ErrorCode, ProtocolError
from kokorod_common.ssml_detect import looks_like_ssml

log = logging.getLogger(__name__)

MAX_BREAK_S = 10.0
STRENGTHS = {"none": 0.0, "x-weak": 0.1, "weak": 0.2, "medium": 0.4, "strong": 0.7,
             "x-strong": 1.2}
RATES = {"x-slow": 0.6, "slow": 0.8, "medium": 1.0, "default": 1.0, "fast": 1.25,
         "x-fast": 1.6}
# Read for their content, with no effect of their own.
_TRANSPARENT = frozenset(("speak", "emphasis", "audio", "token", "w", "prosody", "voice",
                          "lang", "p", "s", "paragraph", "sentence", "say-as", "sub",
                          "phoneme", "break", "mark"))
_SKIPPED = frozenset(("desc", "meta", "metadata", "lexicon", "lookup"))  # content not spoken
_UNSUPPORTED_PROSODY = ("pitch", "volume", "contour", "range", "duration")
_SPEAK = "<speak>"


@dataclass
class Run:
    """Spoken text with one voice, language and rate, and what follows it."""

    text: str  # marked text (overrides.py)
    voice: str | None
    lang: str | None
    rate: float
    break_s: float | None = None  # an exact silence after it (<break>)
    boundary: str = ""  # "p" or "s": a paragraph or sentence ends after it


@dataclass
class Document:
    runs: list[Run] = field(default_factory=list)
    lead_s: float = 0.0  # silence before the first run (a <break> first)
    marks: list[str] = field(default_factory=list)  # names, numbered as in the text
    warnings: list[str] = field(default_factory=list)

    def visible(self) -> str:
        """The text spoken, as a person reads it (no markup)."""
        return "\n".join(overrides.visible(r.text).strip() for r in self.runs)


@dataclass
class _Frame:
    name: str
    voice: str | None
    lang: str | None
    rate: float
    collect: list[str] | None = None  # say-as / sub / phoneme content
    attrs: dict[str, str] = field(default_factory=dict)
    skip: bool = False


def _local(name: str) -> str:
    return name.rsplit(":", 1)[-1] if not name.startswith("xml:") else name


def seconds(value: str) -> float | None:
    """'700ms', '1.5s', '2' (seconds) → seconds; None when it cannot be read."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)?\s*", value)
    if m is None:
        return None
    number = float(m.group(1))
    return number / 1000 if m.group(2) == "ms" else number


def rate_of(value: str) -> float | None:
    """A `<prosody rate>`: a keyword, a percentage ('150%', '+20%') or a multiplier."""
    value = value.strip().lower()
    if value in RATES:
        return RATES[value]
    m = re.fullmatch(r"([-+]?)(\d+(?:\.\d*)?)(%?)", value)
    if m is None:
        return None
    number = float(m.group(2))
    if m.group(3):
        return 1 + (number if m.group(1) != "-" else -number) / 100 if m.group(1) \
            else number / 100
    return number if not m.group(1) else None


class _Parser:
    def __init__(self, lang: str, normalize: Callable[[str, str], str],
                 check_phonemes: Callable[[str], None],
                 voice_lang: Callable[[str], str | None] | None = None) -> None:
        self.doc = Document()
        self.voice_lang = voice_lang
        self.lang = lang
        self.normalize = normalize
        self.check_phonemes = check_phonemes
        self.stack: list[_Frame] = []
        self.text: list[str] = []  # the current run's marked text
        self.settings: tuple[str | None, str | None, float] = (None, None, 1.0)
        self.expat = expat.ParserCreate()
        self.expat.buffer_text = True
        self.expat.StartElementHandler = self.start
        self.expat.EndElementHandler = self.end
        self.expat.CharacterDataHandler = self.chars
        self.expat.StartDoctypeDeclHandler = self.refuse
        self.expat.EntityDeclHandler = self.refuse
        self.expat.ExternalEntityRefHandler = self.refuse
        self.offset = (0, 0)  # lines and columns added in front of the client's text

    # ------------------------------------------------------------ errors
    def fail(self, message: str, code: str = ErrorCode.BAD_SSML) -> ProtocolError:
        line = self.expat.CurrentLineNumber - self.offset[0]
        column = self.expat.CurrentColumnNumber + 1 - (self.offset[1] if line == 1 else 0)
        return ProtocolError(code, f"SSML line {line}, column {column}: {message}")

    def refuse(self, *_: object) -> None:
        raise self.fail("document type and entity declarations are not allowed")

    def warn(self, message: str) -> None:
        if message not in self.doc.warnings:
            self.doc.warnings.append(message)
            log.info("SSML: %s", message)

    # ------------------------------------------------------------ runs
    def here(self) -> _Frame:
        return self.stack[-1]

    def close_run(self, boundary: str = "", break_s: float | None = None) -> None:
        """End the current run (if it says anything), with what follows it: marks alone
        wait for the next words."""
        text = "".join(self.text)
        voice, lang, rate = self.settings
        if any(ch.isalnum() for ch in overrides.visible(text)):
            self.doc.runs.append(Run(text, voice, lang, rate))
            self.text = []
        else:
            self.text = ["".join(overrides.mark(n) for _, n in overrides.marks_in(text))]
        last = self.doc.runs[-1] if self.doc.runs else None
        if break_s is not None:
            if last is None:
                self.doc.lead_s = min(MAX_BREAK_S, self.doc.lead_s + break_s)
            else:
                last.break_s = min(MAX_BREAK_S, (last.break_s or 0.0) + break_s)
        if boundary and last is not None and last.boundary != "p":
            last.boundary = boundary

    def switch(self, frame: _Frame) -> None:
        """Voice, language or rate changes: a new run from here."""
        settings = (frame.voice, frame.lang, frame.rate)
        if settings != self.settings:
            self.close_run()
            self.settings = settings

    def add(self, marked: str) -> None:
        self.text.append(marked)

    # ------------------------------------------------------------ events
    def start(self, raw: str, attrs: dict[str, str]) -> None:
        name = _local(raw)
        parent = self.stack[-1] if self.stack else None
        if parent is None and name != "speak":
            raise self.fail(f"the root element must be <speak>, not <{raw}>")
        if parent is not None and (parent.collect is not None or parent.skip):
            frame = _Frame(name, parent.voice, parent.lang, parent.rate,
                           skip=parent.skip or name in _SKIPPED)
            if parent.collect is not None and parent.name == "sub":
                frame.skip = True
            frame.collect = parent.collect  # nested inside say-as/phoneme: text only
            self.stack.append(frame)
            return
        voice = parent.voice if parent else None
        lang = attrs.get("xml:lang", "").strip().lower() or (parent.lang if parent else None)
        rate = parent.rate if parent else 1.0
        frame = _Frame(name, voice, lang, rate, attrs=attrs, skip=name in _SKIPPED)
        if name == "voice":
            unsupported = [a for a in ("gender", "age", "variant") if a in attrs]
            if unsupported:
                self.warn(f"<voice> {', '.join(unsupported)} not supported: give a name")
            frame.voice = attrs.get("name", "").strip() or frame.voice
            if frame.voice and self.voice_lang is not None and "xml:lang" not in attrs:
                frame.lang = self.voice_lang(frame.voice) or frame.lang
        elif name == "prosody":
            self.prosody(frame, attrs)
        elif name in ("p", "s", "paragraph", "sentence"):
            self.close_run("p" if name in ("p", "paragraph") else "s")
        elif name == "break":
            self.brk(attrs)
        elif name == "mark":
            if "name" not in attrs:
                raise self.fail("<mark> needs a name")
            self.add(overrides.mark(len(self.doc.marks)))
            self.doc.marks.append(attrs["name"])
        elif name in ("say-as", "sub", "phoneme"):
            frame.collect = []
            self.check_reading(name, attrs)
        elif name not in _TRANSPARENT and name not in _SKIPPED:
            self.warn(f"<{name}> is not supported: its text is read")
        self.stack.append(frame)
        self.switch(frame)

    def prosody(self, frame: _Frame, attrs: dict[str, str]) -> None:
        if "rate" in attrs:
            rate = rate_of(attrs["rate"])
            if rate is None or rate <= 0:
                raise self.fail(f"<prosody rate={attrs['rate'][:32]!r}>: give x-slow, slow, "
                                "medium, fast, x-fast, a percentage or a multiplier")
            frame.rate = frame.rate * rate
        ignored = [a for a in _UNSUPPORTED_PROSODY if a in attrs]
        if ignored:
            self.warn(f"<prosody> {', '.join(ignored)} not supported (Kokoro has no control "
                      "of it): read at the voice's own")

    def brk(self, attrs: dict[str, str]) -> None:
        if "time" in attrs:
            pause = seconds(attrs["time"])
            if pause is None:
                raise self.fail(f"<break time={attrs['time'][:32]!r}>: give e.g. 500ms or 1.5s")
        else:
            strength = attrs.get("strength", "medium").strip().lower()
            if strength not in STRENGTHS:
                raise self.fail(f"<break strength={strength[:32]!r}>: give one of "
                                f"{', '.join(STRENGTHS)}")
            pause = STRENGTHS[strength]
        if pause > MAX_BREAK_S:
            self.warn(f"a break longer than {MAX_BREAK_S:g} s is cut to {MAX_BREAK_S:g} s")
        self.close_run(break_s=pause)

    def check_reading(self, name: str, attrs: dict[str, str]) -> None:
        if name == "phoneme":
            alphabet = attrs.get("alphabet", "ipa").strip().lower()
            if alphabet not in ("ipa", "kokoro", "misaki"):
                raise self.fail(f"<phoneme alphabet={alphabet[:32]!r}> is not supported: "
                                "give IPA in Kokoro's phoneme set")
            if "ph" not in attrs:
                raise self.fail("<phoneme> needs ph")
            try:
                self.check_phonemes(attrs["ph"])
            except ProtocolError as exc:
                raise self.fail(exc.message, exc.code) from None
        if name == "sub" and "alias" not in attrs:
            raise self.fail("<sub> needs alias")
        if name == "say-as" and "interpret-as" not in attrs:
            raise self.fail("<say-as> needs interpret-as")

    def end(self, raw: str) -> None:
        frame = self.stack.pop()
        parent = self.stack[-1] if self.stack else None
        if parent is not None and parent.collect is not None and \
                frame.collect is parent.collect:
            return  # inside say-as, sub or phoneme: its text only
        if frame.collect is not None:
            self.finish_reading(frame)
        if parent is None:
            self.close_run()
            return
        if frame.name in ("p", "s", "paragraph", "sentence"):
            self.close_run("p" if frame.name in ("p", "paragraph") else "s")
        self.switch(parent)

    def finish_reading(self, frame: _Frame) -> None:
        written = " ".join("".join(frame.collect or []).split())
        lang = frame.lang or self.lang
        if frame.name == "phoneme":
            self.add(overrides.reading(written, " ".join(frame.attrs["ph"].split())))
        elif frame.name == "sub":
            alias = frame.attrs["alias"]
            self.add(overrides.respelled(written, alias) if written else
                     self.normalize(alias, lang))
        else:
            self.add(say_as(written, frame.attrs["interpret-as"],
                            frame.attrs.get("format", ""), lang))

    def chars(self, data: str) -> None:
        frame = self.stack[-1] if self.stack else None
        if frame is None or frame.skip:
            return
        if frame.collect is not None:
            frame.collect.append(data)
            return
        said = self.normalize(data, frame.lang or self.lang) if data.strip() else ""
        lead = " " if data[:1].isspace() else ""
        tail = " " if data[-1:].isspace() else ""
        self.add(f"{lead}{said.strip()}{tail}" if said.strip() else " " if data else "")

    # ------------------------------------------------------------ the whole
    def parse(self, text: str) -> Document:
        if not (looks_like_ssml(text) or text.lstrip().startswith(("<?xml", "<!"))):
            # bare text (or a fragment) given as SSML: as if inside <speak>
            self.offset = (0, len(_SPEAK))
            text = f"{_SPEAK}{text}</speak>"
        try:
            self.expat.Parse(text, True)
        except expat.ExpatError as exc:
            line = exc.lineno - self.offset[0]
            column = exc.offset + 1 - (self.offset[1] if line == 1 else 0)
            why = expat.errors.messages.get(exc.code, str(exc))
            raise ProtocolError(ErrorCode.BAD_SSML,
                                f"SSML line {line}, column {column}: {why}") from None
        except RecursionError:
            raise ProtocolError(ErrorCode.BAD_SSML, "SSML nests too deeply") from None
        pending = "".join(self.text)
        if pending and self.doc.runs:  # marks after the last words: at the end
            self.doc.runs[-1].text += pending
        return self.doc


def parse(text: str, lang: str, normalize: Callable[[str, str], str],
          check_phonemes: Callable[[str], None],
          voice_lang: Callable[[str], str | None] | None = None) -> Document:
    """The runs of an SSML document (`lang`: the request's; `normalize(text, lang)`: the
    plain-text cleanup; `check_phonemes`: raises for symbols outside the model's set;
    `voice_lang(name)`: a voice's language, raising for an unknown voice)."""
    return _Parser(lang, normalize, check_phonemes, voice_lang).parse(text)
