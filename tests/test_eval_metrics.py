"""Metric values on small hand-computed tables, edge cases, and adversarial model output."""

import math
from dataclasses import asdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rarft_eval.metrics import (
    Counts,
    FormatCompliance,
    Grounding,
    Judgement,
    compute_metrics,
    dataset_kind,
    format_compliance,
    format_warnings,
    jaccard,
    level_subsets,
    ra_iou,
    recall_at,
    relevance,
    rule_judgement,
)
from rarft_eval.predictions import Prediction
from rarft_eval.reading import read
from rarft_plugin.task_metrics import rule_segment


def pred(item, query, relevant, timestamp=None, level=None, categories=(), gt_output="reference"):
    return Prediction(
        id=f"{item}:{query}",
        video=f"v{item}.mp4",
        query="q",
        model_output="",
        gt_relevant=relevant,
        gt_timestamp=timestamp,
        gt_output=gt_output if not relevant else "0.00 to 1.00",
        gt_categories=tuple(categories),
        hardness_level=level if not relevant else "original",
    )


def answer(start, end, **judges):
    return Judgement(refused=False, segment=(start, end), **judges)


def refuse(**judges):
    return Judgement(refused=True, segment=None, **judges)


@pytest.mark.parametrize(
    "prediction, judgement, expected",
    [
        (pred(0, 0, True, (0, 10)), answer(0, 10), 1.0),
        (pred(0, 0, True, (0, 10)), answer(5, 15), 1 / 3),
        (pred(0, 0, True, (0, 10)), refuse(), 0.0),
        (pred(0, 0, True, (0, 10)), Judgement(refused=False, segment=None), 0.0),  # answered, no usable segment
        (pred(0, 1, False), refuse(), 1.0),
        (pred(0, 1, False), answer(0, 1), 0.0),
        (pred(0, 0, True, (4, 4)), answer(4, 4), 1.0),  # zero-length ground truth, same point
        (pred(0, 0, True, (4, 4)), answer(0, 10), 0.0),  # zero-length ground truth inside the prediction
        (pred(0, 0, True, (0, 10)), answer(3, 3), 0.0),  # zero-length prediction inside the ground truth
    ],
)
def test_ra_iou(prediction, judgement, expected):
    assert ra_iou(prediction, judgement) == pytest.approx(expected)


@pytest.mark.parametrize(
    "values, threshold, strict, expected",
    [
        ([0.3, 0.5, 0.7, 0.1], 0.5, False, 0.5),  # released: >=
        ([0.3, 0.5, 0.7, 0.1], 0.5, True, 0.25),  # Time-R1: >
        ([1.0], 0.7, True, 1.0),
        ([], 0.5, False, None),
    ],
)
def test_recall_at(values, threshold, strict, expected):
    assert recall_at(values, threshold, strict=strict) == expected


@pytest.mark.parametrize(
    "gt, answered, expected",
    [
        # R R R I I I / y y n y n n: each class tp=2 fp=1 fn=1
        (
            [1, 1, 1, 0, 0, 0],
            [1, 1, 0, 1, 0, 0],
            dict(precision_rel=2 / 3, recall_rel=2 / 3, f1_rel=2 / 3, f1_irrel=2 / 3, f1_avg=2 / 3, accuracy=4 / 6),
        ),
        # never refuses (TimeChat in Table 1: 66.7 / 0.0 / 33.3)
        (
            [1, 1, 0, 0],
            [1, 1, 1, 1],
            dict(
                precision_rel=0.5,
                recall_rel=1.0,
                f1_rel=2 / 3,
                precision_irrel=0.0,
                recall_irrel=0.0,
                f1_irrel=0.0,
                f1_avg=1 / 3,
                accuracy=0.5,
            ),
        ),
        # all refusals
        (
            [1, 1, 0, 0],
            [0, 0, 0, 0],
            dict(
                precision_rel=0.0,
                recall_rel=0.0,
                f1_rel=0.0,
                precision_irrel=0.5,
                recall_irrel=1.0,
                f1_irrel=2 / 3,
                f1_avg=1 / 3,
                accuracy=0.5,
            ),
        ),
        # no irrelevant queries: that class has no recall / F1, so no average
        ([1, 1], [1, 0], dict(f1_rel=2 / 3, recall_irrel=None, f1_irrel=None, f1_avg=None, accuracy=0.5)),
        # no relevant queries
        ([0, 0], [0, 0], dict(f1_rel=None, f1_irrel=1.0, f1_avg=None, accuracy=1.0)),
        ([], [], dict(f1_rel=None, f1_irrel=None, accuracy=None)),
    ],
)
def test_relevance(gt, answered, expected):
    scores = relevance([bool(g) for g in gt], [bool(a) for a in answered])
    for key, value in expected.items():
        assert getattr(scores, key) == (pytest.approx(value) if value is not None else None), key


