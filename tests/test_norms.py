"""The generator's norms fed from outside: tables fitted, kept, mixed for blends, and windows
of any size that sound like the batch vocoded whole (log-spectral distance in dB over
speech, the scale of bench/vocoder_quality.py; the level where the whole is silent)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from testkit.metrics import lsd_db, silence_dbfs

from kokorod.synth import norm_graph, norm_stats
from kokorod.synth.engine import Engine
from kokorod.synth.segment import Segment
from kokorod.synth.vocoder import SAMPLES_PER_FRAME, Prepared

TEXTS = [
    "The quick brown fox jumps over the lazy dog, then it runs far away into the forest.",
    "Please hold the door for the children.",
]


def _prepared(engine: Engine, text: str, voice: str | None = None) -> Prepared:
    return engine.prepare(Segment(text, 0.0, 0), engine.voice_style(voice), 1.0, "en-us")[0]


def _windowed(engine: Engine, p: Prepared, size: int,
              norms: dict[str, Any] | None) -> np.ndarray:
    q = dataclasses.replace(p, next=p.origin, fade_tail=None, peak_rms=0.0, norms=norms)
    assert engine.vocoder is not None
    pieces = []
    while not q.done:
        pieces.append(engine.vocoder.window(q, size, trim=False))
    return np.concatenate(pieces)


def _whole(engine: Engine, p: Prepared) -> np.ndarray:
    assert engine.vocoder is not None
    return engine.vocoder.whole(dataclasses.replace(p))[p.origin * SAMPLES_PER_FRAME:]


def test_every_installed_english_voice_has_its_statistics(engine: Engine) -> None:
    assert engine.norms is not None and len(engine.vocoder.norm_channels) == 44
    missing = [v for v in engine.voices.names() if not engine.norms.has(v)]
    assert not missing, f"no statistics shipped for {missing}"


@pytest.mark.parametrize("text", TEXTS)
def test_windows_of_any_size_sound_like_the_whole(engine: Engine, text: str) -> None:
    """With the predicted statistics, 16-frame windows are as close to the whole as
    80-frame ones, far closer than windows normalised by their own, and as quiet where
    the whole is silent."""
    p = _prepared(engine, text)
    assert p.norms is not None
    whole = _whole(engine, p)
    fed = {size: _windowed(engine, p, size, p.norms) for size in (16, 80)}
    own16 = _windowed(engine, p, 16, None)
    for audio in fed.values():
        assert audio.size == whole.size
        assert lsd_db(audio, whole) < 6.5
        assert silence_dbfs(audio, whole) < silence_dbfs(whole, whole) + 4
    assert abs(lsd_db(fed[16], whole) - lsd_db(fed[80], whole)) < 1.0
    assert lsd_db(own16, whole) > lsd_db(fed[16], whole) + 2.0


FEW_WORDS = ["Download complete.", "The job failed.", "Time for a break.", "You have mail.",
             "Connection lost.", "Your coffee is ready."]


@pytest.mark.parametrize("voice", ["af_heart", "bf_emma"])
def test_a_few_words_are_windowed_and_sound_like_the_whole(engine: Engine, voice: str) -> None:
    """Two or three words (from SHORTEST_PREDICTED to 160 frames: what a notification
    says) get predicted statistics, so their first audio waits for a first window, not
    for the whole batch; their 16-frame windows are as close to the whole as a longer
    batch's, and quiet where the whole is silent."""
    windowed = 0
    for text in FEW_WORDS:
        p = _prepared(engine, text, voice)
        if not norm_stats.SHORTEST_PREDICTED <= p.frames < 160:
            continue
        windowed += 1
        assert p.norms is not None, (voice, text, p.frames)
        whole = _whole(engine, p)
        audio = _windowed(engine, p, 16, p.norms)
        assert np.isfinite(audio).all() and np.abs(audio).max() < 1.0, (voice, text)
        assert audio.size == whole.size and lsd_db(audio, whole) < 6.5, (voice, text)
        quiet = silence_dbfs(audio, whole)
        assert quiet < min(-45.0, silence_dbfs(whole, whole) + 6), (voice, text, quiet)
    assert windowed >= 3, f"{voice}: only {windowed} of the texts are in the range"


SHORT_WORDS = ["Hi.", "Yes.", "One,", "Four?", "OK", "Thanks!", "Wait."]


