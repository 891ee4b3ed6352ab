"""Every metric of the paper's tables, as pure functions of predictions and judgements (§4.2, supp. A).

The definitions training also logs (the rule reading, RA-IoU, R@m / mIoU, F1, the hardness subsets and
the per-level F1) live in `rarft_plugin.task_metrics`, one implementation for both; this module builds
the tables from them.

- RA-IoU (Tables 1-3, 8, 12): per query, IoU(pred, gt) for a relevant query answered with a
  segment, 1 for a refused irrelevant query, else 0. R@m = share of queries with RA-IoU >= m
  (the released evaluation; `strict=True` uses Time-R1's >), mIoU = mean RA-IoU, over all queries.
- F1 (Tables 1-3, 5, 6, 10-12): relevant class = "answered with a segment", irrelevant class =
  "refused"; precision / recall / F1 of each, their average, and accuracy. A class with no
  ground-truth query has no recall and no F1 (None, and then no average); a class the model
  never predicts has precision 0.
- VTG IoU (Table 7): IoU on relevant queries only (a refusal scores 0); R@0.3/0.5/0.7, mIoU.
- Explanation quality (Tables 3, 9): on irrelevant queries that have a reference refusal answer
  (`gt_output`; simply-shuffled sets have none). RT-IoU = Jaccard of the categories an LLM
  classifier finds in the response with the ground-truth categories (two empty sets score 1);
  SBERT score = cosine of the texts `eval.reading.Reading.sbert_texts` holds, clipped to [0, 1]; LLM score
  0-5. `all` averages over every such query with the wrongly answered ones counting 0 (released
  convention); `refused` averages over the correctly refused ones. A refused query whose score
  could not be obtained (judge failure) is left out of both and counted in `unmeasured`.
- Breakdowns: by hardness level (Tables 5, 6, 10, 11), see `by_difficulty`; by semantic
  category (Fig. 6): refusal accuracy of the irrelevant queries edited along each taxonomy
  category (a category string outside the taxonomy is a data defect and counts nowhere).

How a response is read (its answer text, its segment, its shape) is its `eval.reading.Reading`: the rule
judgement and format compliance take it from there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from statistics import fmean

from rarft_plugin.prompts import OUTPUT_BLOCKS
from rarft_plugin.rewards import temporal_iou
from rarft_plugin.schema import CATEGORIES, HARD_LEVELS
from rarft_plugin.task_metrics import (
    Grounding,
    Relevance,
    grounding,
    level_subsets,
    precision_recall_f1,
    ra_iou_value,
    recall_at,
    refusal_f1,
    relevance,
)

from .predictions import Prediction, defect_counts
from .reading import Reading

__all__ = [
    "EXPLANATION_METRICS",
    "MAX_EMPTY",
    "MAX_TRUNCATED",
    "MIN_COMPLIANT",
    "CategoryMetrics",
    "Counts",
    "Explanation",
    "ExplanationMean",
    "FormatCompliance",
    "Grounding",
    "ItemRow",
    "Judgement",
    "LevelMetrics",
    "Metrics",
    "OriginalMetrics",
    "PairedMetrics",
    "Relevance",
    "by_category",
    "by_difficulty",
    "compute_metrics",
    "dataset_kind",
    "explanation",
    "explanation_eligible",
    "explanation_mean",
    "explanation_scored",
    "format_compliance",
    "format_warnings",
    "grounding",
    "item_row",
    "jaccard",
    "level_subsets",
    "original_metrics",
    "precision_recall_f1",
    "ra_iou",
    "recall_at",
    "relevance",
    "row_relevance",
    "rule_judgement",
]

EXPLANATION_METRICS = ("rt_iou", "sbert", "llm_score")


# The typed rows below are what metrics.json holds (`eval.record` writes and reads them) and what the
# report and `compare` read by attribute: after a field is renamed here, a reader still using the old
# name fails (under a type checker, else with an AttributeError when it runs), never prints a silent "-".


@dataclass(frozen=True)
class Judgement:
    """How a response was read: refused or not, the predicted segment, and the explanation judges' output."""

    refused: bool
    segment: tuple[float, float] | None
    categories: tuple[str, ...] | None = None  # from the RT-IoU classifier, when it ran
    llm_score: float | None = None  # Table 16 score, when it ran


