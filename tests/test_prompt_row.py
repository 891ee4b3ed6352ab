"""The OpenRLHF prompt row: written by make_row, read by parse_row / video_of / label_of, checked by row_problems."""

import json

import pytest

from rarft_plugin.clips import VideoError
from rarft_plugin.errors import DataError
from rarft_plugin.prompt_row import (
    DATASET_FLAGS,
    LABEL_KEY,
    VIDEO_KEY,
    PromptRow,
    label_of,
    make_row,
    parse_row,
    row_problems,
    video_of,
)
from rarft_plugin.prompts import build_messages
from rarft_plugin.schema import parse_label
from rarft_plugin.video import VideoSpec

CLIP = VideoSpec("/videos/clip.mp4", 0.0, 6.0)  # row_problems checks the path's form; the launcher probes the file
RELEVANT = {
    "relevant": True,
    "timestamp": [1.0, 3.0],
    "duration": 6.0,
    "query": "the bar moves right",
    "answer_time": "1.00 to 3.00",
    "answer_refusal": "",
    "query_relevant": "the bar moves right",
}
IRRELEVANT = {
    "relevant": False,
    "timestamp": None,
    "duration": 6.0,
    "query": "a dog barks",
    "answer_refusal": "There is no dog.",
    "query_relevant": "the bar moves right",
    "difficulty": "strong",
    "categories": ["Object/ObjectExistence"],
}


def prompt_row(label, template="ra_rft", video=CLIP):
    return make_row(parse_label(label), video, template=template, datasource="test", row_id=label["query"])


@pytest.mark.parametrize(
    "label, template, purpose, video",
    [
        (RELEVANT, "ra_rft", "train", CLIP),
        (IRRELEVANT, "ra_rft_released", "eval", VideoSpec("/v/ID_210.0_360.0.mp4", 210.0, 360.0)),
        ({**IRRELEVANT, "query": "un chien aboie à l'écran"}, "time_r1", "train", VideoSpec("/v/a.mp4")),
    ],
)
def test_a_written_row_reads_back_as_written(label, template, purpose, video):
    row = make_row(parse_label(label), video, template=template, purpose=purpose, datasource="src", row_id="3:1")
    again = json.loads(json.dumps(row, ensure_ascii=False))  # as a JSONL line
    assert parse_row(again) == PromptRow(
        messages=build_messages(template, label["query"], purpose=purpose),
        video=video,
        label=parse_label(label),
        datasource="src",
        id="3:1",
    )
    assert row_problems(again, template, "paper") == [] and row_problems(again, template, "released") == []


def test_the_dataset_flags_name_the_keys_of_the_row():
    row = prompt_row(RELEVANT)
    keys = [value for value in DATASET_FLAGS.values() if value is not None]
    assert keys == ["input", "label", "video"] and set(keys) <= set(row)
    assert "--data.apply_chat_template" in DATASET_FLAGS and DATASET_FLAGS["--data.apply_chat_template"] is None


@pytest.mark.parametrize(
    "row, fields",
    [
        ("good", []),
        ({"video": "{}", "label": "{}"}, ["input", "label.relevant", "video"]),
        ("bad label", ["label.duration"]),
        ("relative video", ["video"]),
        ("two videos", ["input"]),
        ("no video item", ["input"]),
        ("messages not a list", ["input"]),
        ("marker in the prompt", ["input", "input"]),  # the marker, and a prompt the template did not build
        ("marker in the label", ["input", "label.query"]),  # the marker, and a prompt not built from that label
        ("marker in a system message", ["input"]),
        ([1, 2], [None]),
    ],
)
def test_row_problems_name_the_field(row, fields):
    good = prompt_row(RELEVANT)
    rows = {
        "good": good,
        "bad label": {**good, "label": json.dumps({**RELEVANT, "duration": -1})},
        "relative video": {**good, "video": VideoSpec("videos/clip.mp4").to_json()},
        "two videos": {
            **good,
            "input": [{"role": "user", "content": [*good["input"][0]["content"], {"type": "video", "text": ""}]}],
        },
        "no video item": {**good, "input": [{"role": "user", "content": good["input"][0]["content"][:1]}]},
        "messages not a list": {**good, "input": "hello"},
        "marker in the prompt": {
            **good,
            "input": json.loads(json.dumps(good["input"]).replace("the bar moves right", "x<|im_end|><|im_start|>")),
        },
        "marker in the label": {**good, "label": json.dumps({**RELEVANT, "query": "x<|im_end|>"})},
        "marker in a system message": {**good, "input": [{"role": "system", "content": "<|im_end|>"}, *good["input"]]},
    }
    found = row_problems(rows.get(row, row) if isinstance(row, str) else row, "ra_rft")
    assert sorted(str(e.field) for e in found) == sorted(str(f) for f in fields)


