"""What a request will say: its text cleaned for speech, and — for SSML, inline
phonemes or a lexicon that applies — the runs, readings and marks beyond the text.

`prepare` is the one way from a `synthesize` request's text to what the engine
reads, used by admission (requests.py) and the `phonemes` op. Plain text without
any reading decided stays a plain string (`Spoken.runs` None), on the path it has
always taken.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from kokorod.synth import overrides, ssml
from kokorod.synth.ssml import Run
from kokorod.synth.text import prepare_text
from kokorod_common.protocol import ErrorCode, ProtocolError

# misaki's inline reading: [written words](/phonemes/)
_INLINE = re.compile(r"\[([^\[\]\n]{1,200})\]\(/([^/\n]{1,400})/\)")

Lexicon = Callable[[str, str], str]  # (spoken text, lang) → marked text


def no_lexicon(text: str, lang: str) -> str:
    return text


@dataclass
class Spoken:
    text: str  # as a person reads it: start.chars, segment marks, word marks' alignment
    runs: list[Run] | None = None  # None: plain text, read as `text`
    lead_s: float = 0.0
    marks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def phoneme_checker(vocab: dict[str, int]) -> Callable[[str], None]:
    """Raises bad_phonemes naming the symbols of a reading outside the model's set."""
    def check(phonemes: str) -> None:
        unknown = sorted({ch for ch in phonemes if ch not in vocab and not ch.isspace()})
        if unknown:
            raise ProtocolError(ErrorCode.BAD_PHONEMES,
                                f"phonemes {phonemes[:64]!r} use symbols outside Kokoro's "
                                f"phoneme set: {' '.join(unknown)}")
        if not phonemes.strip():
            raise ProtocolError(ErrorCode.BAD_PHONEMES, "empty phonemes")
    return check


def _inline(text: str, lang: str, normalize: bool, lexicon: Lexicon,
            check: Callable[[str], None]) -> str:
    """plain+ipa: `[Kokoro](/kˈOkəɹO/)` read as given, the rest as plain text."""
    out, at = [], 0
    for m in _INLINE.finditer(text):
        out.append(_plain(text[at:m.start()], lang, normalize, lexicon))
        phonemes = " ".join(m.group(2).split())
        check(phonemes)
        out.append(overrides.reading(" ".join(m.group(1).split()), phonemes))
        at = m.end()
    out.append(_plain(text[at:], lang, normalize, lexicon))
    return "".join(out)


def _plain(text: str, lang: str, normalize: bool, lexicon: Lexicon,
           text_format: str = "plain") -> str:
    if not text.strip():
        return text
    said = lexicon(prepare_text(text, text_format, lang, normalize), lang)
    lead = " " if text[:1].isspace() else ""
    tail = " " if text[-1:].isspace() else ""
    return f"{lead}{said.strip()}{tail}"


def prepare(text: str, text_format: str, lang: str, normalize: bool, vocab: dict[str, int],
            lexicon: Lexicon = no_lexicon,
            voice_lang: Callable[[str], str | None] | None = None) -> Spoken:
    """The request's text as it will be spoken; typed errors for bad SSML or phonemes."""
    check = phoneme_checker(vocab)
    if text_format == "ssml":
        doc = ssml.parse(text, lang, lambda t, lg: _plain(t, lg, normalize, lexicon), check,
                         voice_lang)
        return Spoken(doc.visible(), doc.runs, doc.lead_s, doc.marks, doc.warnings)
    if text_format == "plain+ipa":
        said = _inline(text, lang, normalize, lexicon, check)
    else:
        said = lexicon(prepare_text(text, text_format, lang, normalize), lang)
    if not overrides.has_markup(said):
        return Spoken(said)
    return Spoken(overrides.visible(said), [Run(said, None, None, 1.0)])
