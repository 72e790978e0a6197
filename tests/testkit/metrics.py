"""Summaries and the real-time playback simulation used by the bench."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

SAMPLE_RATE = 24_000


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary(values: Sequence[float]) -> dict[str, Any]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return {"n": 0}
    return {"n": len(vals), "p50": percentile(vals, 50), "p95": percentile(vals, 95),
            "min": min(vals), "max": max(vals)}


def simulate_playback(arrivals: Sequence[float], samples: Sequence[int], prebuffer: int,
                      rate: int = SAMPLE_RATE) -> dict[str, Any]:
    """A consumer that starts after `prebuffer` chunks and drains at `rate` in real time.

    Returns the number of underruns (ran dry before the next chunk arrived; it
    then waits for `prebuffer` chunks again), the total stall time, and where each
    underrun came (`at_s`: seconds of audio played when it ran dry).
    """
    n = len(arrivals)
    if n == 0:
        return {"underruns": 0, "stall_s": 0.0, "start_s": None, "at_s": []}
    first = min(prebuffer, n) - 1
    t = arrivals[first]  # playback clock anchor
    start = t
    pos = 0.0  # samples played at time t
    available = float(sum(samples[: first + 1]))
    i = first + 1
    underruns, stall, at = 0, 0.0, []
    while True:
        t_empty = t + (available - pos) / rate
        while i < n and arrivals[i] <= t_empty:
            available += samples[i]
            i += 1
            t_empty = t + (available - pos) / rate
        if i >= n:
            break
        underruns += 1
        at.append(available / rate)
        j = min(i + prebuffer, n) - 1
        stall += arrivals[j] - t_empty
        t, pos = arrivals[j], available
        available += sum(samples[i: j + 1])
        i = j + 1
    return {"underruns": underruns, "stall_s": stall, "start_s": start, "at_s": at}


def gaps(arrivals: Sequence[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(arrivals)]


def lsd(a: np.ndarray, b: np.ndarray, n_fft: int = 1024, hop: int = 256) -> float:
    """Log-spectral distance on natural-log magnitudes (floor 80 dB below the peak).

    On this scale the int8 and fp32 Kokoro models differ by about 1.0 on the same text.
    """
    n = min(a.size, b.size)

    def spec(y: np.ndarray) -> np.ndarray:
        frames = np.lib.stride_tricks.sliding_window_view(y[:n], n_fft)[::hop]
        return np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1))

    sa, sb = spec(a), spec(b)
    floor = max(sa.max(), sb.max()) * 1e-4
    la, lb = np.log(np.maximum(sa, floor)), np.log(np.maximum(sb, floor))
    return float(np.mean(np.sqrt(np.mean((la - lb) ** 2, axis=-1))))


def pauses(audio: np.ndarray, rate: int = 24_000, min_s: float = 0.12,
           floor_db: float = -40.0, frame_s: float = 0.01) -> list[tuple[float, float]]:
    """Silences of at least `min_s` between speech: (start s, length s), edges excluded.

    A 10 ms frame is silent when its RMS is `floor_db` below the loudest frame's."""
    n = int(rate * frame_s)
    frames = audio[: audio.size // n * n].astype(np.float64).reshape(-1, n)
    if frames.size == 0:
        return []
    rms = np.sqrt((frames ** 2).mean(axis=1))
    silent = rms < rms.max() * 10 ** (floor_db / 20)
    voiced = np.flatnonzero(~silent)
    if voiced.size == 0:
        return []
    out = []
    run_start = None
    for i in range(voiced[0], voiced[-1] + 1):
        if silent[i] and run_start is None:
            run_start = i
        elif not silent[i] and run_start is not None:
            if (i - run_start) * frame_s >= min_s:
                out.append((run_start * frame_s, (i - run_start) * frame_s))
            run_start = None
    return out


# ---------------------------------------------------------------- against the whole
# The scale of issue 32's table: 512-point frames, hop 128, dB magnitudes (|X| floored at
# 1e-4), over the frames where the reference is speech (RMS above -40 dBFS).
_SPEECH_RMS = 0.01


def _frames(x: np.ndarray, n: int = 512, hop: int = 128) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(x, n)[::hop] * np.hanning(n)


def _speech(ref: np.ndarray) -> np.ndarray:
    fr = np.lib.stride_tricks.sliding_window_view(ref, 512)[::128]
    return np.sqrt((fr ** 2).mean(axis=1)) > _SPEECH_RMS


def lsd_db(a: np.ndarray, b: np.ndarray) -> float:
    """Log-spectral distance in dB between `a` and the reference `b`, over b's speech."""
    n = min(a.size, b.size)
    a, b = a[:n], b[:n]
    spec_a = 20 * np.log10(np.abs(np.fft.rfft(_frames(a), axis=1)) + 1e-4)
    spec_b = 20 * np.log10(np.abs(np.fft.rfft(_frames(b), axis=1)) + 1e-4)
    d = np.sqrt(((spec_a - spec_b) ** 2).mean(axis=1))
    mask = _speech(b)
    return float(d[mask].mean()) if mask.any() else math.nan


def _mel_bank(rate: int = SAMPLE_RATE, n_fft: int = 512, bands: int = 40) -> np.ndarray:
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    edges = hz(np.linspace(mel(0), mel(rate / 2), bands + 2))
    bins = np.fft.rfftfreq(n_fft, 1 / rate)
    bank = np.zeros((bands, bins.size))
    for i in range(bands):
        lo, mid, hi = edges[i:i + 3]
        bank[i] = np.clip(np.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)), 0, None)
    return bank


