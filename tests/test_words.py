"""Word marks: where each word is heard (from the model's own durations) and where it is
written in the request's text; the recognizer's independent check; what kokoro-say makes
of them (a highlight on a terminal, subtitle files)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import DaemonProc, alsa_home, clocked_sink, raw_conn
from hypothesis import given, settings
from hypothesis import strategies as st
from testkit import asr
from tiers import examples

from kokorod.synth.segment import SegmentStream, clean
from kokorod.synth.text import prepare_text
from kokorod.synth.words import SourceMap, phoneme_spans, word_spans
from kokorod_client import subtitles
from kokorod_client.highlight import OFF, ON, WordHighlighter
from kokorod_common.abbreviations import ABBREVIATIONS as READ_IN_FULL
from kokorod_common.messages import Mark
from kokorod_common.player import JitterBuffer
from kokorod_common.protocol import SAMPLE_RATE
from kokorod_common.sentences import ABBREVIATIONS as SPLITTER_ABBREVIATIONS
from kokorod_common.sentences import sentence_spans

MARKDOWN = ("It costs **$5** a day, said Dr. Smith to the committee, and in the 1990s, 50% "
            "of people agreed with him about it. A much longer sentence follows here, with a "
            "clause or two in it, so that the reading goes on past the first segment.\n\n"
            "## Notes\n\nSee [the notes](https://example.com/a/b/c) now, please.")


def spoken_words(original: str, text_format: str = "plain") -> list[str]:
    spoken = clean(prepare_text(original, text_format))
    return [spoken[a:b] for a, b in word_spans(spoken)]


def segment_spans(original: str, text_format: str) -> list[tuple[str, str]]:
    """(spoken word, the original text it points at), segment by segment as the daemon."""
    spoken = prepare_text(original, text_format)
    source = SourceMap(original, clean(spoken))
    out = []
    for seg in SegmentStream(spoken):
        rest = seg.text[len(seg.spoken):].strip() if seg.spoken else seg.text
        words = [rest[a:b] for a, b in word_spans(rest)]
        out += [(w, original[a:b]) for w, (a, b) in zip(words, source.spans(rest), strict=True)]
    return out


# ---------------------------------------------------------------- no model


def test_spoken_words_point_at_what_was_written() -> None:
    pairs = segment_spans(MARKDOWN, "markdown")
    assert [w for w, _ in pairs] == spoken_words(MARKDOWN, "markdown")
    said = dict(pairs)
    assert said["five"] == said["dollars"] == "$5"
    assert said["Doctor"] == "Dr."
    assert said["nineteen"] == said["nineties"] == "1990s"
    assert said["fifty"] == said["percent"] == "50%"
    assert said["notes"] == "notes" and said["Notes"] == "Notes"
    assert not any("example" in written for _, written in pairs)  # the link's address


_WORDS = st.sampled_from(["the", "cat", "Dr.", "$5", "1990s", "50%", "**bold**", "x-ray",
                          "3.5", "don't", "Mr.", "e.g.", "café", "—", "2nd", "#4", "and"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_WORDS, st.sampled_from([" ", ", ", ". ", "\n\n", "; "])),
                min_size=1, max_size=60))
def test_every_spoken_word_gets_one_span_of_the_text(parts: list[tuple[str, str]]) -> None:
    original = "".join(w + sep for w, sep in parts)
    pairs = segment_spans(original, "markdown")
    assert len(pairs) == len(spoken_words(original, "markdown"))
    starts = [original.find(written) for _, written in pairs]
    assert all(s >= 0 for s in starts)


def test_phoneme_spans_find_words_espeak_joined_or_read_alone_differently() -> None:
    joined = "ɪnðə mˈɔːɹnɪŋ"  # "in the morning": espeak joins "in the"
    spans = phoneme_spans(["ˈɪn", "ðə", "mˈɔːɹnɪŋ"], joined)
    assert [joined[a:b] for a, b in spans] == ["ɪn", "ðə", "mˈɔːɹnɪŋ"]
    weak = "bˈɔːt ɐ nˈuː bˈaɪk"  # "bought a new bike": "a" alone reads as the letter
    spans = phoneme_spans(["bˈɔːt", "ˈeɪ", "nˈuː", "bˈaɪk"], weak)
    assert [weak[a:b] for a, b in spans] == ["bˈɔːt", "ɐ", "nˈuː", "bˈaɪk"]


def _word(text: str, at: float, length: float, span: tuple[int, int]) -> Mark:
    return Mark(int(at * SAMPLE_RATE), span[0], text, "word", int(length * SAMPLE_RATE), span)


def test_subtitles_follow_sentences_and_the_written_text() -> None:
    text = "Hello there, world. It costs $5!"
    marks = [_word("Hello", 0.1, 0.3, (0, 5)), _word("there", 0.45, 0.3, (6, 11)),
             _word("world", 0.8, 0.4, (13, 18)), _word("It", 1.6, 0.1, (20, 22)),
             _word("costs", 1.75, 0.3, (23, 28)), _word("$5", 2.1, 0.3, (29, 31)),
             _word("$5", 2.45, 0.4, (29, 31))]
    vtt = subtitles.render("a.vtt", text, marks, int(3.0 * SAMPLE_RATE))
    assert vtt.splitlines()[:6] == ["WEBVTT", "", "00:00:00.100 --> 00:00:01.200",
                                    "Hello there, world.", "", "00:00:01.600 --> 00:00:02.850"]
    assert vtt.splitlines()[6] == "It costs $5!"
    srt = subtitles.render("a.srt", text, marks, int(3.0 * SAMPLE_RATE))
    assert srt.splitlines()[:3] == ["1", "00:00:00,100 --> 00:00:01,200", "Hello there, world."]
    data = json.loads(subtitles.render("a.json", text, marks, int(3.0 * SAMPLE_RATE)))
    assert data["duration"] == 3.0 and len(data["words"]) == 6  # "$5": one word, two marks
    assert data["words"][0] == {"text": "Hello", "start": 0.1, "end": 0.4, "span": [0, 5]}
    assert data["words"][-1] == {"text": "$5", "start": 2.1, "end": 2.85, "span": [29, 31]}


def test_highlighter_redraws_the_sentence_with_the_word_in_reverse_video() -> None:
    out = io.StringIO()
    text = "One two three four five six. Next line."
    h = WordHighlighter(text, out, width=16)
    for word, span in (("One", (0, 3)), ("five", (19, 23)), ("Next", (29, 33))):
        h.word(Mark(0, span[0], word, "word", 1, span))
    h.close()
    shown = out.getvalue()
    assert f"{ON}One{OFF}" in shown and f"{ON}five{OFF}" in shown and f"{ON}Next{OFF}" in shown
    assert "\x1b[1F" in shown  # the wrapped sentence is redrawn from its first row
    assert shown.endswith("Next line.\x1b[K\n")  # left plain at the end


def test_heard_runs_at_the_sample_rate_capped_by_what_the_device_took() -> None:
    now = [0.0]
    buf = JitterBuffer(prebuffer=1, clock=lambda: now[0])
    for seq in range(4):
        buf.push(seq, np.zeros(SAMPLE_RATE // 2, np.float32))  # 2 s of audio
    block = np.zeros(SAMPLE_RATE, np.float32)
    buf.read(block)  # the device takes 1 s at once
    assert buf.heard() == 0
    now[0] = 0.25
    assert buf.heard() == SAMPLE_RATE // 4
    now[0] = 3.0
    assert buf.heard() == SAMPLE_RATE  # not more than it was handed
    buf.paused = True
    buf.read(block)
    now[0] = 9.0
    assert buf.heard() == SAMPLE_RATE  # a pause stops the clock


# ---------------------------------------------------------------- the daemon


def word_stream(daemon: DaemonProc, text: str, **fields: Any) -> list[dict[str, Any]]:
    with raw_conn(daemon.socket) as conn:
        conn.send({"op": "synthesize", "id": 1, "text": text, "marks": "word", **fields})
        frames = conn.until_final(1)
    assert frames[-1]["op"] == "end", frames[-1]
    return frames


def test_word_marks_cover_each_word_once_in_order_before_their_audio(
        daemon: DaemonProc) -> None:
    frames = word_stream(daemon, MARKDOWN, text_format="markdown")
    words = [f for f in frames if f["op"] == "mark" and f.get("kind") == "word"]
    segments = [f for f in frames if f["op"] == "mark" and f.get("kind") == "segment"]
    assert len(segments) >= 3  # the cut first sentence, its rest (read whole), the rest
    assert len(words) == len(spoken_words(MARKDOWN, "markdown"))
    samples = [w["sample"] for w in words]
    assert samples == sorted(set(samples))  # strictly increasing
    for w in words:
        a, b = w["span"]
        assert MARKDOWN[a:b] == w["text"] and w["samples"] > 0
    assert [w["text"] for w in words][:5] == ["It", "costs", "$5", "$5", "a"]
    # each mark comes before the chunk that holds its sample
    heard = 0
    for f in frames:
        if f["op"] == "chunk":
            heard += f["samples"]
        elif f["op"] == "mark":
            assert f["sample"] >= heard
    assert samples[-1] < frames[-1]["samples"]


def test_a_later_sentence_cut_at_a_clause_marks_each_word_once(daemon: DaemonProc) -> None:
    """After a short sentence, a long one is cut at a clause and then read whole
    (segment.py): its head's words are marked once, not again with the whole."""
    text = ("Good evening. After lunch, when everyone had gone home, the keeper sat by the "
            "lamp; he read until the oil ran low, and then he slept.")
    frames = word_stream(daemon, text)
    segments = [f for f in frames if f["op"] == "mark" and f.get("kind") == "segment"]
    assert [f["text"] for f in segments][:2] == ["Good evening.",
                                                 "After lunch, when everyone had gone home,"]
    words = [f for f in frames if f["op"] == "mark" and f.get("kind") == "word"]
    assert [w["text"] for w in words] == text.replace(",", "").replace(";", "")\
        .replace(".", "").split()
    samples = [w["sample"] for w in words]
    assert samples == sorted(set(samples))