@dataclass(frozen=True)
class ItemRow:
    """One query's result (a line of items.jsonl). Explanation scores only where they count (refused, eligible)."""

    id: str
    video: str
    query: str
    gt_relevant: bool
    hardness_level: str | None
    gt_categories: tuple[str, ...]
    refused: bool
    segment: tuple[float, float] | None
    ra_iou: float
    vtg_iou: float | None  # relevant queries with a span only
    explanation_eligible: bool  # irrelevant, with a reference refusal answer
    judge_categories: tuple[str, ...] | None
    rt_iou: float | None
    sbert: float | None
    llm_score: float | None


@dataclass(frozen=True)
class ExplanationMean:
    """One explanation metric's means (`explanation_mean`)."""

    all: float | None  # every eligible query, wrongly answered ones 0 (released convention)
    refused: float | None  # the correctly refused ones only
    n: int  # queries in `all`
    unmeasured: int  # refused queries whose score could not be obtained


@dataclass(frozen=True)
class Explanation:
    """The explanation metrics of a set of queries; None for a metric that did not run."""

    rt_iou: ExplanationMean | None
    sbert: ExplanationMean | None
    llm_score: ExplanationMean | None


@dataclass(frozen=True)
class PairedMetrics:
    """A level's 1:1 subset (`level_subsets`): extra columns, not the paper's."""

    queries: int
    relevance: Relevance
    ra_iou: Grounding


@dataclass(frozen=True)
class LevelMetrics:
    """One hardness level (`by_difficulty`)."""

    irrelevant: int
    f1: float | None  # the released definition: refusal-class F1 on the level's own irrelevant queries
    refusal_accuracy: float
    explanation: Explanation
    paired: PairedMetrics


@dataclass(frozen=True)
class OriginalMetrics:
    """The relevant queries (metrics.json: `by_difficulty.original`)."""

    queries: int
    answer_rate: float
    vtg_iou: Grounding


@dataclass(frozen=True)
class CategoryMetrics:
    """Refusal accuracy of the irrelevant queries edited along one category (Fig. 6)."""

    n: int
    refusal_accuracy: float


@dataclass(frozen=True)
class Counts:
    queries: int
    relevant: int
    irrelevant: int
    explanation_eligible: int


@dataclass(frozen=True)
class Metrics:
    """Every metric of a prediction set (`compute_metrics`)."""

    count: Counts
    ra_iou: Grounding
    relevance: Relevance
    vtg_iou: Grounding
    explanation: Explanation
    by_difficulty: dict[str, LevelMetrics]  # IRRELEVANCE_LEVELS order, the levels the set has
    original: OriginalMetrics | None  # None without relevant queries
    by_category: dict[str, CategoryMetrics]  # taxonomy order, the categories the set has
    explained: tuple[str, ...]  # the explanation metrics that ran (EXPLANATION_METRICS names)
    strict_recall: bool
    prediction_defects: dict[str, int]


def rule_judgement(reading: Reading) -> Judgement:
    """The core parser's judgement: a response answers iff its answer text holds a valid segment
    (`Reading.segment`)."""
    return Judgement(refused=reading.segment is None, segment=reading.segment)


def ra_iou(prediction: Prediction, judgement: Judgement) -> float:
    """RA-IoU of one query (paper §4.2): IoU for an answered relevant query, 1 for a refused irrelevant one, else 0."""
    return ra_iou_value(prediction.gt_relevant, prediction.gt_timestamp, judgement.refused, judgement.segment)


def row_relevance(rows: Sequence[ItemRow]) -> Relevance:
    """`relevance` of per-query rows: answered = not refused."""
    return relevance([row.gt_relevant for row in rows], [not row.refused for row in rows])


