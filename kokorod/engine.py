"""The engine: one warm onnxruntime session, text segment → trimmed audio.

kokoro-onnx supplies the phoneme vocabulary, espeak setup and voice loading;
the session itself is created and owned here (providers, threads, arena) and
called directly, so the daemon decides threading, batching and fault handling.
Only one segment runs at a time (the scheduler's worker thread calls in);
on two cores one inference already uses every core.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort
from kokoro_onnx.chunker import split_phonemes
from kokoro_onnx.config import MAX_PHONEME_LENGTH
from kokoro_onnx.tokenizer import Tokenizer
from kokoro_onnx.trim import trim as trim_silence
from numpy.typing import NDArray

from kokorod import heap, models, providers, voices
from kokorod.config import Config
from kokorod.protocol import SAMPLE_RATE, ErrorCode, ProtocolError
from kokorod.segment import Segment
from kokorod.voices import VoiceTable

log = logging.getLogger(__name__)

# phonemizer warns on every line whose word count changed (normal for
# punctuation-heavy text); keep that out of the daemon's log unless verbose.
_espeak_log = logging.getLogger("kokorod.phonemizer")
_espeak_log.setLevel(logging.ERROR)

WARMUP_TEXT = "Warming up the speech engine."
REBUILD_AFTER_FAILURES = 3
_MAX_LANG_BACKENDS = 8

Audio = NDArray[np.float32]


class EngineError(RuntimeError):
    """Inference failed for one segment; the request gets an engine_error frame."""


@dataclass
class EngineStats:
    segments: int = 0
    audio_seconds: float = 0.0
    busy_seconds: float = 0.0
    failures: int = 0
    consecutive_failures: int = 0
    rebuilds: int = 0
    last_error: str = ""
    started_at: float = field(default_factory=time.time)


class Phonemizer:
    """espeak-ng via phonemizer, one cached backend per language (5 ms → 0.2 ms a call)."""

    def __init__(self, vocab: dict[str, int]) -> None:
        from phonemizer.backend import EspeakBackend

        self._backend_cls = EspeakBackend
        self._vocab = vocab
        self._backends: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()  # espeak holds process-global state

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

    def __call__(self, text: str, lang: str) -> str:
        with self._lock:
            raw = self._backend(lang).phonemize([text], strip=True, njobs=1)[0]
        phonemes = "".join(p for p in raw if p in self._vocab)
        return " ".join(phonemes.split())


class Engine:
    """Owns the InferenceSession, voices and phonemizer; thread-safe for one caller."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.files = models.resolve(config.model_path, config.voices_path)
        try:
            self.voices = VoiceTable(voices.load_pack(self.files.voices))
        except voices.VoiceError as exc:
            raise models.ModelError(str(exc)) from None
        if not self.voices.names():
            raise models.ModelError(f"voices file {self.files.voices} holds no voices")
        self.default_voice = config.voice or self.voices.names()[0]
        try:
            self.voices.style(self.default_voice)
        except ProtocolError as exc:
            raise models.ModelError(f"KOKORO_VOICE: {exc.message}") from None
        # Tokenizer init points phonemizer at kokoro-onnx's bundled espeak-ng.
        self._tokenizer = Tokenizer()
        self.vocab: dict[str, int] = self._tokenizer.vocab
        self.phonemize = Phonemizer(self.vocab)
        if config.lang:
            self.phonemize.check_lang(config.lang)
        self.stats = EngineStats()
        self._lock = threading.Lock()
        self._run_options = providers.run_options()
        self.warmup_seconds = 0.0  # set by the warm-up inside _build_session
        self.session, self.provider = self._build_session()

    # ------------------------------------------------------------ session
    def _build_session(self) -> tuple[ort.InferenceSession, providers.ProviderChoice]:
        def warm(session: ort.InferenceSession) -> None:
            if self.config.warmup:
                started = time.perf_counter()
                self._run_session(session, self.phonemize(WARMUP_TEXT, "en-us"),
                                  self.voices.style(self.default_voice), 1.0)
                self.warmup_seconds = time.perf_counter() - started

        return providers.create_session(self.files.model, self.config, check=warm)

    def rebuild(self) -> None:
        """Replace the session after repeated failures (reported in status)."""
        log.warning("rebuilding the inference session after %d failures",
                    self.stats.consecutive_failures)
        self.session, self.provider = self._build_session()
        self.stats.rebuilds += 1
        self.stats.consecutive_failures = 0

    def _inputs(self, session: ort.InferenceSession) -> dict[str, Any]:
        return {i.name: i for i in session.get_inputs()}

    def _run_session(self, session: ort.InferenceSession, phonemes: str, voice: Audio,
                     speed: float) -> Audio:
        tokens = [self.vocab[p] for p in phonemes if p in self.vocab]
        if not tokens:
            return np.zeros(0, dtype=np.float32)
        inputs = self._inputs(session)
        token_name = "input_ids" if "input_ids" in inputs else "tokens"
        speed_type = inputs["speed"].type if "speed" in inputs else "tensor(float)"
        style = voice[min(len(tokens), len(voice)) - 1]
        feed = {
            token_name: np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": np.asarray(style, dtype=np.float32).reshape(1, -1),
            "speed": np.array([speed], dtype=np.int32 if "int" in speed_type else np.float32),
        }
        out = session.run(None, feed, self._run_options)[0]
        return np.asarray(out, dtype=np.float32).ravel()

    # ------------------------------------------------------------ public
    def voice_style(self, name: str | None) -> Audio:
        """A voice or a blend ("af_bella:0.6,af_sky:0.4"); typed errors for bad specs."""
        return self.voices.style(name or self.default_voice)

    def lang_for(self, voice: str | None, text: str, requested: str | None) -> str:
        """Request's lang, else KOKORO_LANG, else the voice's language."""
        lang = requested or self.config.lang or self.voices.lang_for(
            voice or self.default_voice, text)
        self.phonemize.check_lang(lang)
        return lang

    def synthesize(self, segment: Segment, voice: Audio, speed: float, lang: str) -> Audio:
        """One segment → float32 audio at 24 kHz, silence trimmed, pause appended."""
        phonemes = self.phonemize(segment.text, lang)
        if not phonemes:
            return np.zeros(0, dtype=np.float32)
        parts: list[Audio] = []
        started = time.perf_counter()
        with self._lock:
            try:
                for batch in split_phonemes(phonemes, MAX_PHONEME_LENGTH):
                    audio = self._run_session(self.session, batch, voice, speed)
                    if audio.size:
                        parts.append(_trim(audio))
                self.stats.consecutive_failures = 0
            except Exception as exc:
                self.stats.failures += 1
                self.stats.consecutive_failures += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.error("inference failed for segment %d: %s", segment.index, exc)
                if self.stats.consecutive_failures >= REBUILD_AFTER_FAILURES:
                    try:
                        self.rebuild()
                    except Exception as rebuild_exc:  # keep serving with the old session
                        log.error("session rebuild failed: %s", rebuild_exc)
                raise EngineError(f"inference failed: {type(exc).__name__}: {exc}") from exc
        heap.release()
        if not parts:
            return np.zeros(0, dtype=np.float32)
        pause = np.zeros(int(segment.pause_s * SAMPLE_RATE), dtype=np.float32)
        audio = np.concatenate([*parts, pause])
        self.stats.segments += 1
        self.stats.audio_seconds += audio.size / SAMPLE_RATE
        self.stats.busy_seconds += time.perf_counter() - started
        return audio

    def voice_list(self) -> list[dict[str, str]]:
        return [voices.describe(name) for name in self.voices.names()]

    def status(self) -> dict[str, Any]:
        s = self.stats
        return {
            "model_path": str(self.files.model),
            "voices_path": str(self.files.voices),
            "default_voice": self.default_voice,
            "model_sha256": self.files.sha256,
            "model_verified": self.files.verified,
            "model_embedded": self.files.embedded,
            "provider": self.provider.provider,
            "provider_reason": self.provider.reason,
            "threads": providers.thread_count(self.config),
            "onnxruntime": ort.__version__,
            "warmup_seconds": round(self.warmup_seconds, 3),
            "segments": s.segments,
            "audio_seconds": round(s.audio_seconds, 3),
            "busy_seconds": round(s.busy_seconds, 3),
            "rtf": round(s.busy_seconds / s.audio_seconds, 3) if s.audio_seconds else None,
            "failures": s.failures,
            "rebuilds": s.rebuilds,
            "last_error": s.last_error,
        }


def _trim(audio: Audio) -> Audio:
    trimmed, _ = trim_silence(audio)
    return np.ascontiguousarray(trimmed, dtype=np.float32)
