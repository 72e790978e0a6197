"""Streaming vocoder: the cut model equals the whole one; windows sound like the whole.

Quality is judged against the unwindowed output of the same model: log-spectral
distance (natural-log magnitude, the scale on which int8 and fp32 Kokoro differ by
about 1.0), clicks at the seams, and no noise where the whole output is silent.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from kokoro_onnx.trim import trim as trim_silence
from testkit.metrics import lsd

from kokorod.config import load
from kokorod.synth import calibrate, headroom, providers, windows
from kokorod.synth import vocoder as vocoder_module
from kokorod.synth.engine import Engine
from kokorod.synth.segment import Segment
from kokorod.synth.vocoder import Prepared
from kokorod_common.protocol import SAMPLE_RATE

TEXTS = [
    "The quick brown fox jumps over the lazy dog, then it runs far away into the forest.",
    "I think we should meet again tomorrow morning at nine, if that still works for you.",
]


def _prepared(engine: Engine, text: str) -> Prepared:
    batches = engine.prepare(Segment(text, 0.0, 0), engine.voice_style(None), 1.0, "en-us")
    assert len(batches) == 1
    return batches[0]


def _untrimmed(engine: Engine, p: Prepared, sizes: list[int]) -> tuple[np.ndarray, list[int]]:
    """Windowed audio without edge trimming (so it lines up sample for sample)."""
    p = dataclasses.replace(p, next=0, fade_tail=None, peak_rms=0.0)
    vocoder = engine.vocoder
    assert vocoder is not None
    pieces, seams = [], []
    for i in range(10_000):
        if p.done:
            break
        pieces.append(vocoder.window(p, sizes[min(i, len(sizes) - 1)], trim=False))
        seams.append(p.next * vocoder_module.SAMPLES_PER_FRAME)
    return np.concatenate(pieces), seams[:-1]


def test_cut_model_reproduces_the_whole_model(engine: Engine) -> None:
    assert engine.streaming
    whole = ort.InferenceSession(str(engine.files.model),
                                 sess_options=providers.session_options(engine.config),
                                 providers=["CPUExecutionProvider"])
    voice = engine.voice_style(None)
    phonemes = engine.phonemize(TEXTS[0], "en-us")
    tokens = engine._tokens(phonemes)
    reference = whole.run(None, engine._feed(whole, tokens, voice, 1.0))[0].ravel()
    p = _prepared(engine, TEXTS[0])
    assert engine.vocoder is not None
    gen_whole = engine.vocoder.whole(p)
    assert p.frames * vocoder_module.SAMPLES_PER_FRAME == reference.size
    np.testing.assert_allclose(gen_whole, reference, atol=1e-5)


@pytest.mark.parametrize("text", TEXTS)
def test_windows_sound_like_the_whole(engine: Engine, text: str) -> None:
    p = _prepared(engine, text)
    assert engine.vocoder is not None
    whole = engine.vocoder.whole(p)
    windowed, seams = _untrimmed(engine, p, [64, 48, 96, 192, 384])
    assert windowed.size == whole.size and len(seams) >= 2
    assert lsd(windowed, whole) < 1.0
    jumps = np.abs(np.diff(windowed))
    typical = np.percentile(jumps, 99)
    at_seams = max(jumps[s - 3:s + 3].max() for s in seams)
    assert at_seams < 2 * typical, (at_seams, typical)
    # where the whole output is silent (the end), the windowed one is too
    quiet = np.sqrt(np.mean(whole[-2400:] ** 2))
    assert quiet < 1e-3 and np.sqrt(np.mean(windowed[-2400:] ** 2)) < 5e-3


def test_windowed_segment_is_trimmed_like_the_whole(engine: Engine) -> None:
    voice = engine.voice_style(None)
    seg = Segment(TEXTS[1], 0.2, 0)
    whole = engine.synthesize(seg, voice, 1.0, "en-us")
    batches = engine.prepare(seg, voice, 1.0, "en-us")
    assert engine.vocoder is not None
    pieces = [engine.vocoder.window(batches[0], 64)]
    while not batches[0].done:
        pieces.append(engine.vocoder.window(batches[0], 48))
    windowed = np.concatenate(pieces)
    assert len(pieces) >= 3
    assert abs(windowed.size - whole.size) < 0.1 * whole.size
    assert not windowed[-int(0.2 * 24000):].any()  # the pause is there, silent
    assert np.abs(windowed[:2400]).max() > 0.005  # leading silence trimmed


@pytest.mark.parametrize("text", TEXTS)
def test_a_last_window_of_only_the_ends_silence_leaves_no_tail(engine: Engine,
                                                                text: str) -> None:
    """When the last window holds nothing but the silence after the text, the silence the
    window before it ended on goes too (it was held back, not sent): the audio ends where
    the whole model's trimmed audio ends, not ~0.2 s later."""
    p = _prepared(engine, text)
    vocoder = engine.vocoder
    assert vocoder is not None
    _, (_, whole_end) = trim_silence(headroom.soft_limit(vocoder.whole(p)))
    origin = p.next
    pieces = [vocoder.window(p, p.remaining - 16), vocoder.window(p, 16)]
    assert pieces[-1].size == 0  # the last 16 frames: nothing but the end's silence
    end = origin * vocoder_module.SAMPLES_PER_FRAME + p.lead_trim + sum(x.size for x in pieces)
    assert abs(end - whole_end) <= 0.03 * SAMPLE_RATE, (end - whole_end) / SAMPLE_RATE


