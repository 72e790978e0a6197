"""Settings whose values are more than a number or a choice (the Wyoming address, the
window schedule): read here once, for config.py to check them when they are set and for
the layer that uses them, so the settings layer imports no domain module."""

from __future__ import annotations

import math
from urllib.parse import urlparse

WINDOW_FRAMES = (16, 400)  # a window's smallest and largest size, in 12.5 ms frames


def read_wyoming_uri(uri: str) -> tuple[str, str, int] | None:
    """A KOKORO_WYOMING_URI value → (scheme, host or socket path, port); None: off.
    `tcp://:N` and `tcp://localhost:N` are 127.0.0.1: another host only when named."""
    uri = uri.strip()
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "unix" and parsed.netloc + parsed.path:
        return "unix", parsed.netloc + parsed.path, 0
    if parsed.scheme == "tcp":
        try:
            port = parsed.port
        except ValueError:
            port = None
        if not port:
            raise ValueError(f"{uri!r} needs a port from 1 to 65535 (tcp://127.0.0.1:10200)")
        host = parsed.hostname or "localhost"
        return "tcp", "127.0.0.1" if host == "localhost" else host, port
    raise ValueError(f"{uri!r} is not tcp://host:port or unix:///path/to/socket")


def read_window_schedule(text: str) -> tuple[int, tuple[float, ...] | None] | None:
    """A KOKORO_WINDOW_SCHEDULE value: "auto" (None: calibrate), "N" (first window of N
    frames, no costs: (N, None)) or "N:gen_frame,gen_call,front_call,front_frame[,source_frame]"
    (ms, what `kokorod tune` writes: (N, seconds)). windows.parse makes it a Schedule; the
    text form is the setting's, so it is read here. ValueError says what is wrong."""
    text = text.strip().lower()
    if text in ("", "auto"):
        return None
    first_text, _, costs_text = text.partition(":")
    try:
        first = int(first_text)
    except ValueError:
        raise ValueError(f"window schedule {text!r}: expected auto, N or N:a,b,c,d[,e] "
                         "(N frames of 12.5 ms)") from None
    if not WINDOW_FRAMES[0] <= first <= WINDOW_FRAMES[1]:
        raise ValueError(f"window schedule: first window {first} frames is outside "
                         f"{WINDOW_FRAMES[0]}…{WINDOW_FRAMES[1]}")
    if not costs_text:
        return first, None
    try:
        values = [float(v) / 1000 for v in costs_text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (4, 5) or min(values) < 0 or values[0] <= 0 or not all(
            math.isfinite(v) for v in values):
        raise ValueError(f"window schedule {text!r}: costs must be four or five numbers of "
                         "ms (generator per frame > 0, per call, front per call, per frame, "
                         "source per frame)")
    return first, tuple(values)
