"""Kokoro's voice names and what they say: the first letter is the language, the second
the gender (af_heart: American English, female). Shared, so a client can describe the
voices before a daemon is up (sd_kokoro's LIST VOICES at speech-dispatcher's start)."""

from __future__ import annotations

LANGS = {
    "a": "en-us", "b": "en-gb", "e": "es", "f": "fr-fr", "h": "hi", "i": "it", "j": "ja",
    "p": "pt-br", "z": "cmn",
}
GENDERS = {"f": "female", "m": "male"}
DEFAULT_VOICE = "af_heart"  # when installed (the v1.0 voices); else the first installed
# The 54 voices of Kokoro v1.0 (the daemon pins each file: kokorod/store/voice_packs.py).
V1_VOICES = (
    "af_alloy", "af_aoede", "af_bella", "af_heart", "af_jessica", "af_kore", "af_nicole",
    "af_nova", "af_river", "af_sarah", "af_sky", "am_adam", "am_echo", "am_eric", "am_fenrir",
    "am_liam", "am_michael", "am_onyx", "am_puck", "am_santa", "bf_alice", "bf_emma",
    "bf_isabella", "bf_lily", "bm_daniel", "bm_fable", "bm_george", "bm_lewis", "ef_dora",
    "em_alex", "em_santa", "ff_siwis", "hf_alpha", "hf_beta", "hm_omega", "hm_psi", "if_sara",
    "im_nicola", "jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo", "pf_dora",
    "pm_alex", "pm_santa", "zf_xiaobei", "zf_xiaoni", "zf_xiaoxiao", "zf_xiaoyi", "zm_yunjian",
    "zm_yunxi", "zm_yunxia", "zm_yunyang",
)


def describe(name: str) -> dict[str, str]:
    """Language and gender from the voice's prefix; empty where the name says nothing."""
    prefix = name.split("_", 1)[0]
    info = {"name": name, "language": "", "gender": ""}
    if len(prefix) == 2:
        info["language"] = LANGS.get(prefix[0], "")
        info["gender"] = GENDERS.get(prefix[1], "")
    return info
