"""The C heap: give freed memory back to the OS, and say where memory sits.

Every segment has a new length, so numpy and onnxruntime allocate buffers of
ever-new sizes; malloc keeps the freed ones, and RSS creeps up. Measured on 24
mixed requests: RSS 243 → 348 MB without trimming, 214 → 210 MB with
malloc_trim(0) after every segment; macOS has malloc_zone_pressure_relief for
the same. `stats()` (glibc's mallinfo2, smaps_rollup) is what the `status` op
reports so that a change in RSS can be told apart: heap in use, heap free but
kept, mmapped blocks, file-backed pages; elsewhere it is empty.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

_MALLINFO2_FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                     "uordblks", "fordblks", "keepcost")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2_FIELDS]


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


_lib = _libc()


def _load_trim() -> Callable[[int], int] | None:
    trim = getattr(_lib, "malloc_trim", None)  # musl and others have no malloc_trim
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


def _load_mallinfo2() -> Callable[[], _Mallinfo2] | None:
    info = getattr(_lib, "mallinfo2", None)  # glibc ≥ 2.33
    if info is None:
        return None
    info.argtypes = []
    info.restype = _Mallinfo2
    return info  # type: ignore[no-any-return]


_trim = _load_trim()
_mallinfo2 = _load_mallinfo2()


# mallopt parameters (glibc malloc.h)
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD = 128 * 1024
ARENA_MAX = 2


def configure() -> bool:
    """Set malloc up for a long-lived process fed buffers of ever-new sizes; call first thing.

    A fixed mmap threshold: every block of 128 KiB or more (audio, activations, the
    arena's chunks) is its own mapping, returned to the OS when freed. glibc's default
    raises the threshold after each such free, so those blocks soon come from the heap,
    where they fragment it: measured (bench/memory_rounds.py, 6 rounds of 64 requests)
    100+ MiB free but kept in the heap and RSS moving ±7 MiB from round to round,
    against 1.5 MiB and ±1 MiB with this. Two arenas instead of one per thread keep
    the worker's and the event loop's frees from parking memory in separate heaps.
    MALLOC_MMAP_THRESHOLD_ / MALLOC_ARENA_MAX in the environment win.
    """
    mallopt = getattr(_lib, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    if "MALLOC_ARENA_MAX" not in os.environ:
        mallopt(_M_ARENA_MAX, ARENA_MAX)
    return True


def load_release(platform: str = sys.platform, lib: Any = None) -> Callable[[], Any] | None:
    """How this platform's malloc gives free pages back: glibc's malloc_trim(0), macOS's
    malloc_zone_pressure_relief(NULL, 0) (every zone); None elsewhere."""
    if platform.startswith("linux"):
        trim = _trim if lib is None else getattr(lib, "malloc_trim", None)
        return None if trim is None else (lambda: trim(0))
    if platform == "darwin":
        try:
            lib = lib or ctypes.CDLL(ctypes.util.find_library("c"))
            relief = lib.malloc_zone_pressure_relief
        except (OSError, AttributeError, TypeError):
            return None
        if hasattr(relief, "argtypes"):  # the C function (tests pass a stand-in)
            relief.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
            relief.restype = ctypes.c_size_t
        return lambda: relief(None, 0)
    return None


_release = load_release()


def release() -> bool:
    """Return free heap pages to the OS; False where the platform cannot."""
    if _release is None:
        return False
    _release()
    return True


def _smaps_rollup() -> dict[str, int]:
    """Anonymous vs file-backed resident memory, in bytes (Linux)."""
    try:
        text = Path("/proc/self/smaps_rollup").read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Anonymous", "Private_Dirty", "Shared_Clean", "Private_Clean"):
            out[key.lower() + "_bytes"] = int(rest.split()[0]) * 1024
    return out


def stats() -> dict[str, int]:
    """Where the process's memory sits: malloc's view (in use, free but kept, mmapped)
    and the kernel's (anonymous vs file-backed). Empty where neither is available."""
    out = _smaps_rollup()
    if _mallinfo2 is not None:
        mi = _mallinfo2()
        out.update(heap_in_use_bytes=mi.uordblks, heap_free_bytes=mi.fordblks,
                   heap_mmapped_bytes=mi.hblkhd, heap_arena_bytes=mi.arena)
    return out