@pytest.mark.parametrize("voice", ["af_heart", "bm_george", "af_sarah"])
def test_a_word_alone_is_vocoded_whole_never_as_noise(engine: Engine, voice: str) -> None:
    """A batch far shorter than the fitting texts gets no predicted statistics (an
    extrapolated mean square minus mean² can cancel to nothing, and a norm divide by it):
    it is vocoded at once from its origin (a few lead frames short of the whole), and
    never comes out as NaN or noise."""
    for text in SHORT_WORDS:
        p = _prepared(engine, text, voice)
        assert (p.norms is None) == (p.frames < norm_stats.SHORTEST_PREDICTED), text
        whole = _whole(engine, p)
        audio = _windowed(engine, p, 16 if p.norms else p.remaining, p.norms)
        assert np.isfinite(audio).all() and np.abs(audio).max() < 1.0, (voice, text)
        assert audio.size == whole.size and lsd_db(audio, whole) < 8.0, (voice, text)


def test_a_window_broken_by_its_statistics_is_never_played(engine: Engine) -> None:
    """Statistics that do not fit the batch (here: every variance ~0) make audio that is
    not speech: the vocoder drops them and vocodes the rest of the batch at once on its
    own statistics, so what comes out is finite and no louder than the whole."""
    p = _prepared(engine, TEXTS[0])
    assert engine.norms is not None and p.norms is not None
    mean, var = engine.norms.for_parts(engine.voices.parts_of(
        engine.voice_style(None))).predict(p.frames)  # type: ignore[union-attr]
    broken = engine.norms.inputs(mean, np.full_like(var, 1e-9))
    whole = _whole(engine, p)
    audio = _windowed(engine, p, 16, broken)
    assert audio.size == whole.size and np.isfinite(audio).all()
    assert np.abs(audio).max() < max(0.95, 1.2 * np.abs(whole).max())


def test_the_oracles_statistics_bound_the_prediction(engine: Engine) -> None:
    """Fed the whole batch's own statistics, a 16-frame window comes closest: the table's
    prediction is measured against that."""
    assert engine.vocoder is not None and engine.norms is not None
    p = _prepared(engine, TEXTS[0])
    whole = _whole(engine, p)
    _, mean, var = engine.vocoder.whole_norms(dataclasses.replace(p))
    oracle = engine.norms.inputs(mean, var)
    best = lsd_db(_windowed(engine, p, 16, oracle), whole)
    predicted = lsd_db(_windowed(engine, p, 16, p.norms), whole)
    assert best < predicted < best + 2.5


