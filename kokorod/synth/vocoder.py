"""The streaming vocoder: Kokoro cut in three, its generator run window by window.

Kokoro's graph is text → features (BERT, duration/F0 predictors, decoder encode:
"front"), then the harmonic source from F0 ("source": sine generator, tanh, STFT),
then the generator that turns features + source into audio ("gen", ~90 % of the
time). Run in a chain the three parts reproduce the whole model bit for bit. The
generator is convolutional over time, so it runs on windows of frames with a
little context either side, the overshoot cross-faded into the next window; the
source is run on a growing prefix of the batch's F0 (it is causal, so the phase stays
continuous and every prefix's samples are the whole's).
The model is cut once per model file (onnx.utils.Extractor at the tensors named
below) and cached; a model whose graph lacks them is used whole.

Windows follow a plan fixed for the daemon's life (windows.py), so one text
always gives the same audio; each window is one turn of the scheduler, so a new
request waits for one window, not a whole segment. A request's first window needs
only the source up to its end (the source is causal: the same samples as the
whole's); later windows run it further, a growing prefix at a time.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from kokoro_onnx.trim import rms as frame_rms
from kokoro_onnx.trim import trim as trim_silence
from numpy.typing import NDArray

from kokorod import progress
from kokorod.config import Config
from kokorod.synth import headroom, norm_graph, providers
from kokorod.synth.windows import (
    FADE_FRAMES,
    MIN_REST_FRAMES,
    SOURCE_MARGIN,
    WINDOW_CONTEXT,
    source_reach,
)
from kokorod.synth.words import WordTime
from kokorod_common import atomic, paths
from kokorod_common.protocol import SAMPLE_RATE

log = logging.getLogger(__name__)

Audio = NDArray[np.float32]

# ---------------------------------------------------------------- the graph cut
FEATURES = "/decoder/decoder/decode.3/Div_4_output_0"  # (1, 512, frames)
STYLE = "/decoder/Slice_output_0"  # (1, 128) acoustic half of the style vector
F0 = "/decoder/decoder/Unsqueeze_output_0"  # (1, 1, frames)
HARMONICS = "/decoder/decoder/generator/Concat_3_output_0"  # (1, 22, frames * 60 + 1)
# Frames per token (pads included), rounded as the decoder expands them; optional.
DURATIONS = "/encoder/Cast_output_0"
SAMPLES_PER_FRAME = SAMPLE_RATE // 80  # 12.5 ms of audio
# A generator output this loud (or not finite) is broken, not speech: Kokoro's whole
# model peaks around 1.0 at most, and the soft limiter would only hide the damage.
BROKEN_PEAK = 2.0
HARMONIC_FRAMES_PER_FRAME = 60
LAYOUT_VERSION = 3  # 3: the generator's norms take statistics from outside (norm_graph)
# The decoder sounds a token a little before its slot in the durations: the first
# sound of a text comes a median 30 ms before its first word's slot (energy onset, 50
# renderings, 5 voices) and PocketSphinx places words 78 ms early (bench/word_timing.py);
# word marks are moved this much earlier.
WORD_LEAD_FRAMES = 4  # 50 ms

PARTS = {
    "front": (["tokens", "style", "speed"], [FEATURES, STYLE, F0]),
    "source": ([F0], [HARMONICS]),
    "gen": ([FEATURES, STYLE, HARMONICS], ["audio"]),
}

# Windows (frames): windows.py plans them; the vocoder runs them.


@dataclass(frozen=True)
class CutFiles:
    front: Path
    source: Path
    gen: Path


def _cache_dir(sha256: str) -> Path:
    return paths.models_dir() / "split" / f"{sha256[:16]}-v{LAYOUT_VERSION}"


def cut_model(model: Path, sha256: str) -> CutFiles | None:
    """The three parts of `model`, cut now if not cached; None if the graph cannot be cut."""
    target = _cache_dir(sha256)
    files = CutFiles(*(target / f"{name}.onnx" for name in PARTS))
    if all(p.is_file() for p in (files.front, files.source, files.gen)):
        return files
    try:
        import onnx
        import onnx.utils
    except ImportError:
        log.warning("the onnx package is missing; the streaming vocoder is off")
        return None
    progress.say(f"preparing {model.name} for streaming (once per model)")
    proto = onnx.load(str(model))
    tensors = {out for node in proto.graph.node for out in node.output}
    missing = [t for t in (FEATURES, STYLE, F0, HARMONICS) if t not in tensors]
    if missing or [i.name for i in proto.graph.input] != ["tokens", "style", "speed"]:
        log.warning("%s is not a Kokoro v1.0 graph this version can cut (%s); the streaming "
                    "vocoder is off", model.name, ", ".join(missing) or "inputs differ")
        return None
    extractor = onnx.utils.Extractor(proto)
    for name, (inputs, outputs) in PARTS.items():
        if name == "front" and DURATIONS in tensors:
            outputs = [*outputs, DURATIONS]
        part = extractor.extract_model(inputs, outputs)
        if name == "gen" and not norm_graph.rewrite(part, _probe_feed()):
            log.warning("%s: the generator's norms are not of the expected form; windows "
                        "use their own statistics", model.name)
        with atomic.replacing(target / f"{name}.onnx") as tmp:
            onnx.save(part, str(tmp))
    return files


def _probe_feed(frames: int = 12) -> dict[str, NDArray[np.float32]]:
    """A small made-up input for the generator (norm_graph reads its channel counts)."""
    rng = np.random.default_rng(0)
    return {FEATURES: rng.standard_normal((1, 512, frames), np.float32) * 0.3,
            STYLE: rng.standard_normal((1, 128), np.float32) * 0.1,
            HARMONICS: rng.standard_normal((1, 22, frames * HARMONIC_FRAMES_PER_FRAME + 1),
                                           np.float32) * 0.1}


@dataclass
class Prepared:
    """One phoneme batch after the front and the source, and how far it is vocoded."""

    features: NDArray[np.float32]  # (1, 512, frames)
    style: NDArray[np.float32]
    # The source, (1, 22, n * 60 + 1) for the first n frames: a prefix of the batch's,
    # growing as windows need it (windows.source_reach), at last the whole.
    harmonics: NDArray[np.float32] | None
    frames: int
    f0: NDArray[np.float32] | None = None  # kept until the whole source is run
    durations: NDArray[np.int64] | None = None  # frames per token (in duration units)
    pause_s: float = 0.0  # silence after the last window (end of the segment)
    next: int = 0  # first frame not yet vocoded
    fade_tail: Audio | None = None  # previous window's overshoot, cross-faded into the next
    peak_rms: float = 0.0  # loudest frame so far: the tail is trimmed relative to the segment
    words: list[tuple[int, int, int]] = field(default_factory=list)  # (word, tokens from, to)
    tokens: int = 0  # the batch's tokens (without the pads)
    first_token: int = 0  # tokens before it were spoken by an earlier segment
    origin: int = 0  # first frame of the audio (after an earlier segment's head)
    lead_trim: int = 0  # samples of silence trimmed off the first window
    span: int = 0  # frames the last window ran the generator over (context included)
    # Silence a window ended on, held until a later window shows sound after it (dropped
    # if none does: the batch's end is then trimmed as the whole model's is).
    held: Audio | None = None
    source_runs: int = 0  # times the source has run for this batch (growing prefixes)
    # The whole batch's norm statistics, predicted (norm_stats): the generator's inputs.
    # None: each window is normalised by its own, and a small or silent window sounds
    # unlike the whole (its silence turns to noise): the engine then vocodes the batch
    # at once.
    norms: dict[str, NDArray[np.float32]] | None = None
    follows: bool = False  # another batch of the same segment comes after this one

    @property
    def remaining(self) -> int:
        return self.frames - self.next

    @property
    def done(self) -> bool:
        return self.next >= self.frames

    def start_after(self, tokens: int, lead: int = 0) -> None:
        """Begin the audio `lead` frames before the first token after the first `tokens`
        (tokens=0: skip the silence the model puts before the text, which the first
        window's trim would drop anyway; tokens>0: an earlier segment spoke them)."""
        if self.durations is None:
            return
        total = int(self.durations.sum())
        # +1: the pad token before the text; features run at a multiple of the duration
        # grid (2 × here), so scale by the ratio.
        done = int(self.durations[:tokens + 1].sum())
        at = min(self.frames - 1, round(done * self.frames / max(1, total)))
        self.next = self.origin = max(0, at - lead)
        self.first_token = tokens

    def word_times(self) -> list[WordTime]:
        """Where this batch's words are heard, from its audio's first sample (known once
        the first window is trimmed): from the frames the model gave each token, or, for
        a graph that does not say, an even share per token."""
        if not self.words:
            return []
        if self.durations is not None and self.durations.size >= 2:
            per = np.asarray(self.durations, dtype=np.float64)
        else:
            per = np.ones(max(self.tokens, max(w[2] for w in self.words)) + 2, np.float64)
        edges = np.concatenate([[0.0], np.cumsum(per)]) * (self.frames / max(1.0, per.sum()))
        last = edges.size - 2

        def at(token: int) -> int:  # +1: the pad token before the text
            frame = edges[min(token + 1, last)] - WORD_LEAD_FRAMES
            return math.floor((frame - self.origin) * SAMPLES_PER_FRAME + 0.5) - self.lead_trim

        out = []
        for word, lo, hi in self.words:
            if lo < self.first_token:
                continue
            start = max(0, at(lo))
            out.append(WordTime(word, start, max(1, at(hi) - start)))
        return out


class Vocoder:
    """The three parts' sessions: `prepare` runs front and source on a batch of tokens,
    `window` the generator on the next frames of it."""

    def __init__(self, sessions: dict[str, ort.InferenceSession],
                 run_options: ort.RunOptions) -> None:
        self.parts = sessions
        self._run_options = run_options
        self.has_durations = len(sessions["front"].get_outputs()) > 3
        # The generator's norms: their channel counts ([]: not rewritten), and the inputs
        # that make each window use its own statistics (the original graph, bit for bit).
        self.norm_channels = norm_graph.channels_of(sessions["gen"])
        self._own: dict[str, Any] = {}
        if self.norm_channels:
            self._own[norm_graph.OWN] = np.array(1.0, np.float32)
            for k, c in enumerate(self.norm_channels):
                self._own[norm_graph.mean_input(k)] = np.zeros((1, c, 1), np.float32)
                self._own[norm_graph.var_input(k)] = np.ones((1, c, 1), np.float32)

    @classmethod
    def load(cls, files: CutFiles, whole: Path, config: Config,
             run_options: ort.RunOptions) -> tuple[Vocoder, providers.ProviderChoice]:
        """Each part on the first provider that loads it; `whole` decides `auto` for all."""
        sessions = {}
        choice = None
        for name in PARTS:
            sessions[name], choice = providers.create_session(getattr(files, name), config,
                                                              whole=whole)
        assert choice is not None
        return cls(sessions, run_options), choice

    def prepare(self, feed: Callable[[ort.InferenceSession], dict[str, Any]]) -> Prepared:
        """`feed(session)`: the front's inputs (tokens, style, speed) for its session. The
        source runs when a window first needs it (`_harmonics`)."""
        front = self.parts["front"]
        features, style, f0, *durations = front.run(None, feed(front), self._run_options)
        return Prepared(features, style, None, int(features.shape[2]), f0,
                        np.asarray(durations[0]).ravel() if durations else None)

    def _harmonics(self, p: Prepared, hi: int) -> NDArray[np.float32]:
        """The source through frame `hi`. The source is causal (a prefix's samples are the
        whole's, tested), so it runs only as far as `windows.source_reach` says: the first
        window's through its end, then growing, so no step waits for the whole batch's."""
        k = HARMONIC_FRAMES_PER_FRAME
        have = 0 if p.harmonics is None else p.harmonics.shape[2] // k
        if p.harmonics is not None and (p.f0 is None or hi + SOURCE_MARGIN <= have):
            return p.harmonics
        assert p.f0 is not None
        upto = source_reach(have, hi, p.frames)
        f0 = p.f0[:, :, :upto] if upto < p.frames else p.f0
        p.harmonics = self.run_source(f0)
        p.source_runs += 1
        if f0 is p.f0:
            p.f0 = None
        return p.harmonics

    def run_source(self, f0: NDArray[np.float32]) -> NDArray[np.float32]:
        """The harmonic source for `f0` (1, 1, frames): (1, 22, frames * 60 + 1)."""
        return self.parts["source"].run(None, {F0: f0}, self._run_options)[0]

    def whole_source(self, p: Prepared) -> None:
        self._harmonics(p, p.frames)

    def _gen(self, feed: dict[str, Any], norms: dict[str, Any] | None,
             outputs: list[str] | None = None) -> list[Any]:
        """The generator on `feed`, its norms given `norms` (None: each its own)."""
        if self.norm_channels:
            feed.update(self._own if norms is None else norms)
        return self.parts["gen"].run(outputs or ["audio"], feed, self._run_options)

    def whole(self, p: Prepared) -> Audio:
        """The generator over the whole batch at once (what the windows are measured by)."""
        harmonics = self._harmonics(p, p.frames)
        out = self._gen({FEATURES: p.features, STYLE: p.style, HARMONICS: harmonics}, None)[0]
        return np.asarray(out, dtype=np.float32).ravel()

    def batch_norms(self, p: Prepared) -> tuple[int, NDArray[np.float32],
                                                NDArray[np.float32]]:
        """A batch's frames and its norms' statistics vocoded whole (a table's data)."""
        _, mean, var = self.whole_norms(p)
        return p.frames, mean, var

    def whole_norms(self, p: Prepared) -> tuple[Audio, NDArray[np.float32],
                                                 NDArray[np.float32]]:
        """The whole batch's audio and its norms' own statistics (per channel, every norm's
        one after another): what norm_stats fits its tables to."""
        assert self.norm_channels, "the generator was not rewritten"
        n = len(self.norm_channels)
        names = [norm_graph.own_mean_output(k) for k in range(n)] + \
            [norm_graph.own_var_output(k) for k in range(n)]
        harmonics = self._harmonics(p, p.frames)
        out = self._gen({FEATURES: p.features, STYLE: p.style, HARMONICS: harmonics}, None,
                        ["audio", *names])
        flat = [np.asarray(o, np.float32).ravel() for o in out[1:]]
        return (np.asarray(out[0], np.float32).ravel(), np.concatenate(flat[:n]),
                np.concatenate(flat[n:]))

    def window(self, p: Prepared, frames: int, trim: bool = True) -> Audio:
        """The next `frames` frames of `p` as audio, with context either side of the window;
        trimmed at the batch's edges (unless `trim` is False: sample for sample against
        `whole`), its pause appended after the last window."""
        a = p.next
        b = p.frames if p.frames - (a + frames) < MIN_REST_FRAMES else a + frames
        lo, hi = max(0, a - WINDOW_CONTEXT), min(p.frames, b + WINDOW_CONTEXT)
        k = HARMONIC_FRAMES_PER_FRAME
        feed = {FEATURES: p.features[:, :, lo:hi], STYLE: p.style,
                HARMONICS: self._harmonics(p, hi)[:, :, lo * k: hi * k + 1]}
        p.span = hi - lo
        full = np.asarray(self._gen(feed, p.norms)[0], dtype=np.float32).ravel()
        kept = full[(a - lo) * SAMPLES_PER_FRAME:(b - lo) * SAMPLES_PER_FRAME]  # (no context)
        if p.norms is not None and kept.size and not (np.isfinite(kept).all() and
                                                      np.abs(kept).max() < BROKEN_PEAK):
            # The predicted statistics do not fit this batch: never play what they made.
            # The rest of the batch at once, on its own statistics (like a voice without
            # a table: it sounds like the whole model).
            log.warning("a window's predicted norm statistics broke its audio: the rest "
                        "of the batch (%d frames) is vocoded at once", p.frames - a)
            p.norms, b, hi = None, p.frames, p.frames
            feed = {FEATURES: p.features[:, :, lo:hi], STYLE: p.style,
                    HARMONICS: self._harmonics(p, hi)[:, :, lo * k: hi * k + 1]}
            p.span = hi - lo
            full = np.asarray(self._gen(feed, None)[0], dtype=np.float32).ravel()
        n = SAMPLES_PER_FRAME
        audio = full[(a - lo) * n:(b - lo) * n]
        if p.fade_tail is not None:  # cross-fade over the previous window's overshoot
            fade = min(p.fade_tail.size, audio.size)
            ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
            audio = audio.copy()
            audio[:fade] = p.fade_tail[:fade] * (1 - ramp) + audio[:fade] * ramp
        first, last = a == 0, b == p.frames
        p.next = b
        if not last:  # keep a short overshoot to cross-fade into the next window
            tail_hi = min(hi, b + min(FADE_FRAMES, p.frames - b))
            p.fade_tail = full[(b - lo) * n:(tail_hi - lo) * n].copy()
        else:
            p.fade_tail = None
        audio = headroom.soft_limit(audio)
        if audio.size:
            p.peak_rms = max(p.peak_rms, float(frame_rms(y=audio).max()))
        if trim:
            audio = self._trim(p, audio, first, last)
        if last and p.pause_s:
            audio = np.concatenate([audio, np.zeros(int(p.pause_s * SAMPLE_RATE), np.float32)])
        return np.ascontiguousarray(audio)

    @staticmethod
    def _trim(p: Prepared, audio: Audio, first: bool, last: bool) -> Audio:
        """The silence before the batch's first sound and after its last goes, as in the
        whole model's trim. A window's trailing silence is held back: only a later
        window's sound shows whether it is a pause (then it is heard before that sound)
        or the batch's end (then it goes), so a last window of nothing but the end's
        silence leaves no tail behind in the window before."""
        _, (start, end) = trim_silence(audio, ref=p.peak_rms or 1.0)
        if end <= start:  # nothing but silence
            if first:  # before the first sound: it goes
                p.lead_trim = audio.size
            elif last:  # after the last: it goes, with what was held
                p.held = None
            else:  # a pause, or the end: the next window tells
                p.held = audio if p.held is None else np.concatenate([p.held, audio])
            return audio[:0]
        if first:
            p.lead_trim = start
            audio = audio[start:]
            end -= start
        if p.held is not None:
            audio = np.concatenate([p.held, audio])
            end += p.held.size
            p.held = None
        if last:
            return audio[:end]
        if end < audio.size:
            p.held = audio[end:]
        return audio[:end]
