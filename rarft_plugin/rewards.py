"""The four RA-RFT rewards (paper §3.2, eq. 3-7) and their weighted sum.

| reward       | paper (default)                                   | bounds (paper) | released variant                                   | bounds (released) |
|--------------|---------------------------------------------------|----------------|----------------------------------------------------|-------------------|
| `format`     | 1 iff `<think>…</think> <answer>…</answer> <correct>…</correct>` | [0, 1] | same with `<correction>`                       | [0, 1]            |
| `refuse_iou` | rel. + segment: IoU; irrel. + no segment: 1; else 0 | [0, 1]       | IoU·(1−|Δs|/dur)·(1−|Δe|/dur) for relevant          | [0, 1]            |
| `explain`    | sim(a_pos, â) − sim(a_neg, â)                      | [−2, 2]        | similarities rescaled to (cos+1)/2 first            | [−1, 1]           |
| `correction` | rel.: 0; irrel.: sim(q_r, ĉ)                       | [−1, 1]        | rel.: 1 if ĉ contains NIL; irrel.: (cos+1)/2, NIL→0 | [0, 1]            |
| `total`      | Σ weight·reward (weights in `REWARD_WEIGHTS`)       |                |                                                    |                   |

a_pos / a_neg are a_time / a_refusal for a relevant query and swapped for an irrelevant one;
â is the last `<answer>` block, ĉ the last `<correct>` (or `<correction>`) block. Where â or ĉ
is missing or empty, or a reference text is empty (SS-VTG has no refusal answers), the reward
that needs it is 0. Every reward is a pure function; `score` parses once, gathers all the
similarities a batch needs into one encode, and never raises on model output.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal, Mapping, Sequence

from rarft_plugin.labels import Label, parse_label
from rarft_plugin.parsing import ParsedResponse, extract_segment, parse_response

Variant = Literal["paper", "released"]
VARIANTS: tuple[str, ...] = ("paper", "released")
REWARD_NAMES: tuple[str, ...] = ("format", "refuse_iou", "explain", "correction")
# Weights of eq. 3; the paper sums the four rewards with weight 1.
REWARD_WEIGHTS: dict[str, float] = {"format": 1.0, "refuse_iou": 1.0, "explain": 1.0, "correction": 1.0}
REWARD_BOUNDS: dict[str, dict[str, tuple[float, float]]] = {
    "paper": {"format": (0.0, 1.0), "refuse_iou": (0.0, 1.0), "explain": (-2.0, 2.0), "correction": (-1.0, 1.0)},
    "released": {"format": (0.0, 1.0), "refuse_iou": (0.0, 1.0), "explain": (-1.0, 1.0), "correction": (0.0, 1.0)},
}
NIL = "NIL"

Segment = tuple[float, float]
CosinePairs = Callable[[list[tuple[str, str]]], list[float]]


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


def distance_penalised_iou(predicted: Segment, truth: Segment, duration: float) -> float:
    """The released code's IoU: IoU·(1−|Δstart|/duration)·(1−|Δend|/duration), each factor clipped to [0, 1]."""
    start_factor = min(1.0, max(0.0, 1.0 - abs(predicted[0] - truth[0]) / duration))
    end_factor = min(1.0, max(0.0, 1.0 - abs(predicted[1] - truth[1]) / duration))
    return temporal_iou(predicted, truth) * start_factor * end_factor


def format_reward(parsed: ParsedResponse, variant: Variant = "paper") -> float:
    """Eq. 4: 1.0 iff the whole output is exactly the think / answer / correct template."""
    strict = parsed.strict_format if variant == "paper" else parsed.strict_format_released
    return 1.0 if strict else 0.0


def refuse_iou_reward(segment: Segment | None, label: Label, variant: Variant = "paper") -> float:
    """Eq. 5: IoU for a relevant query answered with a valid segment; 1 for a refused irrelevant one.

    >>> refuse_iou_reward(None, parse_label({"relevant": False, "duration": 9, "query": "q"}))
    1.0
    """
    if not label.relevant:
        return 1.0 if segment is None else 0.0
    if segment is None:
        return 0.0
    if variant == "released":
        return distance_penalised_iou(segment, label.timestamp, label.duration)
    return temporal_iou(segment, label.timestamp)


