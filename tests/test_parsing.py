import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rarft_plugin.parsing import (
    BOILERPLATE_WORDS,
    RELEASED_FORMAT_PATTERN,
    RELEASED_SEGMENT_PATTERN,
    extract_response,
    extract_segment,
    extract_segment_released,
    find_special_token,
    follows_blocks,
    parse_response,
    strip_boilerplate,
    unclosed_block,
    without_end_of_turn,
)
from rarft_plugin.prompts import OUTPUT_BLOCKS

STRICT = "<think>t</think> <answer>1 to 2</answer> <correct>c</correct>"


# ---- timestamp grammar, paper variant -------------------------------------------------------
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


# ---- timestamp grammar, released variant ----------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("12.54 to 17.83", (12.54, 17.83)),
        ("from 2 to 6", (2.0, 6.0)),
        ("2. to 6.", (2.0, 6.0)),
        ("-3 to 5", (3.0, 5.0)),  # the minus sign is not part of a number
        ("6 to 2", (6.0, 2.0)),  # reversed: used as written
        ("0 to 0", (0.0, 0.0)),
        ("2\tto\n6", (2.0, 6.0)),  # any whitespace around "to"
        ("1e1 to 2e1", (1.0, 2.0)),  # no exponent: "1 to 2" is the first match
        ("00:02 to 00:06", (2.0, 0.0)),  # no clocks: "02 to 00" is the first match
        ("1.2.3 to 4", (2.3, 4.0)),
        (".5 to 2", (5.0, 2.0)),  # a number starts with a digit
        ("first 2 to 4, then 6 to 8", (2.0, 4.0)),
        ("٢ to ٦", (2.0, 6.0)),  # \d and float() both take any Unicode decimal digit
        ("2 TO 6", (2.0, 6.0)),  # re.IGNORECASE (main_rarft.py:241)
        ("2 To 6", (2.0, 6.0)),
        ("9" * 400 + " to 1", (math.inf, 1.0)),  # float() overflows to inf
    ],
)
def test_released_segment_grammar_accepts(text, expected):
    assert extract_segment_released(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "2 - 6",
        "2-6",
        "[2, 6]",
        "2s to 6s",
        "2 seconds to 6",
        "between 2 and 6",
        "2to 6",
        "nan to 3",
        "No such moment.",
    ],
)
def test_released_segment_grammar_rejects(text):
    assert extract_segment_released(text) is None


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("0123456789. \t\ntoTO-٣x")), max_size=24))
def test_released_segment_is_the_released_regex(text):
    match = re.search(RELEASED_SEGMENT_PATTERN, text, re.IGNORECASE)
    expected = (float(match.group(1)), float(match.group(2))) if match else None
    assert extract_segment_released(text) == expected


# ---- blocks ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, think, answer, correction, correction_released",
    [
        (STRICT, "t", "1 to 2", "c", None),
        ("<answer>a</answer><answer>b</answer>", None, "a", None, None),  # first block wins
        ("<answer>No match.</answer><answer>2 to 6</answer>", None, "No match.", None, None),
        ("<answer>a</answer><answer>unclosed", None, "a", None, None),
        ("<answer>unclosed <answer>b</answer>", None, "unclosed <answer>b", None, None),  # as re.search reads it
        ("<think>t</think> <answer>2 to 6", "t", None, None, None),  # cut off before </answer>: no answer
        ("<answer> spaced </answer>", None, "spaced", None, None),
        ("<correction>NIL</correction>", None, None, "NIL", "NIL"),  # released tag is an alias
        ("<correct>x</correct><correction>y</correction>", None, None, "x", "y"),  # the earlier of the two
        ("<correction>y</correction><correct>x</correct>", None, None, "y", "y"),
        ("<correct>c</correct>", None, None, "c", None),  # the released code reads only <correction>
        ("<answer><answer>in</answer></answer>", None, "<answer>in", None, None),  # first open, first close
        ("<think><answer>x</answer></think><answer>2 to 6</answer>", "<answer>x</answer>", "x", None, None),
        ("no tags at all", None, None, None, None),
        ("<ANSWER>1 to 2</ANSWER>", None, None, None, None),  # tags are case-sensitive
    ],
)
def test_blocks(text, think, answer, correction, correction_released):
    parsed = parse_response(text)
    assert (parsed.think, parsed.answer, parsed.correction, parsed.correction_released) == (
        think,
        answer,
        correction,
        correction_released,
    )