def test_a_clock_time_is_one_written_word(daemon: DaemonProc) -> None:
    """"9:30 pm" is said "nine thirty P M": every spoken word points at the whole time,
    never at "9", ":" or "30" alone (the colon held a quarter second of its own)."""
    text = "It starts at 9:30 pm and ends at 10:15."
    assert [w for w, _ in segment_spans(text, "plain")][3:7] == ["nine", "thirty", "P", "M"]
    frames = word_stream(daemon, text)
    words = [(f["text"], tuple(f["span"])) for f in frames
             if f["op"] == "mark" and f.get("kind") == "word"]
    texts = [w for w, _ in words]
    assert ":" not in texts and "9" not in texts and "30" not in texts, words
    assert texts[3:] == ["9:30 pm"] * 4 + ["and", "ends", "at"] + ["10:15"] * 2, words


def test_japanese_gets_a_mark_per_run_of_text(daemon: DaemonProc) -> None:
    text = "こんにちは、世界。今日は いい天気ですね。"
    words = [f for f in word_stream(daemon, text, voice="jf_alpha")
             if f["op"] == "mark" and f.get("kind") == "word"]
    assert [w["text"] for w in words] == ["こんにちは", "世界", "今日は", "いい天気ですね"]
    assert [w["sample"] for w in words] == sorted({w["sample"] for w in words})