def _cepstrum(x: np.ndarray) -> np.ndarray:
    power = np.abs(np.fft.rfft(_frames(x), axis=1)) ** 2
    logmel = np.log(power @ _mel_bank().T + 1e-10)
    n = logmel.shape[1]
    dct = np.cos(np.pi / n * (np.arange(n)[:, None] + 0.5) * np.arange(n)[None, :]) \
        * np.sqrt(2 / n)
    return (logmel @ dct)[:, 1:14]


def mcd(a: np.ndarray, b: np.ndarray) -> float:
    """Mel-cepstral distance (dB, c1…c13) between `a` and the reference `b`, over b's speech."""
    n = min(a.size, b.size)
    ca, cb = _cepstrum(a[:n]), _cepstrum(b[:n])
    mask = _speech(b[:n])
    d = (10 / np.log(10)) * np.sqrt(2 * ((ca - cb) ** 2).sum(axis=1))
    return float(d[mask].mean()) if mask.any() else math.nan


def silence_dbfs(a: np.ndarray, ref: np.ndarray, frame: int = 300) -> float:
    """Level of `a` (dBFS RMS) where the reference is silent (below -40 dBFS)."""
    m = min(a.size, ref.size) // frame
    fa, fr = a[:m * frame].reshape(m, frame), ref[:m * frame].reshape(m, frame)
    quiet = np.sqrt((fr ** 2).mean(axis=1)) < _SPEECH_RMS
    if not quiet.any():
        return math.nan
    return float(20 * np.log10(np.sqrt((fa[quiet] ** 2).mean()) + 1e-12))


def sound_span(audio: np.ndarray, rate: int = SAMPLE_RATE, floor_db: float = -40.0,
               frame_s: float = 0.01) -> tuple[float, float]:
    """Seconds from the start to the first and to the end of the last 10 ms frame above
    `floor_db` dBFS RMS (the near-silence at -52 to -63 dBFS after speech counts as silence)."""
    n = int(rate * frame_s)
    frames = audio[: audio.size // n * n].astype(np.float64).reshape(-1, n)
    loud = np.flatnonzero(np.sqrt((frames ** 2).mean(axis=1)) > 10 ** (floor_db / 20))
    if loud.size == 0:
        return 0.0, 0.0
    return float(loud[0] * frame_s), float((loud[-1] + 1) * frame_s)