@pytest.mark.parametrize(
    "a, b, expected", [((), (), 1.0), (("x",), (), 0.0), (("x", "y"), ("y", "z"), 1 / 3), (("x", "x"), ("x",), 1.0)]
)
def test_jaccard(a, b, expected):
    assert jaccard(a, b) == pytest.approx(expected)


# Four HI-VTG items (one relevant + one hard-irrelevant query each), judged by hand.
TABLE = [
    (pred(0, 0, True, (0, 10)), answer(0, 5), None),  # IoU 0.5
    (
        pred(0, 1, False, level="strong", categories=["Object/ObjectExistence"]),
        refuse(categories=("Object/ObjectExistence",), llm_score=4.0),
        0.8,
    ),  # RT-IoU 1
    (pred(1, 0, True, (10, 20)), refuse(), None),  # wrongly refused
    (
        pred(1, 1, False, level="moderate", categories=["Object/ObjectExistence", "Attribute/AttributeValue"]),
        answer(1, 2, categories=("Object/ObjectExistence",), llm_score=5.0),
        0.9,
    ),  # wrongly answered: explanation 0
    (pred(2, 0, True, (0, 4)), answer(1, 3), None),  # IoU 0.5
    (
        pred(
            2,
            1,
            False,
            level="weak",
            categories=["Action/ActionSequence", "Scene/SceneExistence", "Attribute/Counting"],
        ),
        refuse(categories=("Action/ActionSequence",), llm_score=None),
        -0.2,
    ),  # RT-IoU 1/3, SBERT clipped to 0, LLM failed
    (pred(3, 0, True, (5, 5)), answer(5, 5), None),  # zero-length, exact: 1
    (
        pred(3, 1, False, level="strong", categories=["Action/FineGrainedAction"]),
        refuse(categories=(), llm_score=2.0),
        0.6,
    ),  # RT-IoU 0
]


@pytest.fixture(scope="module")
def table():
    predictions, judgements, sbert = zip(*TABLE, strict=True)
    return compute_metrics(predictions, judgements, sbert_scores=sbert)


@pytest.mark.parametrize(
    "key, expected",
    [
        ("ra_iou", Grounding(r_at_0_3=6 / 8, r_at_0_5=6 / 8, r_at_0_7=4 / 8, miou=5 / 8)),
        ("vtg_iou", Grounding(r_at_0_3=3 / 4, r_at_0_5=3 / 4, r_at_0_7=1 / 4, miou=2 / 4)),
        ("count", Counts(queries=8, relevant=4, irrelevant=4, explanation_eligible=4)),
    ],
)
def test_hand_computed_table(table, key, expected):
    metrics, _ = table
    assert asdict(getattr(metrics, key)) == pytest.approx(asdict(expected))


def test_hand_computed_relevance(table):
    metrics, _ = table
    # relevant: tp 3 (items 0, 2, 3), fn 1 (item 1); irrelevant: tn 3, fp 1
    assert asdict(metrics.relevance) == pytest.approx(
        {
            "precision_rel": 3 / 4,
            "recall_rel": 3 / 4,
            "f1_rel": 3 / 4,
            "precision_irrel": 3 / 4,
            "recall_irrel": 3 / 4,
            "f1_irrel": 3 / 4,
            "f1_avg": 3 / 4,
            "accuracy": 6 / 8,
        }
    )


