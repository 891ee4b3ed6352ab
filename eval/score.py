"""Scoring a prediction set: judgements (rule-based or LLM), SentenceBERT scores, metrics."""

from __future__ import annotations

from typing import Any, Sequence

from eval.judge import LlmJudge
from eval.metrics import answer_text, compute_metrics, rule_judgement
from eval.predictions import Prediction


def sbert_scores(predictions: Sequence[Prediction], similarity: Any) -> list[float | None]:
    """cos(answer, reference refusal) for irrelevant queries with a reference; None elsewhere."""
    targets = [i for i, p in enumerate(predictions) if not p.gt_relevant and p.gt_output.strip()]
    pairs = [(answer_text(predictions[i].model_output), predictions[i].gt_output) for i in targets]
    values = similarity.cosine_pairs([(a if a.strip() else "-", b) for a, b in pairs]) if pairs else []
    out: list[float | None] = [None] * len(predictions)
    for i, value, (answer, _) in zip(targets, values, pairs):
        out[i] = value if answer.strip() else 0.0
    return out


def evaluate(
    predictions: Sequence[Prediction],
    *,
    judge: LlmJudge | None = None,
    relevance_by_llm: bool = False,
    similarity: Any = None,
    strict: bool = False,
) -> tuple[dict, list[dict]]:
    """Metrics and per-item rows. Without `judge`, RT-IoU and the LLM score are not computed."""
    if relevance_by_llm:
        if judge is None:
            raise ValueError("--judge llm needs an LLM endpoint (--base-url, --model)")
        judgements = judge.relevance(predictions)
    else:
        judgements = [rule_judgement(p.model_output) for p in predictions]
    if judge is not None:
        judgements = judge.explanations(predictions, judgements)
    scores = sbert_scores(predictions, similarity) if similarity is not None else None
    metrics, items = compute_metrics(predictions, judgements, sbert_scores=scores, strict=strict)
    metrics["judge"] = {
        "relevance": "llm" if relevance_by_llm else "rule",
        "explanations": "llm" if judge is not None else None,
        "sbert_model": getattr(similarity, "model_path", None),
        **({"unreadable": judge.report.unreadable, "failed": judge.report.failed,
            "unknown_categories": judge.report.unknown_categories} if judge is not None else {}),
    }
    return metrics, items
