"""`rarft-prep repair-tvgbench` on HI-TVGBench-shaped files written from the file's description."""

import json
from dataclasses import replace

import pytest

from rarft_plugin.dataset import load_examples
from rarft_plugin.schema import dump_item, parse_item
from rarft_prep.cli import main as rarft_prep
from rarft_prep.importers import import_tvgbench
from rarft_prep.repair import repair_spans


def hi_item(video, query, timestamp, answer=None):
    """An HI-TVGBench item as released: author paths, duration and window null."""
    return {
        "video": f"/data/author/tvgbench/videos/{video}",
        "query_text": query,
        "timestamp": timestamp,
        "duration": None,
        "video_start": None,
        "video_end": None,
        "think": "",
        "difficulty": None,
        "GRPO": [
            {
                "q": query,
                "a": answer or f"<answer>{timestamp[0]} to {timestamp[1]}</answer>",
                "r": True,
                "c": [],
                "difficulty": "original",
                "class": "x",
            },
            {
                "q": f"not {query}",
                "a": "This query is unrelated to the video.",
                "r": False,
                "c": [],
                "difficulty": "hard",
            },
        ],
    }


# Time-R1's TVGBench: clip windows per video + query, spans relative to the clip
TVGBENCH = [
    {
        "video": "videos/a.mp4",
        "query": "a man opens the door",
        "timestamp": [2.0, 5.0],
        "duration": 300.0,
        "video_start": 100.0,
        "video_end": 160.0,
    },
    {"video": "videos/b.mp4", "query": "a dog runs", "timestamp": [3.0, 8.0], "duration": 40.0},
    {
        "video": "videos/c.mp4",
        "query": "she sings",
        "timestamp": [1.5, 4.0],
        "duration": 90.0,
        "video_start": 30.0,
        "video_end": 60.0,
    },
    {
        "video": "videos/d.mp4",
        "query": "he cooks",
        "timestamp": [1.0, 2.0],
        "duration": 90.0,
        "video_start": 10.0,
        "video_end": 40.0,
    },
    {
        "video": "videos/e.mp4",
        "query": "they dance",
        "timestamp": [1.0, 2.0],
        "duration": 90.0,
        "video_start": 10.0,
        "video_end": 40.0,
    },
]
HI = [
    hi_item("a.mp4", "A man opens the door", [102.0, 165.0]),  # the defect: [vs + s, ve + e]
    hi_item("b.mp4", "a dog runs", [3.0, 8.0]),  # a whole video
    hi_item("c.mp4", "she sings", [1.5, 4.0]),  # clip-relative, window lost
    hi_item("d.mp4", "he cooks", [11.0, 12.0]),  # absolute: consistent
    hi_item("e.mp4", "they dance", [50.0, 60.0]),  # fits nothing
    hi_item("f.mp4", "nobody knows", [1.0, 2.0]),  # not in the annotation
]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "hi.json").write_text(json.dumps(HI))
    (tmp_path / "tvgbench.json").write_text(json.dumps(TVGBENCH))
    return tmp_path


def repaired(records, annotation):
    """repair_spans on released records, its items written back as records."""
    items = [parse_item(record, index) for index, record in enumerate(records)]
    out, report = repair_spans(items, annotation)
    assert [item.timestamp for item in items] == [tuple(record["timestamp"]) for record in records]  # not touched
    return [dump_item(item) for item in out], report


def test_repair_spans_table(files):
    items, report = repaired(HI, import_tvgbench(files / "tvgbench.json"))
    assert (
        report.repaired,
        report.window_restored,
        report.consistent,
        report.mismatched,
        report.not_clips,
        report.unmatched,
    ) == ([0], [2], [3], [4], [1], [5])
    assert (items[0]["timestamp"], items[0]["video_start"], items[0]["video_end"]) == ([2.0, 5.0], 100.0, 160.0)
    assert items[0]["GRPO"][0]["a"] == "<answer>2.00 to 5.00</answer>" and report.answers_rewritten == 1
    assert (items[2]["timestamp"], items[2]["video_start"], items[2]["video_end"]) == ([1.5, 4.0], 30.0, 60.0)
    assert items[3:] == HI[3:] and items[1] == HI[1]
    assert HI[0]["timestamp"] == [102.0, 165.0]  # the input is not touched
    assert report.changed == 2 and "2 item(s) changed: 1 span(s) repaired" in report.summary()