def test_word_marks_cost_nothing_in_the_audio(daemon: DaemonProc) -> None:
    text = "The same words, with and without word marks, make the same sound."
    with_marks = [f for f in word_stream(daemon, text) if f["op"] == "chunk"]
    with raw_conn(daemon.socket) as conn:
        conn.send({"op": "synthesize", "id": 2, "text": text})
        plain = [f for f in conn.until_final(2) if f["op"] == "chunk"]
    assert b"".join(f["pcm"] for f in with_marks) == b"".join(f["pcm"] for f in plain)


# Written for this test (the bench has its own): everyday words, two sentences each.
ALIGN = [
    "A gentle wind moved through the tall grass. The farmer watched from his porch.",
    "Our neighbor fixed the broken fence on Monday, and then he painted it green.",
    "We heard music coming from the house next door, so we knocked to say hello.",
]


@pytest.mark.parametrize("voice", ["af_heart", "am_michael"])
def test_word_starts_agree_with_a_recognizer(daemon: DaemonProc, voice: str) -> None:
    """PocketSphinx, aligning the same words to the audio on its own, places word starts
    a median 22–39 ms from kokorod's on the bench's texts (bench/word_timing.py); the
    bound leaves room for other texts and CPUs, far below a word's length."""
    errors = []
    for text in ALIGN:
        frames = word_stream(daemon, text, voice=voice)
        audio = np.concatenate([np.frombuffer(f["pcm"], np.float32)
                                for f in frames if f["op"] == "chunk"])
        marks = [f["sample"] / SAMPLE_RATE for f in frames
                 if f["op"] == "mark" and f.get("kind") == "word"]
        heard = asr.align(audio, text)
        assert [w for w, _, _ in heard] == asr.words(text)
        assert len(marks) == len(heard)
        errors += [m - start for m, (_, start, _) in zip(marks, heard, strict=True)]
    assert float(np.median(np.abs(errors))) < 0.07, np.round(errors, 3)
    assert float(np.percentile(np.abs(errors), 90)) < 0.15, np.round(errors, 3)


