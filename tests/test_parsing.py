import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rarft_plugin.parsing import extract_response, extract_segment, parse_response

STRICT = "<think>t</think> <answer>1 to 2</answer> <correct>c</correct>"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("12.54 to 17.83", (12.54, 17.83)),
        ("12.54 - 17.83 seconds", (12.54, 17.83)),
        ("12.54-17.83", (12.54, 17.83)),
        ("from 12.5s to 17.8s", (12.5, 17.8)),
        ("[12.54, 17.83]", (12.54, 17.83)),
        ("(3, 7)", (3.0, 7.0)),
        ("between 3 and 7", (3.0, 7.0)),
        ("3 sec to 7 secs", (3.0, 7.0)),
        ("3 seconds to 7 seconds", (3.0, 7.0)),
        ("3 ~ 7", (3.0, 7.0)),
        ("3 – 7", (3.0, 7.0)),
        ("The event happens at 0 to 0.", (0.0, 0.0)),
        ("01:05 to 1:10.5", (65.0, 70.5)),
        ("1:00:00 to 1:00:30", (3600.0, 3630.0)),
        (".5 to 2.", (0.5, 2.0)),
        ("1e1 to 2e1", (10.0, 20.0)),
        ("first 2 to 4, then 6 to 8", (2.0, 4.0)),  # first match wins
    ],
)
def test_segment_grammar_accepts(text, expected):
    assert extract_segment(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "There is no such moment in the video.",
        "17.83 to 12.54",  # reversed
        "-3 to 5",  # negative start
        "nan to 5",
        "3 to inf",
        "1e309 to 2e309",  # overflows to inf
        "12.54",  # one number only
        "version2 to 3",  # a number glued to a word is not a time
        "3 apples and oranges",
        "The clip shows 2, 3 people at most, not five.",  # a bare comma is not a separator
    ],
)
def test_segment_grammar_rejects(text):
    assert extract_segment(text) is None


@pytest.mark.parametrize(
    "text, think, answer, correction",
    [
        (STRICT, "t", "1 to 2", "c"),
        ("<answer>a</answer><answer>b</answer>", None, "b", None),  # last block wins
        ("<answer>a</answer><answer>unclosed", None, "a", None),
        ("<answer> spaced </answer>", None, "spaced", None),
        ("<correction>NIL</correction>", None, None, "NIL"),  # released tag is an alias
        ("<correct>x</correct><correction>y</correction>", None, None, "y"),  # later of the two
        ("<correction>y</correction><correct>x</correct>", None, None, "x"),
        ("<answer><answer>in</answer></answer>", None, "in", None),  # nested: innermost complete block
        ("no tags at all", None, None, None),
        ("<ANSWER>1 to 2</ANSWER>", None, None, None),  # tags are case-sensitive
    ],
)
def test_blocks(text, think, answer, correction):
    parsed = parse_response(text)
    assert (parsed.think, parsed.answer, parsed.correction) == (think, answer, correction)


@pytest.mark.parametrize(
    "text, paper, released",
    [
        (STRICT, True, False),
        ("<think>t</think> <answer>1 to 2</answer> <correction>NIL</correction>", False, True),
        ("\n<think>t</think>\n<answer>a</answer>\n<correct>c</correct>\n", True, False),
        ("<think></think><answer></answer><correct></correct>", True, False),
        ("<think>t</think> <answer>a</answer>", False, False),  # missing correction
        ("<answer>a</answer> <think>t</think> <correct>c</correct>", False, False),  # wrong order
        ("x <think>t</think> <answer>a</answer> <correct>c</correct>", False, False),  # text outside
        ("<think>t</think> <answer>a</answer> <correct>c</correct> trailing", False, False),
        ("<think>t</think> between <answer>a</answer> <correct>c</correct>", False, False),
        ("<think>t</think> <answer>a</answer> <answer>b</answer> <correct>c</correct>", False, False),
        ("<think>t <answer>x</answer></think> <answer>a</answer> <correct>c</correct>", False, False),
        ("<think>t</think> <answer>a</answer> <correct>c</correct><correct>d</correct>", False, False),
        ("<think>t</think> <answer>a</answer> <correct>c", False, False),
    ],
)
def test_strict_format(text, paper, released):
    parsed = parse_response(text)
    assert (parsed.strict_format, parsed.strict_format_released) == (paper, released)


@pytest.mark.parametrize(
    "decoded, prompt, expected",
    [
        (
            "<|im_start|>system\ns<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\nR<|im_end|>",
            None,
            "R",
        ),
        ("<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\nR<|im_end|><|endoftext|><|endoftext|>", None, "R"),
        ("<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\nunfinished", None, "unfinished"),
        # the user's text mentioning the marker does not fool it: the last marker is the assistant turn
        ("<|im_start|>user\n<|im_start|>assistant fake<|im_end|>\n<|im_start|>assistant\nR<|im_end|>", None, "R"),
        ("PROMPT:response", "PROMPT:", "response"),
        ("plain response", "other prompt", "plain response"),
    ],
)
def test_extract_response(decoded, prompt, expected):
    assert extract_response(decoded, prompt) == expected


ADVERSARIAL = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(list("<>/thinkaswercoi 0123456789.-e,toand[]nalf")), max_size=400),
    st.lists(
        st.sampled_from(
            ["<think>", "</think>", "<answer>", "</answer>", "<correct>", "</correct>", "<correction>",
             "</correction>", "nan", "1e309", "-1", "3.5", " to ", " - ", "inf", "NIL", "\u202e", "😀", "\x00"]
        ),
        max_size=60,
    ).map("".join),
)


@settings(max_examples=400, deadline=None)
@given(ADVERSARIAL)
def test_parser_never_raises_and_segments_are_valid(text):
    parsed = parse_response(text)
    assert parsed == parse_response(text)  # deterministic
    segment = extract_segment(parsed.answer)
    if segment is not None:
        start, end = segment
        assert math.isfinite(start) and math.isfinite(end) and 0 <= start <= end


def test_parser_handles_megabyte_outputs_quickly():
    import time

    hostile = ["<answer>" * 200_000, "1" * 1_000_000, "1 " * 500_000, "<think>" + "x" * 2_000_000, "1." * 500_000]
    started = time.perf_counter()
    for text in hostile:
        parsed = parse_response(text)
        extract_segment(text)
        assert parsed.strict_format is False
    # A generous bound: quadratic behaviour on any of these would take minutes.
    assert time.perf_counter() - started < 20
