"""LLM judges of the evaluation: relevance classifier, RT-IoU category classifier (Table 15) and
LLM score (Table 16), through `rarft_plugin.llm_client.ChatClient` (any OpenAI-compatible
endpoint; cached on disk by request content, retried, resumable).

Replies are parsed leniently; a reply that cannot be read is counted in `JudgeReport` and the
query falls back: relevance to the rule-based reading, categories to none, score to 0.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Sequence

from rarft_plugin import llm_prompts
from rarft_plugin.llm_client import ChatClient, LLMError
from rarft_plugin.taxonomy import CATEGORIES

from eval.metrics import Judgement, answer_text, rule_judgement
from eval.predictions import Prediction

_ARRAY = re.compile(r"\[.*?\]", re.DOTALL)
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_SCORE = re.compile(r"""['"]?score['"]?\s*[:=]\s*([-+]?\d+(?:\.\d+)?)""", re.IGNORECASE)


@dataclass
class JudgeReport:
    unreadable: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    unknown_categories: int = 0

    def count(self, table: dict[str, int], name: str) -> None:
        table[name] = table.get(name, 0) + 1


def parse_categories(reply: str) -> tuple[tuple[str, ...], int] | None:
    """(taxonomy categories, number of unknown names dropped) from a JSON array reply, or None."""
    match = _ARRAY.search(reply)
    if match is None:
        return None
    try:
        names = json.loads(match.group(0))
    except ValueError:
        return None
    if not isinstance(names, list):
        return None
    known = tuple(dict.fromkeys(n for n in names if isinstance(n, str) and n in CATEGORIES))
    return known, len(names) - len(known)


def parse_score(reply: str) -> float | None:
    """The 0-5 score of a Table 16 reply ("'score': 3.5", "{'score': 3.5}", "score: 3.5"), clipped."""
    match = _SCORE.search(reply)
    if match is None:
        return None
    return min(5.0, max(0.0, float(match.group(1))))


def parse_relevance(reply: str) -> Judgement | None:
    match = _OBJECT.search(reply)
    if match is None:
        return None
    try:
        data = json.loads(match.group(0))
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("relevant"), bool):
        return None
    if not data["relevant"]:
        return Judgement(refused=True, segment=None)
    try:
        start, end = float(data["start"]), float(data["end"])
    except (KeyError, TypeError, ValueError):
        return Judgement(refused=False, segment=None)
    valid = 0 <= start <= end and end != float("inf")
    return Judgement(refused=False, segment=(start, end) if valid else None)


class LlmJudge:
    def __init__(self, client: ChatClient):
        self.client = client
        self.report = JudgeReport()

    def _ask(self, requests: list[list[dict]], desc: str) -> list[str | None]:
        replies = self.client.run_many(requests, desc=desc) if requests else []
        out = []
        for reply in replies:
            if isinstance(reply, LLMError):
                self.report.count(self.report.failed, desc)
                out.append(None)
            else:
                out.append(reply)
        return out

    def relevance(self, predictions: Sequence[Prediction]) -> list[Judgement]:
        """The released evaluation's reading: an LLM decides refusal and extracts the top-1 span."""
        replies = self._ask([llm_prompts.relevance_messages(p.query, p.model_output) for p in predictions],
                            "relevance")
        judgements = []
        for prediction, reply in zip(predictions, replies):
            judged = parse_relevance(reply) if reply is not None else None
            if judged is None:
                if reply is not None:
                    self.report.count(self.report.unreadable, "relevance")
                judged = rule_judgement(prediction.model_output)
            judgements.append(judged)
        return judgements

    def explanations(self, predictions: Sequence[Prediction], judgements: Sequence[Judgement]) -> list[Judgement]:
        """Adds RT-IoU categories and the LLM score to the judgements of irrelevant queries."""
        targets = [i for i, p in enumerate(predictions) if not p.gt_relevant]
        answers = {i: answer_text(predictions[i].model_output) for i in targets}
        category_replies = self._ask([llm_prompts.rt_iou_messages(answers[i]) for i in targets], "rt-iou")
        score_replies = self._ask(
            [llm_prompts.llm_score_messages(answers[i], predictions[i].gt_output) for i in targets], "llm-score"
        )
        out = list(judgements)
        for i, category_reply, score_reply in zip(targets, category_replies, score_replies):
            categories = parse_categories(category_reply) if category_reply is not None else None
            if categories is None:
                if category_reply is not None:
                    self.report.count(self.report.unreadable, "rt-iou")
                categories = ((), 0)
            self.report.unknown_categories += categories[1]
            score = parse_score(score_reply) if score_reply is not None else None
            if score is None and score_reply is not None:
                self.report.count(self.report.unreadable, "llm-score")
            out[i] = replace(out[i], categories=categories[0], llm_score=score if score is not None else 0.0)
        return out