@pytest.mark.parametrize(
    "name, expected",
    [
        # all: the wrongly answered query counts 0; refused: correctly refused ones only
        ("rt_iou", {"all": (1 + 1 / 3 + 0 + 0) / 4, "refused": (1 + 1 / 3 + 0) / 3, "n": 4, "unmeasured": 0}),
        ("sbert", {"all": (0.8 + 0 + 0.6 + 0) / 4, "refused": (0.8 + 0 + 0.6) / 3, "n": 4, "unmeasured": 0}),
        # the refused weak query has no LLM score (judge failed): left out of both means
        ("llm_score", {"all": (4 + 2 + 0) / 3, "refused": (4 + 2) / 2, "n": 3, "unmeasured": 1}),
    ],
)
def test_hand_computed_explanation(table, name, expected):
    metrics, _ = table
    assert asdict(getattr(metrics.explanation, name)) == pytest.approx(expected)


@pytest.mark.parametrize(
    "level, irrelevant, f1, refusal_accuracy, paired_queries, paired_f1_avg, paired_ra_miou, llm_all",
    [
        ("strong", 2, 1.0, 1.0, 4, 1.0, (0.5 + 1 + 1 + 1) / 4, 3.0),
        ("moderate", 1, 0.0, 0.0, 2, 0.0, 0.0, 0.0),
        ("weak", 1, 1.0, 1.0, 2, 1.0, (0.5 + 1) / 2, None),  # its one LLM score is unmeasured
    ],
)
def test_hand_computed_difficulty(
    table, level, irrelevant, f1, refusal_accuracy, paired_queries, paired_f1_avg, paired_ra_miou, llm_all
):
    row = table[0].by_difficulty[level]
    assert (row.irrelevant, row.refusal_accuracy, row.f1) == (irrelevant, refusal_accuracy, f1)
    assert row.paired.queries == paired_queries
    assert row.paired.relevance.f1_avg == pytest.approx(paired_f1_avg)
    assert row.paired.ra_iou.miou == pytest.approx(paired_ra_miou)
    assert row.explanation.llm_score.all == (pytest.approx(llm_all) if llm_all is not None else None)


def test_level_f1_is_the_released_one_not_the_paired_one():
    """Released (processor.py:417-421): the level's own irrelevant queries only, F1 = 2·acc/(1+acc).

    Three strong items: relevant queries all answered, two of three irrelevant ones refused.
    Released F1 = 2·(2/3)/(1+2/3) = 0.8; the 1:1 subset's average F1 is (0.857 + 0.8) / 2.
    """
    predictions = [
        pred(i, q, q == 0, (0, 10) if q == 0 else None, "strong", ["Attribute/Counting"])
        for i in range(3)
        for q in range(2)
    ]
    judgements = [answer(0, 10), refuse(), answer(0, 10), refuse(), answer(0, 10), answer(0, 10)]
    row = compute_metrics(predictions, judgements)[0].by_difficulty["strong"]
    assert row.f1 == pytest.approx(0.8) and row.refusal_accuracy == pytest.approx(2 / 3)
    assert row.paired.relevance.f1_avg == pytest.approx((6 / 7 + 0.8) / 2)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.booleans(), st.sampled_from(["strong", "moderate", "weak"])),
        min_size=1,
        max_size=20,
    )
)
def test_level_f1_is_two_acc_over_one_plus_acc(rows):
    predictions, judgements = [], []
    for i, (refused, relevant_answered, level) in enumerate(rows):
        predictions += [pred(i, 0, True, (0, 10)), pred(i, 1, False, level=level, categories=["Attribute/Counting"])]
        judgements += [answer(0, 10) if relevant_answered else refuse(), refuse() if refused else answer(0, 1)]
    by_level = compute_metrics(predictions, judgements)[0].by_difficulty
    for row in by_level.values():
        accuracy = row.refusal_accuracy
        assert row.f1 == pytest.approx(2 * accuracy / (1 + accuracy))