def test_a_blend_uses_its_voices_statistics_mixed(engine: Engine) -> None:
    """Means mixed by weight, variances geometrically; windows of a blend of unlike voices
    still far closer to the whole than their own statistics make them."""
    assert engine.norms is not None
    p = _prepared(engine, TEXTS[1], "af_heart:0.6,bm_george:0.4")
    assert p.norms is not None
    (ma, va), (mb, vb) = (engine.norms.voices[v].predict(p.frames)
                          for v in ("af_heart", "bm_george"))
    c = engine.norms.channels[0]
    np.testing.assert_allclose(p.norms[norm_graph.mean_input(0)].ravel(),
                               (0.6 * ma + 0.4 * mb)[:c], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(p.norms[norm_graph.var_input(0)].ravel(),
                               (va ** 0.6 * vb ** 0.4)[:c], rtol=1e-4)
    whole = _whole(engine, p)
    assert lsd_db(_windowed(engine, p, 16, p.norms), whole) + 2.0 < \
        lsd_db(_windowed(engine, p, 16, None), whole)


def test_a_voice_without_statistics_is_vocoded_a_batch_at_a_time(engine: Engine) -> None:
    """No table: a window would be normalised by its own statistics, so the engine runs
    the batch at once (one piece per batch), sounding like the whole model."""
    assert engine.norms is not None
    kept = engine.norms.voices.pop("af_sky")
    try:
        pieces = _steps(engine, "af_sky")
        assert len(pieces) == 1 and pieces[0].size > SAMPLES_PER_FRAME * 100
    finally:
        engine.norms.voices["af_sky"] = kept
    windowed = _steps(engine, "af_sky")
    assert len(windowed) > 1


def _steps(engine: Engine, voice: str) -> list[np.ndarray]:
    """A segment's pieces, one per step, on the engine's plan."""
    from kokorod.synth.windows import Windows

    audio = engine.begin(Segment(TEXTS[0], 0.0, 0), engine.voice_style(voice), 1.0, "en-us",
                         Windows(engine.schedule))
    pieces = []
    while (piece := audio.step()) is not None:
        pieces.append(piece)
    return pieces


def test_a_fit_recovers_the_lines_it_was_made_from() -> None:
    """Per channel, mean and mean square linear in 1/frames: the fit finds both lines."""
    rng = np.random.default_rng(0)
    a_m, b_m = rng.normal(size=5), rng.normal(size=5) * 30
    a_s, b_s = a_m ** 2 + np.abs(rng.normal(size=5)) + 0.5, np.abs(rng.normal(size=5)) * 40
    frames = [40, 90, 200, 500]
    means = [a_m + b_m / t for t in frames]
    variances = [a_s + b_s / t - (a_m + b_m / t) ** 2 for t in frames]
    table = norm_stats.VoiceNorms.fitted(frames, means, variances)
    for t in (45, 120, 800):
        mean, variance = table.predict(t)
        np.testing.assert_allclose(mean, a_m + b_m / t, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(variance, a_s + b_s / t - (a_m + b_m / t) ** 2, rtol=1e-3)


def test_a_fitted_table_is_kept_and_found_again(engine: Engine, store: Path) -> None:
    """`build_norms` fits from texts vocoded whole and keeps the table in the data dir,
    where a new engine's tables find it (atomically rewritten, all of a model's voices in
    one file)."""
    assert engine.norms is not None
    before = engine.norms.voices.get("am_adam")
    try:
        table = engine.build_norms("am_adam", texts=("One two three.", "Four five six seven "
                                                     "eight nine ten eleven twelve."))
        assert table.fit.shape == (4, engine.norms.total) and np.isfinite(table.fit).all()
        again = norm_stats.NormTables(engine.files.sha256, engine.norms.channels)
        np.testing.assert_array_equal(again.voices["am_adam"].fit, table.fit)
        assert list(store.rglob("*.npz"))
    finally:
        if before is not None:
            engine.norms.voices["am_adam"] = before


def test_a_table_is_used_only_for_the_voice_it_was_fitted_for(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    """Another voices file may hold another voice under a known name: its table's
    fingerprint does not match, so that voice is vocoded a batch at a time, and the log
    says how to fit it."""
    assert engine.norms is not None
    other = norm_stats.NormTables(engine.files.sha256, engine.norms.channels,
                                  lambda name: engine.voices.style("af_bella"))
    with caplog.at_level("WARNING", logger="kokorod.synth.norm_stats"):
        assert not other.has("af_heart") and other.feed([("af_heart", 1.0)], 100) is None
    assert "kokorod model norms af_heart --again" in caplog.text
    assert other.has("af_bella") and engine.norms.has("af_heart")


def test_a_blend_fitted_on_its_own_uses_its_own_table(engine: Engine, store: Path) -> None:
    """`kokorod model norms "a:0.6,b:0.4"` fits the blend itself (its statistics are not its
    voices' mixed): kept under a key of its voices and weights, found for every spelling
    of that blend, and a blend of other weights still mixes its voices' tables."""
    assert engine.norms is not None
    key = engine.norm_name("bm_george:0.4,af_heart:0.6")
    assert key == norm_stats.blend_key([("af_heart", 0.6), ("bm_george", 0.4)])
    try:
        table = engine.build_norms("af_heart(3)+bm_george(2)", texts=(
            "One two three.", "Four five six seven eight nine ten eleven twelve."))
        found = engine.norms.for_parts([("bm_george", 0.4), ("af_heart", 0.6)])
        assert found is table and engine.norms.has(key)
        p = _prepared(engine, TEXTS[1], "af_heart:0.6,bm_george:0.4")
        mean, var = table.predict(p.frames)
        c = engine.norms.channels[0]
        assert p.norms is not None
        np.testing.assert_allclose(p.norms[norm_graph.mean_input(0)].ravel(), mean[:c])
        np.testing.assert_allclose(p.norms[norm_graph.var_input(0)].ravel(), var[:c])
        again = norm_stats.NormTables(engine.files.sha256, engine.norms.channels,
                                      engine.voices.style)
        assert again.has(key)
        other = engine.norms.for_parts([("af_heart", 0.5), ("bm_george", 0.5)])
        assert isinstance(other, norm_stats.BlendNorms)
    finally:
        engine.norms.voices.pop(key, None)
