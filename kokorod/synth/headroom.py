"""Headroom: no sample beyond full scale, without touching anything below the knee.

Kokoro's output is not normalised: some voices and languages peak above 1.0 (a
Japanese voice reading Japanese reached 1.125), which 16-bit files and sound
devices clip hard. A memoryless soft knee leaves every sample under KNEE as it
is and bends the few above it smoothly towards 1.0 — deterministic sample by
sample, so windowed and whole synthesis agree, and no gain rides up and down
between utterances as per-utterance normalisation would.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

KNEE = 0.9


def soft_limit(audio: NDArray[np.float32]) -> NDArray[np.float32]:
    """`audio` with |samples| above KNEE bent below 1.0; the same array when none is."""
    if audio.size == 0 or float(np.max(np.abs(audio))) <= KNEE:
        return audio
    out = audio.copy()
    over = np.abs(out) > KNEE
    excess = (np.abs(out[over]) - KNEE) / (1.0 - KNEE)
    out[over] = np.sign(out[over]) * (KNEE + (1.0 - KNEE) * np.tanh(excess))
    return out