def test_played_speech_sends_word_marks_as_they_are_heard(speaker: Any) -> None:
    text = "Seven small birds sang on the old stone wall."
    with raw_conn(speaker.socket) as conn:
        conn.send({"op": "synthesize", "id": 5, "text": text, "play": True, "marks": "word"})
        frames = conn.until_final(5)
    ops = [f["op"] for f in frames]
    assert ops[:2] == ["start", "playing"] and ops[-1] == "end", ops
    words = [f for f in frames if f["op"] == "mark" and f.get("kind") == "word"]
    assert [w["text"] for w in words] == text.rstrip(".").split()
    assert [w["sample"] for w in words] == sorted(w["sample"] for w in words)


# ---------------------------------------------------------------- kokoro-say


def say(daemon: DaemonProc, *args: str, home: Path | None = None
        ) -> subprocess.CompletedProcess[str]:
    env = {**daemon.env, **({"HOME": str(home)} if home else {})}
    return subprocess.run([sys.executable, "-m", "kokorod_client.say", "--no-autostart",
                           *args], env=env, capture_output=True, text=True, timeout=180)


def test_say_writes_subtitles_timed_to_the_audio(daemon: DaemonProc, tmp_path: Path) -> None:
    import soundfile as sf

    text = "Subtitles come from word marks. Each cue is a sentence, timed to the audio."
    for suffix in (".vtt", ".srt", ".json"):
        wav, sub = tmp_path / "talk.wav", tmp_path / f"talk{suffix}"
        result = say(daemon, "-o", str(wav), "--subtitles", str(sub), text)
        assert result.returncode == 0, result.stderr
        seconds = sf.info(str(wav)).duration
        body = sub.read_text()
        if suffix == ".json":
            words = json.loads(body)["words"]
            assert [w["text"] for w in words] == re.findall(r"\w+", text)
            assert all(0 <= w["start"] < w["end"] <= seconds + 0.05 for w in words)
            continue
        times = re.findall(r"(\d\d):(\d\d):(\d\d)[.,](\d\d\d) --> (\d\d):(\d\d):(\d\d)[.,](\d\d\d)",
                           body)
        assert len(times) == 2, body
        assert "Subtitles come from word marks." in body
        assert "Each cue is a sentence, timed to the audio." in body
        ends = [int(t[6]) + int(t[7]) / 1000 for t in times]
        starts = [int(t[2]) + int(t[3]) / 1000 for t in times]
        assert starts[0] < ends[0] <= starts[1] < ends[1] <= seconds + 0.05
        assert body.startswith("WEBVTT") == (suffix == ".vtt")
    bad = say(daemon, "--subtitles", str(tmp_path / "x.txt"), text)
    assert bad.returncode != 0 and ".vtt" in bad.stderr


def say_in_tmux(daemon: DaemonProc, tmp_path: Path, text: str) -> tuple[list[str], str]:
    """`kokoro-say -i TEXT` in a real terminal (tmux, 120 columns) playing on a clocked
    sink: the words seen in reverse video, in order, and the screen at the end."""
    if shutil.which("tmux") is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is not installed; .ci/run installs it from Debian")
        pytest.skip("tmux is not installed")
    sink = clocked_sink()  # a device that plays in real time, as the words are timed
    script = tmp_path / "run.sh"
    env = " ".join(f"{k}='{v}'" for k, v in {**daemon.env, **sink.env}.items()
                   if "'" not in v and k.isidentifier())
    script.write_text(f"env -i {env} {sys.executable} -m kokorod_client.say --no-autostart "
                      f"-i '{text}'; echo DONE; sleep 30\n")
    server = ["tmux", "-L", f"kt{tmp_path.name[-8:]}"]
    subprocess.run([*server, "new-session", "-d", "-x", "120", "-y", "10", "-s", "t",
                    f"sh {script}"], check=True)
    seen: list[str] = []
    screen = ""
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            screen = subprocess.run([*server, "capture-pane", "-p", "-e", "-t", "t"],
                                    capture_output=True, text=True).stdout
            lit = re.findall(r"\x1b\[7m([^\x1b]*)\x1b\[", screen)
            if lit and (not seen or seen[-1] != lit[0]):
                seen.append(lit[0])
            if "DONE" in screen:
                break
            time.sleep(0.02)
    finally:
        subprocess.run([*server, "kill-server"], capture_output=True)
        sink.stop()
    return seen, screen