BLOCK_PIECES = st.lists(
    st.sampled_from(
        [
            "<answer>",
            "</answer>",
            "<correction>",
            "</correction>",
            "<correct>",
            "</correct>",
            "<think>",
            "</think>",
            " ",
            "\n",
            "x",
            "2 to 6",
            "<answer",
            "/answer>",
        ]
    ),
    max_size=14,
).map("".join)


@settings(max_examples=1000, deadline=None)
@given(BLOCK_PIECES)
def test_first_block_is_what_re_search_finds(text):
    def first(tag):
        match = re.search(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL)
        return match.group(1).strip() if match else None

    parsed = parse_response(text)
    assert (parsed.answer, parsed.think) == (first("answer"), first("think"))


def released_last_block(text, tag):
    """The released reward's reading, as written (main_rarft.py:140-155); quadratic on repeated opening tags."""
    found = re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL)
    return found[-1].strip() if found else None


@pytest.mark.parametrize(
    "text, answer_released, correction_released",
    [
        ("<answer>No match.</answer><answer>2 to 6</answer>", "2 to 6", None),  # the last block wins
        ("<answer>2 to 6</answer><answer>No match.</answer>", "No match.", None),
        ("<answer>a</answer><answer>unclosed", "a", None),  # an unclosed block does not count
        ("<answer>a <answer>b</answer> c</answer>", "a <answer>b", None),  # first open, first close, then on
        ("<answer><answer>in</answer></answer>", "<answer>in", None),
        ("<correction>x</correction> <correction>NIL</correction>", None, "NIL"),
        ("<correction>NIL</correction> <correction>a man runs</correction>", None, "a man runs"),
        ("<correction>x</correction><correct>y</correct>", None, "x"),  # only <correction> is read
        ("<think>t</think> <answer>2 to 6", None, None),  # cut off before </answer>: no answer
        ("<answer></answer>", "", None),  # an empty block is a block
    ],
)
def test_last_blocks_as_the_released_reward_reads_them(text, answer_released, correction_released):
    parsed = parse_response(text)
    assert (parsed.answer_released, parsed.correction_released) == (answer_released, correction_released)
    assert (released_last_block(text, "answer"), released_last_block(text, "correction")) == (
        answer_released,
        correction_released,
    )


@settings(max_examples=1000, deadline=None)
@given(BLOCK_PIECES)
def test_last_block_is_what_the_released_findall_finds(text):
    parsed = parse_response(text)
    assert (parsed.answer_released, parsed.correction_released) == (
        released_last_block(text, "answer"),
        released_last_block(text, "correction"),
    )


# ---- formats --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, paper, released",
    [
        (STRICT, True, False),  # the released regex accepts only <correction>
        ("<think>t</think> <answer>1 to 2</answer> <correction>NIL</correction>", False, True),
        ("\n<think>t</think>\n<answer>a</answer>\n<correct>c</correct>\n", True, False),
        ("\n<think>t</think>\n<answer>a</answer>\n<correction>c</correction>\n", False, True),  # stripped first
        ("<think></think><answer></answer><correct></correct>", True, False),
        ("<think></think><answer></answer><correction></correction>", False, True),
        ("<think>t</think> <answer>a</answer>", False, False),  # missing correction
        ("<answer>a</answer> <think>t</think> <correct>c</correct>", False, False),  # wrong order
        ("<answer>a</answer> <think>t</think> <correction>c</correction>", False, False),
        ("x <think>t</think> <answer>a</answer> <correct>c</correct>", False, False),  # text outside
        ("x <think>t</think> <answer>a</answer> <correction>c</correction>", False, False),
        ("<think>t</think> <answer>a</answer> <correct>c</correct> trailing", False, False),
        ("<think>t</think> <answer>a</answer> <correction>c</correction> trailing", False, False),  # fullmatch
        ("<think>t</think> between <answer>a</answer> <correct>c</correct>", False, False),
        ("<think>t</think> between <answer>a</answer> <correction>c</correction>", False, False),
        # released: `.*?` runs across tags, so repeated or nested blocks pass
        ("<think>t</think> <answer>a</answer> <answer>b</answer> <correct>c</correct>", False, False),
        ("<think>t</think> <answer>a</answer> <answer>b</answer> <correction>c</correction>", False, True),
        ("<think>t <answer>x</answer></think> <answer>a</answer> <correction>c</correction>", False, True),
        ("<think>t</think> <answer>a</answer> <correction>c</correction><correction>d</correction>", False, True),
        ("<think>t</think> <answer>a</answer> <correct>c</correct><correct>d</correct>", False, False),
        ("<think>t</think> <answer>a</answer> <correct>c", False, False),
        ("<think>t</think> <answer>a</answer> <correction>c", False, False),
    ],
)
def test_formats(text, paper, released):
    parsed = parse_response(text)
    assert (parsed.strict_format, parsed.released_format) == (paper, released)