def test_hand_computed_original_and_categories(table):
    metrics, items = table
    assert metrics.original.answer_rate == 3 / 4
    assert metrics.original.vtg_iou.miou == pytest.approx(0.5)
    assert {category: asdict(row) for category, row in metrics.by_category.items()} == {
        "Action/ActionSequence": {"n": 1, "refusal_accuracy": 1.0},
        "Action/FineGrainedAction": {"n": 1, "refusal_accuracy": 1.0},
        "Object/ObjectExistence": {"n": 2, "refusal_accuracy": 0.5},
        "Scene/SceneExistence": {"n": 1, "refusal_accuracy": 1.0},
        "Attribute/AttributeValue": {"n": 1, "refusal_accuracy": 0.0},
        "Attribute/Counting": {"n": 1, "refusal_accuracy": 1.0},
    }
    assert list(metrics.by_category)[0] == "Action/ActionSequence"  # taxonomy order
    # per-item rows: explanation scores only where they count
    assert [row.ra_iou for row in items] == pytest.approx([0.5, 1, 0, 0, 0.5, 1, 1, 1])
    assert items[3].rt_iou is None and items[3].llm_score is None and items[3].sbert is None
    assert items[5].sbert == 0.0 and items[5].rt_iou == pytest.approx(1 / 3)


def test_strict_recall(table):
    predictions, judgements, _ = zip(*TABLE, strict=True)
    metrics, _ = compute_metrics(predictions, judgements, strict=True)
    assert metrics.ra_iou.r_at_0_5 == 4 / 8 and metrics.strict_recall is True


def test_no_irrelevant_items():
    metrics, _ = compute_metrics(
        [pred(0, 0, True, (0, 10)), pred(1, 0, True, (0, 10))], [answer(0, 10), refuse()], sbert_scores=[None, None]
    )
    assert metrics.relevance.f1_irrel is None and metrics.relevance.f1_avg is None
    assert asdict(metrics.explanation.sbert) == {"all": None, "refused": None, "n": 0, "unmeasured": 0}
    assert metrics.by_category == {} and metrics.by_difficulty == {} and metrics.original is not None
    assert metrics.vtg_iou.miou == 0.5


def test_all_refusals_with_explanation_metrics_that_ran():
    predictions = [pred(0, 0, True, (0, 10)), pred(0, 1, False, level="strong", categories=["Attribute/Counting"])]
    metrics, _ = compute_metrics(predictions, [refuse(), refuse()], sbert_scores=[None, 0.5])
    assert metrics.ra_iou.miou == 0.5 and metrics.relevance.f1_rel == 0.0
    assert metrics.vtg_iou == Grounding(r_at_0_3=0.0, r_at_0_5=0.0, r_at_0_7=0.0, miou=0.0)
    assert metrics.explanation.sbert.all == 0.5
    assert metrics.explanation.llm_score is None  # never ran


def test_never_refusing_scores_zero_explanation_when_the_metric_ran():
    predictions = [pred(0, 0, True, (0, 10)), pred(0, 1, False, level="strong", categories=["Attribute/Counting"])]
    metrics, _ = compute_metrics(
        predictions, [answer(0, 10), answer(0, 10)], sbert_scores=[None, None], explained={"sbert", "llm_score"}
    )
    assert metrics.explanation.sbert.all == 0.0 and metrics.explanation.llm_score.all == 0.0
    assert metrics.explanation.sbert.refused is None


def test_no_reference_answer_means_no_explanation_metric():
    """Simply-shuffled sets have no refusal answers: nothing to compare an explanation with."""
    predictions = [pred(0, 0, True, (0, 10)), pred(1, 0, False, level="shuffled", gt_output="")]
    metrics, items = compute_metrics(
        predictions, [answer(0, 10), refuse(categories=(), llm_score=3.0)], sbert_scores=[None, 0.9]
    )
    assert metrics.count.explanation_eligible == 0
    assert metrics.explanation.rt_iou.all is None and items[1].rt_iou is None


@pytest.mark.parametrize(
    "queries, expected",
    [
        # HI-VTG: one relevant + one irrelevant per item -> each level gets its items' pairs
        (
            [(0, True, None), (0, False, "strong"), (1, True, None), (1, False, "weak")],
            {"strong": [0, 1], "weak": [2, 3]},
        ),
        # training-style item with three irrelevant levels: its relevant query is in all three
        (
            [(0, True, None), (0, False, "strong"), (0, False, "moderate"), (0, False, "weak")],
            {"strong": [0, 1], "moderate": [0, 2], "weak": [0, 3]},
        ),
        # SS-VTG: relevant-only and irrelevant-only items mixed in -> `shuffled` is the whole set
        (
            [
                (0, True, None),
                (0, True, None),
                (1, False, "shuffled"),
                (1, False, "shuffled"),
                (2, True, None),
                (2, False, "shuffled"),
            ],
            {"shuffled": [0, 1, 2, 3, 4, 5]},
        ),
        # human-annotated: no levels
        ([(0, True, None), (0, False, None)], {}),
    ],
)
def test_level_subsets(queries, expected):
    predictions = [
        pred(item, i, relevant, (0, 1) if relevant else None, level)
        for i, (item, relevant, level) in enumerate(queries)
    ]
    assert level_subsets(predictions) == expected


