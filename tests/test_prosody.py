"""Sounds like Kokoro: kokorod's streamed audio against plain kokoro-onnx `create()` of the
same text and voice — duration, pauses inside, identical runs — and no sample beyond full
scale for any installed voice."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers import DaemonProc, raw_conn, stream_audio
from testkit.metrics import pauses

from kokorod.synth.headroom import KNEE, soft_limit

# Plain prose (nothing the text cleanup rewrites), sentences of many shapes.
TEXTS = [
    "The old bridge creaked under the weight of the cart, but it held.",
    "Good morning. The bakery on the corner opens early, and the bread is still warm "
    "when the first customers arrive.",
    "After the storm had passed and the wind had finally dropped, the fishermen pulled "
    "their boats back down to the water and set out again.",
    "Is the library open today? I would like to return these books before they are late.",
    "He painted the fence white; his sister painted the gate green. Neither of them "
    "finished before dark.",
    "Quietly, carefully, without a word to anyone, she packed her bag and left the house "
    "through the garden door.",
    # a heading, a short sentence, then one cut at a clause to follow it (segment.py)
    "Chapter 1.\n\nThe town woke slowly that morning. A thin fog lay over the harbour, and "
    "the gulls, usually so loud, seemed to have agreed to keep their voices down.",
]
DURATION_TOLERANCE = 0.06


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_duration_and_pauses_match_one_shot_and_runs_are_identical(
        daemon: DaemonProc, one_shot: Any, text: str) -> None:
    kokoro, voice = one_shot
    ours = stream_audio(daemon.socket, 1, text)
    again = stream_audio(daemon.socket, 2, text)
    theirs, _ = kokoro.create(text, voice=voice, lang="en-us")
    print(f"{ours.size / 24000:.2f} s vs {theirs.size / 24000:.2f} s, pauses "
          f"{pauses(ours)} vs {pauses(theirs)}")
    assert np.array_equal(ours, again), "the same request gave different audio"
    assert abs(ours.size / theirs.size - 1) <= DURATION_TOLERANCE
    # Every pause of ours (>= 0.12 s) has one in one-shot; there a shorter one (>= 0.06 s)
    # counts, so a pause at the detector's edge on another CPU is not a new pause.
    assert len(pauses(ours)) <= len(pauses(theirs, min_s=0.06))


def test_same_audio_under_load(daemon: DaemonProc) -> None:
    """Another client's long request in flight changes nothing in this one's audio."""
    text = TEXTS[2]
    alone = stream_audio(daemon.socket, 1, text)
    with raw_conn(daemon.socket) as busy:
        busy.send({"op": "synthesize", "id": 9, "text": " ".join(TEXTS * 3)})
        assert busy.recv()["op"] == "start"
        loaded = stream_audio(daemon.socket, 2, text)
        busy.send({"op": "cancel", "id": 9})
        assert busy.until_final(9)[-1]["op"] == "end"
    assert np.array_equal(alone, loaded)


LOUD = {"ja": "危ない！", "en": "HEY! Stop!"}  # short shouted lines: the loudest they get


def test_no_english_or_embedded_voice_peaks_beyond_full_scale(daemon: DaemonProc) -> None:
    with raw_conn(daemon.socket) as conn:
        conn.send({"op": "voices", "id": 0})
        names = [v["name"] for v in conn.recv()["voices"]]
    chosen = [n for n in names if n[0] in "abj"]
    assert len(chosen) >= 33  # 28 English, 5 embedded Japanese
    peaks = {name: float(np.abs(stream_audio(daemon.socket, i, LOUD.get(name[0], LOUD["en"]),
                                         voice=name)).max())
             for i, name in enumerate(chosen)}
    print({k: round(v, 3) for k, v in sorted(peaks.items(), key=lambda kv: -kv[1])[:8]})
    assert max(peaks.values()) <= 1.0


def test_soft_limit_leaves_the_body_alone_and_bends_peaks() -> None:
    x = np.linspace(-1.6, 1.6, 10_001, dtype=np.float32)
    y = soft_limit(x)
    body = np.abs(x) <= KNEE
    assert np.array_equal(y[body], x[body])
    assert np.abs(y).max() < 1.0 and np.all(np.diff(y) >= 0)  # monotonic, never clips
    quiet = np.full(100, 0.5, np.float32)
    assert soft_limit(quiet) is quiet
