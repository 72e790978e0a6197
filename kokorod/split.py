"""The model cut in three for the streaming vocoder, made once per model file and cached.

Kokoro's graph is text → features (BERT, duration/F0 predictors, decoder encode:
"front"), then the harmonic source from F0 ("source": sine generator, tanh, STFT),
then the generator that turns features + source into audio ("gen", ~90 % of the
time). Run in a chain the three parts reproduce the whole model bit for bit. The
generator is convolutional over time, so it can be run on windows of frames with a
little context either side; the source is computed for the whole segment first so
the sine phase stays continuous across windows. Cut with onnx.utils.Extractor at
the tensors named below; a model whose graph lacks them is used whole.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from kokorod import paths

log = logging.getLogger(__name__)

FEATURES = "/decoder/decoder/decode.3/Div_4_output_0"  # (1, 512, frames)
STYLE = "/decoder/Slice_output_0"  # (1, 128) acoustic half of the style vector
F0 = "/decoder/decoder/Unsqueeze_output_0"  # (1, 1, frames)
HARMONICS = "/decoder/decoder/generator/Concat_3_output_0"  # (1, 22, frames * 60 + 1)
# Frames per token (pads included), rounded as the decoder expands them; optional.
DURATIONS = "/encoder/Cast_output_0"
SAMPLES_PER_FRAME = 300  # 12.5 ms of audio at 24 kHz
HARMONIC_FRAMES_PER_FRAME = 60
LAYOUT_VERSION = 2

PARTS = {
    "front": (["tokens", "style", "speed"], [FEATURES, STYLE, F0]),
    "source": ([F0], [HARMONICS]),
    "gen": ([FEATURES, STYLE, HARMONICS], ["audio"]),
}


@dataclass(frozen=True)
class SplitFiles:
    front: Path
    source: Path
    gen: Path


def _cache_dir(sha256: str) -> Path:
    return paths.models_dir() / "split" / f"{sha256[:16]}-v{LAYOUT_VERSION}"


def split_model(model: Path, sha256: str) -> SplitFiles | None:
    """The three parts of `model`, cut now if not cached; None if the graph cannot be cut."""
    target = _cache_dir(sha256)
    files = SplitFiles(*(target / f"{name}.onnx" for name in PARTS))
    if all(p.is_file() for p in (files.front, files.source, files.gen)):
        return files
    try:
        import onnx
        import onnx.utils
    except ImportError:
        log.warning("the onnx package is missing; the streaming vocoder is off")
        return None
    log.info("cutting %s for the streaming vocoder (once per model)", model.name)
    proto = onnx.load(str(model))
    tensors = {out for node in proto.graph.node for out in node.output}
    missing = [t for t in (FEATURES, STYLE, F0, HARMONICS) if t not in tensors]
    if missing or [i.name for i in proto.graph.input] != ["tokens", "style", "speed"]:
        log.warning("%s is not a Kokoro v1.0 graph this version can cut (%s); the streaming "
                    "vocoder is off", model.name, ", ".join(missing) or "inputs differ")
        return None
    extractor = onnx.utils.Extractor(proto)
    target.mkdir(parents=True, exist_ok=True)
    for name, (inputs, outputs) in PARTS.items():
        if name == "front" and DURATIONS in tensors:
            outputs = [*outputs, DURATIONS]
        part = extractor.extract_model(inputs, outputs)
        tmp = target / f".{name}.{os.getpid()}.tmp"
        onnx.save(part, str(tmp))
        os.replace(tmp, target / f"{name}.onnx")
    return files
