"""What each of the generator's instance norms would see over a whole batch, predicted
before vocoding, per voice.

A window vocoded with the whole batch's statistics sounds like the whole (norm_graph.py);
those are only known after the whole has run, but they are predictable: per channel, the
mean and the mean square over a batch follow `a + b / frames` for one voice closely (the
batch's length decides how much of it is the silence at its ends). The table holds a and
b for every channel of every norm, fitted per voice from a few texts vocoded whole
(`build`). A blend's statistics are its voices' predictions mixed by weight (means
arithmetically, variances geometrically: 0.4-0.7 dB closer to the whole than mixing the
tables, on two blends of unlike voices).

Tables are kept per model (sha256) in the data dir; the embedded model's ship with the
package (`kokorod/data/`), so every installed voice has one from the first request.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import threading
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kokorod.synth import norm_graph
from kokorod_common import atomic, paths

log = logging.getLogger(__name__)

Floats = NDArray[np.float32]

# Texts the tables are fitted on: lengths from a few words to a long sentence (the fit is
# over 1/frames), none of them a test's or the bench's text.
FIT_TEXTS = (
    "Yes, of course.",
    "Turn it off, please.",
    "The garden gate was open again.",
    "Why would anyone leave the lights on all night?",
    "Four small boats drifted past the harbour wall before dawn.",
    "If the train is late, wait for me by the clock in the main hall.",
    "She wrote the answer on the back of an envelope and slid it across the table.",
    "Nobody in the office remembered who had ordered the enormous box of oranges, but "
    "everyone took one.",
    "The museum opens at nine on weekdays, and visitors who arrive early can walk through "
    "the quiet galleries before the school groups come in.",
    "After three weeks of rain the river rose above the old stone markers, the fields "
    "along the valley turned to shallow lakes, and the farmers moved their animals up "
    "to the higher pastures until the water went down.",
    # 20 more (a few words to two clauses): with 30 texts the fit is 0.1 dB closer to the
    # whole over 160 frames and 0.1-0.4 dB between 140 and 160 (3 voices, 65 held-out
    # texts), which lets batches down to 140 frames be predicted (SHORTEST_PREDICTED).
    "Not now.",
    "Leave it by the door.",
    "The printer is jammed again.",
    "Could you post the forms to me before noon?",
    "A cold wind blew across the empty car park.",
    "He forgot his umbrella, so he waited under the bridge until the rain stopped.",
    "Bring two pencils.",
    "Where did you park the van?",
    "Our flight was moved to gate twelve.",
    "The children built a castle of sand and watched the tide wash it away.",
    "Please note that the library will close early on Friday for the staff meeting.",
    "Quiet, please.",
    "That was the last bus.",
    "My sister plays the cello in a small orchestra.",
    "If you see a fox in the garden, do not feed it, however hungry it looks.",
    "Three hundred people signed the letter asking the council to keep the pool open all "
    "summer.",
    "Right away.",
    "The soup needs more salt.",
    "Keep the receipt in case it breaks.",
    "When the electricity returned, every clock in the house was blinking twelve.",
)
MIN_VARIANCE = 1e-6
STYLE_KEY = "@style"  # beside each voice's table in a file: the fingerprint of its style
# Shorter batches are predicted as this long: the fit's 1/frames term is not extrapolated
# far below the shortest fitting text (~60 frames).
MIN_FRAMES = 32
# A variance is mean square − mean²: far below the fitted lengths the two extrapolated
# terms can cancel to nothing for a channel with a large mean, and a norm divided by ~0
# turns a word alone ("Hi.", "One,") into NaN and clipping (24 of 70 renders, 5 voices,
# ~100 frames), or for some voices into silence (af_sarah "Yes.", 130 frames). Batches
# shorter than this get no prediction: vocoded at once, they sound like the whole model
# (first audio as with kokoro-onnx: they are short). From 140 frames (two or three words,
# "Dinner will be ready soon.") the 30-text tables came 5.1 dB LSD from the whole (max
# 5.9; over 160 frames 4.7, max 6.3), against 5.9 (max 7.6) under 140.
SHORTEST_PREDICTED = 140


def blend_key(parts: Sequence[tuple[str, float]]) -> str:
    """The name a blend's own table is kept under: its voices by name, weights to 0.001
    (a blend's statistics are not the mix of its voices' — two unlike voices half and half
    were 6.2 dB LSD from the whole with mixed tables — so a blend used often gets its own)."""
    return ",".join(f"{name}:{weight:.3f}" for name, weight in sorted(parts))


def fingerprint(style: NDArray[Any]) -> str:
    """What a table was fitted for: a voice of the same name in another voices file is
    another voice, and its statistics differ."""
    data = np.ascontiguousarray(style, dtype=np.float32).tobytes()
    return hashlib.blake2b(data, digest_size=8).hexdigest()


@dataclass(frozen=True)
class VoiceNorms:
    """One voice's fit: rows mean a, mean b, mean-square a, mean-square b, per channel
    (every norm's channels one after another), and the fingerprint of its style table."""

    fit: Floats  # (4, channels)
    style: str = ""

    def predict(self, frames: int) -> tuple[Floats, Floats]:
        """Per channel, the mean and variance a batch of `frames` frames would have."""
        inv = 1.0 / max(MIN_FRAMES, frames)
        mean = self.fit[0] + self.fit[1] * inv
        square = self.fit[2] + self.fit[3] * inv
        return mean, np.maximum(square - mean * mean, MIN_VARIANCE)

    @staticmethod
    def fitted(frames: Sequence[int], means: Sequence[Floats],
               variances: Sequence[Floats]) -> VoiceNorms:
        """Least squares of each channel's mean and mean square on [1, 1/frames]."""
        x = np.stack([np.ones(len(frames)), 1.0 / np.asarray(frames, np.float64)], axis=1)
        m = np.stack(means).astype(np.float64)
        s = np.stack(variances).astype(np.float64) + m * m
        coef_m = np.linalg.lstsq(x, m, rcond=None)[0]
        coef_s = np.linalg.lstsq(x, s, rcond=None)[0]
        return VoiceNorms(np.concatenate([coef_m, coef_s]).astype(np.float32))



@dataclass(frozen=True)
class BlendNorms:
    """A blend's statistics from its voices' tables (weights sum to 1)."""

    parts: tuple[tuple[VoiceNorms, float], ...]

    def predict(self, frames: int) -> tuple[Floats, Floats]:
        predicted = [(n.predict(frames), w) for n, w in self.parts]
        mean = sum((m * w for (m, _), w in predicted), start=np.zeros_like(predicted[0][0][0]))
        log_var = sum((np.log(v) * w for (_, v), w in predicted),
                      start=np.zeros_like(predicted[0][0][1]))
        return mean.astype(np.float32), np.exp(log_var).astype(np.float32)


def _packaged(sha256: str) -> Path | None:
    try:
        path = resources.files("kokorod") / "data" / f"norm-stats-{sha256[:16]}.npz"
    except ModuleNotFoundError:
        return None
    return Path(str(path)) if path.is_file() else None


def _stored(sha256: str) -> Path:
    return paths.models_dir() / "norm-stats" / f"{sha256[:16]}.npz"


def _read(path: Path | None, channels: int) -> dict[str, VoiceNorms]:
    if path is None or not path.is_file():
        return {}
    try:
        with np.load(path) as data:
            return {name: VoiceNorms(np.asarray(data[name], np.float32),
                                     str(data[name + STYLE_KEY]) if name + STYLE_KEY in
                                     data.files else "")
                    for name in data.files if data[name].shape == (4, channels)}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        log.warning("cannot read voice statistics %s: %s", path, exc)
        return {}


class NormTables:
    """The tables of one model: packaged, then the data dir's (built here), by voice."""

    def __init__(self, sha256: str, channels: Sequence[int],
                 styles: Callable[[str], NDArray[Any]] | None = None) -> None:
        """`styles`: a voice's style table by name (to check a table was fitted for it)."""
        self.sha256 = sha256
        self.channels = list(channels)
        self.total = sum(self.channels)
        self._lock = threading.Lock()
        self._styles = styles
        self._matches: dict[str, bool] = {}
        self._mixed: set[str] = set()  # blends said to be mixed (the log, once each)
        self.voices = {**_read(_packaged(sha256), self.total),
                       **_read(_stored(sha256), self.total)}

    def has(self, voice: str) -> bool:
        return self._table(voice) is not None

    def _table(self, voice: str) -> VoiceNorms | None:
        """`voice`'s table if it was fitted for the style installed under that name."""
        table = self.voices.get(voice)
        if table is None or not table.style or self._styles is None:
            return table
        match = self._matches.get(voice)
        if match is None:
            match = self._matches[voice] = fingerprint(self._styles(voice)) == table.style
            if not match:
                log.warning("the statistics of %s were fitted for another voice of that name; "
                            "`kokorod model norms %s --again` fits them for this one",
                            voice, voice)
        return table if match else None

    def for_parts(self, parts: Sequence[tuple[str, float]]) -> VoiceNorms | BlendNorms | None:
        """The table of a voice or blend ([(name, weight)]): a blend's own if it was fitted,
        else its voices' mixed; None if a voice has none."""
        if len(parts) > 1:
            key = blend_key(parts)
            if (own := self._table(key)) is not None:
                return own
            if key not in self._mixed:  # said once per blend
                self._mixed.add(key)
                log.info("blend %s: its voices' statistics mixed; `kokorod model norms "
                         "'%s'` fits its own (closer to the whole)", key, key)
        found = [(self._table(name), w) for name, w in parts]
        if any(n is None for n, _ in found):
            return None
        if len(found) == 1:
            return found[0][0]
        return BlendNorms(tuple((n, w) for n, w in found if n is not None))

    def feed(self, parts: Sequence[tuple[str, float]], frames: int) -> dict[str, Any] | None:
        """The generator's norm inputs for a batch of `frames` in a voice or blend (None:
        a voice of it has no table, or the batch is shorter than SHORTEST_PREDICTED)."""
        table = self.for_parts(parts)
        if table is None or frames < SHORTEST_PREDICTED:
            return None
        return self.inputs(*table.predict(frames))

    def inputs(self, mean: Floats, var: Floats) -> dict[str, Any]:
        """The generator's inputs that give every norm these statistics (per channel)."""
        out: dict[str, Any] = {norm_graph.OWN: np.array(0.0, np.float32)}
        for k, (m, v) in enumerate(zip(self.split(mean), self.split(var), strict=True)):
            out[norm_graph.mean_input(k)] = m
            out[norm_graph.var_input(k)] = v
        return out

    def split(self, values: Floats) -> list[Floats]:
        """A (channels,) vector as one (1, C, 1) array per norm."""
        out, at = [], 0
        for c in self.channels:
            out.append(values[at:at + c].reshape(1, c, 1))
            at += c
        return out

    def add(self, voice: str, norms: VoiceNorms) -> None:
        """Keep a voice's table in the data dir (all of this model's, rewritten atomically)."""
        with self._lock:
            self.voices[voice] = norms
            self._matches.pop(voice, None)
            target = _stored(self.sha256)
            kept = _read(target, self.total)
            kept[voice] = norms
            _write(target, kept)

    def export(self, target: Path, names: Sequence[str]) -> None:
        """These voices' tables in one file, the form the package ships."""
        _write(target, {name: self.voices[name] for name in names if name in self.voices})


def _write(target: Path, tables: dict[str, VoiceNorms]) -> None:
    arrays: dict[str, Any] = {}
    for name, n in sorted(tables.items()):
        arrays[name] = n.fit
        if n.style:
            arrays[name + STYLE_KEY] = np.array(n.style)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic.write_bytes(target, buffer.getvalue())


Measure = Callable[[str], tuple[int, Floats, Floats]]


def build(texts: Sequence[str], measure: Measure, style: str = "") -> VoiceNorms:
    """A voice's table from `measure(text)` → (frames, per-channel mean, variance) of the
    whole batch, for each text; `style`: the fingerprint of the voice's style table."""
    frames, means, variances = [], [], []
    for text in texts:
        n, mean, var = measure(text)
        frames.append(n)
        means.append(mean)
        variances.append(var)
    return dataclasses.replace(VoiceNorms.fitted(frames, means, variances), style=style)
