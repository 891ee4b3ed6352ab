import json

import pytest

from rarft_plugin.errors import DataError
from rarft_plugin.schema import Label, parse_label, query_difficulty, strip_tags

BASE = {"relevant": True, "timestamp": [1.0, 2.5], "duration": 30, "query": "a man runs"}


def with_(**changes):
    label = dict(BASE)
    for key, value in changes.items():
        if value is ...:
            label.pop(key)
        else:
            label[key] = value
    return label


@pytest.mark.parametrize(
    "raw, field, message",
    [
        (with_(relevant=...), "relevant", "is missing"),
        (with_(relevant="yes"), "relevant", "true or false"),
        (with_(duration=0), "duration", "> 0"),
        (with_(duration=-2.5), "duration", "> 0"),
        (with_(duration=float("nan")), "duration", "finite"),
        (with_(duration="30"), "duration", "number"),
        (with_(query=""), "query", "empty"),
        (with_(query=3), "query", "string"),
        (with_(timestamp=...), "timestamp", "relevant query needs"),
        (with_(timestamp=[3, 1]), "timestamp", "start <= end"),
        (with_(timestamp=[-1, 1]), "timestamp", "start <= end"),
        (with_(timestamp=[1]), "timestamp", "[start, end]"),
        (with_(timestamp=[1, float("inf")]), "timestamp", "finite"),
        (with_(relevant=False), "timestamp", "irrelevant"),
        (with_(difficulty="extreme"), "difficulty", "unknown difficulty"),
        (with_(categories=["Object/Nope"]), "categories", "unknown category"),
        (with_(categories="Object/ObjectExistence"), "categories", "list"),
        (with_(answer_time=5), "answer_time", "string"),
        (with_(id=[1]), "id", "string or integer"),
    ],
)
def test_invalid_labels_name_the_field(raw, field, message):
    with pytest.raises(DataError) as caught:
        parse_label(raw, source="train.jsonl", record=7)
    error = caught.value
    assert (error.field, error.source, error.record) == (field, "train.jsonl", 7)
    assert message in str(error) and "train.jsonl: record 7" in str(error)


@pytest.mark.parametrize(
    "raw, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        (with_(colour="red"), "unknown label field"),
    ],
)
def test_invalid_label_documents(raw, message):
    with pytest.raises(DataError, match=message):
        parse_label(raw)


@pytest.mark.parametrize(
    "raw, attribute, expected",
    [
        (BASE, "timestamp", (1.0, 2.5)),
        (json.dumps(BASE), "timestamp", (1.0, 2.5)),  # OpenRLHF passes labels as JSON strings
        (with_(relevant=False, timestamp=None), "timestamp", None),
        (with_(relevant=False, timestamp=[]), "timestamp", None),
        (with_(difficulty="hard"), "difficulty", "strong"),
        (with_(difficulty="medium"), "difficulty", "moderate"),
        (with_(difficulty="easy"), "difficulty", "weak"),
        (with_(answer_time="<answer>1.0 to 2.5</answer>"), "answer_time", "1.0 to 2.5"),
        (with_(query_relevant="<correct>a man runs</correct>"), "query_relevant", "a man runs"),
        (with_(categories=["Object/ObjectExistence"]), "categories", ("Object/ObjectExistence",)),
        (BASE, "answer_refusal", ""),
        # HI-TVGBench and SS-QVHighlights have `duration: null` on every record: unknown, not an error
        (with_(duration=None), "duration", None),
        (with_(duration=...), "duration", None),
        (with_(duration=12), "duration", 12.0),
    ],
)
def test_valid_labels(raw, attribute, expected):
    assert getattr(parse_label(raw), attribute) == expected


def test_label_round_trips_through_json():
    label = parse_label(with_(difficulty="hard", categories=["Attribute/Counting"], id="3:1"))
    assert parse_label(json.dumps(label.to_json())) == label
    assert parse_label(label) is label
    assert isinstance(label, Label)


@pytest.mark.parametrize(
    "reference, expected",
    [
        ("<answer>He sits.</answer><correct>a man runs</correct>", "He sits. a man runs"),
        ("This query is unrelated to the video.", "This query is unrelated to the video."),  # no wrapper
        ("<answer>\n two\n lines </answer>", "two lines"),
        ("<think>t</think><answer>a</answer><correction>NIL</correction>", "t a NIL"),
        ("a <b> c", "a <b> c"),  # only the template's tags are markup
        ("", ""),
    ],
)
def test_strip_tags(reference, expected):
    assert strip_tags(reference) == expected


@pytest.mark.parametrize(
    "tag, relevant, categories, expected",
    [
        (None, True, [], None),
        ("", False, ["Object/ObjectExistence"], None),  # the released inference's empty irrelevance_level
        ("original", True, [], "original"),
        ("hard", False, ["Object/ObjectExistence"], "strong"),
        ("medium", False, ["a", "b"], "moderate"),
        ("easy", False, ["a", "b", "c"], "weak"),
        ("easy", False, [], "shuffled"),  # SS-VTG tags its shuffled queries "easy"
        ("weak", False, [], "shuffled"),
        ("easy", True, [], "weak"),
        ("strong", False, ["Action/SceneTransition"], "strong"),  # an odd category is still an edit
    ],
)
def test_query_difficulty(tag, relevant, categories, expected):
    assert query_difficulty(tag, relevant=relevant, categories=categories) == expected


@pytest.mark.parametrize("tag, message", [("extreme", "unknown difficulty"), (3, "must be a string"),
                                          ("original", "cannot be 'original'")])
def test_query_difficulty_refuses(tag, message):
    with pytest.raises(ValueError, match=message):
        query_difficulty(tag, relevant=False, categories=["Attribute/Counting"])