def test_say_i_highlights_each_word_in_a_terminal(daemon: DaemonProc, tmp_path: Path) -> None:
    """In a real terminal (tmux), `kokoro-say -i` shows the sentence with the word being
    heard in reverse video, moving word by word, and leaves the text plain at the end."""
    text = ("Seven small birds sang on the old stone wall, and then they flew away over "
            "the quiet green hills.")
    seen, screen = say_in_tmux(daemon, tmp_path, text)
    assert "DONE" in screen, screen
    words = re.findall(r"\w+", text)
    assert len(seen) >= 6, seen
    at = -1
    for word in seen:  # each a word of the text, in the order spoken
        at = words.index(word, at + 1)
    assert text in screen and "\x1b[7m" not in screen  # all plain at the end


# ---------------------------------------------------------------- issue 36 (client side)

ABBREVIATED = "We met Mr. Jones, e.g. at 5 p.m. yesterday, in St. Louis. It was fine."


def test_daemon_and_client_cut_sentences_by_one_rule() -> None:
    """The client's sentences (-i, subtitle cues) on the text as written are the daemon's
    on the text as spoken: "Mr.", "e.g.", "p.m." followed by a small letter and "St." end
    none of them; "Ave." and "Mon." (read "Avenue", "Monday") end one only before a
    capital, as "etc." does."""
    from kokorod_client.highlight import units

    text = (ABBREVIATED + " Dr. Who left at 9 a.m. Then it rained. We live on 5th Ave. near"
            " the park, open Mon. through Fri. at noon. Bring pens, paper, etc. Then go.")
    client = [text[a:b] for a, b in units(text)]
    assert client == ["We met Mr. Jones, e.g. at 5 p.m. yesterday, in St. Louis.",
                      "It was fine.", "Dr. Who left at 9 a.m.", "Then it rained.",
                      "We live on 5th Ave. near the park, open Mon. through Fri. at noon.",
                      "Bring pens, paper, etc.", "Then go."]
    spoken = prepare_text(text)  # the daemon's segments are cut from the spoken text
    daemon = [spoken[s.start:s.end] for s in sentence_spans(spoken)]
    assert len(daemon) == len(client), daemon


_WRITTEN = st.sampled_from(
    ["the", "Then", "park", "Jones", "It", "we", "5", "9:30", "$5", "Main", "in", "J.",
     "U.S.", "3.5", "No. 4", "03/04", "St.", "7pm", "5 p.m.", "9:30 a.m.", "7 PM"]
    + sorted(set(READ_IN_FULL) - {"a.m.", "p.m."})  # those come after a number
    + [w.capitalize() + "." for w in sorted(SPLITTER_ABBREVIATIONS)])


@settings(max_examples=examples(400), deadline=None)
@given(st.lists(st.tuples(st.lists(_WRITTEN, min_size=1, max_size=6),
                          st.sampled_from([".", "!", "?", ""])), min_size=1, max_size=4))
def test_sentences_as_written_are_the_sentences_as_spoken(
        parts: list[tuple[list[str], str]]) -> None:
    """Any mix of abbreviations, times, numbers and names: the client, cutting the text as
    written, finds as many sentences as the daemon, cutting the text as spoken."""
    text = " ".join(" ".join(ws) + ("" if ws[-1].endswith(".") else end) for ws, end in parts)
    spoken = prepare_text(text)
    written = [text[s.start:s.end] for s in sentence_spans(text)]
    said = [spoken[s.start:s.end] for s in sentence_spans(spoken)]
    assert len(written) == len(said), (written, said)


def test_subtitles_and_i_do_not_cut_at_abbreviations(daemon: DaemonProc,
                                                     tmp_path: Path) -> None:
    srt = tmp_path / "ab.srt"
    result = say(daemon, "-o", str(tmp_path / "ab.wav"), "--subtitles", str(srt), ABBREVIATED)
    assert result.returncode == 0, result.stderr
    blocks = [block.splitlines() for block in srt.read_text().strip().split("\n\n")]
    assert [b[2] for b in blocks] == ["We met Mr. Jones, e.g. at 5 p.m. yesterday, in St. Louis.",
                                      "It was fine."]
    first_end, second_start = blocks[0][1].split(" --> ")[1], blocks[1][1].split(" --> ")[0]
    assert first_end <= second_start  # cues never overlap
    srt2 = tmp_path / "ave.srt"
    text = "We live on 5th Ave. near the park. It opens Mon. through Fri. at noon. Come."
    result = say(daemon, "-o", str(tmp_path / "ave.wav"), "--subtitles", str(srt2), text)
    assert result.returncode == 0, result.stderr
    assert [block.splitlines()[2] for block in srt2.read_text().strip().split("\n\n")] == [
        "We live on 5th Ave. near the park.", "It opens Mon. through Fri. at noon.", "Come."]
    home, _ = alsa_home(tmp_path)
    shown = say(daemon, "-i", "--no-normalize", "Dr. Jones came at 5 p.m. yesterday. Fine.",
                home=home)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == ["Dr. Jones came at 5 p.m. yesterday.", "Fine."]


