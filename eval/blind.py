"""The fitted baselines of `rarft-audit`: the strongest policies that never look at the video, and the
one that takes only the relevance decision from it.

The fixed exploits of `eval.exploits` write one text for every file. These policies choose their
texts from the file itself, as a model trained on it could learn them without the video, and are
fitted *out of fold*: the queries are dealt to `FOLDS` folds grouped by video
(`rarft_plugin.leakage.group_folds`, the folds of the leakage check), and a query's response uses
only what was chosen on the other folds.

| policy          | decides relevance        | answer â                               | correction ĉ            |
|-----------------|--------------------------|----------------------------------------|-------------------------|
| `blind_refusal` | never grounds            | the best refusal at the training mix   | the best at the mix     |
| `text_decision` | a query-only classifier  | as `decision_only`                     | as `decision_only`      |
| `decision_only` | the label (as the video) | rel.: best span; irr.: best refusal    | rel.: NIL; irr.: best   |

Candidates, per fold: the refusal texts are up to `POOL` reference refusals drawn (seeded) from
the training folds (without a timestamp or a tag in them) plus the video-free templates of
`eval.exploits` (the generic refusal, the query in the refusal template, the query itself); the
corrections up to `POOL` reference q_r of the training folds plus the generic sentence, `NIL`, the
query (the copy) and an empty block; the spans `SPAN_GRID` fractions of the clip, start < end
(a clip of unknown length is answered as `whole_video`). Each is scored with the reward code's own
pure functions (`explain_pairs` / `explain_reward`, `correction_pairs` / `correction_reward`,
`refuse_iou_reward`) on every training query, under each setting, and the best mean wins: at
the training mix relevant:irrelevant = ratio for `blind_refusal`, over the irrelevant queries for
the refusals and corrections of the others, over the relevant queries for the span. The audit then
scores the responses with `score_many`, like every policy.

`text_decision` refuses where the out-of-fold P(irrelevant | query) of the leakage check's
classifier, moved from the file's class balance to the training mix's prior, is above one half.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from rarft_plugin.leakage import FOLDS, group_folds
from rarft_plugin.parsing import extract_segment, extract_segment_released
from rarft_plugin.rewards import (
    correction_pairs,
    correction_reward,
    explain_pairs,
    explain_reward,
    refuse_iou_reward,
)
from rarft_plugin.schema import Label, format_span
from rarft_plugin.similarity import Similarity

from .exploits import (
    CORRECTION_TAG,
    GENERIC_CORRECTION,
    GENERIC_REFUSAL,
    NIL,
    Setting,
    render,
    templated_refusal,
    whole_video,
)

__all__ = [
    "FITTED_POLICIES",
    "POOL",
    "SPAN_GRID",
    "Baselines",
    "Candidate",
    "FittedPolicy",
    "fit_baselines",
    "refuses",
]

POOL = 24  # reference texts drawn per fold into each candidate pool (bounds the audit's cost)
SPAN_GRID = tuple(k / 10 for k in range(11))


@dataclass(frozen=True)
class FittedPolicy:
    name: str
    description: str
    decides: str  # who decides relevance: "blind", "query text" or "reference"
    video_free: bool


FITTED_POLICIES: tuple[FittedPolicy, ...] = (
    FittedPolicy(
        "blind_refusal",
        "refuses every query, with the refusal and correction texts that earn most at the training mix "
        "(chosen out of fold)",
        "blind",
        True,
    ),
    FittedPolicy(
        "text_decision",
        "a query-only classifier decides; it refuses as decision_only does and grounds with the best constant span",
        "query text",
        True,
    ),
    FittedPolicy(
        "decision_only",
        "the right decision, everything else video-free: the best constant span + NIL, the refusal and "
        "correction texts that earn most on irrelevant queries",
        "reference",
        False,
    ),
)


@dataclass(frozen=True)
class Candidate:
    """One text a fitted policy may write: its name in the report and the text it writes for a label."""

    name: str
    write: Callable[[Label], str]


@dataclass
class Baselines:
    """Per setting and fitted policy the responses (label order); what each fold chose."""

    responses: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    choices: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # setting -> slot -> name -> folds


def refuses(scores: np.ndarray, irrelevant: Sequence[bool], ratio: tuple[int, int]) -> list[bool]:
    """Whether the text-only policy refuses each query: posterior odds of irrelevant at the training
    mix's prior above 1 (a NaN score, where no classifier could be fitted, grounds).

    >>> refuses(np.array([0.3, 0.6, np.nan]), [False, True], (1, 3))
    [True, True, False]
    """
    relevant_count = max(1, sum(not flag for flag in irrelevant))
    irrelevant_count = max(1, sum(bool(flag) for flag in irrelevant))
    shift = (ratio[1] / max(ratio[0], 1e-9)) * (relevant_count / irrelevant_count)
    out = []
    for score in scores:
        out.append(bool(np.isfinite(score) and score * shift > (1.0 - score)))
    return out


def _usable_refusal(text: str) -> bool:
    return (
        bool(text)
        and "<" not in text
        and ">" not in text
        and extract_segment(text) is None
        and (extract_segment_released(text) is None)
    )


def _usable_correction(text: str) -> bool:
    return bool(text) and "<" not in text and ">" not in text


def _pools(
    labels: Sequence[Label], fold: np.ndarray, folds: int, seed: int, pool: int
) -> tuple[list[Candidate], list[Candidate], list[set[int]], list[set[int]]]:
    """The refusal and correction candidates (union over folds) and the indices each fold may use."""
    refusals = [
        Candidate("generic refusal", lambda label: GENERIC_REFUSAL),
        Candidate("query in the refusal template", templated_refusal),
        Candidate("the query", lambda label: label.query),
    ]
    corrections = [
        Candidate("generic sentence", lambda label: GENERIC_CORRECTION),
        Candidate("NIL", lambda label: NIL),
        Candidate("the query (copy)", lambda label: label.query),
        Candidate("empty", lambda label: ""),
    ]
    fixed_refusals, fixed_corrections = len(refusals), len(corrections)
    refusal_at: dict[str, int] = {}
    correction_at: dict[str, int] = {}
    allowed_refusals, allowed_corrections = [], []
    rng = np.random.default_rng(seed)
    for k in range(folds):
        train = [labels[i] for i in np.flatnonzero(fold != k)]
        chosen_refusals, chosen_corrections = set(range(fixed_refusals)), set(range(fixed_corrections))
        for texts, at, candidates, chosen, usable in (
            (
                sorted({lab.answer_refusal for lab in train if not lab.relevant}),
                refusal_at,
                refusals,
                chosen_refusals,
                _usable_refusal,
            ),
            (
                sorted({lab.query_relevant for lab in train if not lab.relevant}),
                correction_at,
                corrections,
                chosen_corrections,
                _usable_correction,
            ),
        ):
            texts = [text for text in texts if usable(text)]
            for position in rng.permutation(len(texts))[:pool]:
                text = texts[position]
                if text not in at:
                    at[text] = len(candidates)
                    candidates.append(Candidate(text, lambda label, text=text: text))
                chosen.add(at[text])
        allowed_refusals.append(chosen_refusals)
        allowed_corrections.append(chosen_corrections)
    return refusals, corrections, allowed_refusals, allowed_corrections


def _component_matrix(
    candidates: Sequence[Candidate],
    labels: Sequence[Label],
    pairs_of: Callable[[str, Label], list[tuple[str, str]]],
    value_of: Callable[[str, Label, list[float]], float],
    similarity: Similarity,
    progress: tqdm,
) -> np.ndarray:
    """value[c, q]: the reward component candidate c earns on label q, through the reward's pure functions."""
    out = np.zeros((len(candidates), len(labels)))
    for row, candidate in enumerate(candidates):
        progress.update()
        texts = [candidate.write(label).strip() for label in labels]
        requests = [pairs_of(text, label) for text, label in zip(texts, labels, strict=True)]
        flat = iter(similarity.cosine_pairs([pair for group in requests for pair in group]))
        for column, (text, label, group) in enumerate(zip(texts, labels, requests, strict=True)):
            out[row, column] = value_of(text, label, [next(flat) for _ in group])
    return out


