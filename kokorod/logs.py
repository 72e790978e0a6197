"""Logging setup: quiet by default, debug with KOKORO_VERBOSE_LOGS=1."""

from __future__ import annotations

import logging
import os

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def verbose_requested() -> bool:
    return os.environ.get("KOKORO_VERBOSE_LOGS", "").strip().lower() in ("1", "true", "yes", "on")


def setup(verbose: bool | None = None, default_level: int = logging.WARNING) -> None:
    verbose = verbose_requested() if verbose is None else verbose
    level = logging.DEBUG if verbose else default_level
    logging.basicConfig(level=level, format=_FORMAT)
    logging.getLogger().setLevel(level)
    # phonemizer and onnxruntime are chatty at debug level; keep them at warning.
    for name in ("phonemizer", "kokoro-onnx", "kokoro_onnx"):
        logging.getLogger(name).setLevel(logging.WARNING if not verbose else logging.INFO)
    # The daemon's start, stop and reload lines, and where its front-ends listen: a few a
    # lifetime, always in the log.
    for name in ("kokorod.serve.server", "kokorod.serve.http_front",
                 "kokorod.serve.wyoming_front"):
        logging.getLogger(name).setLevel(level if verbose else logging.INFO)