@pytest.mark.parametrize(
    "built_with, expected, messages",
    [
        ("ra_rft", "ra_rft", []),
        (
            "time_r1",
            "ra_rft",
            ["prompt built with template 'time_r1', expected 'ra_rft' (rarft-prep to-openrlhf --template ra_rft)"],
        ),
        (
            "ra_rft",
            "ra_rft_released",
            [
                "prompt built with template 'ra_rft', expected 'ra_rft_released' "
                "(rarft-prep to-openrlhf --template ra_rft_released)"
            ],
        ),
        ("time_r1", None, []),
    ],
)
def test_the_prompt_template_is_checked(built_with, expected, messages):
    found = row_problems(prompt_row(IRRELEVANT, template=built_with), expected)
    assert [(e.field, e.message) for e in found] == [("input", m) for m in messages]


def test_the_reward_variant_check_is_applied_to_every_label():
    """The released refuse-IoU needs the duration of a relevant query (rarft_plugin.rewards.variant_label_problems)."""
    no_duration = {**RELEVANT, "duration": None}
    assert row_problems(prompt_row(no_duration), "ra_rft", "paper") == []
    (found,) = row_problems(prompt_row(no_duration), "ra_rft", "released")
    assert found.field == "label" and "released reward variant" in found.message and "duration" in found.message
    assert row_problems(prompt_row(RELEVANT), "ra_rft", "released") == []


@pytest.mark.parametrize(
    "row, message",
    [
        ("not a row", "expected a JSON object"),
        ({"input": [], "video": CLIP.to_json()}, "field label: missing"),
        ({**prompt_row(RELEVANT), "label": "{"}, "field label: label is not valid JSON"),
        ({**prompt_row(RELEVANT), "video": '{"path": 3}'}, "field video: expected a path"),
    ],
)
def test_parse_row_raises_the_first_problem(row, message):
    with pytest.raises(DataError, match=message):
        parse_row(row)


@pytest.mark.parametrize(
    "images, expected",
    [
        (CLIP.to_json(), CLIP),
        ([CLIP.to_json()], CLIP),  # OpenRLHF may wrap media in a list
        ("/videos/clip.mp4", VideoSpec("/videos/clip.mp4")),
    ],
)
def test_the_executor_reads_the_video_field_as_openrlhf_hands_it_over(images, expected):
    assert video_of(images) == expected


@pytest.mark.parametrize(
    "images, message",
    [
        (None, f"the sample has no video; run with --data.image_key {VIDEO_KEY}"),
        ('{"path": 3}', "expected a path"),
        ("{broken", "not valid JSON"),
    ],
)
def test_a_bad_video_field_is_a_video_error(images, message):
    with pytest.raises(VideoError, match=message) as raised:
        video_of(images)
    assert raised.value.field == VIDEO_KEY


@pytest.mark.parametrize(
    "value, field",
    [
        (json.dumps({**RELEVANT, "timestamp": [5, 2]}), f"{LABEL_KEY}.timestamp"),
        ("[]", LABEL_KEY),
    ],
)
def test_a_bad_label_field_names_the_label(value, field):
    with pytest.raises(DataError) as raised:
        label_of(value)
    assert raised.value.field == field


def test_the_label_field_reads_json_text_and_objects():
    assert label_of(prompt_row(IRRELEVANT)["label"]) == label_of(IRRELEVANT) == parse_label(IRRELEVANT)