def test_vocoder_off_uses_the_whole_model(data_dir: Path) -> None:
    config = load({"KOKORO_DATA_DIR": str(data_dir), "KOKORO_STREAMING_VOCODER": "0"})
    engine = Engine(dataclasses.replace(config, warmup=False))
    assert not engine.streaming and engine.status()["streaming_vocoder"] is False
    audio = engine.synthesize(Segment("Whole model.", 0.0, 0), engine.voice_style(None), 1.0,
                              "en-us")
    assert 0.5 < audio.size / 24000 < 3
    # without the front's durations, words are placed by their share of the text
    heard = engine.begin(Segment("Three words here.", 0.0, 0), engine.voice_style(None), 1.0,
                         "en-us", words=True)
    pieces = []
    while (piece := heard.step()) is not None:
        pieces.append(piece)
    size = sum(p.size for p in pieces)
    assert [w.word for w in heard.words] == [0, 1, 2]
    starts = [w.sample for w in heard.words]
    assert starts[0] == 0 and starts == sorted(set(starts)) and starts[-1] < size


def test_a_graph_that_cannot_be_cut_is_used_whole(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx
    from onnx import TensorProto, helper

    monkeypatch.setenv("KOKORO_DATA_DIR", str(tmp_path))
    graph = helper.make_graph([helper.make_node("Identity", ["tokens"], ["audio"])], "g",
                              [helper.make_tensor_value_info("tokens", TensorProto.INT64, [1])],
                              [helper.make_tensor_value_info("audio", TensorProto.INT64, [1])])
    model = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph), str(model))
    assert vocoder_module.cut_model(model, "0" * 64) is None


DURATION_TEXTS = [
    "Hi.",
    "Numbers like three hundred and twelve, or a quarter past nine, take their time.",
    "She sells sea shells by the sea shore; the shells she sells are surely sea shells!",
    "Well, well, well... what have we here? A question, an exclamation, and a pause!",
    " ".join(["A long paragraph goes on and on, clause after clause, so that its phonemes "
              "need more than one batch of the model."] * 6),
]


@pytest.mark.parametrize("speed", [1.0, 1.7])
def test_front_durations_add_up_to_each_batch_of_audio(engine: Engine, speed: float) -> None:
    """The durations the front returns (word marks' timing) are the frames the decoder
    expanded: two feature frames per duration unit, 300 samples per frame."""
    voice = engine.voice_style(None)
    vocoder = engine.vocoder
    assert vocoder is not None and vocoder.has_durations
    batches = 0
    for text in DURATION_TEXTS:
        for p in engine.prepare(Segment(text, 0.0, 0), voice, speed, "en-us"):
            assert p.durations is not None and (p.durations > 0).sum() > 2
            assert 2 * int(p.durations.sum()) == p.frames
            if len(text) < 100:  # the generator's length is structural: short texts show it
                assert vocoder.whole(p).size == p.frames * vocoder_module.SAMPLES_PER_FRAME
            batches += 1
    assert batches > len(DURATION_TEXTS)  # the long paragraph took several batches


