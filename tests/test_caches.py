"""The audio cache for repeated short requests and the phoneme cache: a repeat sounds the
same (and carries the same word marks), anything that changes the sound is a new entry,
long requests are not kept, and `status` counts hits apart from everything else."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from helpers import DaemonProc, kokorod_cli, raw_conn

from kokorod.serve.audio_cache import MAX_CHARS, AudioCache, Entry, key_for
from kokorod.synth.segment import Segment


def caches(daemon: DaemonProc) -> dict[str, Any]:
    with raw_conn(daemon.socket) as c:
        c.send({"op": "status", "id": 0})
        return c.recv()["caches"]


def request(daemon: DaemonProc, text: str, **fields: Any) -> tuple[bytes, list[dict[str, Any]]]:
    with raw_conn(daemon.socket) as c:
        c.send({"op": "synthesize", "id": 1, "text": text, **fields})
        frames = c.until_final(1)
    assert frames[-1]["op"] == "end", frames[-1]
    pcm = b"".join(f["pcm"] for f in frames if f["op"] == "chunk")
    chunks = [f["seq"] for f in frames if f["op"] == "chunk"]
    assert chunks == list(range(len(chunks)))
    return pcm, [f for f in frames if f["op"] == "mark"]


def test_a_repeated_short_request_is_served_from_the_cache(daemon: DaemonProc) -> None:
    text = "Cache check: build number seventeen finished."
    before = caches(daemon)["audio"]
    first, _ = request(daemon, text)
    second, _ = request(daemon, text)
    after = caches(daemon)["audio"]
    assert second == first and len(first) > 0
    assert after["misses"] == before["misses"] + 1 and after["hits"] == before["hits"] + 1
    assert after["entries"] == before["entries"] + 1 and after["bytes"] > before["bytes"]
    assert 0 < after["hit_rate"] <= 1
    # what changes the sound is another entry
    faster, _ = request(daemon, text, speed=1.3)
    other, _ = request(daemon, text, voice="bf_emma")
    assert faster != first and other != first
    assert caches(daemon)["audio"]["hits"] == after["hits"]
    shown = kokorod_cli("status", env=daemon.env).stdout
    assert re.search(r"caches\s+audio \d+ hits / \d+ misses \(\d+ %, [\d.]+ MiB\); "
                     r"phonemes \d+ hits", shown), shown


def test_word_marks_come_back_with_the_cached_audio(daemon: DaemonProc) -> None:
    text = "Cached words keep their marks."
    audio, marks = request(daemon, text, marks="word")
    again, marks_again = request(daemon, text, marks="word")
    assert again == audio and marks_again == marks
    assert [m["text"] for m in marks if m["kind"] == "word"] == text.rstrip(".").split()


def test_long_requests_are_not_kept(daemon: DaemonProc) -> None:
    text = ("This request is long enough to be more than one segment. " * 4).strip()
    assert len(text) > MAX_CHARS
    before = caches(daemon)["audio"]
    request(daemon, text)
    read_once = caches(daemon)["phonemes"]
    request(daemon, text)
    after, read_twice = caches(daemon)["audio"], caches(daemon)["phonemes"]
    assert (after["entries"], after["hits"], after["misses"]) == (
        before["entries"], before["hits"], before["misses"])
    # not kept as audio, so synthesized again; but its segments' phonemes are kept: the
    # second reading asks espeak nothing new
    assert read_twice["hits"] > read_once["hits"], (read_once, read_twice)
    assert read_twice["misses"] == read_once["misses"], (read_once, read_twice)


def test_the_cache_is_bounded_by_bytes_oldest_out() -> None:
    cache = AudioCache(max_bytes=4 * 40_000)
    for n in range(12):
        entry = Entry([np.zeros(10_000, np.float32)])  # 40 kB
        key = key_for(Segment(f"phrase {n}", 0.0, 0), True, "m", "v", 1.0, "en-us", False, True)
        cache._put(key, entry)
    status = cache.status()
    assert status["bytes"] <= 4 * 40_000 and status["entries"] == 4
    assert key_for(Segment("x" * (MAX_CHARS + 1), 0.0, 0), True, "m", "v", 1.0, "en-us",
                   False, True) is None
    assert key_for(Segment("two segments", 0.0, 0), False, "m", "v", 1.0, "en-us",
                   False, True) is None
