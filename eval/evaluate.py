"""Evaluating a prediction set (`rarft-eval evaluate`): judgements (rule-based or LLM), SentenceBERT scores,
metrics, as a `RunRecord` and its per-query rows."""

from __future__ import annotations

from collections.abc import Sequence

from eval.judge import LlmJudge
from eval.metrics import ItemRow, Judgement, compute_metrics, format_compliance, rule_judgement
from eval.predictions import Prediction
from eval.record import JudgeSettings, RunRecord
from rarft_plugin.parsing import evaluation_answer, sbert_response
from rarft_plugin.schema import sbert_reference, strip_answer_wrapper
from rarft_plugin.similarity import Similarity

__all__ = ["SBERT_TEXTS", "evaluate", "sbert_pair", "sbert_scores"]

SBERT_TEXTS = ("released", "answer")


def sbert_pair(prediction: Prediction, text: str = "released", reading: str = "released") -> tuple[str, str]:
    """(response text, reference text) the SBERT score compares.

    released (the default, the released evaluation's texts): the response minus its correction
    block with every tag stripped, think text included (`rarft_plugin.parsing.sbert_response`),
    against the reference with its `<answer>` tags removed and the rest as written
    (`rarft_plugin.schema.sbert_reference`). answer (rarft's earlier score): the answer text
    (`evaluation_answer` under `reading`) against the reference's answer block.

    >>> sbert_pair(Prediction("0:1", "v", "q", "<think>t</think><answer>no</answer><correction>q</correction>",
    ...                       False, None, "<answer>No.</answer><correct>q</correct>", (), "strong"))
    ('tno', 'No.<correct>q</correct>')
    """
    if text == "released":
        return sbert_response(prediction.model_output), sbert_reference(prediction.gt_output)
    if text == "answer":
        return evaluation_answer(prediction.model_output, reading), strip_answer_wrapper(prediction.gt_output)
    raise ValueError(f"unknown SBERT text {text!r}; expected one of {list(SBERT_TEXTS)}")


def sbert_scores(
    predictions: Sequence[Prediction],
    judgements: Sequence[Judgement],
    similarity: Similarity,
    *,
    text: str = "released",
    reading: str = "released",
) -> list[float | None]:
    """SBERT cosine (`sbert_pair`) for refused irrelevant queries with a reference; None elsewhere.

    An empty response text scores 0 (there is nothing to compare).
    """
    targets = [
        i
        for i, (p, j) in enumerate(zip(predictions, judgements, strict=True))
        if not p.gt_relevant and j.refused and p.gt_output.strip()
    ]
    pairs = {i: sbert_pair(predictions[i], text, reading) for i in targets}
    compared = [i for i in targets if pairs[i][0].strip() and pairs[i][1].strip()]
    values = similarity.cosine_pairs([pairs[i] for i in compared]) if compared else []
    out: list[float | None] = [None] * len(predictions)
    for i in targets:
        out[i] = 0.0
    for i, value in zip(compared, values, strict=True):
        out[i] = value
    return out


def evaluate(
    predictions: Sequence[Prediction],
    *,
    judge: LlmJudge | None = None,
    relevance_by_llm: bool = False,
    llm_explanations: bool = False,
    similarity: Similarity | None = None,
    strict: bool = False,
    reading: str = "released",
    sbert_text: str = "released",
    template: str = "ra_rft",
    template_source: str = "assumed",
) -> tuple[RunRecord, list[ItemRow]]:
    """The run's record (metrics, format compliance, how it was judged) and its per-query rows.

    Relevance: the core parser (default) or `judge` (`relevance_by_llm`). RT-IoU and the LLM
    score need `judge` and `llm_explanations`; the SBERT score needs `similarity`. `reading`
    (`rarft_plugin.parsing.ANSWER_READINGS`) is how every judge reads a response; `sbert_text`
    (`SBERT_TEXTS`) what the SBERT score compares. Format compliance is checked against
    `template`'s output blocks (`template_source`: "recorded", "given" or "assumed").
    """
    if (relevance_by_llm or llm_explanations) and judge is None:
        raise ValueError("LLM judging needs an LlmJudge (an endpoint: --base-url, --judge-model)")
    if sbert_text not in SBERT_TEXTS:
        raise ValueError(f"unknown SBERT text {sbert_text!r}; expected one of {list(SBERT_TEXTS)}")
    if relevance_by_llm:
        judgements = judge.relevance(predictions, reading=reading)
    else:
        judgements = [rule_judgement(p.model_output, reading) for p in predictions]
    explained = set()
    if llm_explanations:
        judgements = judge.explanations(predictions, judgements, reading=reading)
        explained |= {"rt_iou", "llm_score"}
    scores = None
    if similarity is not None:
        scores = sbert_scores(predictions, judgements, similarity, text=sbert_text, reading=reading)
        explained.add("sbert")
    metrics, items = compute_metrics(predictions, judgements, sbert_scores=scores, explained=explained, strict=strict)
    settings: JudgeSettings = {
        "relevance": "llm" if relevance_by_llm else "rule",
        "explanations": "llm" if llm_explanations else None,
        "answer_reading": reading,
        "sbert_text": sbert_text if similarity is not None else None,
        "sbert_model": similarity.model_path if similarity is not None else None,
    }
    if judge is not None:
        usage = judge.client.usage
        settings.update(
            {
                "model": judge.client.model,
                "base_url": judge.client.base_url,
                "unreadable": judge.report.unreadable,
                "failed": judge.report.failed,
                "calls": judge.report.calls(),
                "unknown_categories": judge.report.unknown_categories,
                "usage": {
                    "requests": usage.requests,
                    "cached": usage.cached,
                    "retries": usage.retries,
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                },
            }
        )
    compliance = format_compliance(predictions, template, template_source)
    return RunRecord(metrics=metrics, judge=settings, format=compliance), items
