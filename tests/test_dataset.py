import collections
import copy
import json

import pytest

from rarft_plugin.dataset import LoadReport, examples_from_items, load_examples, load_items
from rarft_plugin.errors import DataError
from rarft_plugin.schema import DIFFICULTY, parse_item

ITEM = {
    "video": "v1.mp4",
    "query_text": "a man runs",
    "timestamp": [1.0, 3.0],
    "duration": 10.0,
    "GRPO": [
        {"q": "a man runs", "a": "<answer>1.0 to 3.0</answer>", "r": True, "difficulty": "original"},
        {
            "q": "a man walks",
            "a": "<answer>He runs, not walks.</answer><correct>a man runs</correct>",
            "r": False,
            "c": ["Action/FineGrainedAction"],
            "difficulty": "hard",
        },
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
    "report, summary",
    [
        (LoadReport("f.json"), ""),  # nothing found: nothing printed
        (LoadReport("f.json", missing_durations=3), "f.json: 3 item(s) without a duration"),
        (
            LoadReport("f.json", unknown_spans=["0:1"], missing_durations=1),
            "f.json: 1 relevant query span(s) unknown (left out), 1 item(s) without a duration",
        ),
    ],
)
def test_the_load_summary_names_only_what_it_found(report, summary):
    assert report.summary() == summary


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
        (edited(["GRPO", 1, "c"], "Object/ObjectExistence"), "GRPO[1].c", "list of category paths"),
        (edited(["GRPO", 1, "difficulty"], "extreme"), "GRPO[1].difficulty", "unknown difficulty"),
        (edited(["GRPO", 1, "difficulty"], "original"), "GRPO[1].difficulty", "cannot be 'original'"),
        (edited(["GRPO", 1, "q"], "a dog<|im_end|>"), "GRPO[1].q", "special-token marker '<|im_end|>'"),
        (edited(["GRPO", 1, "a"], "<answer>No.</answer><answer>2 to 6</answer>"), "GRPO[1].a", "more after"),
        (edited(["query_text"], "q\x00"), "query_text", "control character"),
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


# The two released files we do not ship, written from their descriptions: HI-TVGBench (duration
# null, absolute author paths, an extra `class` key, a category outside the taxonomy on one query)
# and SS-QVHighlights (irrelevant answers without an <answer> wrapper, empty category lists).
HI_TVGBENCH_LIKE = [
    {
        "video": "/data/author/tvgbench/videos/v_abc.mp4",
        "query_text": "a man opens the door",
        "timestamp": [12.0, 20.0],
        "duration": None,
        "video_start": None,
        "video_end": None,
        "think": "",
        "difficulty": None,
        "GRPO": [
            {
                "q": "a man opens the door",
                "a": "<answer>12.0 to 20.0</answer>",
                "r": True,
                "c": [],
                "difficulty": "original",
                "class": "relevant",
            },
            {
                "q": "a man closes the door in the dark",
                "a": "<answer>He opens it, in daylight.</answer>",
                "r": False,
                "c": ["Action/FineGrainedAction", "Action/SceneTransition"],
                "difficulty": "medium",
                "class": "hard",
            },
        ],
    },
    {
        "video": "/data/author/tvgbench/videos/v_def.mp4",
        "query_text": "a dog runs",
        "timestamp": [1.0, 4.0],
        "duration": None,
        "video_start": None,
        "video_end": None,
        "think": "",
        "difficulty": None,
        "GRPO": [
            {"q": "a dog runs", "a": "<answer>1.0 to 4.0</answer>", "r": True, "c": [], "difficulty": "original"},
            {
                "q": "a cat runs",
                "a": "<answer>It is a dog.</answer>",
                "r": False,
                "c": ["Object/ObjectExistence"],
                "difficulty": "hard",
                "class": "hard",
            },
        ],
    },
]
SS_QVHIGHLIGHTS_LIKE = [
    {
        "video": "/data/author/qvhighlights/videos/ID_210.0_360.0.mp4",
        "query_text": "a chef cuts onions",
        "timestamp": [10.0, 24.0],
        "duration": None,
        "think": "",
        "GRPO": [
            {"q": "a chef cuts onions", "a": "", "r": True, "c": [], "difficulty": "original"},
            {
                "q": "kids play football",
                "a": "This query is unrelated to the video.",
                "r": False,
                "c": [],
                "difficulty": "easy",
            },
        ],
    },
]


@pytest.mark.parametrize(
    "records, levels, unknown_categories",
    [
        (HI_TVGBENCH_LIKE, ["original", "moderate", "original", "strong"], ["0:1: Action/SceneTransition"]),
        (SS_QVHIGHLIGHTS_LIKE, ["original", "shuffled"], []),
    ],
)
def test_the_files_we_do_not_ship_load_as_they_are(tmp_path, records, levels, unknown_categories):
    path = tmp_path / "released.json"
    path.write_text(json.dumps(records))
    examples, report = load_examples(path)
    assert len(examples) == 2 * len(records) and [e.label.difficulty for e in examples] == levels
    assert all(e.label.duration is None and e.item.duration is None for e in examples)
    assert report.missing_durations == len(records) and report.unknown_categories == unknown_categories
    assert (f"{len(unknown_categories)} category entr(ies) outside the taxonomy" in report.summary()) == bool(
        unknown_categories
    )
    irrelevant = [e.label for e in examples if not e.label.relevant]
    if records is HI_TVGBENCH_LIKE:  # the odd category is left out of the categories, the query is kept
        assert irrelevant[0].categories == ("Action/FineGrainedAction",)
        assert irrelevant[0].answer_refusal == "He opens it, in daylight."
    else:  # an answer without wrapper is read as it is
        assert (
            irrelevant[0].answer_refusal == "This query is unrelated to the video." and irrelevant[0].categories == ()
        )


# SS-Charades: 582 second relevant queries have no span of their own in the file.
@pytest.mark.parametrize(
    "options, recovered, assumed, unknown, relevant",
    [
        ({}, 0, 0, 582, 1278),
        ({"spans_from": ["hi_vtg_charades.json"]}, 189, 0, 393, 1467),
        ({"spans_from": ["hi_vtg_charades.json", "human_anno.json"]}, 189, 0, 393, 1467),
        ({"unknown_span": "item"}, 0, 582, 0, 1860),  # the released inference: the item's timestamp
    ],
)
def test_ss_charades_second_query_spans(official_data, options, recovered, assumed, unknown, relevant):
    options = {**options, "spans_from": [official_data / name for name in options.get("spans_from", [])]}
    examples, report = load_examples(official_data / "ss_vtg_charades.json", **options)
    assert (len(report.recovered_spans), len(report.assumed_spans), len(report.unknown_spans)) == (
        recovered,
        assumed,
        unknown,
    )
    assert sum(e.label.relevant for e in examples) == relevant
    # the summary names what was found, and only that
    assert (f"{recovered} relevant query span(s) recovered" in report.summary()) == bool(recovered)
    assert (f"{assumed} assumed to be the item's timestamp" in report.summary()) == bool(assumed)
    assert "0 " not in report.summary().split(": ", 1)[1]


def test_recovered_spans_are_the_other_files_spans(official_data):
    """A recovered span is the span the other file gives that query on the same video, not the item's."""
    hi = {
        (e.item.video.rsplit("/", 1)[-1], e.label.query.lower()): e.label.timestamp
        for e in load_examples(official_data / "hi_vtg_charades.json")[0]
        if e.label.relevant
    }
    examples, report = load_examples(
        official_data / "ss_vtg_charades.json", spans_from=[official_data / "hi_vtg_charades.json"]
    )
    recovered = [e for e in examples if e.key in set(report.recovered_spans)]
    for example in recovered:
        assert example.label.timestamp == hi[(example.item.video.rsplit("/", 1)[-1], example.label.query.lower())]
    # the released inference's item timestamp is wrong for 133 of them (Charades-STA annotates some
    # events twice with the same span)
    assert sum(e.label.timestamp != e.item.timestamp for e in recovered) == 133


EXPECTED = {
    # file: (examples, relevant, {difficulty: count}, unknown spans, spans beyond duration)
    # spans ending more than half a second after the video (schema.span_problem): the Charades-STA defect
    "hi_vtg_charades.json": (2194, 1097, {"original": 1097, "strong": 530, "moderate": 363, "weak": 204}, 0, 149),
    "human_anno.json": (200, 100, {None: 200}, 0, 0),
    "ss_vtg_charades.json": (3138, 1278, {"original": 1278, "shuffled": 1860}, 582, 178),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_official_files_load_as_is(official_data, name):
    examples, report = load_examples(official_data / name)
    total, relevant, difficulties, unknown, beyond = EXPECTED[name]
    assert len(examples) == total and sum(e.label.relevant for e in examples) == relevant
    assert dict(collections.Counter(e.label.difficulty for e in examples)) == difficulties
    assert (len(report.unknown_spans), len(report.spans_beyond_duration)) == (unknown, beyond)
    assert (f"{unknown} relevant query span(s) unknown" in report.summary()) == bool(unknown)
    known_defect = f"{beyond} span(s) ending after the video's duration (a known defect of the released"
    assert (known_defect in report.summary()) == bool(beyond)
    assert report.summary() or name == "human_anno.json"  # a file without defects prints nothing


def test_strict_mode_refuses_unknown_spans(official_data):
    with pytest.raises(DataError, match="is not in the file"):
        load_examples(official_data / "ss_vtg_charades.json", unknown_span="error")


def test_hi_vtg_difficulty_matches_category_count(official_data):
    examples, _ = load_examples(official_data / "hi_vtg_charades.json")
    for example in examples:
        if not example.label.relevant:
            assert len(example.label.categories) == DIFFICULTY[example.label.difficulty].edited
