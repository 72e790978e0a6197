"""The engine: one warm model, a text segment → its audio, piece by piece.

kokoro-onnx supplies the phoneme vocabulary, espeak setup and voice loading;
the sessions themselves are created and owned here (providers, threads, arena)
and called directly, so the daemon decides threading, batching and fault
handling. A segment's audio comes through one interface, `begin()`, with two
strategies behind it: the whole model gives it in one piece; the streaming
vocoder (vocoder.py) gives it window by window, so a long segment starts
playing early and other requests get a turn between windows. Only one piece
runs at a time (the scheduler's worker thread calls in); on two cores one
inference already uses every core.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import onnxruntime as ort
from kokoro_onnx.tokenizer import Tokenizer
from kokoro_onnx.trim import trim as trim_silence

from kokorod.config import Config
from kokorod.store import models
from kokorod.synth import calibrate, headroom, norm_stats, providers, voices
from kokorod.synth.guard import EngineStats, Guard, SegmentAudio, give_up_coreml
from kokorod.synth.phonemes import Phonemizer, spoken_tokens
from kokorod.synth.segment import Segment
from kokorod.synth.vocoder import Audio, Prepared, Vocoder, cut_model
from kokorod.synth.windows import LEAD_FRAMES, Schedule, Windows
from kokorod.synth.words import WordTime, read_batches, shared_out, word_spans
from kokorod_common.protocol import SAMPLE_RATE, ProtocolError
from kokorod_common.voice_names import DEFAULT_VOICE, describe

log = logging.getLogger(__name__)

WARMUP_TEXT = "Warming up the speech engine."


class Engine:
    """Owns the sessions, voices, phonemizer and window plan; thread-safe for one caller."""

    def __init__(self, config: Config, schedule: Schedule | None = None) -> None:
        """`schedule`: the window plan to keep (a reload keeps the daemon's)."""
        self.config = config
        self.files = models.resolve(config.model_path, config.voices_path)
        try:
            self.voices = voices.VoiceTable(voices.load_pack(self.files.voices))
        except voices.VoiceError as exc:
            raise models.ModelError(str(exc)) from None
        if not self.voices.names():
            raise models.ModelError(f"voices file {self.files.voices} holds no voices")
        names = self.voices.names()
        self.default_voice = config.voice or (
            DEFAULT_VOICE if DEFAULT_VOICE in names else names[0])
        try:
            self.voices.style(self.default_voice)
        except ProtocolError as exc:
            raise models.ModelError(f"KOKORO_VOICE: {exc.message}") from None
        # Tokenizer init points phonemizer at kokoro-onnx's bundled espeak-ng.
        self.vocab: dict[str, int] = Tokenizer().vocab
        self.phonemize = Phonemizer(self.vocab)
        if config.lang:
            self.phonemize.check_lang(config.lang)
        self.stats = EngineStats()
        self.guard = Guard(self.stats, self)  # runs, faults and their remedy (guard.py)
        self._run_options = self.guard.run_options
        self.warmup_seconds = 0.0
        self.whole: ort.InferenceSession | None = None  # the model whole, or
        self.vocoder: Vocoder | None = None  # its three parts (streaming vocoder)
        self.cpu_only = False  # CoreML failed: everything on CPU
        self.norms: norm_stats.NormTables | None = None  # the voices' norm statistics
        self.provider = self._build()
        self.schedule = calibrate.schedule_for(self, schedule)

    # ------------------------------------------------------------ sessions
    def _build(self) -> providers.ProviderChoice:
        """The streaming vocoder's parts, else the whole model; warmed either way. CoreML
        that fails to load or to warm up is given up for CPU (`to_cpu`; at run time the
        guard decides)."""
        config = dataclasses.replace(self.config, provider="cpu") if self.cpu_only else \
            self.config
        self.whole = self.vocoder = None
        self._inputs: dict[int, tuple[str, bool]] = {}  # per session: token input, int speed
        cut = cut_model(self.files.model, self.files.sha256) if config.streaming_vocoder \
            else None
        if cut is not None:
            try:
                self.vocoder, choice = Vocoder.load(cut, self.files.model, config,
                                                     self._run_options)
                if self.vocoder.norm_channels and self.norms is None:
                    self.norms = norm_stats.NormTables(self.files.sha256,
                                                       self.vocoder.norm_channels,
                                                       self.voices.style)
                self._warm(required=self.on_coreml)
                return choice
            except Exception as exc:
                if self.on_coreml:
                    self.to_cpu(exc)
                    return self.provider
                log.warning("streaming vocoder off: %s", exc)  # use the model whole
                self.vocoder = self.norms = None

        def check(session: ort.InferenceSession) -> None:
            self.whole = session
            self._warm(required=session.get_providers()[0] != providers.CPU)

        self.whole, choice = providers.create_session(self.files.model, config, check=check)
        return choice

    @property
    def on_coreml(self) -> bool:
        sessions = [*(self.vocoder.parts.values() if self.vocoder else []),
                    *([self.whole] if self.whole is not None else [])]
        return any(s.get_providers()[0] == providers.COREML for s in sessions)

    def to_cpu(self, exc: BaseException) -> None:
        """CoreML failed with this model (`exc`): remember it, build everything on CPU."""
        why = give_up_coreml(self.files.model, exc)
        self.cpu_only = True
        choice = self.provider = self._build()
        choice.reason = f"CoreML failed ({why}); CPU since"
        choice.fallback_from = providers.COREML

    def _warm(self, required: bool = False) -> None:
        """Synthesize once (KOKORO_WARMUP); always on CoreML, where it is the check."""
        if not (self.config.warmup or required):
            return
        started = time.perf_counter()
        segment = Segment(WARMUP_TEXT, pause_s=0.0, index=0)
        for _ in self._pieces(segment, self.voices.style(self.default_voice), 1.0, "en-us",
                              None):
            pass
        self.warmup_seconds = time.perf_counter() - started

    def rebuild(self) -> None:
        """New sessions on the same providers (the guard's remedy for repeated faults)."""
        self.provider = self._build()

    def _feed(self, session: ort.InferenceSession, tokens: list[int], voice: Audio,
              speed: float) -> dict[str, Any]:
        kinds = self._inputs.get(id(session))
        if kinds is None:  # read once per session (a call costs more than the dict)
            inputs = {i.name: i for i in session.get_inputs()}
            kinds = self._inputs[id(session)] = (
                "input_ids" if "input_ids" in inputs else "tokens",
                "int" in (inputs["speed"].type if "speed" in inputs else "float"))
        style = voice[min(len(tokens), len(voice)) - 1]
        return {
            kinds[0]: np.array([[0, *tokens, 0]], dtype=np.int64),
            "style": np.asarray(style, dtype=np.float32).reshape(1, -1),
            "speed": np.array([speed], dtype=np.int32 if kinds[1] else np.float32),
        }

    def _tokens(self, phonemes: str) -> list[int]:
        return [self.vocab[p] for p in phonemes if p in self.vocab]

    def _read(self, text: str, lang: str, words: bool,
              skip_words: int = 0) -> tuple[list[str], list[list[tuple[int, int, int]]]]:
        return read_batches(self.phonemize, text, lang, words, skip_words)

    # ------------------------------------------------------------ the two strategies
    def _pieces(self, segment: Segment, voice: Audio, speed: float, lang: str,
                windows: Windows | None,
                words: list[WordTime] | None = None) -> Iterator[Audio]:
        """Unguarded: the segment's audio in pieces (windows None: a batch per piece);
        `words` (if given) learns where each word is heard before the piece holding it."""
        if self.vocoder is None:
            audio = self._whole_segment(segment, voice, speed, lang)
            if words is not None:
                words.extend(shared_out(segment, audio.size - int(segment.pause_s
                                                                  * SAMPLE_RATE)))
            yield audio
            return
        emitted = 0
        for p in self._prepare(segment, voice, speed, lang, words is not None):
            if windows is not None:
                windows.more = windows.more or p.follows
                windows.front(p.frames, p.remaining)
            while not p.done:
                start, sourced = p.next, p.source_runs
                frames = windows.next_frames() if windows else p.frames
                if p.norms is None:  # no statistics to give: a window would not sound
                    frames = p.remaining  # like the whole (vocoder.py), so the batch at once
                audio = self.vocoder.window(p, frames)
                if windows is not None:  # (and whether the step ran the source too)
                    windows.spent(audio.size, p.span, p.source_runs > sourced)
                if start == p.origin and words is not None:
                    words.extend(dataclasses.replace(w, sample=w.sample + emitted)
                                 for w in p.word_times())
                emitted += audio.size
                yield audio

    def _whole_segment(self, segment: Segment, voice: Audio, speed: float,
                       lang: str) -> Audio:
        assert self.whole is not None
        parts = []
        for batch in self._read(segment.rest, lang, False)[0]:  # the whole model cannot skip a head
            tokens = self._tokens(batch)
            if not tokens:
                continue
            out = self.whole.run(None, self._feed(self.whole, tokens, voice, speed),
                                 self._run_options)[0]
            audio = np.asarray(out, dtype=np.float32).ravel()
            if audio.size:
                trimmed = trim_silence(headroom.soft_limit(audio))[0]
                parts.append(np.ascontiguousarray(trimmed, dtype=np.float32))
        if not parts:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate([*parts, np.zeros(int(segment.pause_s * SAMPLE_RATE),
                                                dtype=np.float32)])

    def _prepare(self, segment: Segment, voice: Audio, speed: float, lang: str,
                 words: bool = False) -> Iterator[Prepared]:
        """The front of each batch, each when its audio is next; the audio starts just
        before the first token (a continuation: after its spoken head)."""
        assert self.vocoder is not None
        batches, their_words = self._read(segment.text, lang, words)
        skip = None  # tokens of the first batch that an earlier segment spoke
        if segment.spoken:
            if batches and self.vocoder.has_durations:
                skip = spoken_tokens(batches[0], self.phonemize(segment.spoken, lang),
                                     self.vocab)
            if skip is None:  # the head cannot be placed: read only the rest
                head = len(word_spans(segment.text)) - len(word_spans(segment.rest))
                batches, their_words = self._read(segment.rest, lang, words, head)
        tokenized = [self._tokens(batch) for batch in batches]
        last = max((n for n, tokens in enumerate(tokenized) if tokens), default=-1)
        for number, tokens in enumerate(tokenized):
            if not tokens:
                continue
            prepared = self.vocoder.prepare(
                lambda session, tokens=tokens: self._feed(session, tokens, voice, speed))
            prepared.words, prepared.tokens = their_words[number], len(tokens)
            prepared.norms = self._norm_feed(voice, prepared.frames)
            if number == 0 and skip is not None:
                prepared.start_after(skip)
            else:
                prepared.start_after(0, LEAD_FRAMES)
            if number == last:
                prepared.pause_s = segment.pause_s
            else:
                prepared.follows = True
            yield prepared

    def _norm_feed(self, voice: Audio, frames: int) -> dict[str, Any] | None:
        """The generator's norm inputs for a batch of `frames` in `voice` (None: the voice
        has no table, or the model's norms cannot be fed: each window uses its own)."""
        if self.norms is None or not (parts := self.voices.parts_of(voice)):
            return None
        return self.norms.feed(parts, frames)

    def build_norms(self, voice: str, texts: tuple[str, ...] = norm_stats.FIT_TEXTS
                    ) -> norm_stats.VoiceNorms:
        """Fit `voice`'s norm table (a voice or a blend's own) and keep it (`kokorod model
        norms`; never on a request's path: ~1 s of generator per text)."""
        assert self.vocoder is not None and self.norms is not None
        vocoder, name = self.vocoder, self.norm_name(voice)
        style = self.voice_style(name)
        lang = self.lang_for(voice, texts[0], None)  # a blend's first voice, as it is spoken
        table = norm_stats.build(texts, lambda text: vocoder.batch_norms(
            self.prepare(Segment(text, 0.0, 0), style, 1.0, lang)[0]),
            norm_stats.fingerprint(style))
        self.norms.add(name, table)
        return table

    def norm_name(self, voice: str) -> str:
        """What `voice`'s norm table is kept under: the installed name, or a blend's key."""
        parts = self.voices.parts_of(self.voice_style(voice)) or []
        return norm_stats.blend_key(parts) if len(parts) > 1 else self.voices.canonical(voice)

    # ------------------------------------------------------------ public
    @property
    def streaming(self) -> bool:
        return self.vocoder is not None

    def begin(self, segment: Segment, voice: Audio, speed: float, lang: str,
              windows: Windows | None = None, words: bool = False) -> SegmentAudio:
        """The segment's audio piece by piece (nothing runs until the first step): one piece
        with the whole model; with the streaming vocoder a window a step, on `windows`'
        plan. `words`: the SegmentAudio's `words` learn where each word is heard, each
        before the step that returns its first sample."""
        heard: list[WordTime] | None = [] if words else None
        return SegmentAudio(self.guard, f"segment {segment.index}",
                            self._pieces(segment, voice, speed, lang, windows, heard), heard)

    def synthesize(self, segment: Segment, voice: Audio, speed: float, lang: str) -> Audio:
        """One segment → float32 audio at 24 kHz, silence trimmed, pause appended."""
        pieces = list(self.begin(segment, voice, speed, lang))
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)

    def prepare(self, segment: Segment, voice: Audio, speed: float,
                lang: str) -> list[Prepared]:
        """The streaming vocoder's batches for a segment, to vocode by hand (tools, tests)."""
        return self.guard.run(f"segment {segment.index}",  # type: ignore[no-any-return]
                              lambda: list(self._prepare(segment, voice, speed, lang)))

    def voice_style(self, name: str | None) -> Audio:
        """A voice or a blend ("af_bella:0.6,af_sky:0.4"); typed errors for bad specs."""
        return self.voices.style(name or self.default_voice)

    def lang_for(self, voice: str | None, text: str, requested: str | None) -> str:
        """Request's lang, else KOKORO_LANG, else the voice's language."""
        lang = requested or self.config.lang or self.voices.lang_for(
            voice or self.default_voice, text)
        self.phonemize.check_lang(lang)
        return lang

    def voice_list(self) -> list[dict[str, str]]:
        return [describe(name) for name in self.voices.names()]

    def status(self) -> dict[str, Any]:
        from kokorod.synth.engine_status import describe_engine

        return describe_engine(self)