THINK_THEN_REFUSAL = "<think><timestep>0.00 to 3.00</timestep> a man sits.</think> The video does not contain this."


@pytest.mark.parametrize(
    "output, segment",
    [
        # the released reading: complete think blocks removed, the first answer block, else the rest
        (THINK_THEN_REFUSAL, None),
        ("<answer>No match.</answer><answer>2 to 6</answer>", None),
        ("<answer>1 to 2</answer><answer>none</answer>", (1.0, 2.0)),
        ("<think>3 to 5</think> The event is at 7 to 9 s", (7.0, 9.0)),
        ("<think><answer>1 to 2</answer></think><answer>no</answer>", None),  # an answer inside think
        ("<think>unclosed 3 to 5 <answer>no</answer>", None),
        ("<think>0 to 3</think>", None),  # nothing after the think block
        ("<think>x</think> <answer>3.0 to 5.5</answer> <correct></correct>", (3.0, 5.5)),
        ("<answer>The video does not show this.</answer>", None),
        ("The event is at 3 to 5 seconds", (3.0, 5.0)),  # no answer block, no think
        ("<think>3 to 5</think><answer>No such event.</answer>", None),
        ("<answer>3.0 to 5.5", (3.0, 5.5)),  # unclosed (cut at max tokens): the rest of the text
        ("<answer>nan to 1e309</answer>", None),
        ("<answer>9 to 3</answer>", None),  # reversed
        ("", None),
    ],
)
def test_rule_judgement(output, segment):
    judged = rule_judgement(read(responses(output)[0], "ra_rft"))
    assert (judged.refused, judged.segment) == (segment is None, segment)


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("0123456789.:- toand<>/answerthinkcorrect[]()naif\n\u202e")), max_size=200)
)
def test_rule_judgement_never_raises_and_segments_are_valid(text):
    judged = rule_judgement(read(responses(text)[0], "ra_rft"))
    assert judged.refused == (judged.segment is None)
    assert judged.segment == rule_segment(text)  # the reading is training's rule reading (task_metrics)
    if judged.segment is not None:
        start, end = judged.segment
        assert math.isfinite(start) and math.isfinite(end) and 0 <= start <= end


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),
            st.booleans(),
            st.floats(0, 50),
            st.floats(0, 50),
            st.floats(-1, 1),
            st.sampled_from(["strong", "moderate", "weak", "shuffled", None]),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_every_metric_is_a_fraction(rows):
    predictions, judgements, sbert = [], [], []
    for i, (relevant, refused, a, b, cosine, level) in enumerate(rows):
        predictions.append(
            pred(
                i // 2,
                i,
                relevant,
                (min(a, b), max(a, b)) if relevant else None,
                level,
                ["Object/ObjectExistence"] if not relevant else (),
            )
        )
        judgements.append(refuse() if refused else answer(min(a, b), max(a, b)))
        sbert.append(cosine if not relevant else None)
    metrics, items = compute_metrics(predictions, judgements, sbert_scores=sbert)
    for group in (metrics.ra_iou, metrics.vtg_iou, metrics.relevance):
        for value in asdict(group).values():
            assert value is None or 0 <= value <= 1
    for row in items:
        assert 0 <= row.ra_iou <= 1 and (row.sbert is None or 0 <= row.sbert <= 1)


def responses(*outputs, truncated=None):
    return [
        Prediction(f"{i}:0", "v", "q", text, False, None, "", (), "strong", truncated=truncated)
        for i, text in enumerate(outputs)
    ]


STRICT = "<think>t</think> <answer>No.</answer> <correct>q</correct>"
RELEASED = "<think>t</think> <answer>No.</answer> <correction>q</correction>"