def test_say_i_in_a_terminal_shows_whole_sentences_past_abbreviations(
        daemon: DaemonProc, tmp_path: Path) -> None:
    """Row 8 in a real terminal: "Dr.", "Ave." and "p.m." stay inside their sentence's
    line (the daemon reads them "Doctor", "Avenue", "P M" and cuts no sentence there)."""
    text = "Dr. Jones met us on 5th Ave. near the park at 5 p.m. yesterday. It was fine."
    seen, screen = say_in_tmux(daemon, tmp_path, text)
    assert "DONE" in screen, screen
    lines = [line.rstrip() for line in screen.splitlines() if line.strip()]
    # (an underrun on a loaded machine may add ALSA's own line: judged line by line)
    assert "Dr. Jones met us on 5th Ave. near the park at 5 p.m. yesterday." in lines, screen
    assert "It was fine." in lines, screen
    assert not [line for line in lines if line.startswith(("Dr.", "Jones", "near", "yesterday"))
                and not line.startswith("Dr. Jones met us on 5th Ave. near")], screen
    assert len(seen) >= 6, seen  # the words were lit as they were heard


def test_vtt_escapes_markup_characters(daemon: DaemonProc, tmp_path: Path) -> None:
    vtt = tmp_path / "t.vtt"
    text = "Tom & Jerry said <hello> to me."
    result = say(daemon, "-o", str(tmp_path / "t.wav"), "--subtitles", str(vtt), text)
    assert result.returncode == 0, result.stderr
    assert vtt.read_text().splitlines()[3] == "Tom &amp; Jerry said &lt;hello&gt; to me."
    srt, js = tmp_path / "t.srt", tmp_path / "t.json"
    for path in (srt, js):
        result = say(daemon, "-o", str(tmp_path / "t.wav"), "--subtitles", str(path), text)
        assert result.returncode == 0, result.stderr
    assert srt.read_text().splitlines()[2] == text  # SubRip has no escapes: the text as is
    words = json.loads(js.read_text())["words"]
    assert [text[a:b] for a, b in (w["span"] for w in words)] == [w["text"] for w in words]
    assert "&" in [w["text"] for w in words]


def test_subtitle_json_lists_a_written_word_once(daemon: DaemonProc, tmp_path: Path) -> None:
    """"$5" is heard as "five dollars" (two word marks, one span): one entry, spanning
    both."""
    out = tmp_path / "w.json"
    text = "It costs $5 today."
    result = say(daemon, "-o", str(tmp_path / "w.wav"), "--subtitles", str(out), text)
    assert result.returncode == 0, result.stderr
    words = json.loads(out.read_text())["words"]
    assert [w["text"] for w in words] == ["It", "costs", "$5", "today"]
    spans = [tuple(w["span"]) for w in words]
    assert len(set(spans)) == len(spans)
    dollars = words[2]
    assert dollars["end"] - dollars["start"] > 0.4  # "five dollars", not "five" alone
    assert words[1]["end"] <= dollars["start"] + 0.05 and dollars["end"] <= words[3]["end"]


def test_subtitles_in_a_missing_directory_are_refused_before_speaking(
        daemon: DaemonProc, tmp_path: Path) -> None:
    wav = tmp_path / "ok.wav"
    with raw_conn(daemon.socket) as conn:
        conn.send({"op": "status", "id": 0})
        before = conn.recv()["requests"]
    result = say(daemon, "-o", str(wav), "--subtitles", str(tmp_path / "nodir" / "x.vtt"),
                 "Hello there.")
    assert result.returncode == 1, result.stderr
    assert "does not exist" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not wav.exists()  # checked up front: nothing synthesised, nothing written
    with raw_conn(daemon.socket) as conn:
        conn.send({"op": "status", "id": 0})
        assert conn.recv()["requests"] == before
