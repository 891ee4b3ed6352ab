"""The text-only leakage check: how well the query text alone, without the video, tells an
irrelevant query from a relevant one.

An LLM that edits relevant queries into hard-irrelevant ones leaves its own vocabulary in them
(the released HI-Charades file: substitutes such as "tablet", "mop", "drawer" mark the edited
query). A model trained on such data can learn to refuse from the words, never looking at the
video. The check trains a query-only classifier and measures it out of fold:

- features: word 1-2-grams and character 2-5-grams inside word boundaries, each block TF-IDF
  weighted (smoothed idf) and L2-normalised, vocabulary from the training fold (document
  frequency >= `MIN_DF`);
- model: L2-regularised logistic regression (C = `C`, intercept unpenalised), fitted by L-BFGS in
  numpy;
- folds: `FOLDS` folds grouped by video (every query of a video in one fold: the classifier never
  sees the video it scores), groups dealt to folds in a seeded order;
- report (`LeakageReport`): the out-of-fold AUC of P(irrelevant | query) with its standard error
  (Hanley & McNeil), the accuracy at 0.5, per hardness level the AUC of that level's irrelevant
  queries against every relevant query and the share of them predicted irrelevant (recall), the
  share of (relevant, irrelevant) pairs of one video where the irrelevant query scores higher
  (`pair_pick`; a pair is an irrelevant query and the relevant query it was edited from), and
  the words the classifier fitted on the whole file weighs most for each side (`cues`).

AUC 0.5 is no leak; 1.0 gives every refusal away. `leak_filter` drops the irrelevant queries the
classifier finds easiest until its out-of-fold AUC is at most a target (used by `rarft-prep
debias` and `rarft-prep hi-vtg --debias`).

>>> report = leakage_check(["a man runs", "a man reads a tablet"] * 10, [False, True] * 10,
...                        [f"v{i // 2}" for i in range(20)])
>>> report.auc > 0.9
True
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from rarft_plugin.schema import DIFFICULTIES, JsonValue, Label

__all__ = [
    "C",
    "CHAR_NGRAMS",
    "FOLDS",
    "MIN_DF",
    "WORD_NGRAMS",
    "FilterResult",
    "LeakageReport",
    "LevelLeak",
    "auc",
    "auc_standard_error",
    "group_folds",
    "leak_filter",
    "leakage_check",
    "label_leakage",
    "out_of_fold_scores",
    "query_features",
]

WORD_NGRAMS = (1, 2)
CHAR_NGRAMS = (2, 5)
MIN_DF = 2
C = 1.0
FOLDS = 5
CUES = 10  # cue words reported per side
_WORD = re.compile(r"\w+")
_MAX_CHARS = 1000  # a query longer than this is cut (features stay linear in the text)


def query_features(text: str) -> Counter[str]:
    """Word n-grams ("w:") and character n-grams within word boundaries ("c:", each word padded
    with one space), lower-cased; counts.

    >>> sorted(query_features("Go!"))
    ['c: g', 'c: go', 'c: go ', 'c:go', 'c:go ', 'c:o ', 'w:go']
    """
    words = _WORD.findall(text[:_MAX_CHARS].lower())
    counts: Counter[str] = Counter()
    low, high = WORD_NGRAMS
    for n in range(low, high + 1):
        counts.update("w:" + " ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    low, high = CHAR_NGRAMS
    for word in words:
        padded = f" {word} "
        for n in range(low, high + 1):
            counts.update("c:" + padded[i : i + n] for i in range(len(padded) - n + 1))
    return counts


@dataclass(frozen=True)
class _Sparse:
    """A CSR matrix in plain numpy: row of each stored value, its column, its value."""

    rows: np.ndarray
    columns: np.ndarray
    values: np.ndarray
    shape: tuple[int, int]

    def dot(self, weights: np.ndarray) -> np.ndarray:
        return np.bincount(self.rows, weights=self.values * weights[self.columns], minlength=self.shape[0])

    def transpose_dot(self, residuals: np.ndarray) -> np.ndarray:
        return np.bincount(self.columns, weights=self.values * residuals[self.rows], minlength=self.shape[1])


class _Vectoriser:
    """TF-IDF per feature block (word, char), each block L2-normalised per row; fitted on training rows."""

    def __init__(self, documents: Sequence[Counter[str]]):
        frequency: Counter[str] = Counter()
        for document in documents:
            frequency.update(document.keys())
        names = sorted(name for name, count in frequency.items() if count >= MIN_DF)
        self.names = names
        self.column = {name: index for index, name in enumerate(names)}
        total = len(documents)
        self.idf = np.array([math.log((1 + total) / (1 + frequency[name])) + 1 for name in names])
        self.block = np.array([name[0] == "w" for name in names])

    def transform(self, documents: Sequence[Counter[str]]) -> _Sparse:
        rows, columns, values = [], [], []
        for row, document in enumerate(documents):
            kept = [(self.column[name], count) for name, count in document.items() if name in self.column]
            if not kept:
                continue
            cols = np.array([c for c, _ in kept])
            weights = np.array([n for _, n in kept], dtype=float) * self.idf[cols]
            for in_block in (self.block[cols], ~self.block[cols]):
                norm = math.sqrt(float(np.sum(weights[in_block] ** 2)))
                if norm:
                    weights[in_block] /= norm
            rows.append(np.full(len(cols), row))
            columns.append(cols)
            values.append(weights)
        if not rows:
            empty = np.zeros(0)
            return _Sparse(empty.astype(int), empty.astype(int), empty, (len(documents), len(self.names)))
        return _Sparse(
            np.concatenate(rows), np.concatenate(columns), np.concatenate(values), (len(documents), len(self.names))
        )


def _fit_logistic(matrix: _Sparse, target: np.ndarray, iterations: int = 300) -> tuple[np.ndarray, float]:
    """Weights and intercept minimising Σ log-loss + ||w||² / (2C), by L-BFGS (10 pairs, Armijo backtracking)."""
    width = matrix.shape[1]

    def loss_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        weights, bias = theta[:width], theta[width]
        z = matrix.dot(weights) + bias
        loss = float(np.sum(np.logaddexp(0.0, z) - target * z) + weights @ weights / (2 * C))
        residual = 1.0 / (1.0 + np.exp(-z)) - target
        gradient = np.empty(width + 1)
        gradient[:width] = matrix.transpose_dot(residual) + weights / C
        gradient[width] = residual.sum()
        return loss, gradient

    theta = np.zeros(width + 1)
    loss, gradient = loss_and_gradient(theta)
    steps: list[tuple[np.ndarray, np.ndarray, float]] = []
    for _ in range(iterations):
        direction = -gradient
        alphas = []
        for s, y, rho in reversed(steps):
            alpha = rho * (s @ direction)
            direction -= alpha * y
            alphas.append(alpha)
        if steps:
            s, y, _ = steps[-1]
            direction *= (s @ y) / (y @ y)
        for (s, y, rho), alpha in zip(steps, reversed(alphas), strict=True):
            direction += s * (alpha - rho * (y @ direction))
        slope = gradient @ direction
        if slope >= 0:  # not a descent direction (rounding): restart from the gradient
            steps.clear()
            direction, slope = -gradient, -(gradient @ gradient)
        step = 1.0
        while True:
            candidate = theta + step * direction
            new_loss, new_gradient = loss_and_gradient(candidate)
            if new_loss <= loss + 1e-4 * step * slope or step < 1e-10:
                break
            step /= 2
        s, y = candidate - theta, new_gradient - gradient
        if s @ y > 1e-12:
            steps.append((s, y, 1.0 / (s @ y)))
            del steps[:-10]
        converged = abs(loss - new_loss) <= 1e-9 * max(1.0, abs(loss))
        theta, loss, gradient = candidate, new_loss, new_gradient
        if converged or np.max(np.abs(gradient)) < 1e-6:
            break
    return theta[:width], float(theta[width])


def _probabilities(matrix: _Sparse, weights: np.ndarray, bias: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(matrix.dot(weights) + bias)))


def group_folds(groups: Sequence[str], folds: int = FOLDS, seed: int = 0) -> list[int]:
    """The fold of each item: whole groups, dealt in a seeded order to the fold with the fewest items so far.

    >>> group_folds(["a", "a", "b", "c"], folds=2)
    [1, 1, 0, 0]
    """
    sizes = Counter(groups)
    order = sorted(sizes)
    np.random.default_rng(seed).shuffle(order)
    filled = [0] * folds
    fold_of = {}
    for group in order:
        target = min(range(folds), key=lambda k: (filled[k], k))
        fold_of[group] = target
        filled[target] += sizes[group]
    return [fold_of[group] for group in groups]


def out_of_fold_scores(
    texts: Sequence[str], irrelevant: Sequence[bool], groups: Sequence[str], *, folds: int = FOLDS, seed: int = 0
) -> np.ndarray:
    """P(irrelevant | query) of each query from a classifier that never saw its group (NaN where a
    training fold lacks a class)."""
    documents = [query_features(text) for text in texts]
    target = np.asarray(irrelevant, dtype=float)
    fold = np.asarray(group_folds(groups, folds, seed))
    scores = np.full(len(texts), np.nan)
    for k in range(folds):
        test, train = np.flatnonzero(fold == k), np.flatnonzero(fold != k)
        if not len(test) or len(set(target[train])) < 2:
            continue
        vectoriser = _Vectoriser([documents[i] for i in train])
        weights, bias = _fit_logistic(vectoriser.transform([documents[i] for i in train]), target[train])
        scores[test] = _probabilities(vectoriser.transform([documents[i] for i in test]), weights, bias)
    return scores


def auc(positive: Sequence[float], negative: Sequence[float]) -> float | None:
    """P(a positive scores above a negative), ties counting half (Mann-Whitney); None without both.

    >>> auc([0.9, 0.5], [0.5, 0.1])
    0.875
    """
    positive, negative = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    if not len(positive) or not len(negative):
        return None
    values = np.concatenate([positive, negative])
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    start = 0
    while start < len(values):  # average ranks over ties
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    rank_sum = ranks[: len(positive)].sum()
    return float((rank_sum - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative)))


def auc_standard_error(value: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil's standard error of an AUC from its value and the two class sizes.

    >>> round(auc_standard_error(0.85, 1097, 1097), 4)
    0.0083
    """
    q1, q2 = value / (2 - value), 2 * value * value / (1 + value)
    variance = (
        value * (1 - value) + (positives - 1) * (q1 - value * value) + (negatives - 1) * (q2 - value * value)
    ) / (positives * negatives)
    return math.sqrt(max(variance, 0.0))


