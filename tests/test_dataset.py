import collections
import copy
import json

import pytest

from rarft_plugin.dataset import examples_from_items, load_examples, load_items, parse_item
from rarft_plugin.errors import DataError

ITEM = {
    "video": "v1.mp4", "query_text": "a man runs", "timestamp": [1.0, 3.0], "duration": 10.0,
    "GRPO": [
        {"q": "a man runs", "a": "<answer>1.0 to 3.0</answer>", "r": True, "difficulty": "original"},
        {"q": "a man walks", "a": "<answer>He runs, not walks.</answer><correct>a man runs</correct>", "r": False,
         "c": ["Action/FineGrainedAction"], "difficulty": "hard"},
    ],
}


def edited(path, value):
    item = copy.deepcopy(ITEM)
    target = item
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return item


@pytest.mark.parametrize(
    "item, field, message",
    [
        (edited(["video"], ...), "video", "non-empty string"),
        (edited(["duration"], -1), "duration", "> 0"),
        (edited(["duration"], "10"), "duration", "finite number"),
        (edited(["timestamp"], [3, 1]), "timestamp", "start <= end"),
        (edited(["timestamp"], []), "timestamp", "relevant query needs"),
        (edited(["timestamp"], [1, float("nan")]), "timestamp", "finite"),
        (edited(["video_start"], 5) | {"video_end": 2}, "video_end", "after video_start"),
        (edited(["GRPO"], []), "GRPO", "non-empty list"),
        (edited(["GRPO", 1, "q"], ""), "GRPO[1].q", "non-empty string"),
        (edited(["GRPO", 1, "r"], "no"), "GRPO[1].r", "true or false"),
        (edited(["GRPO", 1, "c"], ["Object/Unknown"]), "GRPO[1].c", "unknown category"),
        (edited(["GRPO", 1, "difficulty"], "extreme"), "GRPO[1].difficulty", "unknown difficulty"),
        (edited(["GRPO", 1, "difficulty"], "original"), "GRPO[1].difficulty", "cannot be 'original'"),
    ],
)
def test_bad_records_name_file_record_and_field(tmp_path, item, field, message):
    path = tmp_path / "eval.json"
    path.write_text(json.dumps([ITEM, item]))
    with pytest.raises(DataError) as caught:
        load_items(path)
    assert (caught.value.source, caught.value.record, caught.value.field) == (str(path), 1, field)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "content, message", [("{", "not valid JSON"), ('{"a": 1}', "JSON list"), ("[3]", "record 0: expected an object")]
)
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_items(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_items(tmp_path / "nope.json")


def test_labels_of_an_hi_vtg_item():
    relevant, irrelevant = examples_from_items([parse_item(ITEM, 0)])[0]
    assert relevant.label.timestamp == (1.0, 3.0) and relevant.label.answer_time == "1.0 to 3.0"
    assert relevant.label.answer_refusal == "He runs, not walks."  # the explain reward's negative
    assert irrelevant.label.timestamp is None and irrelevant.label.difficulty == "strong"
    assert irrelevant.label.answer_refusal == "He runs, not walks."
    assert irrelevant.label.answer_time == "1.0 to 3.0" and irrelevant.label.query_relevant == "a man runs"
    assert irrelevant.label.categories == ("Action/FineGrainedAction",) and irrelevant.key == "0:1"


EXPECTED = {
    # file: (examples, relevant, {difficulty: count}, unknown spans, spans beyond duration)
    "hi_vtg_charades.json": (2194, 1097, {"original": 1097, "strong": 530, "moderate": 363, "weak": 204}, 0, 166),
    "human_anno.json": (200, 100, {None: 200}, 0, 0),
    "ss_vtg_charades.json": (3138, 1278, {"original": 1278, "shuffled": 1860}, 582, 199),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_official_files_load_as_is(official_data, name):
    examples, report = load_examples(official_data / name)
    total, relevant, difficulties, unknown, beyond = EXPECTED[name]
    assert len(examples) == total and sum(e.label.relevant for e in examples) == relevant
    assert dict(collections.Counter(e.label.difficulty for e in examples)) == difficulties
    assert (len(report.unknown_spans), len(report.spans_beyond_duration)) == (unknown, beyond)
    assert str(len(report.unknown_spans)) in report.summary()


def test_strict_mode_refuses_unknown_spans(official_data):
    with pytest.raises(DataError, match="is not in the file"):
        load_examples(official_data / "ss_vtg_charades.json", unknown_span="error")


def test_hi_vtg_difficulty_matches_category_count(official_data):
    from rarft_plugin.taxonomy import CATEGORY_COUNT_BY_DIFFICULTY

    examples, _ = load_examples(official_data / "hi_vtg_charades.json")
    for example in examples:
        if not example.label.relevant:
            assert len(example.label.categories) == CATEGORY_COUNT_BY_DIFFICULTY[example.label.difficulty]
