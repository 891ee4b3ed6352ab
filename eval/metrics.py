"""Every metric of the paper's tables, as pure functions of predictions and judgements (§4.2, supp. A).

- RA-IoU (Tables 1-3, 8, 12): per query, IoU(pred, gt) for a relevant query answered with a
  segment, 1 for a refused irrelevant query, else 0. R@m = share of queries with RA-IoU >= m
  (the released evaluation; `strict=True` uses Time-R1's >), mIoU = mean RA-IoU, over all queries.
- F1 (Tables 1-3, 5, 6, 10-12): relevant class = "answered with a segment", irrelevant class =
  "refused"; precision / recall / F1 of each, their average, and accuracy.
- VTG IoU (Table 7): IoU on relevant queries only; R@0.3/0.5/0.7, mIoU.
- Explanation quality on irrelevant queries (Tables 3, 9): RT-IoU = Jaccard of the categories an
  LLM classifier finds in the response with the ground-truth categories (two empty sets score 1);
  SBERT score = cosine of response answer and reference refusal, clipped to [0, 1]; LLM score 0-5.
  Averaged over all irrelevant queries with wrongly answered ones counting 0 (released convention),
  and over the correctly refused ones.
- Breakdowns: by hardness level (Tables 5, 6, 10, 11: the queries of the items whose irrelevant
  query has that level) and by semantic category (Fig. 6: refusal accuracy per category).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from statistics import fmean
from typing import Iterable, Sequence

from rarft_plugin.parsing import extract_segment, parse_response
from rarft_plugin.rewards import temporal_iou
from rarft_plugin.taxonomy import CATEGORIES

from eval.predictions import Prediction

THRESHOLDS = (0.3, 0.5, 0.7)
LEVELS = ("strong", "moderate", "weak", "shuffled")


@dataclass(frozen=True)
class Judgement:
    """How a response was read: refused or not, and the predicted segment when it answered."""

    refused: bool
    segment: tuple[float, float] | None
    categories: tuple[str, ...] | None = None  # from the RT-IoU classifier, when it ran
    llm_score: float | None = None  # Table 16 score, when it ran


def answer_text(model_output: str) -> str:
    """The `<answer>` block of a response, or the whole response when it has none."""
    answer = parse_response(model_output).answer
    return answer if answer is not None else model_output


def rule_judgement(model_output: str) -> Judgement:
    """The core parser's reading: a response answers iff its answer holds a valid segment.

    >>> rule_judgement("<answer>3.0 to 5.5</answer>").segment
    (3.0, 5.5)
    """
    segment = extract_segment(answer_text(model_output))
    return Judgement(refused=segment is None, segment=segment)


def ra_iou(prediction: Prediction, judgement: Judgement) -> float:
    if prediction.gt_relevant:
        if judgement.refused or judgement.segment is None or prediction.gt_timestamp is None:
            return 0.0
        return temporal_iou(judgement.segment, prediction.gt_timestamp)
    return 1.0 if judgement.refused else 0.0


def recall_at(values: Sequence[float], threshold: float, *, strict: bool = False) -> float:
    """Share of values >= threshold (> with strict); 0 for no values."""
    if not values:
        return 0.0
    return sum((v > threshold) if strict else (v >= threshold) for v in values) / len(values)


def grounding(values: Sequence[float], *, strict: bool = False) -> dict[str, float]:
    """R@0.3 / R@0.5 / R@0.7 and mIoU of per-query IoU values."""
    out = {f"R@{t}": recall_at(values, t, strict=strict) for t in THRESHOLDS}
    out["mIoU"] = fmean(values) if values else 0.0
    return out


def precision_recall_f1(true_positive: int, false_positive: int, false_negative: int) -> tuple[float, float, float]:
    precision = true_positive / (true_positive + false_positive) if true_positive + false_positive else 0.0
    recall = true_positive / (true_positive + false_negative) if true_positive + false_negative else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def relevance(gt_relevant: Sequence[bool], answered: Sequence[bool]) -> dict[str, float]:
    """Precision / recall / F1 of the relevant and irrelevant classes, their average F1, accuracy.

    >>> relevance([True, True, False, False], [True, False, False, True])["accuracy"]
    0.5
    """
    pairs = list(zip(gt_relevant, answered))
    tp = sum(g and a for g, a in pairs)
    fp = sum((not g) and a for g, a in pairs)
    fn = sum(g and not a for g, a in pairs)
    tn = sum((not g) and not a for g, a in pairs)
    p_rel, r_rel, f_rel = precision_recall_f1(tp, fp, fn)
    p_irr, r_irr, f_irr = precision_recall_f1(tn, fn, fp)
    return {
        "precision_rel": p_rel, "recall_rel": r_rel, "f1_rel": f_rel,
        "precision_irrel": p_irr, "recall_irrel": r_irr, "f1_irrel": f_irr,
        "f1_avg": (f_rel + f_irr) / 2,
        "accuracy": (tp + tn) / len(pairs) if pairs else 0.0,
    }


def jaccard(predicted: Iterable[str], truth: Iterable[str]) -> float:
    """|A ∩ B| / |A ∪ B|; two empty sets score 1."""
    a, b = set(predicted), set(truth)
    return 1.0 if not a and not b else len(a & b) / len(a | b)


def _explanation_mean(values: list[tuple[float, bool]]) -> dict[str, float | None]:
    """Mean over all irrelevant queries (wrongly answered count 0) and over the refused ones."""
    if not values:
        return {"all": None, "refused": None}
    refused = [v for v, r in values if r]
    return {"all": fmean(v if r else 0.0 for v, r in values), "refused": fmean(refused) if refused else None}


def compute_metrics(
    predictions: Sequence[Prediction],
    judgements: Sequence[Judgement],
    *,
    sbert_scores: Sequence[float | None] | None = None,
    strict: bool = False,
) -> tuple[dict, list[dict]]:
    """All metrics and the per-item rows. `sbert_scores[i]` is cos(answer, gt_output) or None."""
    if len(predictions) != len(judgements):
        raise ValueError(f"{len(predictions)} predictions but {len(judgements)} judgements")
    sbert_scores = list(sbert_scores) if sbert_scores is not None else [None] * len(predictions)
    items = [_item_row(p, j, s) for p, j, s in zip(predictions, judgements, sbert_scores)]
    metrics = {
        "count": {"queries": len(items), "relevant": sum(p.gt_relevant for p in predictions),
                  "irrelevant": sum(not p.gt_relevant for p in predictions)},
        "ra_iou": grounding([row["ra_iou"] for row in items], strict=strict),
        "relevance": relevance([p.gt_relevant for p in predictions], [not j.refused for j in judgements]),
        "vtg_iou": grounding([row["vtg_iou"] for row in items if row["vtg_iou"] is not None], strict=strict),
        "explanation": _explanation(items),
        "by_difficulty": _by_difficulty(predictions, items, strict),
        "by_category": _by_category(predictions, items),
        "strict_recall": strict,
    }
    return metrics, items


def _item_row(prediction: Prediction, judgement: Judgement, sbert: float | None) -> dict:
    row = {
        "id": prediction.id,
        "gt_relevant": prediction.gt_relevant,
        "hardness_level": prediction.hardness_level,
        "refused": judgement.refused,
        "segment": list(judgement.segment) if judgement.segment else None,
        "ra_iou": ra_iou(prediction, judgement),
        "vtg_iou": None,
        "sbert": None,
        "rt_iou": None,
        "llm_score": judgement.llm_score if not prediction.gt_relevant else None,
    }
    if prediction.gt_relevant and prediction.gt_timestamp is not None:
        row["vtg_iou"] = temporal_iou(judgement.segment, prediction.gt_timestamp) if judgement.segment else 0.0
    if not prediction.gt_relevant:
        if sbert is not None:
            row["sbert"] = min(1.0, max(0.0, sbert))
        if judgement.categories is not None:
            row["rt_iou"] = jaccard(judgement.categories, prediction.gt_categories)
    return row


def _explanation(items: list[dict]) -> dict:
    irrelevant = [row for row in items if not row["gt_relevant"]]
    out = {}
    for name in ("rt_iou", "sbert", "llm_score"):
        values = [(row[name], row["refused"]) for row in irrelevant if row[name] is not None]
        out[name] = {**_explanation_mean(values), "n": len(values)}
    return out


def _by_difficulty(predictions: Sequence[Prediction], items: list[dict], strict: bool) -> dict:
    level_of_item = {}
    for prediction in predictions:
        if not prediction.gt_relevant and prediction.hardness_level in LEVELS:
            level_of_item.setdefault(prediction.item, prediction.hardness_level)
    out = {}
    for level in LEVELS:
        rows = [(p, row) for p, row in zip(predictions, items) if level_of_item.get(p.item) == level]
        if not rows:
            continue
        irrelevant = [row for p, row in rows if not p.gt_relevant]
        llm = [(row["llm_score"], row["refused"]) for row in irrelevant if row["llm_score"] is not None]
        out[level] = {
            "queries": len(rows),
            "irrelevant": len(irrelevant),
            **{k: v for k, v in relevance([p.gt_relevant for p, _ in rows], [not r["refused"] for _, r in rows]).items()
               if k in ("f1_rel", "f1_irrel", "f1_avg", "accuracy")},
            "refusal_accuracy": fmean(row["refused"] for row in irrelevant) if irrelevant else None,
            "mIoU": grounding([row["ra_iou"] for _, row in rows], strict=strict)["mIoU"],
            "llm_score": _explanation_mean(llm)["all"],
        }
    relevant = [row for p, row in zip(predictions, items) if p.gt_relevant]
    if relevant:
        out["original"] = {
            "queries": len(relevant),
            "answer_rate": fmean(not row["refused"] for row in relevant),
            "mIoU": fmean(row["ra_iou"] for row in relevant),
        }
    return out


def _by_category(predictions: Sequence[Prediction], items: list[dict]) -> dict:
    refused_by_category: dict[str, list[bool]] = defaultdict(list)
    for prediction, row in zip(predictions, items):
        if not prediction.gt_relevant:
            for category in prediction.gt_categories:
                refused_by_category[category].append(row["refused"])
    return {
        category: {"n": len(refused_by_category[category]), "refusal_accuracy": fmean(refused_by_category[category])}
        for category in CATEGORIES
        if refused_by_category.get(category)
    }
