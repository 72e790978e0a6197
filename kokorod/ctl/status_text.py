"""What `kokorod status` prints: the daemon's `status` reply as lines a person reads
(the reply itself is built by the daemon; `--json` prints it as it came)."""

from __future__ import annotations

from typing import Any


def status_lines(s: dict[str, Any]) -> str:
    """One row a line: name, then value."""
    e = s.get("engine", {})
    rows = [
        ("state", "running"),
        ("pid", s["pid"]),
        ("uptime", f"{s['uptime_s']:.0f} s"),
        ("socket", s["socket"]),
        ("model", f"{e.get('model_path')} (sha256 "
                  f"{'ok' if e.get('model_verified') else 'not a published model'})"),
        ("provider", f"{e.get('provider')} ({e.get('provider_reason')})"),
        ("threads", e.get("threads")),
        ("rss", f"{s['rss_bytes'] / 2**20:.0f} MiB"),
        ("requests", requests_line(s)),
        ("connections", s["connections"]),
        ("http", http_line(s.get("http"))),
        ("wyoming", (w := s.get("wyoming") or {}).get("uri") or w.get("error") or "off"),
        ("engine", f"{e.get('segments')} segments, {e.get('audio_seconds')} s audio, "
                   f"RTF {e.get('rtf') if e.get('rtf') is not None else '–'}, "
                   f"{e.get('failures')} failures, "
                   f"{e.get('rebuilds')} rebuilds"),
        ("speech", speech_line(s.get("speech") or {})),
        ("caches", caches_line(s.get("caches") or {})),
    ]
    return "\n".join(f"{k:<12} {v}" for k, v in rows)


def caches_line(caches: dict[str, Any]) -> str:
    """Hit rates of the audio cache (repeated short requests) and the phoneme cache."""
    def one(name: str, c: dict[str, Any]) -> str:
        rate = "–" if c.get("hit_rate") is None else f"{100 * c['hit_rate']:.0f} %"
        size = f", {c['bytes'] / 2**20:.1f} MiB" if "bytes" in c else ""
        return f"{name} {c.get('hits', 0)} hits / {c.get('misses', 0)} misses ({rate}{size})"
    return "; ".join(one(n, c) for n, c in caches.items()) or "–"


def requests_line(s: dict[str, Any]) -> str:
    """Counts that add up: every request admitted is completed, cancelled, failed or still
    in flight; refused frames never became requests."""
    done = s["completed"] + s["cancelled"] + s.get("failed", 0)
    return (f"{s['requests']}: {s['completed']} completed, {s['cancelled']} cancelled, "
            f"{s.get('failed', 0)} failed, {max(0, s['requests'] - done)} in flight; "
            f"{s.get('refused', 0)} refused")


def speech_line(q: dict[str, Any]) -> str:
    """The daemon's own speaker: what plays, how many wait, paused or not."""
    playing = q.get("playing")
    now = (f"playing {playing['priority']} from {playing['client']}" if playing
           else "idle")
    paused = ", paused" if q.get("paused") else ""
    return f"{now}, {len(q.get('waiting') or [])} waiting{paused}"


def http_line(http: dict[str, Any] | None) -> str:
    if not http:
        return "– (a daemon too old to say)"
    if http.get("url"):
        return str(http["url"])
    return str(http.get("error") or "off")
