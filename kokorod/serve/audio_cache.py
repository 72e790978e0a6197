"""The audio of short requests heard again: editors and build scripts repeat "Build
finished", "Saved". A request that is one short segment is kept (bounded by bytes,
least recently used first out), keyed by everything that changes its sound: the model,
the voice or blend, speed, language, the text as spoken, its pause, the window
schedule and whether word marks were asked. A repeat streams the kept pieces and word
marks at once. Hits are counted in `status`; they are not latency (bench/ keeps its
texts new, so its numbers stay cold).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from kokorod.synth.guard import SegmentAudio
from kokorod.synth.segment import Segment
from kokorod.synth.vocoder import Audio
from kokorod.synth.words import WordTime

MAX_CHARS = 200  # longer requests are not kept: they are rarely repeated word for word


@dataclass
class Entry:
    pieces: list[Audio] = field(default_factory=list)
    words: list[WordTime] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(p.nbytes for p in self.pieces) + 64 * len(self.words)


class Replay:
    """Stands in for a SegmentAudio: the kept pieces, one a step."""

    def __init__(self, entry: Entry) -> None:
        self._pieces = iter(entry.pieces)
        self.words = list(entry.words)

    def step(self) -> Audio | None:
        return next(self._pieces, None)

    def interrupt(self) -> None:
        pass


class Recording:
    """A SegmentAudio whose pieces and word marks are kept once it has run to its end."""

    def __init__(self, inner: SegmentAudio, done: Callable[[Entry], None]) -> None:
        self._inner = inner
        self._done = done
        self._entry = Entry()

    @property
    def words(self) -> list[WordTime]:
        return self._inner.words

    def step(self) -> Audio | None:
        audio = self._inner.step()
        self._entry.words += self._inner.words  # the scheduler takes them after this step
        if audio is None:
            self._done(self._entry)
        else:
            self._entry.pieces.append(audio.copy())
        return audio

    def interrupt(self) -> None:
        self._inner.interrupt()


class AudioCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, Entry] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def begin(self, key: Hashable | None, start: Callable[[], SegmentAudio]) -> Any:
        """The segment's audio: kept pieces for a known `key`, else `start()`'s (kept when
        done). `key` None: not a request to keep."""
        if key is None or self.max_bytes <= 0:
            return start()
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            return Replay(entry)
        self.misses += 1
        return Recording(start(), lambda entry: self._put(key, entry))

    def _put(self, key: Hashable, entry: Entry) -> None:
        if not entry.pieces or entry.size > self.max_bytes // 4:
            return
        old = self._entries.pop(key, None)
        self.bytes += entry.size - (old.size if old else 0)
        self._entries[key] = entry
        while self.bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self.bytes -= dropped.size

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def status(self) -> dict[str, Any]:
        asked = self.hits + self.misses
        return {"entries": len(self._entries), "bytes": self.bytes,
                "max_bytes": self.max_bytes, "hits": self.hits, "misses": self.misses,
                "hit_rate": round(self.hits / asked, 3) if asked else None}


def key_for(segment: Segment, alone: bool, model: str, voice: str, speed: float, lang: str,
            words: bool, schedule: Hashable) -> Hashable | None:
    """The cache key of a request's first segment, or None when it is not kept (not the
    request's only segment, or too long). `schedule`: the engine's window plan (False:
    the whole model)."""
    if not alone or segment.index != 0 or len(segment.text) > MAX_CHARS:
        return None
    return (model, voice, round(speed, 4), lang, segment.text, segment.pause_s, words,
            schedule)
