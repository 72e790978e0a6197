"""Segmentation: the text-only rule (whole sentences, clause cuts), budgets, nothing lost, lazy."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from tiers import examples

from kokorod.synth.segment import (
    GROWTH,
    SENTENCE_PAUSE_S,
    SegmentStream,
    balanced_cut,
    clean,
    split_point,
)

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
    assert (b.text, b.pause_s) == ("two.", SENTENCE_PAUSE_S)
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


@settings(max_examples=examples(300), deadline=None)
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


# ---------------------------------------------------------------- the text-only rule


def rule(text: str, first: int = 100, most: int = 300) -> list[str]:
    """What each segment adds to what was heard."""
    stream = SegmentStream(text)
    out = []
    while (seg := stream.next(first, most)) is not None:
        assert seg.text.startswith(seg.spoken)
        out.append(seg.rest)
    return out


def test_short_sentences_stay_whole_first_one_alone() -> None:
    text = "Hello there. The meeting moved to the small room on the second floor, next to " \
           "the kitchen. Bring tea."
    assert rule(text) == ["Hello there.", "The meeting moved to the small room on the second "
                          "floor, next to the kitchen. Bring tea."]


def test_long_first_sentence_is_cut_only_at_a_clause_mark() -> None:
    text = ("When the rain finally stopped, the children ran outside and splashed through "
            "every puddle they could find on the way to school.")
    assert rule(text) == ["When the rain finally stopped,",
                          text.removeprefix("When the rain finally stopped, ")]
    no_clause = ("The children ran outside and splashed through every puddle they could find "
                 "on the long and winding way to their old school.")
    assert rule(no_clause) == [no_clause]  # never mid-clause
    segs = list(SegmentStream(text))  # the rest is read as the whole sentence
    assert segs[1].text == text and segs[1].spoken == "When the rain finally stopped,"


def test_a_later_sentence_past_growth_is_cut_at_a_clause_and_read_whole() -> None:
    """After a short segment, a sentence longer than GROWTH × its characters would be a
    front the short audio cannot cover: it is cut at a clause mark, and the rest is read
    as the whole sentence, as a long first sentence is. The cut is where the larger step
    (head after the short segment, whole sentence after the head) is smallest. Within
    the budget, or with no clause mark, it stays whole."""
    head = "After lunch, when everyone had gone home,"
    later = head + " the keeper sat by the lamp; he read until the oil ran low, and then he slept."
    assert rule("Good evening. " + later) == ["Good evening.", head,
                                              later.removeprefix(head + " ")]
    segs = list(SegmentStream("Good evening. " + later))
    assert segs[2].text == later and segs[2].spoken == head
    assert [s.index for s in segs] == [0, 1, 2]
    cut = balanced_cut(later, 13)  # not "After lunch,": then 119 characters after 12
    assert cut is not None and later[:cut].strip() == head
    assert balanced_cut(later, 100) is None  # no cut beats reading it whole after 100
    medium = "The keeper sat by the lamp, and he read on."
    assert rule("Good evening. " + medium) == ["Good evening.", medium]  # within budget
    no_clause = ("After lunch the keeper sat by the lamp and read until the oil ran low and "
                 "then he went up the stairs to sleep.")
    assert rule("Good evening. " + no_clause) == ["Good evening.", no_clause]
    after_long = "x " * 60 + "end. " + later  # after a long segment: GROWTH allows it whole
    assert rule(after_long)[-1] == later


def test_no_pause_after_the_last_segment() -> None:
    segs = list(SegmentStream("First sentence here. Second one.\n\nThird paragraph."))
    assert segs[-1].pause_s == 0.0 and all(s.pause_s > 0 for s in segs[:-1])


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.sampled_from([*"ab .,!?;\n", "Dr.", "and ", "x" * 50, "word " * 30]),
                max_size=120).map("".join))
def test_property_rule_is_deterministic_and_keeps_every_word(text: str) -> None:
    first, again = rule(text), rule(text)
    assert first == again
    assert all(0 < len(s) <= 300 for s in first)
    assert "".join(re.sub(r"\s", "", s) for s in first) == re.sub(r"\s", "", clean(text))


def test_a_tiny_first_sentence_is_read_with_the_next() -> None:
    """"Hi." alone would play out before the next sentence's front and first window are
    done; it is read together with what follows, up to the first segment's budget."""
    assert rule("Hi. How are you doing today? I hope well.") == [
        "Hi. How are you doing today? I hope well."]
    assert rule("Yes. " + "This sentence is long enough to go past the first budget, "
                "so it is read on its own after the tiny one, word by word.")[0] == "Yes."
    assert rule("Ok.") == ["Ok."]


def test_after_a_heading_segments_grow_from_its_size() -> None:
    """A heading alone (a paragraph ends it) plays for about a second: the next segment
    packs no more than GROWTH × its characters (first_chars at least, one whole sentence
    at least), so the next front is done before the heading has played; then they grow."""
    one, two, three = ("The town woke slowly that morning.",
                       "A thin fog lay over the harbour, and the gulls were quiet on the roofs "
                       "of the sheds by the water.",
                       "Nobody hurried.")
    paragraph = " ".join([one, two, three, two, three, one, two, three, one])
    segs = rule("Chapter 1.\n\n" + paragraph)
    assert segs[:4] == ["Chapter 1.", one, two, f"{three} {two} {three} {one} {two} {three}"]
    sizes = [len(s) for s in segs]
    for before, seg in zip(sizes, segs[1:], strict=False):  # (a sentence alone may be more)
        assert len(seg) <= max(100, GROWTH * before) or ". " not in seg
    assert max(sizes) > 100  # grown past the first budget
    assert " ".join(segs) == "Chapter 1. " + paragraph  # nothing lost or moved
