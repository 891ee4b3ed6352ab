"""The four RA-RFT rewards (paper §3.2, eq. 3-7) and their weighted sum, in two variants, with the options.

`variant="paper"` (default) follows the paper and reads the FIRST `<answer>` / `<correct>` block;
`variant="released"` reproduces the authors' released reward code rule for rule and reads the LAST
`<answer>` / `<correction>` block. Options beside eq. 6 and eq. 7: `correction="contrastive"` or `"gain"`,
`explain="debiased"`. Each rule, guard and bound is written once, in docs/rewards.md.

Each row of the reward table `REWARDS` carries its pure function and the SentenceBERT pairs it
compares; `score_many` parses each response once (`RewardInput`), encodes the pairs of every row for
the whole batch at once, calls each row's function, and never raises on model output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from rarft_plugin.parsing import (
    ParsedResponse,
    extract_segment,
    extract_segment_released,
    parse_response,
    strip_boilerplate,
)
from rarft_plugin.schema import Label, parse_label

if TYPE_CHECKING:  # the encoder module loads lazily, in score_many
    from rarft_plugin.similarity import Similarity

__all__ = [
    "CONTRASTIVE_MIN_GAP",
    "CORRECTIONS",
    "EXPLAINS",
    "GAIN_MIN_GAP",
    "REFUSAL_TEMPLATE",
    "REWARDS",
    "REWARD_BOUNDS",
    "REWARD_NAMES",
    "REWARD_WEIGHTS",
    "TOTAL_EQUATION",
    "VARIANTS",
    "Correction",
    "Explain",
    "Reward",
    "RewardInput",
    "Variant",
    "contrastive_correction",
    "correction_pairs",
    "correction_reward",
    "distance_penalised_iou",
    "explain_pairs",
    "explain_reward",
    "debiased_explain",
    "gain_correction",
    "templated_refusal",
    "video_free_answers",
    "format_reward",
    "parse_weights",
    "refuse_iou_reward",
    "released_iou",
    "reward_bounds",
    "score",
    "score_many",
    "temporal_iou",
    "variant_label_problems",
]

Variant = Literal["paper", "released"]
VARIANTS: tuple[str, ...] = ("paper", "released")
Correction = Literal["similarity", "contrastive", "gain"]
# "similarity": eq. 7 as the variant defines it (default); "contrastive", "gain": see the module docstring.
CORRECTIONS: tuple[str, ...] = ("similarity", "contrastive", "gain")
Explain = Literal["similarity", "debiased"]
# "similarity": eq. 6 as the variant defines it (default); "debiased": see the module docstring.
EXPLAINS: tuple[str, ...] = ("similarity", "debiased")
# Below this gap 1 − sim(q_r, q) the contrastive correction scores 0 (float32 cosines round at ~1e-7,
# so the quotient would be noise; the released HI-Charades file's closest pair has a gap of 0.012).
CONTRASTIVE_MIN_GAP = 1e-3
# Below this gap the gain correction scores 0: a partial repair moves sim(q_r, ĉ) by a few hundredths,
# which such a gap would blow up into the whole range (module docstring).
GAIN_MIN_GAP = 0.1
# A refusal that says nothing the query does not: boilerplate in the references' style around it.
# The debiased explanation measures answers against it; rarft-audit's `templated_refusal` policy
# writes it and the `templated_explain` exploit monitor (rarft_plugin.rollout_logs) compares with it.
REFUSAL_TEMPLATE = (
    "The video does not show that {query}; no segment matches the query, which is inappropriate for the video."
)


@dataclass(frozen=True)
class RewardInput:
    """One response as every reward reads it: parsed once, with its label and the options it is scored under."""

    text: str
    parsed: ParsedResponse
    label: Label
    variant: Variant = "paper"
    correction_mode: Correction = "similarity"
    explain_mode: Explain = "similarity"

    @property
    def answer(self) -> str | None:
        """â: the first <answer> block (paper variant) or the last (released; rarft_plugin.parsing)."""
        return self.parsed.answer if self.variant == "paper" else self.parsed.answer_released

    @property
    def correction(self) -> str | None:
        """ĉ: the first <correct> / <correction> block (paper variant) or the last <correction> block (released)."""
        return self.parsed.correction if self.variant == "paper" else self.parsed.correction_released


def _no_pairs(given: RewardInput) -> list[tuple[str, str]]:
    return []


@dataclass(frozen=True)
class Reward:
    """One row of the reward table: what `score_many` computes and every help text, log and bound check says."""

    name: str  # key in `score`'s result, in --rarft.reward_weights and in the step logs
    equation: str  # where the paper defines it
    weight: float  # its weight in the total (eq. 3)
    bounds: Mapping[str, tuple[float, float]]  # variant -> [low, high] (`reward_bounds`; property-tested)
    help: str  # one line, for --help texts
    # the reward of one response, from the cosines of its `pairs` (in their order)
    function: Callable[[RewardInput, Sequence[float]], float]
    # the (reference, text) pairs it compares with SentenceBERT; score_many encodes a batch's pairs at once
    pairs: Callable[[RewardInput], list[tuple[str, str]]] = _no_pairs


# The reward table. To add a reward: a row here (its pure function; its SentenceBERT pairs if it compares
# texts) and its cases in tests/test_rewards.py. score_many, the weights, the launcher, rarft-score, the
# OpenRLHF entries, the recipes' --help, the step logs, the learning curves and rarft-audit follow from it.
REWARDS: tuple[Reward, ...] = (
    Reward(
        "format",
        "eq. 4",
        1.0,
        {"paper": (0.0, 1.0), "released": (0.0, 1.0)},
        "1 iff the response has the template's blocks (<think> <answer> <correct>) in order",
        function=lambda given, cosines: format_reward(given.parsed, given.variant),
    ),
    # released: for labels whose span starts at or before the duration and is no longer than it.
    Reward(
        "refuse_iou",
        "eq. 5",
        1.0,
        {"paper": (0.0, 1.0), "released": (-1.0, 1.0)},
        "relevant query: IoU of the answered span with the label's; irrelevant: 1 for an answer without one",
        function=lambda given, cosines: refuse_iou_reward(given.answer, given.label, given.variant),
    ),
    Reward(
        "explain",
        "eq. 6",
        1.0,
        {"paper": (-2.0, 2.0), "released": (-1.0, 1.0)},
        "the answer's SentenceBERT similarity to the right reference answer minus that to the wrong one",
        function=lambda given, cosines: explain_reward(cosines, given.variant, given.explain_mode),
        pairs=lambda given: explain_pairs(given.answer, given.label, given.variant, given.explain_mode),
    ),
    Reward(
        "correction",
        "eq. 7",
        1.0,
        {"paper": (-1.0, 1.0), "released": (0.0, 1.0)},
        "irrelevant query: similarity of the correction to the relevant query it was edited from",
        function=lambda given, cosines: correction_reward(
            given.correction, given.label, cosines, given.variant, given.correction_mode
        ),
        pairs=lambda given: correction_pairs(given.correction, given.label, given.variant, given.correction_mode),
    ),
)
TOTAL_EQUATION = "eq. 3"  # the total: the weighted sum of the rewards
REWARD_NAMES: tuple[str, ...] = tuple(reward.name for reward in REWARDS)
REWARD_WEIGHTS: dict[str, float] = {reward.name: reward.weight for reward in REWARDS}
REWARD_BOUNDS: dict[str, dict[str, tuple[float, float]]] = {
    variant: {reward.name: reward.bounds[variant] for reward in REWARDS} for variant in VARIANTS
}
NIL = "NIL"


# The bounds an option sets, whatever the variant (the reward table's bounds hold otherwise).
_OPTION_BOUNDS: dict[tuple[str, str], tuple[float, float]] = {
    ("correction", "contrastive"): (-1.0, 1.0),
    ("correction", "gain"): (0.0, 1.0),
    ("explain", "debiased"): (-1.0, 1.0),
}


def reward_bounds(
    variant: Variant = "paper", correction: Correction = "similarity", explain: Explain = "similarity"
) -> dict[str, tuple[float, float]]:
    """The documented bounds of each reward under these options (`REWARD_BOUNDS`, then `_OPTION_BOUNDS`).

    >>> reward_bounds("released", "contrastive")["correction"], reward_bounds(explain="debiased")["explain"]
    ((-1.0, 1.0), (-1.0, 1.0))
    """
    _check_options(variant, correction, explain)
    bounds = dict(REWARD_BOUNDS[variant])
    for reward, mode in (("correction", correction), ("explain", explain)):
        bounds[reward] = _OPTION_BOUNDS.get((reward, mode), bounds[reward])
    return bounds


def _check_options(variant: str, correction: str, explain: str = "similarity") -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {list(VARIANTS)}")
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; expected one of {list(CORRECTIONS)}")
    if explain not in EXPLAINS:
        raise ValueError(f"unknown explain {explain!r}; expected one of {list(EXPLAINS)}")


Segment = tuple[float, float]


def temporal_iou(a: Segment, b: Segment) -> float:
    """Temporal IoU of two [start, end] segments, in [0, 1]. Two identical zero-length segments score 1.

    >>> temporal_iou((0, 10), (5, 15))
    0.3333333333333333
    """
    intersection = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    if union <= 0:
        return 1.0 if tuple(a) == tuple(b) else 0.0
    return intersection / union


def released_iou(predicted: Segment, truth: Segment) -> float:
    """The released code's IoU: intersection / union when union > 0, else 0 (spans used as written).

    >>> released_iou((3, 3), (3, 3)), released_iou((6, 2), (2, 6))
    (0.0, 0.0)
    """
    intersection = max(0.0, min(predicted[1], truth[1]) - max(predicted[0], truth[0]))
    union = max(predicted[1], truth[1]) - min(predicted[0], truth[0])
    return intersection / union if union > 0 else 0.0


def distance_penalised_iou(predicted: Segment, truth: Segment, duration: float) -> float:
    """The released refuse-IoU: IoU·(1−|Δstart|/duration)·(1−|Δend|/duration), factors NOT clipped.

    Negative when the prediction ends more than a duration past the label (bounds: module doc).

    >>> round(distance_penalised_iou((0, 90), (2, 6), 30), 6)
    -0.074667
    """
    start_factor = 1 - abs(predicted[0] - truth[0]) / duration
    end_factor = 1 - abs(predicted[1] - truth[1]) / duration
    return released_iou(predicted, truth) * start_factor * end_factor


def format_reward(parsed: ParsedResponse, variant: Variant = "paper") -> float:
    """Eq. 4: 1.0 iff the output has the template (paper: strictly; released: its lenient regex)."""
    matches = parsed.strict_format if variant == "paper" else parsed.released_format
    return 1.0 if matches else 0.0


def refuse_iou_reward(answer: str | None, label: Label, variant: Variant = "paper") -> float:
    """Eq. 5 on the answer block â (None when the response has none).

    >>> irrelevant = parse_label({"relevant": False, "duration": 9, "query": "q"})
    >>> refuse_iou_reward("No such moment.", irrelevant), refuse_iou_reward(None, irrelevant)
    (1.0, 0.0)
    """
    segment = extract_segment(answer) if variant == "paper" else extract_segment_released(answer)
    if not label.relevant:
        return 1.0 if answer is not None and segment is None else 0.0
    if segment is None:
        return 0.0
    if variant == "paper":
        return temporal_iou(segment, label.timestamp)
    if not _known_duration(label):
        return 0.0  # the released guard (main_rarft.py:262)
    value = distance_penalised_iou(segment, label.timestamp, label.duration)
    return value if math.isfinite(value) else 0.0  # an overflowing time: the released code gives NaN


def _known_duration(label: Label) -> bool:
    return label.duration is not None and label.duration > 0


def variant_label_problems(label: Label, variant: Variant) -> list[str]:
    """Why `label` cannot be scored the way `variant` intends ([] when it can), one line per field.

    Only the released refuse-IoU needs the video duration, and only for a relevant query (without
    one it scores 0, as the released code does); a launcher calls this before training so that
    such labels are refused up front rather than scored 0 whatever the model says.

    >>> variant_label_problems(Label(relevant=True, duration=None, query="q", timestamp=(1, 2)), "released")
    ['field duration: missing; the released refuse-IoU divides by the video duration (fill it from the video)']
    """
    if variant == "released" and label.relevant and not _known_duration(label):
        return [
            "field duration: "
            + ("missing" if label.duration is None else f"must be > 0, got {label.duration}")
            + "; the released refuse-IoU divides by the video duration (fill it from the video)"
        ]
    return []


def templated_refusal(label: Label) -> str:
    """`REFUSAL_TEMPLATE` around the query (its final full stop dropped).

    >>> templated_refusal(Label(relevant=False, duration=9, query="a man sits."))
    'The video does not show that a man sits; no segment matches the query, which is inappropriate for the video.'
    """
    return REFUSAL_TEMPLATE.format(query=label.query.strip().rstrip("."))


def video_free_answers(label: Label) -> list[str]:
    """The answers the debiased explanation measures against: the query, and `templated_refusal`.

    >>> video_free_answers(Label(relevant=False, duration=9, query="a man sits."))[0]
    'a man sits.'
    """
    return [label.query, templated_refusal(label)]


def explain_pairs(
    answer: str | None, label: Label, variant: Variant = "paper", mode: Explain = "similarity"
) -> list[tuple[str, str]]:
    """The (reference, text) pairs eq. 6 compares: [(a_pos, â), (a_neg, â)], or [] when it cannot apply.

    The released variant compares whenever there is an answer block (main_rarft.py:348-351 skip a
    response without one), an empty block or reference text encoded as "". Debiased (module
    docstring): [(a_pos', â'), (a_pos', b') for each video-free answer b], boilerplate removed.
    """
    positive, negative = (
        (label.answer_time, label.answer_refusal) if label.relevant else (label.answer_refusal, label.answer_time)
    )
    if mode == "debiased":
        reference, written = strip_boilerplate(positive), strip_boilerplate(answer or "")
        if not reference or not written:
            return []
        baselines = [text for text in map(strip_boilerplate, video_free_answers(label)) if text]
        return [(reference, written)] + [(reference, text) for text in baselines]
    if variant == "released":
        return [] if answer is None else [(positive, answer), (negative, answer)]
    if not answer or not positive or not negative:
        return []
    return [(positive, answer), (negative, answer)]


def debiased_explain(to_reference: float, baselines: Sequence[float]) -> float:
    """(sim(a_pos', â') − β) / (1 − β) clipped to [−1, 1], β the best video-free answer's similarity;
    0 without a baseline or when 1 − β < `CONTRASTIVE_MIN_GAP` (module docstring).

    >>> debiased_explain(1.0, [0.5, 0.6]), debiased_explain(0.6, [0.5, 0.6]), debiased_explain(0.8, [0.6])
    (1.0, 0.0, 0.5000000000000001)
    """
    if not baselines:
        return 0.0
    baseline = max(baselines)
    gap = 1.0 - baseline
    if not gap >= CONTRASTIVE_MIN_GAP:  # also catches NaN
        return 0.0
    value = (to_reference - baseline) / gap
    return min(1.0, max(-1.0, value)) if math.isfinite(value) else 0.0


def explain_reward(similarities: Sequence[float], variant: Variant = "paper", mode: Explain = "similarity") -> float:
    """Eq. 6 from [sim(a_pos, â), sim(a_neg, â)]; 0 when there is nothing to compare (debiased:
    `debiased_explain` of `explain_pairs`' similarities).

    >>> explain_reward([0.8, 0.2]), explain_reward([0.8, 0.2], "released")
    (0.6000000000000001, 0.30000000000000004)
    """
    if mode == "debiased":
        return debiased_explain(similarities[0], similarities[1:]) if similarities else 0.0
    if len(similarities) != 2:
        return 0.0
    positive, negative = similarities
    if variant == "released":
        positive, negative = (positive + 1) / 2, (negative + 1) / 2
    return positive - negative


def _holds_nil(correction: str) -> bool:
    """The released NIL test: a substring of the upper-cased text ("nil" and "vanilla" count)."""
    return NIL in correction.upper()


def correction_pairs(
    correction: str | None, label: Label, variant: Variant = "paper", mode: Correction = "similarity"
) -> list[tuple[str, str]]:
    """The pairs eq. 7 compares for an irrelevant query: [(q_r, ĉ)], contrastive [(q_r, ĉ), (q, ĉ), (q_r, q)],
    gain [(q_r, ĉ), (q_r, q)]; or [].

    `correction` is `ParsedResponse.correction` (paper) or `.correction_released` (released).
    """
    if label.relevant or correction is None:
        return []
    if variant == "released" and _holds_nil(correction):
        return []
    if mode in ("contrastive", "gain"):
        if not correction or not label.query_relevant:
            return []
        if mode == "gain":
            return [(label.query_relevant, correction), (label.query_relevant, label.query)]
        return [(label.query_relevant, correction), (label.query, correction), (label.query_relevant, label.query)]
    if variant == "paper" and (not correction or not label.query_relevant):
        return []
    return [(label.query_relevant, correction)]


def contrastive_correction(to_reference: float, to_query: float, reference_to_query: float) -> float:
    """(sim(q_r, ĉ) − sim(q, ĉ)) / (1 − sim(q_r, q)) clipped to [−1, 1]; 0 when the gap is below
    `CONTRASTIVE_MIN_GAP` (module docstring).

    >>> (contrastive_correction(1.0, 0.6, 0.6), contrastive_correction(0.6, 1.0, 0.6),
    ...  contrastive_correction(0.2, 0.2, 0.6))
    (1.0, -1.0, 0.0)
    """
    gap = 1.0 - reference_to_query
    if not gap >= CONTRASTIVE_MIN_GAP:  # also catches NaN
        return 0.0
    value = (to_reference - to_query) / gap
    return min(1.0, max(-1.0, value)) if math.isfinite(value) else 0.0


def gain_correction(to_reference: float, reference_to_query: float) -> float:
    """(sim(q_r, ĉ) − sim(q_r, q)) / (1 − sim(q_r, q)) clipped to [0, 1]; 0 when the gap is below
    `GAIN_MIN_GAP` (module docstring).

    >>> gain_correction(1.0, 0.6), gain_correction(0.6, 0.6), gain_correction(0.8, 0.6), gain_correction(0.99, 0.95)
    (1.0, 0.0, 0.5000000000000001, 0.0)
    """
    gap = 1.0 - reference_to_query
    if not gap >= GAIN_MIN_GAP:  # also catches NaN
        return 0.0
    value = (to_reference - reference_to_query) / gap
    return min(1.0, max(0.0, value)) if math.isfinite(value) else 0.0


def correction_reward(
    correction: str | None,
    label: Label,
    similarities: Sequence[float],
    variant: Variant = "paper",
    mode: Correction = "similarity",
) -> float:
    """Eq. 7: 0 for a relevant query, sim(q_r, ĉ) for an irrelevant one (released variant, the
    contrastive and the gain correction: see the module docstring)."""
    if label.relevant:
        return 1.0 if variant == "released" and _holds_nil(correction or "") else 0.0
    if mode == "contrastive":
        return contrastive_correction(*similarities) if len(similarities) == 3 else 0.0
    if mode == "gain":
        return gain_correction(*similarities) if len(similarities) == 2 else 0.0
    if len(similarities) != 1:
        return 0.0
    return (similarities[0] + 1) / 2 if variant == "released" else similarities[0]


def parse_weights(text: str | Mapping[str, float] | None) -> dict[str, float]:
    """Weights from a mapping or "format=1,refuse_iou=1,explain=0.5"; unnamed rewards keep weight 1.

    >>> parse_weights("explain=0.5")["explain"]
    0.5
    """
    weights = dict(REWARD_WEIGHTS)
    if not text:
        return weights
    items = (
        text.items() if isinstance(text, Mapping) else (_weight_item(part) for part in text.split(",") if part.strip())
    )
    for name, value in items:
        if name not in REWARD_WEIGHTS:
            raise ValueError(f"unknown reward {name!r} in weights; expected one of {list(REWARD_NAMES)}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"weight of {name!r} must be finite, got {value}")
        weights[name] = value
    return weights


def _weight_item(part: str) -> tuple[str, str]:
    name, sep, value = part.partition("=")
    if not sep:
        raise ValueError(f"weight {part!r} must look like name=value")
    return name.strip(), value.strip()


def score_many(
    responses: Sequence[Any],
    labels: Sequence[Mapping[str, Any] | str | Label],
    *,
    variant: Variant = "paper",
    weights: Mapping[str, float] | str | None = None,
    similarity: Similarity | None = None,
    correction: Correction = "similarity",
    explain: Explain = "similarity",
) -> list[dict[str, float]]:
    """`score` for many rollouts at once: every reward of `REWARDS`, one similarity call for the whole batch."""
    _check_options(variant, correction, explain)
    if len(responses) != len(labels):
        raise ValueError(f"{len(responses)} responses but {len(labels)} labels")
    weights = parse_weights(weights)
    texts = [r if isinstance(r, str) else _as_text(r) for r in responses]
    parsed_labels = [parse_label(label) for label in labels]
    parsed = [parse_response(text) for text in texts]
    inputs = [
        RewardInput(text, p, label, variant, correction, explain)
        for text, p, label in zip(texts, parsed, parsed_labels, strict=True)
    ]
    # Every row's pairs for every response, reward by reward; a malformed response (special token)
    # scores 0 everywhere and asks for none.
    requests = [[[] if given.parsed.special_token else reward.pairs(given) for given in inputs] for reward in REWARDS]
    all_pairs = [pair for per_reward in requests for group in per_reward for pair in group]
    if all_pairs and similarity is None:
        from rarft_plugin.similarity import get_similarity

        similarity = get_similarity()
    flat = iter(similarity.cosine_pairs(all_pairs) if all_pairs else [])
    cosines = [[[next(flat) for _ in group] for group in per_reward] for per_reward in requests]

    results = []
    for index, given in enumerate(inputs):
        if given.parsed.special_token:
            components = dict.fromkeys(REWARD_NAMES, 0.0)
        else:
            components = {
                reward.name: reward.function(given, of_reward[index])
                for reward, of_reward in zip(REWARDS, cosines, strict=True)
            }
        components["total"] = sum(weights[name] * components[name] for name in REWARD_NAMES)
        results.append(components)
    return results


def score(
    response: Any,
    label: Mapping[str, Any] | str | Label,
    *,
    variant: Variant = "paper",
    weights: Mapping[str, float] | str | None = None,
    similarity: Similarity | None = None,
    correction: Correction = "similarity",
    explain: Explain = "similarity",
) -> dict[str, float]:
    """Every reward of `REWARDS` and their weighted total for one rollout.

    `label` follows `rarft_plugin.schema` (dict, JSON string or `Label`); `similarity` is any
    object with `cosine_pairs` (default: the shared SentenceBERT model); `correction` picks eq. 7
    ("similarity"), the contrastive or the gain correction, `explain` eq. 6 ("similarity") or the
    debiased explanation (module docstring). Returns a float per reward name (`REWARD_NAMES`) and `total`.

    >>> label = {"relevant": True, "timestamp": [2, 6], "duration": 30, "query": "q"}
    >>> score("<think>t</think> <answer>2 to 6</answer> <correct></correct>", label)["total"]
    2.0
    """
    return score_many(
        [response],
        [label],
        variant=variant,
        weights=weights,
        similarity=similarity,
        correction=correction,
        explain=explain,
    )[0]


def _as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return "" if value is None else str(value)
