"""Text cleanup tables: what the daemon will actually say for plain, Markdown and code."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tiers import examples

from kokorod.synth.text import TEXT_FORMATS, prepare_text
from kokorod.synth.text.code import split_identifier

PLAIN = [
    ("Meet Dr. Smith at 10:30 on 2026-11-26.",
     "Meet Doctor Smith at ten thirty on November twenty-sixth, twenty twenty-six."),
    ("Dr. Smith arrives at 9:00.", "Doctor Smith arrives at nine o'clock."),
    ("The meeting is at 14:30.", "The meeting is at fourteen thirty."),
    ("Meet at 7pm, or 11 AM. Then 5:05 p.m. Go.",
     "Meet at seven P M, or eleven A M. Then five oh five P M. Go."),
    ("Due 03/04/2026.", "Due March fourth, twenty twenty-six."),
    ("It costs $1,234.50.",
     "It costs one thousand two hundred thirty-four dollars and fifty cents."),
    ("About €5M, £3.20 and ¥500.",
     "About five million euros, three pounds and twenty pence and five hundred yen."),
    ("The file is 250 MB and took 35ms.",
     "The file is two hundred fifty megabytes and took thirty-five milliseconds."),
    ("It weighs 1 kg, not 2 kg.", "It weighs one kilogram, not two kilograms."),
    ("Run 5km at -3°C.", "Run five kilometers at minus three degrees Celsius."),
    ("CPU at 95%, up 12.5%.", "CPU at ninety-five percent, up twelve point five percent."),
    ("The 1980s and since 1999.", "The nineteen eighties and since nineteen ninety-nine."),
    ("Chapter 3, 2nd edition, 103rd day.", "Chapter three, second edition, one hundred third day."),
    ("Pages 10-20, No. 5, #42.", "Pages ten to twenty, Number five, number forty-two."),
    ("1,000,000 people and 3.14", "one million people and three point one four"),
    ("Install v1.2.3 now.", "Install version one point two point three now."),
    ("Version: v1.2.3 and VERSION V2.", "Version: one point two point three and VERSION two."),
    ("Version **v1.2.3**", "Version **one point two point three**"),  # markup left to espeak
    ("The v2 version is out.", "The two version is out."),
    ("Mr. & Mrs. Jones vs. the Smiths, etc.",
     "Mister and Missus Jones versus the Smiths, et cetera."),
    ("Use e.g. mp3 or int8 files.", "Use for example mp three or int eight files."),
    ("See https://github.com/foo/bar now.", "See a link to github dot com now."),
    ("Mail jane.doe@example.com today.", "Mail jane doe at example dot com today."),
    ("A 2x speedup.", "A two times speedup."),
    ("Plain words stay as they are.", "Plain words stay as they are."),
]

BRITISH = [
    ("Due 03/04/2026.", "Due the third of April, twenty twenty-six."),
    ("It costs £105.", "It costs one hundred and five pounds."),
]

MARKDOWN = [
    ("# Install kokorod\n\nRun it.", "Install kokorod.\n\nRun it."),
    ("Use **pip** and *then* ~~not~~ run.", "Use pip and then not run."),
    ("See [the docs](https://example.com/docs).", "See the docs."),
    ("Or <https://example.com>.", "Or link."),
    ("Call `parse_config_file` or `getHTTPResponse`.",
     "Call parse config file or get HTTP Response."),
    ("- [x] fast\n- [ ] slow", "done: fast.\nto do: slow."),
    ("1. first\n2. second", "first.\nsecond."),
    ("| Name | Size |\n|---|---|\n| int8 | 88 MB |",
     "Name, Size.\nint eight, eighty-eight megabytes."),
    ("![a diagram](x.png)", "image: a diagram."),
    ("> quoted <b>bold</b> text", "quoted bold text."),
    ("Intro\n\n```python\nx = load_model(path)\n```",
     "Intro.\nCode: x equals load model path."),
    ("---\n\nAfter the rule", "After the rule."),
    ("Version **v1.2.3**", "Version one point two point three."),
    ("Now on version v2 and v1.4.", "Now on version two and version one point four."),
    ("Version `v1.2.3` and _version v2_.", "Version one point two point three and version two."),
]

CODE = [
    ("def parse_config_file(path: str) -> dict:",
     "define parse config file path string returns dict."),
    ("if a != b and count >= 3:", "if a not equals b and count greater than or equal to three."),
    ("# Read the TOML file.", "Read the TOML file."),
    ('raise ValueError("config file missing")', "raise Value Error “config file missing”."),
    ("return HTTPServer.handle_request(req, **kwargs)",
     "return HTTP Server dot handle request request, keyword args."),
    ("x = a * b  // times", "x equals a times b, comment: times."),
    ("const retryCount = 0;", "const retry Count equals zero."),
    ("f(*args)", "f args."),
    ("{\n}\n", ""),
]


@pytest.mark.parametrize(("text", "spoken"), PLAIN)
def test_plain_english(text: str, spoken: str) -> None:
    assert prepare_text(text, "plain", "en-us") == spoken


@pytest.mark.parametrize(("text", "spoken"), BRITISH)
def test_british_english(text: str, spoken: str) -> None:
    assert prepare_text(text, "plain", "en-gb") == spoken


@pytest.mark.parametrize(("text", "spoken"), MARKDOWN)
def test_markdown_reads_as_prose(text: str, spoken: str) -> None:
    assert prepare_text(text, "markdown", "en-us") == spoken


@pytest.mark.parametrize(("text", "spoken"), CODE)
def test_code_reads_identifiers_and_symbols(text: str, spoken: str) -> None:
    assert prepare_text(text, "code", "en-us") == spoken


@pytest.mark.parametrize(("name", "words"), [
    ("snake_case_name", "snake case name"), ("camelCaseName", "camel Case Name"),
    ("PascalCase", "Pascal Case"), ("parseHTTPResponse2", "parse HTTP Response 2"),
    ("__init__", "init"), ("MAX_SIZE", "MAX SIZE"), ("userId", "user I D"),
])
def test_split_identifier(name: str, words: str) -> None:
    assert split_identifier(name) == words


def test_english_rules_only_for_english() -> None:
    assert prepare_text("Es kostet 5 km", "plain", "de") == "Es kostet 5 km"
    assert prepare_text("# Titel\n\n**fett**", "markdown", "fr-fr") == "Titel.\n\nfett."


def test_normalize_off_keeps_the_text() -> None:
    assert prepare_text("At 10:30, 5 km.", "plain", "en-us", normalize=False) == "At 10:30, 5 km."


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text_format"):
        prepare_text("x", "html")


@settings(max_examples=examples(300), deadline=None)
@given(st.text(max_size=300), st.sampled_from(TEXT_FORMATS),
       st.sampled_from(["en-us", "en-gb", "ja"]))
def test_any_text_is_cleaned_without_error(text: str, fmt: str, lang: str) -> None:
    """Whatever a client sends, cleanup returns a string (it may be empty)."""
    assert isinstance(prepare_text(text, fmt, lang), str)


@pytest.mark.parametrize("text", [
    "a." * 20000, "1." * 20000, "1," * 20000, "a@" * 20000, "1" * 100000,
    "$" + "9" * 5000, "1" * 40 + "st", "[" * 20000, "> " * 2000, "http://" + "a." * 20000,
])
def test_long_hostile_text_is_cleaned(text: str) -> None:
    """Inputs that once crashed (int() of 100,000 digits) or went quadratic (the e-mail
    rule rescanning every dot-separated run): each must come back, in every format."""
    for fmt in TEXT_FORMATS:
        assert isinstance(prepare_text(text, fmt, "en-us"), str)


def test_long_numbers_are_read_digit_by_digit() -> None:
    assert prepare_text("Serial 12345678901234567890.") == (
        "Serial one two three four five six seven eight nine zero one two three four five "
        "six seven eight nine zero.")


@pytest.mark.parametrize(("written", "spoken"), [
    ("Back in the 90s we danced.", "Back in the nineties we danced."),
    ("The '80s were loud.", "The eighties were loud."),
    ("It took 90s to load.", "It took ninety seconds to load."),
    ("Call 555-1234 today.", "Call five five five, one two three four today."),
    ("Call (555) 123-4567.", "Call five five five, one two three, four five six seven."),
    ("Open 9-5.", "Open nine to five."),
    ("Add 1/2 cup and 3/4 of a 5/8 inch bolt.",
     "Add one half cup and three quarters of a five eighths inch bolt."),
    ("We met St. John on Main St. Approx. five came.",
     "We met Saint John on Main Street. Approximately five came."),
    # "e.g." and "vs." never end a sentence before a capital; "etc." and "Ave." may
    ("Try e.g. Paris, or Smith vs. Jones, etc. Then Main Ave. The end, e.g.",
     "Try for example Paris, or Smith versus Jones, et cetera. Then Main Avenue. "
     "The end, for example."),
    ("Wait [[slnc 500]] then go.", "Wait then go."),
    ("Il fait 21 degrés dans le parc et nous sommes là.",
     "Il fait 21 degrés dans le parc et nous sommes là."),  # no English numbers in French
])
def test_first_day_cleanup_mistakes(written: str, spoken: str) -> None:
    assert prepare_text(written) == spoken


def test_language_of_a_text() -> None:
    from kokorod.serve.requests import language_note
    from kokorod.synth.text import written_in

    assert written_in("Es ist kalt und die Sonne scheint nicht.") == "de"
    assert written_in("The cat is on the mat and it is happy.") == "en"
    assert written_in("Hello.") is None
    assert "kokoro-say -l fr-fr" in language_note("Nous sommes dans le parc avec les amis.",
                                                   "en-us")
    assert language_note("We are in the park with the friends.", "en-us") == ""


def test_only_japanese_text_asks_whether_the_ja_extra_reads_it() -> None:
    """Finding the `ja` extra imports it (~0.6 s on the event loop): an English request
    after a start must not wait for that; a Japanese one asks, and hears the hint."""
    from kokorod.serve.requests import script_note

    asked: list[str] = []

    def reads_japanese() -> bool:
        asked.append("asked")
        return False

    assert script_note("The kettle is boiling again.", "en-us", reads_japanese) == ""
    assert script_note("La bouilloire chauffe encore.", "fr-fr", reads_japanese) == ""
    assert asked == []
    assert "ja extra" in script_note("東京は今日も雨です。", "ja", reads_japanese)
    assert asked == ["asked"]
    assert "Japanese voice" in script_note("今日はいい天気ですね。", "en-us", reads_japanese)


def test_the_daemon_says_version_once_beside_a_version_number(daemon: Any) -> None:
    """Issue 36 row 16: what the daemon reads for a release note, in Markdown and in plain
    text ("Version **v1.2.3**" was "Version version one point two point three")."""
    from helpers import raw_conn

    notes = {"markdown": "## Version **v1.2.3**\n\nShips `v1.2.3` today.",
             "plain": "Version: v1.2.3 ships today."}
    with raw_conn(daemon.socket) as conn:
        for n, (fmt, text) in enumerate(notes.items()):
            conn.send({"op": "phonemes", "id": n, "text": text, "text_format": fmt})
            spoken = conn.recv()["text"]
            assert spoken.lower().count("version") == (2 if fmt == "markdown" else 1), spoken
            assert spoken.count("one point two point three") == spoken.count("one point") \
                == (2 if fmt == "markdown" else 1), spoken