def explain_pairs(answer: str | None, label: Label) -> list[tuple[str, str]]:
    """The (reference, â) pairs eq. 6 compares: [(a_pos, â), (a_neg, â)], or [] when it cannot apply."""
    if not answer or not label.answer_time or not label.answer_refusal:
        return []
    positive, negative = (
        (label.answer_time, label.answer_refusal) if label.relevant else (label.answer_refusal, label.answer_time)
    )
    return [(positive, answer), (negative, answer)]


def explain_reward(similarities: Sequence[float], variant: Variant = "paper") -> float:
    """Eq. 6 from [sim(a_pos, â), sim(a_neg, â)]; 0 when there is nothing to compare.

    >>> explain_reward([0.8, 0.2]), explain_reward([0.8, 0.2], "released")
    (0.6000000000000001, 0.30000000000000004)
    """
    if len(similarities) != 2:
        return 0.0
    positive, negative = similarities
    if variant == "released":
        positive, negative = (positive + 1) / 2, (negative + 1) / 2
    return positive - negative


def correction_pairs(correction: str | None, label: Label, variant: Variant = "paper") -> list[tuple[str, str]]:
    """The (q_r, ĉ) pair eq. 7 compares for an irrelevant query, or []."""
    if label.relevant or not correction or not label.query_relevant:
        return []
    if variant == "released" and NIL in correction:
        return []
    return [(label.query_relevant, correction)]


def correction_reward(
    correction: str | None, label: Label, similarities: Sequence[float], variant: Variant = "paper"
) -> float:
    """Eq. 7: 0 for a relevant query, sim(q_r, ĉ) for an irrelevant one (released variant: see module doc)."""
    if label.relevant:
        return 1.0 if variant == "released" and correction is not None and NIL in correction else 0.0
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
    items = text.items() if isinstance(text, Mapping) else (_weight_item(part) for part in text.split(",") if part.strip())
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
    similarity: Any = None,
) -> list[dict[str, float]]:
    """`score` for many rollouts at once: one similarity call for the whole batch."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {list(VARIANTS)}")
    if len(responses) != len(labels):
        raise ValueError(f"{len(responses)} responses but {len(labels)} labels")
    weights = parse_weights(weights)
    parsed_labels = [parse_label(label) for label in labels]
    parsed = [parse_response(r if isinstance(r, str) else _as_text(r)) for r in responses]
    explain_requests = [explain_pairs(p.answer, label) for p, label in zip(parsed, parsed_labels)]
    correction_requests = [correction_pairs(p.correction, label, variant) for p, label in zip(parsed, parsed_labels)]
    all_pairs = [pair for group in explain_requests + correction_requests for pair in group]
    if all_pairs and similarity is None:
        from rarft_plugin.similarity import get_similarity

        similarity = get_similarity()
    flat = iter(similarity.cosine_pairs(all_pairs) if all_pairs else [])
    explain_sims = [[next(flat) for _ in group] for group in explain_requests]
    correction_sims = [[next(flat) for _ in group] for group in correction_requests]

    results = []
    for p, label, e_sims, c_sims in zip(parsed, parsed_labels, explain_sims, correction_sims):
        components = {
            "format": format_reward(p, variant),
            "refuse_iou": refuse_iou_reward(extract_segment(p.answer), label, variant),
            "explain": explain_reward(e_sims, variant),
            "correction": correction_reward(p.correction, label, c_sims, variant),
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
    similarity: Any = None,
) -> dict[str, float]:
    """All four rewards and their weighted total for one rollout.

    `label` follows `rarft_plugin.labels` (dict, JSON string or `Label`); `similarity` is any
    object with `cosine_pairs` (default: the shared SentenceBERT model). Returns floats
    `format`, `refuse_iou`, `explain`, `correction`, `total`.

    >>> label = {"relevant": True, "timestamp": [2, 6], "duration": 30, "query": "q"}
    >>> score("<think>t</think> <answer>2 to 6</answer> <correct></correct>", label)["total"]
    2.0
    """
    return score_many([response], [label], variant=variant, weights=weights, similarity=similarity)[0]


def _as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return "" if value is None else str(value)
