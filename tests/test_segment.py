"""Segmentation: short first segment, budgets respected, nothing lost, lazy."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from kokorod.segment import SegmentStream, clean, split_point

PROSE = ("The lighthouse keeper climbed the stairs every evening, polishing the lens until it "
         "gleamed. Dr. Ada Smith arrived on Jan. 5 with J. R. R. Tolkien's letters! Did she "
         "stay? Nobody knew.\n\nA new paragraph starts here; it has a clause, and another.")


def words(text: str) -> list[str]:
    return text.split()


def take_all(text: str, budgets: list[int]) -> list[str]:
    stream = SegmentStream(text)
    out = []
    for b in budgets:
        seg = stream.take(b)
        if seg is None:
            break
        out.append(seg.text)
    while (seg := stream.take(300)) is not None:
        out.append(seg.text)
    return out


def test_first_segment_is_short_and_cut_at_a_phrase() -> None:
    first = SegmentStream(PROSE).take(40)
    assert first is not None and len(first.text) <= 40
    assert first.text == "The lighthouse keeper climbed the stairs"


def test_no_words_lost_or_reordered() -> None:
    segs = take_all(PROSE, [30, 60, 120])
    assert words(" ".join(segs)) == words(PROSE)


def test_abbreviations_and_initials_do_not_end_sentences() -> None:
    segs = [s.text for s in SegmentStream(PROSE)]
    joined = "|".join(segs)
    assert "Dr.|" not in joined and "J.|" not in joined and "Jan.|" not in joined


def test_pauses_follow_punctuation() -> None:
    stream = SegmentStream("One, two. Three")
    a = stream.take(5)
    b = stream.take(5)
    c = stream.take(50)
    assert a is not None and b is not None and c is not None
    assert (a.text, a.pause_s) == ("One,", 0.1)
    assert (b.text, b.pause_s) == ("two.", 0.25)
    assert c.pause_s == 0.0


def test_paragraph_end_gets_the_longest_pause() -> None:
    segs = list(SegmentStream("First paragraph.\n\nSecond paragraph."))
    assert len(segs) == 2 and segs[0].pause_s > segs[1].pause_s


def test_unbroken_run_is_cut_mid_word() -> None:
    segs = take_all("x" * 10_000, [])
    assert all(len(s) <= 300 for s in segs) and "".join(segs) == "x" * 10_000


def test_control_characters_are_removed() -> None:
    assert clean("a\x00b\x07c\u200bd\re") == "a b c d\ne"


def test_long_text_is_consumed_lazily() -> None:
    text = "Sentence number one is here. " * 20_000  # ~580k characters
    stream = SegmentStream(text)
    first = stream.take(40)
    assert first is not None and first.text == "Sentence number one is here."


def test_split_point_prefers_clause_then_conjunction() -> None:
    assert split_point("alpha beta, gamma delta epsilon", 20) == len("alpha beta, ")
    text = "we went home and then we slept for a long while"
    assert text[: split_point(text, 20)].rstrip().endswith("home")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*"ab .,!?;\n", "Dr.", "and ", "x" * 50]), max_size=120)
       .map("".join),
       st.lists(st.integers(1, 400), max_size=6))
def test_property_budget_respected_and_words_kept(text: str, budgets: list[int]) -> None:
    stream = SegmentStream(text)
    out = []
    for b in [*budgets, *[300] * 1000]:
        seg = stream.take(b)
        if seg is None:
            break
        assert 0 < len(seg.text) <= b
        out.append(seg.text)
    assert "".join(re.sub(r"\s", "", s) for s in out) == re.sub(r"\s", "", clean(text))
