"""metrics.json and items.jsonl: the typed rows written and read back in the layout earlier versions wrote, and a
metric renamed in eval.metrics being an error in every reader, never a "-" in a table."""

import json
from dataclasses import fields, make_dataclass, replace

import pytest
from test_eval_cli import hand_table

from rarft_eval.compare import ComparedRun, compare_markdown
from rarft_eval.metrics import FormatCompliance
from rarft_eval.record import RunRecord, read_run, record_from_json, record_json, row_json
from rarft_eval.report import markdown
from rarft_plugin.errors import DataError

JUDGE = {
    "relevance": "rule",
    "explanations": None,
    "answer_reading": "released",
    "sbert_text": "released",
    "sbert_model": "minilm",
}


def full_record():
    """The hand table (every level kind, categories, explanations) with every setting a CLI run records."""
    metrics, _ = hand_table()
    return RunRecord(
        metrics,
        judge=JUDGE,
        format=FormatCompliance(
            template="ra_rft",
            template_source="recorded",
            queries=4,
            compliant=3,
            empty=1,
            truncated=0,
            truncated_source="recorded",
        ),
        name="Ours",
        dataset={"file": "hi.json", "sha256": "ab" * 32, "paper": "HI-Charades", "kind": "hard-irrelevant"},
        predictions=("p.jsonl",),
        data={"file": "hi.json", "summary": "fine", "missing_predictions": []},
        inference=({"model": "/m", "shard": "0/1", "max_new_tokens": 256},),
        produced_by={
            "evaluated_at": "2026-01-01T00:00:00+00:00",
            "packages": {"rarft": "0.1.0"},
            "predictions": [{"file": "p.jsonl", "sha256": "cd" * 32}],
        },
        warnings=("only 3 of 4 responses (75.0 %) follow the ra_rft output format",),
    )


def test_a_record_reads_back_as_written(tmp_path):
    record = full_record()
    (tmp_path / "metrics.json").write_text(json.dumps(record_json(record), indent=2))
    assert read_run(tmp_path) == record
    bare = RunRecord(record.metrics, judge={"relevance": "rule"})  # what a Python caller may build
    assert record_from_json(json.loads(json.dumps(record_json(bare))), "m.json") == bare


@pytest.mark.parametrize(
    "path, expected",
    [
        # the metric groups first, the settings after them (earlier versions' order)
        (
            "",
            [
                "count",
                "ra_iou",
                "relevance",
                "vtg_iou",
                "explanation",
                "by_difficulty",
                "by_category",
                "explained",
                "strict_recall",
                "prediction_defects",
                "format",
                "judge",
                "name",
                "dataset",
                "predictions",
                "data",
                "inference",
                "produced_by",
                "warnings",
            ],
        ),
        ("ra_iou", ["R@0.3", "R@0.5", "R@0.7", "mIoU"]),  # the paper's names
        (
            "relevance",
            [
                "precision_rel",
                "recall_rel",
                "f1_rel",
                "precision_irrel",
                "recall_irrel",
                "f1_irrel",
                "f1_avg",
                "accuracy",
            ],
        ),
        ("explanation", ["rt_iou", "sbert", "llm_score"]),
        ("explanation.sbert", ["all", "refused", "n", "unmeasured"]),
        ("by_difficulty", ["strong", "weak", "original"]),  # the relevant queries' row beside the levels
        ("by_difficulty.strong", ["irrelevant", "f1", "refusal_accuracy", "explanation", "paired"]),
        ("by_difficulty.strong.paired", ["queries", "relevance", "ra_iou"]),
        ("by_difficulty.original", ["queries", "answer_rate", "vtg_iou"]),
        ("by_difficulty.original.vtg_iou", ["R@0.3", "R@0.5", "R@0.7", "mIoU"]),
        ("by_category.Attribute/Counting", ["n", "refusal_accuracy"]),
        ("count", ["queries", "relevant", "irrelevant", "explanation_eligible"]),
        (
            "format",
            [
                "template",
                "template_source",
                "queries",
                "compliant",
                "empty",
                "truncated",
                "truncated_source",
                "end_of_turn",
            ],
        ),
    ],
)
def test_metrics_json_layout(path, expected):
    value = record_json(full_record())
    for key in filter(None, path.split(".")):
        value = value[key]
    assert list(value) == expected


def test_metrics_json_values():
    data = record_json(full_record())
    assert data["ra_iou"] == {"R@0.3": 0.75, "R@0.5": 0.75, "R@0.7": 0.5, "mIoU": 0.625}
    assert data["explained"] == ["llm_score", "rt_iou", "sbert"] and data["inference"][0]["shard"] == "0/1"
    assert data["warnings"] == ["only 3 of 4 responses (75.0 %) follow the ra_rft output format"]
    assert (
        "original"
        not in record_json(replace(full_record(), metrics=replace(full_record().metrics, original=None)))[
            "by_difficulty"
        ]
    )