def test_repair_from_the_command_line(files, capsys):
    out = files / "fixed.json"
    assert (
        rarft_prep(
            ["repair-tvgbench", str(files / "hi.json"), "--tvgbench", str(files / "tvgbench.json"), "--out", str(out)]
        )
        == 0
    )
    assert "2 item(s) changed" in capsys.readouterr().out
    examples, _ = load_examples(out)
    first = examples[0]
    assert first.label.timestamp == (2.0, 5.0) and (first.item.video_start, first.item.video_end) == (100.0, 160.0)
    assert first.label.answer_time == "2.00 to 5.00"


def time_r1_names(record):
    """A TVGBench record as Time-R1's tvgbench.json names its fields: path, question, answer (the clip span)."""
    renamed = {"video": "path", "query": "question", "timestamp": "answer"}
    return {renamed.get(key, key): value for key, value in record.items()}


def test_time_r1_field_names_repair_alike(files, capsys):
    """Time-R1's own file (path / question / answer) repairs exactly as the same records under rarft's names."""
    (files / "time_r1.json").write_text(json.dumps([time_r1_names(record) for record in TVGBENCH]))
    annotation = import_tvgbench(files / "time_r1.json")
    same_names = import_tvgbench(files / "tvgbench.json")
    assert [replace(r, source="") for r in annotation] == [replace(r, source="") for r in same_names]
    out = files / "fixed.json"
    args = ["repair-tvgbench", str(files / "hi.json"), "--tvgbench", str(files / "time_r1.json"), "--out", str(out)]
    assert rarft_prep(args) == 0
    assert "2 item(s) changed: 1 span(s) repaired" in capsys.readouterr().out
    assert json.loads(out.read_text()) == repaired(HI, annotation)[0]


@pytest.mark.parametrize(
    "record, message",
    [
        ({"question": "q", "answer": [1, 2]}, "field video: missing: a TVGBench record names it video or path or"),
        ({"path": "a.mp4", "answer": [1, 2]}, "field query: missing: a TVGBench record names it query or question"),
        (
            {"path": "a.mp4", "question": "q"},
            "field timestamp: missing: a TVGBench record names it timestamp or answer",
        ),
        ({"path": "a.mp4", "question": "q", "answer": "soon"}, "field timestamp: must be [start, end]"),
        ({"path": "", "question": "q", "answer": [1, 2]}, "field video: must be a non-empty string"),
    ],
)
def test_unusable_tvgbench_records_name_the_field(tmp_path, record, message):
    (tmp_path / "t.json").write_text(json.dumps([record]))
    (error,) = import_tvgbench(tmp_path / "t.json")
    assert message in str(error) and "record 0" in str(error)


def test_ambiguous_annotation_is_left_alone(files):
    """The same video and query with two clip windows: which one the item was is unknown."""
    (files / "twice.json").write_text(
        json.dumps(TVGBENCH + [{**TVGBENCH[0], "video_start": 200.0, "video_end": 260.0}])
    )
    items, report = repaired(HI, import_tvgbench(files / "twice.json"))
    assert report.ambiguous == [0] and items[0] == HI[0]


@pytest.mark.parametrize(
    "hi, tvgbench, message",
    [
        (HI, [{**TVGBENCH[0], "video": "videos/zzz.mp4"}], "no item joins the TVGBench annotation"),
        (HI, None, "file not found"),
        ([{**HI[0], "duration": -3}], TVGBENCH, "record 0: field duration: must be > 0"),
        (HI, [{**TVGBENCH[0], "timestamp": "soon"}], "must be [start, end]"),
    ],
)
def test_repair_errors_write_nothing(tmp_path, capsys, hi, tvgbench, message):
    (tmp_path / "hi.json").write_text(json.dumps(hi))
    if tvgbench is not None:
        (tmp_path / "tvgbench.json").write_text(json.dumps(tvgbench))
    out = tmp_path / "fixed.json"
    assert (
        rarft_prep(
            [
                "repair-tvgbench",
                str(tmp_path / "hi.json"),
                "--tvgbench",
                str(tmp_path / "tvgbench.json"),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert message in capsys.readouterr().err and not out.exists()


def test_the_repaired_file_is_written_like_every_other(files):
    from test_data_prep import is_dump_items_output

    out = files / "fixed.json"
    assert (
        rarft_prep(
            ["repair-tvgbench", str(files / "hi.json"), "--tvgbench", str(files / "tvgbench.json"), "--out", str(out)]
        )
        == 0
    )
    assert is_dump_items_output(out)
    assert json.loads(out.read_text())[5] == HI[5]  # an item left alone keeps every field as written
