"""How the evaluation reads a response: `evaluation_answer` (the released reading) and the SBERT text."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rarft_plugin.parsing import (
    RELEASED_ANSWER_PATTERN,
    RELEASED_CORRECTION_PATTERN,
    RELEASED_THINK_PATTERN,
    evaluation_answer,
    sbert_response,
    without_correction,
    without_markup,
)


@pytest.mark.parametrize(
    "output, answer",
    [
        # every complete think block goes, then the first answer block; no block: what is left
        (
            "<think><timestep>0.00 to 3.00</timestep> a man sits.</think> The video does not contain this.",
            "The video does not contain this.",
        ),
        ("<answer>No match.</answer><answer>2 to 6</answer>", "No match."),
        # the template
        ("<think>t</think> <answer> 1 to 2 </answer> <correct>NIL</correct>", "1 to 2"),
        ("<think>a</think>x<think>b</think> y", "x y"),
        ("<think><answer>in think</answer></think><answer>after</answer>", "after"),
        ("<think>multi\nline</think>\n<answer>\nno\n</answer>", "no"),
        # an unclosed think block is not a block: it stays
        ("<think>open <answer>a</answer>", "a"),
        ("<think>open, never closed", "<think>open, never closed"),
        # nested / broken answer blocks
        ("<answer>a<answer>b</answer>", "a<answer>b"),
        ("<answer>a</answer></answer>", "a"),
        ("<answer>cut short", "<answer>cut short"),
        ("<answer></answer>", ""),
        ("", ""),
    ],
)
def test_the_answer_text_is_read_as_the_released_evaluation_reads_it(output, answer):
    assert evaluation_answer(output) == answer


@pytest.mark.parametrize(
    "output, expected",
    [
        ("<think>t</think> <answer>no</answer> <correction>q</correction>", "<think>t</think> <answer>no</answer>"),
        ("<answer>no</answer><correct>q</correct>", "<answer>no</answer>"),  # the paper's tag too
        ("<correction>a</correction>x<correction>b</correction>", "x"),
        ("<correction>unclosed", "<correction>unclosed"),
        ("<correct>a</correction>", "<correct>a</correction>"),  # mismatched: not a block
        ("plain text", "plain text"),
    ],
)
def test_without_correction(output, expected):
    assert without_correction(output) == expected


@pytest.mark.parametrize(
    "output, expected",
    [
        ("<think>t</think> <answer>no</answer> <correction>q</correction>", "t no"),  # think text kept
        ("<answer>no</answer><correct>q</correct>", "no"),  # the paper's tag too
        ("<think><timestep>0.00 to 3.00</timestep> a man sits</think>", "0.00 to 3.00 a man sits"),
        ("<answer>No match.</answer><|im_end|>", "No match."),  # every tag, chat markers too
        ("a < b > c", "a  c"),  # whatever `<[^>]+>` matches
        ("a <> b", "a <> b"),
        ("<correction>unclosed", "unclosed"),
        ("plain text", "plain text"),
    ],
)
def test_sbert_response_is_the_released_sbert_text(output, expected):
    assert sbert_response(output) == expected


MARKUP = st.lists(st.sampled_from(["<", ">", "<>", "a", " ", "<answer>", "</think>", "<|im_end|>", "\n"]), max_size=30)


@settings(max_examples=1000, deadline=None)
@given(MARKUP.map("".join))
def test_without_markup_is_the_released_regex(text):
    assert without_markup(text) == re.sub(r"<[^>]+>", "", text)


def test_without_markup_is_linear_where_the_regex_is_quadratic():
    hostile = "<" * 400_000  # re.sub(r"<[^>]+>", ...) scans to the end from every "<"
    assert without_markup(hostile) == hostile
    assert without_markup("<a" * 200_000 + ">") == ""


# responses made of whole tags and text pieces
TAGGY = st.lists(
    st.sampled_from(
        [
            "a",
            "b ",
            "0",
            "3.5",
            " to ",
            "\n",
            "<think>",
            "</think>",
            "<answer>",
            "</answer>",
            "<correct>",
            "</correct>",
            "</correction>",
            "<correction>",
            "<",
            "/",
            ">",
            "think",
            "correct",
            "ion>",
        ]
    ),
    max_size=40,
).map("".join)


def released_readings(output: str) -> tuple[str, str]:
    """The released evaluation's readings, with its own (quadratic) regexes: what rarft's must equal."""
    without_think = re.sub(RELEASED_THINK_PATTERN, "", output, flags=re.DOTALL)
    match = re.search(RELEASED_ANSWER_PATTERN, without_think, re.DOTALL)
    answer = (match.group(1) if match else without_think).strip()
    return answer, re.sub(RELEASED_CORRECTION_PATTERN, "", output, flags=re.DOTALL).strip()


@settings(max_examples=3000, deadline=None)
@given(TAGGY)
def test_the_linear_readings_equal_the_released_regexes(output):
    assert (evaluation_answer(output), without_correction(output)) == released_readings(output)


def shipped_texts(official_data):
    """Every text of the three shipped files (queries, answers, think blocks with timesteps), and the
    texts of each item joined as one response."""
    import json

    texts = []
    for name in ("hi_vtg_charades.json", "human_anno.json", "ss_vtg_charades.json"):
        for item in json.loads((official_data / name).read_text()):
            parts = [
                item.get("think") or "",
                *(q.get("a") or "" for q in item["GRPO"]),
                *(q["q"] for q in item["GRPO"]),
            ]
            texts += [*parts, " ".join(parts)]
    return texts


def test_the_linear_readings_equal_the_released_regexes_on_the_shipped_files(official_data):
    texts = shipped_texts(official_data)
    assert len(texts) > 15_000
    for text in texts:
        assert (evaluation_answer(text), without_correction(text)) == released_readings(text), text


@settings(max_examples=300, deadline=None)
@given(TAGGY)
def test_readings_never_raise_and_stay_inside_the_response(output):
    answer = evaluation_answer(output)
    assert isinstance(answer, str) and len(answer) <= len(output)
    # no complete think block is ever read as (part of) the answer
    assert re.search(r"<think>.*?</think>", evaluation_answer(output), re.DOTALL) is None
    assert len(without_correction(output)) <= len(output)