@dataclass(frozen=True)
class LevelLeak:
    """One hardness level: its irrelevant queries against every relevant query."""

    queries: int
    auc: float | None
    recall: float  # share predicted irrelevant (P > 0.5)


@dataclass(frozen=True)
class LeakageReport:
    """The out-of-fold result of the query-only classifier (module docstring)."""

    queries: int
    relevant: int
    irrelevant: int
    auc: float | None
    auc_se: float | None
    accuracy: float | None
    levels: dict[str, LevelLeak] = field(default_factory=dict)
    pairs: int = 0
    pair_pick: float | None = None
    cues_irrelevant: tuple[str, ...] = ()
    cues_relevant: tuple[str, ...] = ()
    folds: int = FOLDS
    seed: int = 0
    note: str = ""

    def to_json(self) -> dict[str, JsonValue]:
        return asdict(self)

    def summary(self) -> str:
        """One line: AUC ± SE, per level, pairs, cue words (or why there is no check)."""
        if self.auc is None:
            return f"text-only leakage: not measured ({self.note})"
        levels = ", ".join(
            f"{name} {_number(level.auc)} (recall {level.recall:.2f})" for name, level in self.levels.items()
        )
        pick = (
            f"; irrelevant of a pair picked {self.pair_pick:.1%} of {self.pairs}" if self.pair_pick is not None else ""
        )
        return (
            f"text-only leakage: out-of-fold AUC {self.auc:.3f} ± {self.auc_se:.3f}, accuracy {self.accuracy:.3f} "
            f"({self.relevant} relevant, {self.irrelevant} irrelevant queries; {self.folds} folds by video)"
            + (f"; by level: {levels}" if levels else "")
            + pick
            + f"; cues of irrelevant: {', '.join(self.cues_irrelevant) or '-'}"
            + f"; of relevant: {', '.join(self.cues_relevant) or '-'}"
        )


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _level_order(level: str) -> tuple[int, str]:
    """The difficulty table's order (strong, moderate, weak, ...), unknown names after it."""
    return (DIFFICULTIES.index(level), level) if level in DIFFICULTIES else (len(DIFFICULTIES), level)


