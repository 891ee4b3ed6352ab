"""The RA-RFT task metrics (paper §4.2) that `rarft-eval` and training's in-loop evaluation both compute.

One definition for both: `rarft_eval.metrics` builds its tables from these functions, and rarft-train's
evaluation steps (`rarft_plugin.trainer_logs`) log them from the rollouts of an evaluation file.

- The rule reading (`rule_segment`): a response answers iff its answer text
  (`rarft_plugin.parsing.evaluation_answer`, as the released evaluation reads it) holds
  a valid segment; otherwise it refuses. Training reads relevance this way only (no LLM judge runs
  in the training loop); `rarft-eval` also offers LLM judges.
- RA-IoU of one query (`ra_iou_value`): IoU(pred, gt) for a relevant query answered with a
  segment, 1 for a refused irrelevant query, else 0. R@m = share of queries with RA-IoU >= m
  (released; `strict=True` uses Time-R1's >), mIoU = mean (`grounding`).
- F1 (`relevance`): relevant class = "answered with a segment", irrelevant class = "refused";
  precision / recall / F1 of each, their average, and accuracy. A class with no ground-truth
  query has no recall and no F1 (None, and then no average); a class the model never predicts has
  precision 0.
- Format compliance (`complies`): the response has exactly the output blocks of its template, or of
  one the template also accepts (`rarft_plugin.prompts.COMPLIANT_BLOCKS`).
- Hardness levels: `level_subsets` (each level's 1:1 subset) and `refusal_f1` (the released
  per-level F1 on a level's own irrelevant queries).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import fmean
from typing import Protocol

from rarft_plugin.parsing import evaluation_answer, extract_segment, follows_blocks
from rarft_plugin.prompts import COMPLIANT_BLOCKS
from rarft_plugin.rewards import temporal_iou
from rarft_plugin.schema import IRRELEVANCE_LEVELS

__all__ = [
    "RECALL_THRESHOLDS",
    "Grounding",
    "LevelKey",
    "Relevance",
    "complies",
    "grounding",
    "level_subsets",
    "precision_recall_f1",
    "ra_iou_value",
    "recall_at",
    "refusal_f1",
    "relevance",
    "rule_segment",
]

RECALL_THRESHOLDS = (0.3, 0.5, 0.7)

Segment = tuple[float, float]


@dataclass(frozen=True)
class Grounding:
    """Recall at IoU 0.3 / 0.5 / 0.7 and mean IoU of per-query values (None when there are none).

    metrics.json names them as the paper's tables do (`field` metadata "json").
    """

    r_at_0_3: float | None = field(metadata={"json": "R@0.3"})
    r_at_0_5: float | None = field(metadata={"json": "R@0.5"})
    r_at_0_7: float | None = field(metadata={"json": "R@0.7"})
    miou: float | None = field(metadata={"json": "mIoU"})


@dataclass(frozen=True)
class Relevance:
    """Precision / recall / F1 of the relevant ("answered") and irrelevant ("refused") classes (`relevance`)."""

    precision_rel: float
    recall_rel: float | None
    f1_rel: float | None
    precision_irrel: float
    recall_irrel: float | None
    f1_irrel: float | None
    f1_avg: float | None
    accuracy: float | None


def rule_segment(model_output: str) -> Segment | None:
    """The segment the rule reading finds in a response's answer text; None: the response refuses.

    >>> rule_segment("<answer>3.0 to 5.5</answer>"), rule_segment("<answer>No such moment.</answer>")
    ((3.0, 5.5), None)
    """
    return extract_segment(evaluation_answer(model_output))


def complies(text: str, template: str) -> bool:
    """Whether `text` has exactly the output blocks `template` asks for (or one it also accepts).

    >>> complies("<think>t</think> <answer>2 to 6</answer> <correction>NIL</correction>", "ra_rft_released")
    True
    """
    return any(follows_blocks(text, blocks) for blocks in COMPLIANT_BLOCKS[template])


def ra_iou_value(relevant: bool, truth: Segment | None, refused: bool, segment: Segment | None) -> float:
    """RA-IoU of one query: IoU for an answered relevant query, 1 for a refused irrelevant one, else 0.

    >>> ra_iou_value(True, (0, 10), False, (5, 15)), ra_iou_value(False, None, True, None)
    (0.3333333333333333, 1.0)
    """
    if relevant:
        if refused or segment is None or truth is None:
            return 0.0
        return temporal_iou(segment, truth)
    return 1.0 if refused else 0.0


def recall_at(values: Sequence[float], threshold: float, *, strict: bool = False) -> float | None:
    """Share of values >= threshold (> with strict); None for no values.

    >>> recall_at([0.2, 0.5, 0.9], 0.5), recall_at([0.2, 0.5, 0.9], 0.5, strict=True)
    (0.6666666666666666, 0.3333333333333333)
    """
    if not values:
        return None
    return sum((v > threshold) if strict else (v >= threshold) for v in values) / len(values)


def grounding(values: Sequence[float], *, strict: bool = False) -> Grounding:
    """R@0.3 / R@0.5 / R@0.7 and mIoU of per-query IoU values (None when there are none)."""
    low, middle, high = (recall_at(values, threshold, strict=strict) for threshold in RECALL_THRESHOLDS)
    return Grounding(r_at_0_3=low, r_at_0_5=middle, r_at_0_7=high, miou=fmean(values) if values else None)


def precision_recall_f1(
    true_positive: int, false_positive: int, false_negative: int
) -> tuple[float, float | None, float | None]:
    """Precision (0 when nothing is predicted), recall and F1 (None when the class has no support)."""
    predicted, support = true_positive + false_positive, true_positive + false_negative
    precision = true_positive / predicted if predicted else 0.0
    if not support:
        return precision, None, None
    recall = true_positive / support
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def relevance(gt_relevant: Sequence[bool], answered: Sequence[bool]) -> Relevance:
    """Precision / recall / F1 of the relevant and irrelevant classes, their average F1, accuracy.

    >>> relevance([True, True, False, False], [True, False, False, True]).accuracy
    0.5
    """
    pairs = list(zip(gt_relevant, answered, strict=True))
    tp = sum(g and a for g, a in pairs)  # relevant, answered
    fp = sum((not g) and a for g, a in pairs)  # irrelevant, answered
    fn = sum(g and not a for g, a in pairs)  # relevant, refused
    tn = sum((not g) and not a for g, a in pairs)  # irrelevant, refused
    p_rel, r_rel, f_rel = precision_recall_f1(tp, fp, fn)
    p_irr, r_irr, f_irr = precision_recall_f1(tn, fn, fp)
    return Relevance(
        precision_rel=p_rel,
        recall_rel=r_rel,
        f1_rel=f_rel,
        precision_irrel=p_irr,
        recall_irrel=r_irr,
        f1_irrel=f_irr,
        f1_avg=(f_rel + f_irr) / 2 if f_rel is not None and f_irr is not None else None,
        accuracy=(tp + tn) / len(pairs) if pairs else None,
    )


def refusal_f1(refused: Sequence[bool]) -> float | None:
    """The released per-level F1 (processor.py:417-421): F1 of the refusal class on a level's own irrelevant
    queries only, i.e. 2·acc / (1 + acc) for refusal accuracy acc; None without queries.

    >>> refusal_f1([True, True, False, False])
    0.6666666666666666
    """
    return relevance([False] * len(refused), [not r for r in refused]).f1_irrel


class LevelKey(Protocol):
    """What `level_subsets` reads of a query (`rarft_eval.predictions.Prediction` has it; so do in-loop rollouts)."""

    @property
    def item(self) -> str: ...

    @property
    def gt_relevant(self) -> bool: ...

    @property
    def hardness_level(self) -> str | None: ...


def level_subsets(queries: Sequence[LevelKey]) -> dict[str, list[int]]:
    """Indices of each hardness level's 1:1 subset (the extra `paired` columns, not the paper's).

    A level's subset holds its irrelevant queries and the relevant queries of the same items
    (`item`: HI-VTG pairs one relevant with one hard-irrelevant query per item, so F1 stays 1:1),
    plus relevant queries of items that have no irrelevant query at all (simply-shuffled sets mix
    such items in, so `shuffled` covers the whole set there).
    """
    levels_of_item: dict[str, set[str]] = defaultdict(set)
    for q in queries:
        if not q.gt_relevant:
            levels_of_item[q.item].add(q.hardness_level or "")
    subsets: dict[str, list[int]] = {}
    for level in IRRELEVANCE_LEVELS:
        if not any(level in levels for levels in levels_of_item.values()):
            continue
        subsets[level] = [
            i
            for i, q in enumerate(queries)
            if (q.hardness_level == level and not q.gt_relevant)
            or (q.gt_relevant and (level in levels_of_item.get(q.item, ()) or not levels_of_item.get(q.item)))
        ]
    return subsets