def jaccard(predicted: Iterable[str], truth: Iterable[str]) -> float:
    """|A ∩ B| / |A ∪ B|; two empty sets score 1 (released convention).

    >>> jaccard(["Object/ObjectExistence"], ["Object/ObjectExistence", "Attribute/Counting"])
    0.5
    """
    a, b = set(predicted), set(truth)
    return 1.0 if not a and not b else len(a & b) / len(a | b)


def explanation_mean(rows: Sequence[ItemRow], score: Callable[[ItemRow], float | None]) -> ExplanationMean:
    """`all` / `refused` means of one explanation metric (`score` of a row) over eligible irrelevant rows
    (module docstring).

    When refused queries were to be scored and none was (every judge call failed), both means are
    None: the wrongly answered queries alone would make `all` a 0 that measured nothing.
    """
    eligible = [row for row in rows if row.explanation_eligible]
    answered = sum(not row.refused for row in eligible)
    refused = sum(row.refused for row in eligible)
    measured = [value for row in eligible if row.refused and (value := score(row)) is not None]
    counted = answered + len(measured)
    return ExplanationMean(
        all=sum(measured) / counted if counted and (measured or not refused) else None,
        refused=fmean(measured) if measured else None,
        n=counted,
        unmeasured=len(eligible) - counted,
    )


def explanation(rows: Sequence[ItemRow], explained: Collection[str]) -> Explanation:
    """The explanation metrics that ran (`explained`, EXPLANATION_METRICS names) over a set of rows."""
    return Explanation(
        rt_iou=explanation_mean(rows, lambda row: row.rt_iou) if "rt_iou" in explained else None,
        sbert=explanation_mean(rows, lambda row: row.sbert) if "sbert" in explained else None,
        llm_score=explanation_mean(rows, lambda row: row.llm_score) if "llm_score" in explained else None,
    )


@dataclass(frozen=True)
class FormatCompliance:
    """How many responses have the shape their prompt asked for (`format_compliance`)."""

    template: str  # the prompt template whose output blocks were checked
    template_source: str  # "recorded" (by infer), "given" (--template) or "assumed" (neither: ra_rft)
    queries: int
    compliant: int  # exactly the template's blocks, in order (`rarft_plugin.parsing.follows_blocks`)
    empty: int  # nothing but whitespace
    truncated: int  # stopped by the generation limit
    truncated_source: str  # "recorded" (by infer), "text" (a block opened and never closed) or "mixed"
    # responses ending with an end-of-turn marker (`<|im_end|>`: inference that decodes special tokens),
    # checked without it
    end_of_turn: int = 0

    @property
    def compliant_share(self) -> float | None:
        return self.compliant / self.queries if self.queries else None


# Below these shares of compliant responses, or above these of empty / truncated ones, a report warns:
# the metrics then say more about the output's shape than about grounding or refusal.
MIN_COMPLIANT = 0.8
MAX_EMPTY = 0.05
MAX_TRUNCATED = 0.05


def format_compliance(readings: Sequence[Reading], template: str, template_source: str) -> FormatCompliance:
    """Format compliance of the responses, read against `template`'s output blocks (`eval.reading.read`).

    A response is truncated when inference recorded that it hit the generation limit, or, for rows
    without that record (other inference code), when it ends inside an opened block.
    """
    recorded = sum(r.truncation_recorded for r in readings)
    return FormatCompliance(
        template=template,
        template_source=template_source,
        queries=len(readings),
        compliant=sum(r.compliant for r in readings),
        empty=sum(r.empty for r in readings),
        truncated=sum(r.truncated for r in readings),
        truncated_source="recorded" if recorded == len(readings) else "text" if not recorded else "mixed",
        end_of_turn=sum(r.end_of_turn for r in readings),
    )