FORMAT_PIECES = st.lists(
    st.sampled_from(
        [
            "<think>",
            "</think>",
            "<answer>",
            "</answer>",
            "<correction>",
            "</correction>",
            "<correct>",
            " ",
            "\n",
            "\u2003",
            "x",
            "<",
        ]
    ),
    max_size=16,
).map("".join)


@settings(max_examples=2000, deadline=None)
@given(FORMAT_PIECES)
def test_released_format_is_the_released_regex(text):
    expected = re.fullmatch(RELEASED_FORMAT_PATTERN, text.strip(), re.DOTALL) is not None
    assert parse_response(text).released_format == expected


# ---- special tokens -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>t</think> <answer>2 to 6</answer><|video_pad|><|video_pad|>", "<|video_pad|>"),
        ("<|image_pad|>", "<|image_pad|>"),
        ("<answer><|vision_start|>2 to 6</answer>", "<|vision_start|>"),
        ("x <|im_start|>assistant", "<|im_start|>"),
        ("done<|endoftext|>", "<|endoftext|>"),
        ("<|eot_id|>", "<|eot_id|>"),  # any model's marker
        (STRICT, None),
        ("<answer>a | b, <| not a token |></answer>", None),
        ("<||>", None),
        ("", None),
    ],
)
def test_find_special_token(text, expected):
    assert find_special_token(text) == expected
    assert parse_response(text).special_token == expected


# ---- chat template --------------------------------------------------------------------------
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


# ---- adversarial model output ---------------------------------------------------------------
ADVERSARIAL = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(list("<>/|thinkaswercoi 0123456789.-e,toand[]nalf")), max_size=400),
    st.lists(
        st.sampled_from(
            [
                "<think>",
                "</think>",
                "<answer>",
                "</answer>",
                "<correct>",
                "</correct>",
                "<correction>",
                "</correction>",
                "nan",
                "1e309",
                "-1",
                "3.5",
                " to ",
                " - ",
                "inf",
                "NIL",
                "\u202e",
                "😀",
                "\x00",
                "<|video_pad|>",
                "<|",
                "|>",
                "9" * 400,
                "٣",
            ]
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
    released = extract_segment_released(parsed.answer)
    if released is not None:
        assert all(value >= 0 for value in released)  # no sign is ever read


def test_parser_handles_megabyte_outputs_quickly():
    import time

    hostile = [
        "<answer>" * 200_000,
        "1" * 1_000_000,
        "1 " * 500_000,
        "<think>" + "x" * 2_000_000,
        "1." * 500_000,
        "<think>" + "</think><answer></answer>" * 60_000 + "<correction>",  # cubic for the released regex
        "<answer>" * 200_000 + "</answer>" * 10,  # quadratic for the released findall
        "<correction></correction>" * 100_000,
        "<think>" + "</think> <answer>" * 100_000 + "</correction>",
        "<|" + "a" * 1_000_000,
        "<|" * 500_000,
        "1" + " " * 1_000_000 + "t",
        "1" * 500_000 + " to " + "2" * 500_000,
    ]
    started = time.perf_counter()
    for text in hostile:
        parsed = parse_response(text)
        extract_segment(text)
        extract_segment_released(text)
        assert parsed.strict_format is False and parsed.released_format is False
    # A generous bound: quadratic behaviour on any of these would take minutes.
    assert time.perf_counter() - started < 20


@pytest.mark.parametrize(
    "text, template, follows",
    [
        (STRICT, "ra_rft", True),
        ("<think>t</think><answer>1 to 2</answer><correction>NIL</correction>", "ra_rft_released", True),
        ("<think>t</think><answer>1 to 2</answer><correction>NIL</correction>", "ra_rft", False),  # other tag
        ("<think><timestep>0.00 to 3.00</timestep> a man sits</think>\n<answer>3 to 5</answer>", "time_r1", True),
        ("<answer>3 to 5</answer>", "qwen2_5_vl", True),
        ("<answer>3 to 5</answer>", "videochat_r1_think", False),  # the think block is missing
        ("<think>t</think> <answer>3 to 5</answer>", "videochat_r1", False),  # a block it did not ask for
        ("The answer is <answer>3 to 5</answer>", "videochat_r1", False),  # text outside the blocks
        ("<answer>3 to 5</answer> <answer>6 to 7</answer>", "qwen2_5_vl", False),
        ("<answer>3 to 5", "qwen2_5_vl", False),
        ("\n\n\n", "ra_rft", False),  # a model emitting only newlines
        ("", "qwen2_5_vl", False),
    ],
)
def test_follows_blocks_of_each_template(text, template, follows):
    assert follows_blocks(text, OUTPUT_BLOCKS[template]) is follows


def test_every_template_declares_its_output_blocks():
    from rarft_plugin.prompts import TEMPLATES, instruction

    assert set(OUTPUT_BLOCKS) == set(TEMPLATES)
    for template, blocks in OUTPUT_BLOCKS.items():  # each block the instruction asks for, and no other
        text = instruction(template, "a man sits")
        assert all(f"<{block}>" in text for block in blocks)
        assert not any(f"<{tag}>" in text for tag in {"think", "answer", "correct", "correction"} - set(blocks))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>the man opens the", "think"),
        ("<think>t</think> <answer>1 to", "answer"),
        ("<think>t</think> <answer>1 to 2</answer> <correct>a man", "correct"),
        (STRICT, None),
        ("no tags at all", None),
        ("</answer> stray closing", None),
    ],
)
def test_unclosed_block(text, expected):
    assert unclosed_block(text) == expected


