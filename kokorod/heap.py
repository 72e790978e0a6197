"""Give freed heap memory back to the OS after each segment (glibc only).

Every segment has a new length, so numpy and onnxruntime allocate buffers of
ever-new sizes; glibc keeps the freed ones, and RSS creeps up. Measured on 24
mixed requests: RSS 243 → 348 MB without trimming, 214 → 210 MB with
malloc_trim(0) after every segment. Elsewhere (macOS) this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable


def _load_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_trim = _load_trim()


def release() -> bool:
    """Return free heap pages to the OS; False where the platform cannot."""
    if _trim is None:
        return False
    _trim(0)
    return True