def _normal(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def leakage_check(
    texts: Sequence[str],
    irrelevant: Sequence[bool],
    groups: Sequence[str],
    *,
    levels: Sequence[str | None] | None = None,
    references: Sequence[str] | None = None,
    folds: int = FOLDS,
    seed: int = 0,
    scores: np.ndarray | None = None,
) -> LeakageReport:
    """The leakage report of queries `texts` (`irrelevant` per query, the video of each in `groups`).

    `levels`: the hardness level of each irrelevant query (per level AUC and recall); `references`:
    the relevant query each irrelevant one was edited from (q_r), for the pair-pick rate; `scores`:
    `out_of_fold_scores` of the same queries, folds and seed, where the caller has them already.
    """
    relevant_count = sum(not flag for flag in irrelevant)
    irrelevant_count = len(texts) - relevant_count
    base = {"queries": len(texts), "relevant": relevant_count, "irrelevant": irrelevant_count}
    if not relevant_count or not irrelevant_count:
        return LeakageReport(**base, auc=None, auc_se=None, accuracy=None, note="needs relevant and irrelevant queries")
    folds = min(folds, len(set(groups)))
    if folds < 2:
        return LeakageReport(**base, auc=None, auc_se=None, accuracy=None, note="needs queries of two videos or more")
    if scores is None:
        scores = out_of_fold_scores(texts, irrelevant, groups, folds=folds, seed=seed)
    flags = np.asarray(irrelevant, dtype=bool)
    known = ~np.isnan(scores)
    positives, negatives = scores[flags & known], scores[~flags & known]
    value = auc(positives, negatives)
    if value is None:
        return LeakageReport(**base, auc=None, auc_se=None, accuracy=None, note="a fold lacked a class")
    accuracy = float(np.mean((scores[known] > 0.5) == flags[known]))
    by_level = {}
    for level in sorted({lv for lv in levels or () if lv is not None}, key=_level_order):
        members = np.array([flag and lv == level for flag, lv in zip(flags, levels, strict=True)]) & known
        if members.any():
            by_level[level] = LevelLeak(
                int(members.sum()), auc(scores[members], negatives), float(np.mean(scores[members] > 0.5))
            )
    picks = []
    if references is not None:
        relevant_at = {
            (group, _normal(text)): i
            for i, (text, group, flag) in enumerate(zip(texts, groups, flags, strict=True))
            if not flag
        }
        for i, (reference, group, flag) in enumerate(zip(references, groups, flags, strict=True)):
            j = relevant_at.get((group, _normal(reference))) if flag and reference else None
            if j is not None and known[i] and known[j]:
                picks.append(1.0 if scores[i] > scores[j] else 0.5 if scores[i] == scores[j] else 0.0)
    cues = _cue_words(texts, flags)
    return LeakageReport(
        **base,
        auc=value,
        auc_se=auc_standard_error(value, len(positives), len(negatives)),
        accuracy=accuracy,
        levels=by_level,
        pairs=len(picks),
        pair_pick=float(np.mean(picks)) if picks else None,
        cues_irrelevant=cues[0],
        cues_relevant=cues[1],
        folds=folds,
        seed=seed,
    )


def label_leakage(
    labels: Sequence[Label], groups: Sequence[str], *, seed: int = 0, scores: np.ndarray | None = None
) -> LeakageReport:
    """`leakage_check` of labelled queries: their texts, relevance, levels and q_r; `groups` their videos."""
    return leakage_check(
        [label.query for label in labels],
        [not label.relevant for label in labels],
        groups,
        levels=[label.difficulty for label in labels],
        references=[label.query_relevant for label in labels],
        seed=seed,
        scores=scores,
    )


def _cue_words(texts: Sequence[str], flags: np.ndarray) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The single words the classifier fitted on every query weighs most towards irrelevant / relevant."""
    documents = [query_features(text) for text in texts]
    vectoriser = _Vectoriser(documents)
    weights, _ = _fit_logistic(vectoriser.transform(documents), flags.astype(float))
    words = [
        (w, name[2:])
        for w, name in zip(weights, vectoriser.names, strict=True)
        if name.startswith("w:") and " " not in name
    ]
    words.sort()
    return tuple(word for _, word in reversed(words[-CUES:])), tuple(word for _, word in words[:CUES])


@dataclass(frozen=True)
class FilterResult:
    """What `leak_filter` kept: a flag per query, and the out-of-fold AUC before each round's drop."""

    kept: tuple[bool, ...]
    rounds: tuple[dict[str, JsonValue], ...]  # {"auc", "irrelevant_kept", "dropped"} per round
    reached: bool  # the last round's AUC is at most the target


def leak_filter(
    texts: Sequence[str],
    irrelevant: Sequence[bool],
    groups: Sequence[str],
    levels: Sequence[str | None],
    *,
    target: float,
    min_keep: float = 0.25,
    step: float = 0.05,
    folds: int = FOLDS,
    seed: int = 0,
    max_rounds: int = 100,
) -> FilterResult:
    """Drop the irrelevant queries the query-only classifier finds easiest until its out-of-fold AUC
    is at most `target`.

    Each round fits fresh folds (seed + round) on the queries kept so far and drops the `step`
    share of the kept irrelevant queries with the highest out-of-fold P(irrelevant), never taking a
    hardness level below `min_keep` of its queries (so every level stays). Relevant queries are
    always kept: each is its item's grounding example and the q_r of its irrelevant queries
    (dropping the relevant query of an item whose irrelevant ones are gone as well, lowest scores
    first, kept less on the released HI-Charades file for the same AUC). Stops when the target is
    reached or nothing more may be dropped (`reached` says which).
    """
    flags = np.asarray(irrelevant, dtype=bool)
    kept = np.ones(len(texts), dtype=bool)
    level_of = [level or "untagged" for level in levels]
    floor = {
        level: math.ceil(min_keep * count)
        for level, count in Counter(lv for lv, flag in zip(level_of, flags, strict=True) if flag).items()
    }
    rounds: list[dict[str, JsonValue]] = []
    reached = False
    for round_index in range(max_rounds):
        index = np.flatnonzero(kept)
        scores = out_of_fold_scores(
            [texts[i] for i in index], flags[index], [groups[i] for i in index], folds=folds, seed=seed + round_index
        )
        known = ~np.isnan(scores)
        value = auc(scores[flags[index] & known], scores[~flags[index] & known])
        entry: dict[str, JsonValue] = {"auc": value, "irrelevant_kept": int((flags & kept).sum()), "dropped": 0}
        rounds.append(entry)
        if value is None or value <= target:
            reached = value is not None
            break
        remaining = Counter(level_of[i] for i in index if flags[i])
        budget = max(1, round(step * remaining.total()))
        for position in np.argsort(-np.where(known, scores, -np.inf), kind="stable"):
            query = index[position]
            if budget == 0 or not known[position]:
                break
            if flags[query] and remaining[level_of[query]] > floor[level_of[query]]:
                kept[query] = False
                remaining[level_of[query]] -= 1
                budget -= 1
                entry["dropped"] += 1
        if not entry["dropped"]:
            break
    return FilterResult(tuple(bool(k) for k in kept), tuple(rounds), reached)
