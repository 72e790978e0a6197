"""Intelligibility with a real recognizer: PocketSphinx (its wheel ships the en-us model).

`transcribe()` takes 24 kHz float audio, resamples it to the recognizer's 16 kHz
(a windowed-sinc low-pass, then 2:3 polyphase) and returns the words heard;
`wer()` is the word error rate against the text that was meant.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import numpy as np

RATE_IN, RATE_ASR = 24_000, 16_000
_TAPS = 97


@functools.lru_cache(maxsize=1)
def _lowpass() -> Any:
    """Low-pass at 7.2 kHz for the 48 kHz intermediate (after upsampling by 2)."""
    n = np.arange(_TAPS) - (_TAPS - 1) / 2
    cutoff = 7_200 / 48_000
    taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.blackman(_TAPS)
    return taps / taps.sum()


def to_16k(samples: Any) -> Any:
    """24 kHz → 16 kHz: up by 2, low-pass, down by 3."""
    x = np.asarray(samples, dtype=np.float64).ravel()
    up = np.zeros(x.size * 2)
    up[::2] = x * 2
    return np.convolve(up, _lowpass(), mode="same")[::3]


@functools.lru_cache(maxsize=1)
def _decoder() -> Any:
    from pocketsphinx import Decoder

    return Decoder(samprate=RATE_ASR, loglevel="FATAL")


def transcribe(samples: Any) -> str:
    """The words PocketSphinx hears in 24 kHz float audio, lower case."""
    pcm = np.clip(to_16k(samples) * 32767, -32768, 32767).astype("<i2").tobytes()
    decoder = _decoder()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr.lower() if hyp is not None else ""


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower().replace("’", "'"))


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: (substitutions + deletions + insertions) / reference words."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))


def align(samples: Any, text: str) -> list[tuple[str, float, float]]:
    """(word, start s, end s) for each word of `text` as PocketSphinx places it in 24 kHz
    float audio (forced alignment to the text; silences left out)."""
    from pocketsphinx import Decoder

    pcm = np.clip(to_16k(samples) * 32767, -32768, 32767).astype("<i2").tobytes()
    decoder = Decoder(samprate=RATE_ASR, bestpath=False, loglevel="FATAL")
    decoder.set_align_text(" ".join(words(text)))
    for second in (False, True):  # the first pass finds the words, the second times them
        if second:
            decoder.set_alignment()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
    frame = 1 / 100  # PocketSphinx counts 10 ms frames
    return [(w.name.split("(")[0], w.start * frame, (w.start + w.duration) * frame)
            for w in decoder.get_alignment() if not w.name.startswith(("<", "["))]
