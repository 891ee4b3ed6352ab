import json

import pytest

from eval.metrics import Judgement, compute_metrics, jaccard, ra_iou, recall_at, relevance, rule_judgement
from eval.predictions import Prediction


def pred(i, relevant, timestamp=None, level=None, categories=(), gt_output="ref"):
    return Prediction(id=f"{i // 2}:{i % 2}", video="v.mp4", query="q", model_output="", gt_relevant=relevant,
                      gt_timestamp=timestamp, gt_output=gt_output, gt_categories=tuple(categories),
                      hardness_level=level)


ANSWER = lambda s, e: Judgement(refused=False, segment=(s, e))  # noqa: E731
REFUSE = Judgement(refused=True, segment=None)


@pytest.mark.parametrize(
    "prediction, judgement, expected",
    [
        (pred(0, True, (0, 10)), ANSWER(0, 10), 1.0),
        (pred(0, True, (0, 10)), ANSWER(5, 15), 1 / 3),
        (pred(0, True, (0, 10)), REFUSE, 0.0),
        (pred(1, False), REFUSE, 1.0),
        (pred(1, False), ANSWER(0, 1), 0.0),
        (pred(0, True, (4, 4)), ANSWER(4, 4), 1.0),  # zero-length ground truth, same point
        (pred(0, True, (4, 4)), ANSWER(0, 10), 0.0),
    ],
)
def test_ra_iou(prediction, judgement, expected):
    assert ra_iou(prediction, judgement) == pytest.approx(expected)


@pytest.mark.parametrize(
    "values, threshold, strict, expected",
    [([0.3, 0.5, 0.7, 0.1], 0.5, False, 0.5), ([0.3, 0.5, 0.7, 0.1], 0.5, True, 0.25), ([], 0.5, False, 0.0)],
)
def test_recall_at(values, threshold, strict, expected):
    assert recall_at(values, threshold, strict=strict) == expected


def test_relevance_hand_computed():
    # gt:       R R R I I I ; answered: y y n y n n
    scores = relevance([True, True, True, False, False, False], [True, True, False, True, False, False])
    # relevant: tp=2 fp=1 fn=1 -> p=2/3 r=2/3 ; irrelevant: tp=2 fp=1 fn=1 -> same
    assert scores["f1_rel"] == pytest.approx(2 / 3) and scores["f1_irrel"] == pytest.approx(2 / 3)
    assert scores["accuracy"] == pytest.approx(4 / 6) and scores["f1_avg"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "gt, answered, f1_rel, f1_irrel",
    [
        ([True, True], [True, False], 2 / 3, 0.0),  # no irrelevant items
        ([True, False], [False, False], 0.0, 2 / 3),  # all refusals
        ([False, False], [False, False], 0.0, 1.0),
    ],
)
def test_relevance_edge_cases(gt, answered, f1_rel, f1_irrel):
    scores = relevance(gt, answered)
    assert (scores["f1_rel"], scores["f1_irrel"]) == (pytest.approx(f1_rel), pytest.approx(f1_irrel))


@pytest.mark.parametrize("a, b, expected", [((), (), 1.0), (("x",), (), 0.0), (("x", "y"), ("y", "z"), 1 / 3)])
def test_jaccard(a, b, expected):
    assert jaccard(a, b) == pytest.approx(expected)


def test_full_table_by_hand():
    predictions = [
        pred(0, True, (0, 10)), pred(1, False, level="strong", categories=["Object/ObjectExistence"]),
        pred(2, True, (10, 20)), pred(3, False, level="weak",
                                      categories=["Object/ObjectExistence", "Action/ActionSequence", "Scene/SceneExistence"]),
    ]
    judgements = [
        ANSWER(0, 5),  # IoU 0.5
        Judgement(refused=True, segment=None, categories=("Object/ObjectExistence",), llm_score=4.0),
        REFUSE,  # wrongly refused
        Judgement(refused=False, segment=(1, 2), categories=(), llm_score=1.0),  # wrongly answered
    ]
    metrics, items = compute_metrics(predictions, judgements, sbert_scores=[None, 0.8, None, 0.4])
    assert [row["ra_iou"] for row in items] == [0.5, 1.0, 0.0, 0.0]
    assert metrics["ra_iou"] == pytest.approx({"R@0.3": 0.5, "R@0.5": 0.5, "R@0.7": 0.25, "mIoU": 0.375})
    assert metrics["vtg_iou"]["mIoU"] == pytest.approx(0.25)
    assert metrics["relevance"]["accuracy"] == pytest.approx(0.5)
    exp = metrics["explanation"]
    assert exp["rt_iou"]["all"] == pytest.approx((1.0 + 0.0) / 2) and exp["rt_iou"]["refused"] == pytest.approx(1.0)
    assert exp["sbert"]["all"] == pytest.approx((0.8 + 0.0) / 2)  # the wrongly answered one counts 0
    assert exp["llm_score"]["refused"] == pytest.approx(4.0)
    assert metrics["by_difficulty"]["strong"]["refusal_accuracy"] == 1.0
    assert metrics["by_difficulty"]["weak"]["refusal_accuracy"] == 0.0
    assert metrics["by_category"]["Object/ObjectExistence"] == {"n": 2, "refusal_accuracy": 0.5}
    assert "Attribute/Counting" not in metrics["by_category"]


def test_no_irrelevant_items():
    metrics, _ = compute_metrics([pred(0, True, (0, 10))], [ANSWER(0, 10)])
    assert metrics["explanation"]["sbert"]["all"] is None and metrics["by_category"] == {}


@pytest.mark.parametrize(
    "output, refused, segment",
    [
        ("<think>x</think> <answer>3.0 to 5.5</answer> <correct></correct>", False, (3.0, 5.5)),
        ("<answer>The video does not show this.</answer>", True, None),
        ("The event is at 3 to 5 seconds", False, (3.0, 5.0)),  # no answer block: the whole text
        ("<answer>nan to 1e309</answer>", True, None),
        ("", True, None),
    ],
)
def test_rule_judgement(output, refused, segment):
    judged = rule_judgement(output)
    assert (judged.refused, judged.segment) == (refused, segment)