@settings(max_examples=300, deadline=None)
@given(ADVERSARIAL)
def test_strict_format_is_follows_blocks_of_the_ra_rft_template(text):
    assert parse_response(text).strict_format is follows_blocks(text, OUTPUT_BLOCKS["ra_rft"])


# ---- boilerplate of refusals (the debiased explanation) -------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("This query does not align well with the video segment.", ""),  # the released files' commonest opener
        ("I believe this query is entirely inappropriate for the video.The man sits.", "The man sits."),
        ("There are some inconsistencies between the query and the video content: he holds a cup.", "he holds a cup."),
        ("The video shows a kitchen, not a bedroom.", "The video shows a kitchen, not a bedroom."),
        (
            "This query has some spatial inconsistencies with the video.",
            "This query has some spatial inconsistencies with the video.",
        ),
        ("9.3 to 14.4", "9.3 to 14.4"),  # numbers are content: a span is never boilerplate
        ("No relevant segment exists: the video does not show the event described in the query.", ""),
        (
            "The video does not show that a man sits; no segment matches the query.",
            "The video does not show that a man sits;",
        ),
        ("...  !!", ""),
        ("", ""),
    ],
)
def test_strip_boilerplate(text, expected):
    assert strip_boilerplate(text) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([*"aT. ;:!?\n", "video ", "query ", "cup ", "9.3 ", "This "]), max_size=60).map("".join)
)
def test_strip_boilerplate_keeps_only_clauses_with_content_and_is_idempotent(text):
    stripped = strip_boilerplate(text)
    assert strip_boilerplate(stripped) == stripped
    words = re.findall(r"\w+", stripped.lower())
    assert not words or not all(word in BOILERPLATE_WORDS for word in words)
    assert set(words) <= set(re.findall(r"\w+", text.lower()))


@pytest.mark.parametrize(
    "response, expected",
    [
        ("<answer>No.</answer><|im_end|>", "<answer>No.</answer>"),
        ("<answer>No.</answer> <|im_end|>\n", "<answer>No.</answer>"),
        ("<answer>No.</answer><|im_end|><|endoftext|>", "<answer>No.</answer>"),  # every trailing marker
        ("<|im_end|>", ""),
        ("a <|im_end|> b", "a <|im_end|> b"),  # only at the end
        ("<answer>No.</answer>", "<answer>No.</answer>"),
        ("im_end|>", "im_end|>"),
        ("", ""),
    ],
)
def test_without_end_of_turn(response, expected):
    assert without_end_of_turn(response) == expected


def test_without_end_of_turn_is_linear():
    assert without_end_of_turn("x" + "<|im_end|> " * 200_000) == "x"


def test_the_default_chat_markers_are_the_default_familys():
    """parsing reads ChatML where no family is named; that must stay the default family's template."""
    from rarft_plugin.models import default_family
    from rarft_plugin.parsing import CHATML

    assert default_family().CHAT == CHATML
