"""Scoring a prediction set: judgements (rule-based or LLM), SentenceBERT scores, metrics."""

from __future__ import annotations

from typing import Any, Sequence

from eval.judge import LlmJudge
from eval.metrics import Judgement, answer_text, compute_metrics, rule_judgement
from eval.predictions import Prediction


def sbert_scores(
    predictions: Sequence[Prediction], judgements: Sequence[Judgement], similarity: Any
) -> list[float | None]:
    """cos(answer, reference refusal) for refused irrelevant queries with a reference; None elsewhere.

    An empty answer scores 0 (there is nothing to compare).
    """
    targets = [i for i, (p, j) in enumerate(zip(predictions, judgements))
               if not p.gt_relevant and j.refused and p.gt_output.strip()]
    answers = {i: answer_text(predictions[i].model_output) for i in targets}
    compared = [i for i in targets if answers[i].strip()]
    values = similarity.cosine_pairs([(answers[i], predictions[i].gt_output) for i in compared]) if compared else []
    out: list[float | None] = [None] * len(predictions)
    for i in targets:
        out[i] = 0.0
    for i, value in zip(compared, values):
        out[i] = value
    return out


def evaluate(
    predictions: Sequence[Prediction],
    *,
    judge: LlmJudge | None = None,
    relevance_by_llm: bool = False,
    llm_explanations: bool = False,
    similarity: Any = None,
    strict: bool = False,
) -> tuple[dict, list[dict]]:
    """Metrics and per-query rows.

    Relevance: the core parser (default) or `judge` (`relevance_by_llm`). RT-IoU and the LLM
    score need `judge` and `llm_explanations`; the SBERT score needs `similarity`.
    """
    if (relevance_by_llm or llm_explanations) and judge is None:
        raise ValueError("LLM judging needs an LlmJudge (an endpoint: --base-url, --judge-model)")
    if relevance_by_llm:
        judgements = judge.relevance(predictions)
    else:
        judgements = [rule_judgement(p.model_output) for p in predictions]
    explained = set()
    if llm_explanations:
        judgements = judge.explanations(predictions, judgements)
        explained |= {"rt_iou", "llm_score"}
    scores = None
    if similarity is not None:
        scores = sbert_scores(predictions, judgements, similarity)
        explained.add("sbert")
    metrics, items = compute_metrics(predictions, judgements, sbert_scores=scores, explained=explained, strict=strict)
    metrics["judge"] = {
        "relevance": "llm" if relevance_by_llm else "rule",
        "explanations": "llm" if llm_explanations else None,
        "sbert_model": getattr(similarity, "model_path", None) if similarity is not None else None,
    }
    if judge is not None:
        usage = judge.client.usage
        metrics["judge"].update(
            model=judge.client.model, base_url=judge.client.base_url,
            unreadable=judge.report.unreadable, failed=judge.report.failed,
            unknown_categories=judge.report.unknown_categories,
            usage={"requests": usage.requests, "cached": usage.cached, "retries": usage.retries,
                   "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens},
        )
    return metrics, items