@pytest.mark.parametrize(
    "outputs, truncated, template, expected",
    [
        # a model emitting only newlines: nothing follows the format, everything is empty
        (["\n\n"] * 4, None, "ra_rft", {"compliant": 0, "empty": 4, "truncated": 0, "truncated_source": "text"}),
        (
            [STRICT, STRICT, "<think>cut", ""],
            None,
            "ra_rft",
            {"compliant": 2, "empty": 1, "truncated": 1, "truncated_source": "text"},
        ),
        ([STRICT, "<answer>1 to 2</answer>"], None, "qwen2_5_vl", {"compliant": 1, "empty": 0, "truncated": 0}),
        # what inference recorded wins over the text: a finished response that still has an open tag is not cut
        (["<think>cut", STRICT], False, "ra_rft", {"truncated": 0, "truncated_source": "recorded"}),
        ([STRICT, STRICT], True, "ra_rft", {"compliant": 2, "truncated": 2, "truncated_source": "recorded"}),
        # the released inference leaves <|im_end|> at the end of every finished output: read without it, counted
        (
            [RELEASED + "<|im_end|>", RELEASED + "<|im_end|>\n", RELEASED],
            None,
            "ra_rft_released",
            {"compliant": 3, "end_of_turn": 2},
        ),
        ([STRICT + "<|im_end|>"] * 2, None, "ra_rft", {"compliant": 2, "end_of_turn": 2}),
        (["<|im_end|>", "<think>cut<|im_end|>"], None, "ra_rft", {"empty": 1, "truncated": 1, "end_of_turn": 2}),
        ([STRICT + "<|im_end|> more"], None, "ra_rft", {"compliant": 0, "end_of_turn": 0}),  # not at the end
        # the released template: <correction> or the paper's <correct>; the paper's template: <correct> only
        ([RELEASED, STRICT], None, "ra_rft_released", {"compliant": 2}),
        ([RELEASED, STRICT], None, "ra_rft", {"compliant": 1}),
    ],
)
def test_format_compliance(outputs, truncated, template, expected):
    readings = [read(p, template) for p in responses(*outputs, truncated=truncated)]
    result = asdict(format_compliance(readings, template, "given"))
    assert result["queries"] == len(outputs) and result["template"] == template
    assert {key: result[key] for key in expected} == expected


def test_format_compliance_of_mixed_records():
    predictions = responses("<think>cut", "<think>cut") + responses("x", truncated=True)
    assert format_compliance([read(p, "ra_rft") for p in predictions], "ra_rft", "given").truncated_source == "mixed"


@pytest.mark.parametrize(
    "counts, warned",
    [
        ({"compliant": 100, "empty": 0, "truncated": 0}, []),
        ({"compliant": 80, "empty": 5, "truncated": 5}, []),  # at the thresholds: no warning
        ({"compliant": 79, "empty": 0, "truncated": 0}, ["only 79 of 100 responses (79.0 %) follow the ra_rft"]),
        ({"compliant": 100, "empty": 6, "truncated": 0}, ["6 of 100 responses (6.0 %) are empty"]),
        ({"compliant": 100, "empty": 0, "truncated": 6}, ["6 of 100 responses (6.0 %) were cut off"]),
        ({"compliant": 0, "empty": 100, "truncated": 0}, ["only 0 of 100", "100 of 100 responses (100.0 %) are empty"]),
    ],
)
def test_format_warnings(counts, warned):
    warnings = format_warnings(
        FormatCompliance(
            template="ra_rft", template_source="recorded", queries=100, truncated_source="recorded", **counts
        )
    )
    assert len(warnings) == len(warned) and all(w.startswith(start) for w, start in zip(warnings, warned, strict=True))


@pytest.mark.parametrize(
    "levels, expected",
    [
        (["strong", "weak"], "hard-irrelevant"),
        (["shuffled"], "simply-shuffled"),
        ([None], "no levels"),
        ([], "relevant only"),
        (["strong", "shuffled"], "mixed levels"),
    ],
)
def test_dataset_kind(levels, expected):
    predictions = [pred(0, 0, True, (0, 1))] + [pred(i + 1, 1, False, level=level) for i, level in enumerate(levels)]
    assert dataset_kind(predictions) == expected
