"""The `phonemes` op: what the front will read for a text, segment by segment — the
phonemes after cleanup, SSML, inline readings and the user lexicon — so a user can
find a word's current reading before teaching a better one."""

from __future__ import annotations

import asyncio
from typing import Any

from kokorod.serve.requests import Requests
from kokorod.synth.run_stream import RunStream
from kokorod.synth.segment import FIRST_CHARS, MAX_CHARS, SegmentStream
from kokorod_common.protocol import parse_synthesize

MAX_SEGMENTS = 200


async def phonemes(requests: Requests, message: dict[str, Any]) -> dict[str, Any]:
    """The reply's fields (text, phonemes, segments, lexicon); typed errors as synthesize."""
    config, engine = requests.config, requests.engine
    req = parse_synthesize(message, max_text_chars=config.max_text_chars,
                           default_chunk_ms=config.chunk_ms)
    engine.voice_style(req.voice)
    lang = engine.lang_for(req.voice, req.text, req.lang)
    said = await requests.spoken(req, lang)
    stream = (RunStream(said.runs, said.lead_s) if said.runs is not None
              else SegmentStream(said.text))

    def read() -> list[dict[str, Any]]:
        from kokorod.synth import overrides

        out = []
        while len(out) < MAX_SEGMENTS and (seg := stream.next(FIRST_CHARS, MAX_CHARS)):
            if seg.spoken:  # the rest of a cut sentence: the head was given before
                continue
            seg_lang = getattr(seg, "lang", None) or lang
            out.append({"text": overrides.visible(seg.text).strip(),
                        "phonemes": engine.phonemize(seg.text, seg_lang), "lang": seg_lang,
                        "voice": getattr(seg, "voice", None) or req.voice
                        or engine.default_voice,
                        "speed": round(req.speed * getattr(seg, "rate", 1.0), 4)})
        return out

    segments = await asyncio.get_running_loop().run_in_executor(None, read)
    return {"text": said.text, "phonemes": " ".join(s["phonemes"] for s in segments),
            "segments": segments, "warnings": said.warnings,
            "lexicon": requests.lexicon.status()}