def format_warnings(compliance: FormatCompliance) -> list[str]:
    """One sentence per problem of the responses' shape (thresholds MIN_COMPLIANT, MAX_EMPTY, MAX_TRUNCATED).

    >>> format_warnings(FormatCompliance(template="ra_rft", template_source="recorded", queries=4, compliant=0,
    ...                                  empty=4, truncated=0, truncated_source="recorded"))[1]
    '4 of 4 responses (100.0 %) are empty; an empty response counts as a refusal (RA-IoU 1 on an irrelevant query)'
    """
    total = compliance.queries
    if not total:
        return []

    def part(count: int) -> str:
        return f"{count} of {total} responses ({100 * count / total:.1f} %)"

    template = compliance.template
    out = []
    if compliance.compliant / total < MIN_COMPLIANT:
        assumed = "; template not recorded, assumed: pass --template" if compliance.template_source == "assumed" else ""
        out.append(
            f"only {part(compliance.compliant)} follow the {template} output format "
            f"({', '.join(OUTPUT_BLOCKS[template])} blocks{assumed})"
        )
    if compliance.empty / total > MAX_EMPTY:
        out.append(
            f"{part(compliance.empty)} are empty; an empty response counts as a refusal (RA-IoU 1 on an "
            "irrelevant query)"
        )
    if compliance.truncated / total > MAX_TRUNCATED:
        how = (
            "were cut off by the generation limit"
            if compliance.truncated_source == "recorded"
            else "end inside a block never closed (cut off)"
        )
        out.append(f"{part(compliance.truncated)} {how}")
    return out


def dataset_kind(predictions: Sequence[Prediction]) -> str:
    """What kind of evaluation set the predictions answer, from the levels of its irrelevant queries.

    >>> dataset_kind([Prediction("0:1", "v", "q", "", False, None, "", (), "shuffled")])
    'simply-shuffled'
    """
    levels = {p.hardness_level for p in predictions if not p.gt_relevant}
    if not levels:
        return "relevant only"
    if levels <= set(HARD_LEVELS):
        return "hard-irrelevant"
    if levels == {"shuffled"}:
        return "simply-shuffled"
    return "no levels" if levels == {None} else "mixed levels"


def explanation_eligible(prediction: Prediction) -> bool:
    """An irrelevant query with a reference refusal answer: its explanation can be scored."""
    return not prediction.gt_relevant and bool(prediction.gt_output.strip())


def explanation_scored(prediction: Prediction, judgement: Judgement) -> bool:
    """An eligible query the response refused: its explanation is scored (the judges and the SBERT score are
    asked only about these; a wrongly answered one scores 0 whatever they say)."""
    return explanation_eligible(prediction) and judgement.refused


def item_row(prediction: Prediction, judgement: Judgement, sbert: float | None = None) -> ItemRow:
    """The per-query result row. Explanation scores only where they count (refused, eligible)."""
    eligible = explanation_eligible(prediction)
    scored = eligible and judgement.refused
    vtg_iou = None
    if prediction.gt_relevant and prediction.gt_timestamp is not None:
        vtg_iou = temporal_iou(judgement.segment, prediction.gt_timestamp) if judgement.segment else 0.0
    categories = judgement.categories if scored else None
    return ItemRow(
        id=prediction.id,
        video=prediction.video,
        query=prediction.query,
        gt_relevant=prediction.gt_relevant,
        hardness_level=prediction.hardness_level,
        gt_categories=prediction.gt_categories,
        refused=judgement.refused,
        segment=judgement.segment or None,
        ra_iou=ra_iou(prediction, judgement),
        vtg_iou=vtg_iou,
        explanation_eligible=eligible,
        judge_categories=categories,
        rt_iou=jaccard(categories, prediction.gt_categories) if categories is not None else None,
        sbert=min(1.0, max(0.0, sbert)) if scored and sbert is not None else None,
        llm_score=judgement.llm_score if scored else None,
    )


