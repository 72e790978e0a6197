"""SSML: parsed by expat into runs (in process), and heard through the real daemon —
exact breaks (a silence detector on the audio), say-as, sub and phoneme readings (the
front's phonemes, from the `phonemes` op), marks at the sample where the next word
starts (the same request's word marks), voices switched mid-text, malformed input as
typed errors. Hypothesis fuzzes documents: never a crash, never a tag read aloud."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import DaemonProc, raw_conn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kokorod.synth import overrides
from kokorod.synth.spoken import prepare
from kokorod.synth.ssml_mask import masked
from kokorod_common.protocol import ErrorCode, ProtocolError

VOCAB = {ch: i for i, ch in enumerate(
    " !\"(),.:;?AIOQSTWYabcdefhijklmnopqrstuvwxyzæçðøŋœɐɑɒɔɕɖəɚɛɜɟɡɣɤɥɨɪɯɰɲɳɴɸɹɻɽɾʁʂʃʈʊʋʌ"
    "ʎʒʔʝʣʤʥʦʧʨʰʲˈˌːβθχᵊᵝᵻ—“”…")}


def spoken(text: str, lang: str = "en-us") -> Any:
    return prepare(text, "ssml", lang, True, VOCAB)


def refused(text: str) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        spoken(text)
    return info.value


# ---------------------------------------------------------------- the parser
def test_elements_become_runs_breaks_readings_and_marks() -> None:
    s = spoken('<speak>Hello <break time="700ms"/> world. <say-as interpret-as="characters">'
               'API</say-as> <mark name="m"/>is <sub alias="World Wide Web">WWW</sub>.'
               '<p>New <phoneme alphabet="ipa" ph="kˈOkəɹO">Kokoro</phoneme></p>'
               '<voice name="bf_emma">Hi <prosody rate="150%">fast</prosody></voice> end'
               '</speak>')
    assert s.runs[0].break_s == pytest.approx(0.7)
    assert s.marks == ["m"]
    texts = [overrides.visible(r.text).strip() for r in s.runs]
    assert texts == ["Hello", "world. A P I is WWW.", "New Kokoro", "Hi", "fast", "end"]
    assert [r.voice for r in s.runs] == [None, None, None, "bf_emma", "bf_emma", None]
    assert s.runs[4].rate == pytest.approx(1.5)
    assert s.runs[1].boundary == "p"
    pieces = list(overrides.pieces(s.runs[1].text + s.runs[2].text))
    assert overrides.Piece("WWW", spelling="World Wide Web") in pieces
    assert overrides.Piece("Kokoro", phonemes="kˈOkəɹO") in pieces
    assert [p.spelling for p in pieces if p.text in "API" and p.spelling] == ["a", "p", "i"]
    assert "<" not in s.text and "speak" not in s.text


@pytest.mark.parametrize(("doc", "where"), [
    ("<speak>\n  Hello <b>world\n</speak>", "line 3, column 3"),
    ("<speak>unclosed", "line 1, column"),
    ("<speak>a &nbsp; b</speak>", "line 1, column 10"),
    ('<speak>x <break time="soon"/></speak>', "line 1, column 10"),
    ('<speak><phoneme ph="k\u00e9l">x</phoneme></speak>', "é"),
    ("<speak><say-as>1</say-as></speak>", "interpret-as"),
    ("<speak>a</speak><speak>b</speak>", "junk after document element"),
])
def test_malformed_ssml_is_a_typed_error_naming_line_and_column(doc: str, where: str) -> None:
    error = refused(doc)
    assert error.code in (ErrorCode.BAD_SSML, ErrorCode.BAD_PHONEMES)
    assert where in error.message, error.message


def test_document_types_and_entity_expansion_are_refused() -> None:
    laughs = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
              '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
              "<speak>&lol2;</speak>")
    assert "not allowed" in refused(laughs).message
    external = '<!DOCTYPE speak SYSTEM "file:///etc/passwd"><speak>x</speak>'
    assert refused(external).code == ErrorCode.BAD_SSML


def test_entities_and_cdata_are_text() -> None:
    s = spoken("<speak>Fish &amp; chips &#233;t&#xE9; <![CDATA[a < b]]></speak>")
    assert s.text.startswith("Fish and chips été")  # & said in words by the English rules
    assert "a less than b" in s.text or "a < b" in s.text


def test_unsupported_prosody_is_said_not_silently_dropped() -> None:
    s = spoken('<speak><prosody pitch="high" volume="loud">Loud</prosody></speak>')
    assert any("pitch" in w and "volume" in w for w in s.warnings)


def test_break_strengths_and_a_leading_break() -> None:
    s = spoken('<speak><break time="1.5s"/>a<break strength="strong"/>b'
               '<break strength="none"/>c</speak>')
    assert s.lead_s == pytest.approx(1.5)
    assert [r.break_s for r in s.runs] == [pytest.approx(0.7), 0.0, None]


def test_say_as_numbers_dates_and_telephone() -> None:
    def said(body: str) -> str:
        return spoken(f"<speak>{body}</speak>").text

    assert said('<say-as interpret-as="cardinal">1234</say-as>') == \
        "one thousand two hundred thirty-four"
    assert said('<say-as interpret-as="ordinal">21</say-as>') == "twenty-first"
    assert said('<say-as interpret-as="digits">1234</say-as>') == "1 2 3 4"
    assert said('<say-as interpret-as="date" format="dmy">04/03/2026</say-as>') == \
        "March fourth, twenty twenty-six"
    assert said('<say-as interpret-as="telephone">555-0100</say-as>') == "5 5 5, 0 1 0 0"
    assert spoken('<speak><say-as interpret-as="cardinal">21</say-as></speak>',
                  "fr-fr").text == "vingt et un"


def test_masked_keeps_offsets_and_blanks_markup() -> None:
    doc = '<speak>Say <sub alias="x">this</sub><!-- no --> <![CDATA[a]]></speak>'
    out = masked(doc)
    assert len(out) == len(doc)
    assert out.split() == ["Say", "this", "a"]
    assert out.index("this") == doc.index("this")


def test_plain_ipa_reads_inline_phonemes() -> None:
    s = prepare("Say [Kokoro](/kˈOkəɹO/) twice.", "plain+ipa", "en-us", True, VOCAB)
    assert s.text == "Say Kokoro twice."
    assert overrides.Piece("Kokoro", phonemes="kˈOkəɹO") in list(
        overrides.pieces(s.runs[0].text))
    with pytest.raises(ProtocolError) as info:
        prepare("[x](/k§/)", "plain+ipa", "en-us", True, VOCAB)
    assert info.value.code == ErrorCode.BAD_PHONEMES and "§" in info.value.message


WORDS = st.sampled_from(["alpha", "bravo", "charlie", "delta", "echo", "42", "3rd", "&amp;",
                         " ", ". ", ", "])
TAGS = ["speak", "break", "say-as", "sub", "phoneme", "prosody", "voice", "lang", "mark",
        "emphasis", "interpret", "alias", "strength", "xml", "rate", "name"]


@st.composite
def documents(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.integers(0, 9 if depth < 3 else 0))
        if kind <= 3:
            parts.append(draw(WORDS))
        elif kind == 4:
            parts.append(f'<break time="{draw(st.integers(0, 3000))}ms"/>')
        elif kind == 5:
            parts.append(f'<mark name="m{draw(st.integers(0, 9))}"/>')
        elif kind == 6:
            how = draw(st.sampled_from(["characters", "cardinal", "ordinal", "digits",
                                        "date", "time", "telephone", "spell-out", "odd"]))
            parts.append(f'<say-as interpret-as="{how}">{draw(WORDS)}</say-as>')
        elif kind == 7:
            parts.append(f'<sub alias="{draw(WORDS)}">{draw(documents(depth + 1))}</sub>')
        elif kind == 8:
            rate = draw(st.sampled_from(["slow", "fast", "150%", "+20%", "0.8"]))
            parts.append(f'<prosody rate="{rate}">{draw(documents(depth + 1))}</prosody>')
        else:
            tag = draw(st.sampled_from(["p", "s", "emphasis", "lang xml:lang=\"en-gb\"",
                                        "phoneme ph=\"həlˈoʊ\"", "voice name=\"af_sky\""]))
            parts.append(f"<{tag}>{draw(documents(depth + 1))}</{tag.split()[0]}>")
    return "".join(parts)


@st.composite
def fuzzed(draw: st.DrawFn) -> str:
    doc = f"<speak>{draw(documents())}</speak>"
    if draw(st.booleans()):  # broken: cut, or a character put anywhere
        at = draw(st.integers(0, len(doc)))
        doc = doc[:at] + draw(st.sampled_from(["", "<", "&", "</p>", "<x ", "<!--"])) + \
            (doc[at:] if draw(st.booleans()) else "")
    return doc


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fuzzed())
def test_fuzzed_ssml_parses_or_is_refused_and_never_reads_a_tag(doc: str) -> None:
    try:
        s = spoken(doc)
    except ProtocolError as exc:
        assert exc.code in (ErrorCode.BAD_SSML, ErrorCode.BAD_PHONEMES), exc.code
        return
    said = s.text.lower()
    assert "<" not in said  # (a lone ">" is text in XML: said as written)
    for tag in TAGS:
        assert tag not in said, (tag, said)
    for run in s.runs or []:
        assert 0.5 <= run.rate * 1.0 <= 4 and (run.break_s or 0) <= 10


# ---------------------------------------------------------------- through the daemon
def synthesize(path: Path, text: str, **fields: Any) -> tuple[list[dict[str, Any]], Any]:
    with raw_conn(path) as conn:
        conn.send({"op": "synthesize", "id": 1, "text": text, **fields})
        frames = conn.until_final(1)
    pcm = [np.frombuffer(f["pcm"], np.float32) for f in frames if f["op"] == "chunk"]
    return frames, (np.concatenate(pcm) if pcm else np.zeros(0, np.float32))


def front(path: Path, text: str, **fields: Any) -> dict[str, Any]:
    with raw_conn(path) as conn:
        conn.send({"op": "phonemes", "id": 2, "text": text, **fields})
        return conn.recv()


def silences(audio: Any, db: float = -40.0, frame_ms: int = 10) -> list[float]:
    """Runs of 10 ms frames whose peak stays under `db` dBFS, inside the speech (s)."""
    frame = 24 * frame_ms
    n = audio.size // frame
    loud = np.abs(audio[:n * frame]).reshape(n, frame).max(axis=1) >= 10 ** (db / 20)
    edges = np.flatnonzero(loud)
    quiet, out, run = ~loud[edges[0]:edges[-1] + 1], [], 0
    for q in quiet:
        if q:
            run += 1
        elif run:
            out.append(run * frame_ms / 1000)
            run = 0
    return out


def test_a_break_is_that_much_silence_between_the_words(daemon: DaemonProc) -> None:
    frames, audio = synthesize(daemon.socket,
                               '<speak>The first words <break time="700ms"/> and the last.'
                               "</speak>")
    assert frames[-1]["op"] == "end" and audio.size > 24000
    gaps = silences(audio)
    assert max(gaps) == pytest.approx(0.70, abs=0.02), gaps
    assert sorted(gaps)[-2:-1] < [0.3]  # no other silence near it


def test_say_as_characters_reads_three_letters(daemon: DaemonProc) -> None:
    spelled = front(daemon.socket, '<speak><say-as interpret-as="characters">API</say-as>'
                    "</speak>")
    whole = front(daemon.socket, "API", text_format="plain")
    assert spelled["op"] == "phonemes", spelled
    assert spelled["phonemes"].split() == ["ˈeɪ", "pˈiː", "ˈaɪ"], spelled["phonemes"]
    assert whole["phonemes"] != spelled["phonemes"]
    frames, audio = synthesize(daemon.socket, '<speak><say-as interpret-as="characters">'
                               "API</say-as></speak>", marks="word")
    # three spoken words, each pointing at the written "API" (as "$5" gives two)
    assert [m["text"] for m in frames if m.get("kind") == "word"] == ["API"] * 3
    assert audio.size > 0.6 * 24000


def test_phoneme_changes_what_the_front_reads_and_the_audio(daemon: DaemonProc) -> None:
    given = '<speak>Say <phoneme alphabet="ipa" ph="tˈOmAtO">tomato</phoneme>.</speak>'
    read = front(daemon.socket, given)
    plain = front(daemon.socket, "Say tomato.")
    assert "tˈOmAtO" in read["phonemes"] and "tˈOmAtO" not in plain["phonemes"]
    _, audio = synthesize(daemon.socket, given)
    _, before = synthesize(daemon.socket, "Say tomato.")
    assert audio.size > 12000 and (audio.size != before.size or
                                   not np.allclose(audio, before, atol=1e-3))


def test_unknown_phoneme_symbols_are_named(daemon: DaemonProc) -> None:
    frames, _ = synthesize(daemon.socket, '<speak><phoneme ph="kæ§t">cat</phoneme></speak>')
    assert frames[-1]["code"] == "bad_phonemes" and "§" in frames[-1]["message"]


def test_marks_land_where_the_next_word_starts(daemon: DaemonProc) -> None:
    doc = ('<speak>One <mark name="a"/>two three. <mark name="b"/>Four five '
           '<mark name="c"/>six.<mark name="end"/></speak>')
    frames, audio = synthesize(daemon.socket, doc, marks="word")
    marks = [f for f in frames if f["op"] == "mark"]
    words = {m["text"]: m["sample"] for m in marks if m["kind"] == "word"}
    ssml = {m["name"]: m["sample"] for m in marks if m["kind"] == "ssml"}
    assert ssml["a"] == words["two"] and ssml["b"] == words["Four"]
    assert ssml["c"] == words["six"]
    assert ssml["end"] == audio.size == frames[-1]["samples"]
    samples = [m["sample"] for m in marks]
    assert samples == sorted(samples)
    # without word marks asked for, the same places
    frames, _ = synthesize(daemon.socket, doc)
    assert {f["name"]: f["sample"] for f in frames if f.get("kind") == "ssml"} == ssml


def test_voice_and_language_switch_mid_text(daemon: DaemonProc) -> None:
    doc = ('<speak>Hello. <voice name="bf_emma">Good evening.</voice> '
           '<lang xml:lang="en-gb">Tomato.</lang> <prosody rate="x-fast">Quick.</prosody>'
           "</speak>")
    segments = front(daemon.socket, doc)["segments"]
    assert [(s["voice"], s["lang"], s["speed"]) for s in segments] == [
        ("af_heart", "en-us", 1.0), ("bf_emma", "en-gb", 1.0), ("af_heart", "en-gb", 1.0),
        ("af_heart", "en-us", 1.6)]
    frames, audio = synthesize(daemon.socket, doc)
    assert frames[-1]["op"] == "end" and audio.size > 2 * 24000
    frames, _ = synthesize(daemon.socket, '<speak><voice name="zz_nobody">x</voice></speak>')
    assert frames[-1]["code"] == "unknown_voice"


def test_malformed_ssml_gets_a_typed_error_and_the_daemon_serves_on(
        daemon: DaemonProc) -> None:
    frames, _ = synthesize(daemon.socket, "<speak>\nHello <emphasis>there</speak>")
    assert frames[-1]["op"] == "error" and frames[-1]["code"] == "bad_ssml"
    assert "line 2, column" in frames[-1]["message"]
    assert not any(f["op"] == "chunk" for f in frames)
    frames, audio = synthesize(daemon.socket, "<speak>Still here.</speak>")
    assert frames[-1]["op"] == "end" and audio.size > 0


def test_text_format_plain_reads_markup_as_text_and_ssml_is_announced(
        daemon: DaemonProc) -> None:
    with raw_conn(daemon.socket) as conn:
        conn.send({"op": "hello", "id": 0})
        hello = conn.recv()
    assert "ssml" in hello["text_formats"] and "phonemes" in hello["ops"]
    read = front(daemon.socket, "<speak>Hi</speak>", text_format="plain")
    assert read["text"] != "Hi"  # asked for plain: the client gets what it asked for


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(fuzzed())
def test_fuzzed_ssml_through_the_daemon_ends_in_audio_or_a_typed_error(
        daemon: DaemonProc, doc: str) -> None:
    frames, audio = synthesize(daemon.socket, doc, text_format="ssml")
    final = frames[-1]
    if final["op"] == "error":
        assert final["code"] in ("bad_ssml", "bad_phonemes", "empty_text"), final
    else:
        assert final["samples"] == audio.size
    frames, _ = synthesize(daemon.socket, "<speak>ok</speak>")
    assert frames[-1]["op"] == "end"


def kokoro_say(args: list[str], env: dict[str, str]) -> Any:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "kokorod_client.say", "--no-autostart", *args],
                          env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def test_kokoro_say_reads_ssml_files_and_the_ssml_flag(daemon: DaemonProc,
                                                       tmp_path: Path) -> None:
    import soundfile as sf

    doc = tmp_path / "x.ssml"
    doc.write_text('<speak>The first words <break time="1s"/> and the last.</speak>')
    lengths = []
    for args in (["-f", str(doc)], ["--ssml", "The first words and the last."]):
        out = tmp_path / f"{len(lengths)}.wav"
        done = kokoro_say([*args, "-o", str(out)], daemon.env)
        assert done.returncode == 0, done.stderr
        lengths.append(sf.info(str(out)).frames / 24_000)
    assert 0.8 < lengths[0] - lengths[1] < 1.3, lengths
    bad = kokoro_say(["--ssml", "-o", str(tmp_path / "bad.wav"), "<speak>oops <p></speak>"],
                     daemon.env)
    assert bad.returncode != 0 and "line 1, column" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_marks_come_as_heard_when_the_daemon_plays(speaker: Any) -> None:
    with raw_conn(speaker.socket) as conn:
        conn.send({"op": "synthesize", "id": 1, "play": True,
                   "text": '<speak>One <mark name="a"/>two.<mark name="end"/></speak>'})
        frames = conn.until_final(1)
    assert frames[-1]["op"] == "end" and frames[-1]["reason"] == "done", frames[-1]
    marks = [f for f in frames if f["op"] == "mark" and f["kind"] == "ssml"]
    assert [m["name"] for m in marks] == ["a", "end"]
    assert 0 < marks[0]["sample"] < marks[1]["sample"]