def test_items_jsonl_rows():
    _, items = hand_table()
    assert row_json(items[1]) == {
        "id": "0:1",
        "video": "v",
        "query": "q2",
        "gt_relevant": False,
        "hardness_level": "strong",
        "gt_categories": ["Attribute/Counting"],
        "refused": True,
        "segment": None,
        "ra_iou": 1.0,
        "vtg_iou": None,
        "explanation_eligible": True,
        "judge_categories": ["Attribute/Counting"],
        "rt_iou": 1.0,
        "sbert": 0.5,
        "llm_score": 4.0,
    }
    assert row_json(items[0])["segment"] == [0.0, 5.0] and row_json(items[0])["vtg_iou"] == 0.5


@pytest.mark.parametrize(
    "remove, field",
    [
        (("relevance", "f1_avg"), "relevance.f1_avg"),
        (("ra_iou", "R@0.5"), "ra_iou.R@0.5"),
        (("by_difficulty", "strong", "paired"), "by_difficulty.strong.paired"),
        (("explanation", "sbert", "unmeasured"), "explanation.sbert.unmeasured"),
        (("judge",), "judge"),
    ],
)
def test_a_metrics_json_without_a_metric_is_refused_naming_it(remove, field):
    data = record_json(full_record())
    parent = data
    for key in remove[:-1]:
        parent = parent[key]
    del parent[remove[-1]]
    with pytest.raises(DataError, match=f"^runs/a/metrics.json: field {field}: missing"):
        record_from_json(data, "runs/a/metrics.json")


@pytest.mark.parametrize(
    "data, message",
    [([], "not a rarft-eval metrics.json"), ({"ra_iou": {}}, "field by_difficulty: missing, or not an object")],
)
def test_what_is_no_metrics_json_is_refused(data, message):
    with pytest.raises(DataError, match=message):
        record_from_json(data, "m.json")


def renamed(row, old):
    """`row` as an instance of a copy of its class whose field `old` is called `old_renamed`: what the readers
    see after that field is renamed in eval.metrics."""
    kind = type(row)
    copy = make_dataclass(
        kind.__name__, [(f"{f.name}_renamed" if f.name == old else f.name, f.type) for f in fields(kind)], frozen=True
    )
    return copy(*(getattr(row, f.name) for f in fields(kind)))


def _level(metrics, level, change):
    return replace(metrics, by_difficulty={**metrics.by_difficulty, level: change(metrics.by_difficulty[level])})


RENAMES = {
    "relevance.f1_avg": lambda m: replace(m, relevance=renamed(m.relevance, "f1_avg")),
    "ra_iou.miou": lambda m: replace(m, ra_iou=renamed(m.ra_iou, "miou")),
    "vtg_iou.r_at_0_7": lambda m: replace(m, vtg_iou=renamed(m.vtg_iou, "r_at_0_7")),
    "count.queries": lambda m: replace(m, count=renamed(m.count, "queries")),
    "explanation.llm_score.all": lambda m: replace(
        m, explanation=replace(m.explanation, llm_score=renamed(m.explanation.llm_score, "all"))
    ),
    "by_difficulty.weak.f1": lambda m: _level(m, "weak", lambda row: renamed(row, "f1")),
    "by_difficulty.strong.paired.relevance.f1_avg": lambda m: _level(
        m,
        "strong",
        lambda row: replace(row, paired=replace(row.paired, relevance=renamed(row.paired.relevance, "f1_avg"))),
    ),
    "by_category.refusal_accuracy": lambda m: replace(
        m, by_category={category: renamed(row, "refusal_accuracy") for category, row in m.by_category.items()}
    ),
}


def report(record):
    return markdown(record, title="t", name="Ours")


def comparison(record):
    return compare_markdown([ComparedRun("a", "a", record), ComparedRun("b", "b", full_record())])


@pytest.mark.parametrize("render", [report, comparison])
@pytest.mark.parametrize("metric", list(RENAMES))
def test_a_metric_renamed_in_eval_metrics_is_an_error_in_its_readers(render, metric):
    """Before typed rows, the report and compare read metrics by dotted keys and printed "-" for a key that was
    gone; now reading the old name raises, naming it."""
    record = full_record()
    render(record)
    broken = replace(record, metrics=RENAMES[metric](record.metrics))
    with pytest.raises(AttributeError, match=metric.rsplit(".", 1)[-1]):
        render(broken)