def compute_metrics(
    predictions: Sequence[Prediction],
    judgements: Sequence[Judgement],
    *,
    sbert_scores: Sequence[float | None] | None = None,
    explained: Collection[str] | None = None,
    strict: bool = False,
) -> tuple[Metrics, list[ItemRow]]:
    """All metrics and the per-query rows.

    `sbert_scores[i]` is the SBERT cosine of query i (`eval.evaluate.sbert_scores`) or None. `explained` names the
    explanation metrics that ran (a metric that ran scores wrongly answered queries 0, one that did not is
    None); by default: SBERT when scores are given, RT-IoU / LLM score when a judgement has them.
    """
    if len(predictions) != len(judgements):
        raise ValueError(f"{len(predictions)} predictions but {len(judgements)} judgements")
    scores = list(sbert_scores) if sbert_scores is not None else [None] * len(predictions)
    if len(scores) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions but {len(scores)} SBERT scores")
    rows = [item_row(p, j, s) for p, j, s in zip(predictions, judgements, scores, strict=True)]
    if explained is None:
        explained = {"sbert"} if sbert_scores is not None else set()
        explained |= {"rt_iou"} if any(j.categories is not None for j in judgements) else set()
        explained |= {"llm_score"} if any(j.llm_score is not None for j in judgements) else set()
    relevant = [row for row in rows if row.gt_relevant]
    metrics = Metrics(
        count=Counts(
            queries=len(rows),
            relevant=len(relevant),
            irrelevant=len(rows) - len(relevant),
            explanation_eligible=sum(row.explanation_eligible for row in rows),
        ),
        ra_iou=grounding([row.ra_iou for row in rows], strict=strict),
        relevance=row_relevance(rows),
        vtg_iou=grounding([row.vtg_iou for row in rows if row.vtg_iou is not None], strict=strict),
        explanation=explanation([row for row in rows if not row.gt_relevant], explained),
        by_difficulty=by_difficulty(predictions, rows, explained=explained, strict=strict),
        original=original_metrics(relevant, strict=strict),
        by_category=by_category(predictions, rows),
        explained=tuple(sorted(explained)),
        strict_recall=strict,
        prediction_defects=defect_counts(predictions),
    )
    return metrics, rows


def by_difficulty(
    predictions: Sequence[Prediction],
    rows: Sequence[ItemRow],
    *,
    explained: Collection[str] = (),
    strict: bool = False,
) -> dict[str, LevelMetrics]:
    """Per hardness level (Tables 5, 6, 10, 11).

    `f1` is the released definition (`rarft_plugin.task_metrics.refusal_f1`): F1 of the refusal class on
    the level's own irrelevant queries only, which is 2·acc / (1 + acc) for refusal accuracy acc. The
    explanation scores are over the same queries. `paired` holds the metrics of the 1:1 subset
    (`level_subsets`: the level's irrelevant queries and the same items' relevant ones).
    """
    out = {}
    for level, indices in level_subsets(predictions).items():
        own = [row for p, row in zip(predictions, rows, strict=True) if not p.gt_relevant and p.hardness_level == level]
        paired = [rows[i] for i in indices]
        out[level] = LevelMetrics(
            irrelevant=len(own),
            f1=refusal_f1([row.refused for row in own]),
            refusal_accuracy=fmean(row.refused for row in own),
            explanation=explanation(own, explained),
            paired=PairedMetrics(
                queries=len(indices),
                relevance=row_relevance(paired),
                ra_iou=grounding([row.ra_iou for row in paired], strict=strict),
            ),
        )
    return out


def original_metrics(relevant: Sequence[ItemRow], *, strict: bool = False) -> OriginalMetrics | None:
    """The relevant queries' answer rate and VTG IoU (the `original` row beside the levels); None without any."""
    if not relevant:
        return None
    return OriginalMetrics(
        queries=len(relevant),
        answer_rate=fmean(not row.refused for row in relevant),
        vtg_iou=grounding([row.vtg_iou for row in relevant if row.vtg_iou is not None], strict=strict),
    )


def by_category(predictions: Sequence[Prediction], rows: Sequence[ItemRow]) -> dict[str, CategoryMetrics]:
    """Refusal accuracy of the irrelevant queries edited along each category (Fig. 6), taxonomy order."""
    refused_by_category: dict[str, list[bool]] = defaultdict(list)
    for prediction, row in zip(predictions, rows, strict=True):
        if not prediction.gt_relevant:
            for category in prediction.gt_categories:
                refused_by_category[category].append(row.refused)
    return {
        category: CategoryMetrics(
            n=len(refused_by_category[category]), refusal_accuracy=fmean(refused_by_category[category])
        )
        for category in CATEGORIES
        if refused_by_category.get(category)
    }
