"""Subtitle files from word marks: WebVTT (.vtt), SubRip (.srt), or every word's start and
end as JSON (.json). Cues follow the text's sentences, split where one would run past
two lines of 42 characters or 7 seconds; their text is the request's own."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from kokorod_client.audiofile import check_target
from kokorod_client.highlight import units
from kokorod_common import atomic
from kokorod_common.messages import Mark
from kokorod_common.protocol import SAMPLE_RATE

FORMATS = (".vtt", ".srt", ".json")
MAX_CUE_CHARS = 84
MAX_CUE_S = 7.0


@dataclass(frozen=True)
class Word:
    text: str
    start: float  # seconds
    end: float
    span: tuple[int, int]


def words_of(marks: list[Mark], total_samples: int) -> list[Word]:
    """The word marks as words of the text as written: marks sharing one span ("five",
    "dollars" of "$5") are one word, from the first's start to the last's end; the last
    word's length (the model's, with the silence it ends in) is cut at the end of the
    audio."""
    out: list[Word] = []
    for m in marks:
        if m.kind != "word" or m.span is None:
            continue
        start = m.sample / SAMPLE_RATE
        end = min(m.sample + m.samples, total_samples) / SAMPLE_RATE
        if out and out[-1].span == m.span:
            start = out.pop().start
        out.append(Word(m.text, start, max(start, end), m.span))
    return out


def cues(text: str, words: list[Word]) -> list[tuple[float, float, str]]:
    """(start, end, text) per cue: a sentence, or the part of it that fits."""
    bounds = [b for _, b in units(text)]
    out: list[tuple[float, float, str]] = []
    group: list[Word] = []

    def flush(last: bool) -> None:
        if not group:
            return
        a, b = group[0].span[0], group[-1].span[1]
        while last and b < len(text) and not text[b].isspace():  # its closing punctuation
            b += 1
        out.append((group[0].start, group[-1].end, " ".join(text[a:b].split())))
        group.clear()

    for w in words:
        if group:
            sentence_ended = any(group[-1].span[1] <= e <= w.span[0] for e in bounds)
            too_long = (w.span[1] - group[0].span[0] > MAX_CUE_CHARS
                        or w.end - group[0].start > MAX_CUE_S)
            if sentence_ended or too_long:
                flush(sentence_ended)
        group.append(w)
    flush(True)
    # A word's length is the model's and may reach into the next word: no cue overlaps the next
    return [(a, min(b, out[i + 1][0]) if i + 1 < len(out) else b, line)
            for i, (a, b, line) in enumerate(out)]


def vtt_text(text: str) -> str:
    """Cue text as WebVTT reads it: `&` and `<` start markup there, so they are escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clock(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def render(path: str, text: str, marks: list[Mark], total_samples: int) -> str:
    words = words_of(marks, total_samples)
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return json.dumps({
            "duration": round(total_samples / SAMPLE_RATE, 3),
            "words": [{"text": w.text, "start": round(w.start, 3), "end": round(w.end, 3),
                       "span": list(w.span)} for w in words]}, ensure_ascii=False, indent=1)
    sep = "." if suffix == ".vtt" else ","
    blocks = []
    for n, (start, end, line) in enumerate(cues(text, words), 1):
        timing = f"{_clock(start, sep)} --> {_clock(end, sep)}"
        blocks.append(f"{timing}\n{vtt_text(line)}" if suffix == ".vtt"
                      else f"{n}\n{timing}\n{line}")
    head = "WEBVTT\n\n" if suffix == ".vtt" else ""
    return head + "\n\n".join(blocks) + "\n"


def check_writable(path: str) -> str | None:
    """Why subtitles could not be written to `path` (None: they can): asked before any
    speech is synthesised, as the -o file's directory is."""
    if not path.lower().endswith(FORMATS):
        return f"--subtitles writes {', '.join(FORMATS)} files (from the extension)"
    problem = check_target(path)
    target = Path(path)
    if problem is None and not os.access(target if target.exists() else target.parent,
                                         os.W_OK):
        problem = f"cannot write {path}: permission denied"
    return problem


def write(path: str, text: str, marks: list[Mark], total_samples: int) -> None:
    atomic.write_text(Path(path), render(path, text, marks, total_samples))