def test_first_window_with_the_source_prefix_equals_the_whole_sources(engine: Engine) -> None:
    """A batch's first window runs the source only up to its end (the source is causal),
    later windows a growing prefix: every window is bit-identical to the same window run
    on the whole batch's source."""
    voice = engine.voice_style(None)
    vocoder = engine.vocoder
    assert vocoder is not None
    fresh = engine.prepare(Segment(TEXTS[1], 0.0, 0), voice, 1.0, "en-us")[0]
    assert fresh.harmonics is None and fresh.f0 is not None  # nothing of the source yet
    full = dataclasses.replace(fresh)
    vocoder.whole_source(full)
    assert full.harmonics is not None and full.f0 is None
    first = vocoder.window(fresh, 32, trim=False)
    assert fresh.harmonics is not None and fresh.f0 is not None  # only a prefix so far
    assert fresh.harmonics.shape[2] < full.harmonics.shape[2]
    np.testing.assert_array_equal(first, vocoder.window(full, 32, trim=False))
    while not fresh.done:  # then a growing prefix: every window the same as the whole's
        np.testing.assert_array_equal(vocoder.window(fresh, 24, trim=False),
                                      vocoder.window(full, 24, trim=False))
    assert fresh.f0 is None and fresh.source_runs >= 2  # through the end at last
    assert full.done


def test_calibration_measures_this_machine_and_keeps_it(engine: Engine,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    """`auto`: the costs are measured on the engine's own sessions, planned from and kept
    for this machine (the test engine itself plans from fixed costs: helpers.py)."""
    monkeypatch.setenv("KOKORO_DATA_DIR", str(tmp_path))  # where the schedule is kept
    probe = copy.copy(engine)
    probe.config = dataclasses.replace(engine.config, window_schedule="auto")
    monkeypatch.setattr(calibrate, "BUSY_CORES", float("inf"))  # whatever else runs here
    measured = calibrate.schedule_for(probe)
    assert measured.source == "calibrated" and measured.measured
    costs = measured.costs
    # a window costs less than the audio it makes on any machine that can stream at all
    assert costs.gen(64) < 64 * windows.FRAME_S * 4
    assert measured.first == windows.first_window(costs)  # planned from what was measured
    kept = calibrate.schedule_for(probe)
    assert kept.source == "saved" and kept.costs == costs and kept.first == measured.first


def test_a_calibration_taken_on_a_busy_machine_is_not_kept(
        engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Measured while other processes kept the CPU busy (here: any load counts as busy),
    the costs are used for this start only, said so, and measured again next time."""
    monkeypatch.setenv("KOKORO_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(calibrate, "BUSY_CORES", -1.0)
    probe = copy.copy(engine)
    probe.config = dataclasses.replace(engine.config, window_schedule="auto",
                                       window_adapt=True)
    measured = calibrate.schedule_for(probe)
    assert measured.source == "calibrated" and not measured.pinned
    err = capsys.readouterr().err
    assert "measuring this machine's speed" in err and "taken again at the next start" in err
    assert calibrate.saved(calibrate.key(probe)) is None
    assert calibrate.schedule_for(probe).source == "calibrated"  # measured again


def test_a_failed_calibration_plans_for_a_slow_cpu_and_keeps_the_pin(
        engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """A measurement that fails never keeps the daemon from serving: the fallback plan,
    a fresh one per engine, pinned when KOKORO_WINDOW_ADAPT=0 says so, and nothing kept."""
    monkeypatch.setenv("KOKORO_DATA_DIR", str(tmp_path))

    def broken(engine: Engine, runs: int = 3) -> windows.Costs:
        raise RuntimeError("no clock today")

    monkeypatch.setattr(calibrate, "measure", broken)
    plans = []
    for adapt in (False, True):
        probe = copy.copy(engine)
        probe.config = dataclasses.replace(engine.config, window_schedule="auto",
                                           window_adapt=adapt)
        with caplog.at_level("WARNING", logger="kokorod.synth.calibrate"):
            plans.append(calibrate.schedule_for(probe))
        assert "no clock today" in caplog.text and "slow CPU" in caplog.text
    pinned, adapting = plans
    assert pinned.pinned and not adapting.pinned
    assert pinned.source == adapting.source == "fixed" and not pinned.measured
    assert pinned.first == windows.FALLBACK_FIRST and pinned.observed is not adapting.observed
    assert calibrate.saved(calibrate.key(engine)) is None