def _span_text(label: Label, start: float, end: float) -> str:
    if label.duration is None:
        return whole_video(label)
    return format_span((start * label.duration, end * label.duration))


def _best(values: np.ndarray, allowed: set[int], columns: np.ndarray, weights: np.ndarray | None = None) -> int:
    """The allowed row with the highest (weighted) mean over `columns`; the first on ties."""
    if not columns.any():
        return min(allowed)
    part = values[:, columns]
    means = part @ weights[columns] / weights[columns].sum() if weights is not None else part.mean(axis=1)
    return max(sorted(allowed), key=lambda row: means[row])


def fit_baselines(
    labels: Sequence[Label],
    videos: Sequence[str],
    settings: Sequence[Setting],
    *,
    similarity: Similarity,
    ratio: tuple[int, int],
    weights: Mapping[str, float],
    text_scores: np.ndarray,
    folds: int = FOLDS,
    seed: int = 0,
    pool: int = POOL,
) -> Baselines:
    """The responses of `FITTED_POLICIES` under each setting (`eval.exploits.Setting`), fitted out of fold.

    `text_scores`: the out-of-fold P(irrelevant | query) of the leakage check, on the same folds.
    """
    folds = max(1, min(folds, len(set(videos))))
    fold = np.asarray(group_folds(videos, folds, seed))
    relevant = np.array([label.relevant for label in labels])
    # Each query's weight in a mean at the training mix: R / n_relevant or I / n_irrelevant.
    mix = np.where(relevant, ratio[0] / max(relevant.sum(), 1), ratio[1] / max((~relevant).sum(), 1))
    refusals, corrections, allowed_refusals, allowed_corrections = _pools(labels, fold, folds, seed, pool)
    spans = [(a, b) for a in SPAN_GRID for b in SPAN_GRID if a < b]
    decisions = refuses(text_scores, [not label.relevant for label in labels], ratio)
    matrices: dict[tuple[str, ...], np.ndarray] = {}
    progress = tqdm(
        total=len(refusals) * len({(s.variant, s.explain) for s in settings})
        + len(corrections) * len({(s.variant, s.correction) for s in settings}),
        desc="fitting the video-free baselines",
        unit="candidate",
        file=sys.stderr,  # even when it is not a terminal (as rarft-audit's own bar): minutes otherwise silent
    )

    def matrix(reward: str, variant: str, mode: str) -> np.ndarray:
        """The explain (refusal candidates) or correction (correction candidates) matrix, computed once."""
        key = (reward, variant, mode)
        if key not in matrices:
            if reward == "explain":
                candidates, pairs_of, value_of = (
                    refusals,
                    lambda text, label: explain_pairs(text, label, variant, mode),
                    lambda text, label, sims: explain_reward(sims, variant, mode),
                )
            else:
                candidates, pairs_of, value_of = (
                    corrections,
                    lambda text, label: correction_pairs(text, label, variant, mode),
                    lambda text, label, sims: correction_reward(text, label, sims, variant, mode),
                )
            matrices[key] = _component_matrix(candidates, labels, pairs_of, value_of, similarity, progress)
        return matrices[key]

    def span_matrix(variant: str) -> np.ndarray:
        key = ("span", variant)
        if key not in matrices:
            matrices[key] = np.array(
                [[refuse_iou_reward(_span_text(label, a, b), label, variant) for label in labels] for a, b in spans]
            )
        return matrices[key]

    baselines = Baselines()
    for setting in settings:
        tag = CORRECTION_TAG[setting.variant]
        explain = weights["explain"] * matrix("explain", setting.variant, setting.explain)
        correction = weights["correction"] * matrix("correction", setting.variant, setting.correction)
        grounding = span_matrix(setting.variant)
        chosen: dict[str, Counter[str]] = {
            slot: Counter() for slot in ("refusal at the mix", "correction at the mix", "refusal", "correction", "span")
        }
        written: dict[str, list[str]] = {policy.name: [""] * len(labels) for policy in FITTED_POLICIES}
        for k in range(folds):
            train, test = fold != k, np.flatnonzero(fold == k)
            refusal_mix = _best(explain, allowed_refusals[k], train, mix)
            correction_mix = _best(correction, allowed_corrections[k], train, mix)
            refusal = _best(explain, allowed_refusals[k], train & ~relevant)
            fix = _best(correction, allowed_corrections[k], train & ~relevant)
            span = _best(grounding, set(range(len(spans))), train & relevant)
            for slot, name in (
                ("refusal at the mix", refusals[refusal_mix].name),
                ("correction at the mix", corrections[correction_mix].name),
                ("refusal", refusals[refusal].name),
                ("correction", corrections[fix].name),
                ("span", f"{spans[span][0]:g} to {spans[span][1]:g} of the clip"),
            ):
                chosen[slot][name] += 1
            for i in test:
                label = labels[i]
                refused = render(refusals[refusal].write(label), corrections[fix].write(label), tag)
                grounded = render(_span_text(label, *spans[span]), NIL, tag)
                written["blind_refusal"][i] = render(
                    refusals[refusal_mix].write(label), corrections[correction_mix].write(label), tag
                )
                written["decision_only"][i] = grounded if label.relevant else refused
                written["text_decision"][i] = refused if decisions[i] else grounded
        baselines.responses[setting.name] = written
        baselines.choices[setting.name] = {slot: dict(counts.most_common()) for slot, counts in chosen.items()}
    progress.close()
    return baselines
