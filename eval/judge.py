"""LLM judges of the evaluation, through `rarft_plugin.llm_client.ChatClient` (any OpenAI-compatible
endpoint; cached on disk by request content, retried, resumable):

- relevance classifier (`--judge llm`, our prompt `llm_prompts.RELEVANCE_SYSTEM`): reads the
  response's answer text, says whether it localises the event or refuses, and extracts the top-1
  segment, as the released evaluation does;
- RT-IoU category classifier (Table 15) and LLM score (Table 16), asked only for the irrelevant
  queries that were refused and have a reference refusal answer (a wrongly answered one scores
  0 whatever the judge says, so asking would only cost).

Every judge is shown the response's answer text as the released evaluation reads it (think blocks
removed, the first answer block: `eval.reading.Reading.answer`), never the raw response.

Replies are parsed leniently (`parse_relevance`, `parse_categories`, `parse_score` never raise).
A reply that cannot be read is counted in `JudgeReport.unreadable`; a request that fails for
good (after retries) in `JudgeReport.failed`. Relevance then falls back to the rule-based
reading; categories and scores stay unmeasured (left out of the means, see eval.metrics).
`JudgeReport.calls()` gives, per judge, the queries asked about, those judged (a usable
verdict), failed and unreadable; `unusable_judges` names the judges that were asked and
judged nothing, which `rarft-eval evaluate` treats as a failed run.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypedDict

from rarft_plugin import llm_prompts
from rarft_plugin.llm_client import ChatClient, LLMError
from rarft_plugin.llm_json import UnreadableReply, json_array, json_object
from rarft_plugin.schema import CATEGORIES

from .metrics import Judgement, explanation_scored, rule_judgement
from .predictions import Prediction
from .reading import Reading

__all__ = [
    "JUDGES",
    "MAX_JUDGED_CHARS",
    "JudgeCalls",
    "JudgeReport",
    "JudgeUnavailable",
    "LlmJudge",
    "Verdict",
    "judged_text",
    "parse_categories",
    "parse_relevance",
    "parse_score",
    "unusable_judges",
]

# A response longer than this is cut before it is shown to a judge (a runaway generation would
# otherwise overflow the judge's context and cost for nothing).
MAX_JUDGED_CHARS = 6000

_SCORE = re.compile(r"""score\W{0,6}?([-+]?\d+(?:\.\d+)?)""", re.IGNORECASE)
_NUMBER_ONLY = re.compile(r"""^\W*([-+]?\d+(?:\.\d+)?)\W*$""")
_BOOLEAN = {"true": True, "yes": True, "relevant": True, "false": False, "no": False, "irrelevant": False}


def _category_key(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


# "Object/ObjectExistence", "object / object existence", "object_objectexistence", "ObjectExistence" -> path
_CATEGORY_BY_KEY = {_category_key(key): path for path in CATEGORIES for key in (path.split("/")[1], path)}


JUDGES = ("relevance", "rt-iou", "llm-score")
# A judge's reply as its parser reads it: a relevance judgement, (categories, unknown names dropped), or a score.
Verdict = Judgement | tuple[tuple[str, ...], int] | float


class JudgeCalls(TypedDict):
    """One judge's work in a run (metrics.json `judge.calls`)."""

    asked: int  # queries it was asked about
    judged: int  # with a usable verdict
    failed: int  # requests that failed for good (after retries)
    unreadable: int  # replies that stayed unreadable after one re-ask
    last_error: str | None  # the last failure's message


@dataclass
class JudgeReport:
    unreadable: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    unknown_categories: int = 0
    asked: dict[str, int] = field(default_factory=dict)
    judged: dict[str, int] = field(default_factory=dict)
    last_error: dict[str, str] = field(default_factory=dict)

    def count(self, table: dict[str, int], name: str) -> None:
        table[name] = table.get(name, 0) + 1

    def calls(self) -> dict[str, JudgeCalls]:
        """Per judge that was asked about anything (JUDGES order)."""
        return {
            name: {
                "asked": self.asked[name],
                "judged": self.judged.get(name, 0),
                "failed": self.failed.get(name, 0),
                "unreadable": self.unreadable.get(name, 0),
                "last_error": self.last_error.get(name),
            }
            for name in JUDGES
            if self.asked.get(name)
        }


class JudgeUnavailable(RuntimeError):
    """A judge was asked for and gave no usable verdict at all: the run measured nothing it was asked to."""


def unusable_judges(calls: dict[str, JudgeCalls]) -> list[str]:
    """One line per judge that was asked about queries and judged none of them.

    >>> unusable_judges({"relevance": {"asked": 3, "judged": 0, "failed": 3, "unreadable": 0,
    ...                                "last_error": "http://x/v1: HTTP 500"}})
    ['relevance: 0 of 3 judged (3 failed, 0 unreadable; last error: http://x/v1: HTTP 500)']
    """
    return [
        f"{name}: 0 of {c['asked']} judged ({c['failed']} failed, {c['unreadable']} unreadable"
        + (f"; last error: {c['last_error']})" if c["last_error"] else ")")
        for name, c in calls.items()
        if c["asked"] and not c["judged"]
    ]


def parse_categories(reply: str) -> tuple[tuple[str, ...], int] | None:
    """(taxonomy categories, number of unknown names dropped) from a Table 15 reply, or None if unreadable.

    Takes the last list of strings in the reply; names are matched ignoring case, spaces and
    separators, and a bare child name ("ObjectExistence") counts.

    >>> parse_categories('Answer: ["Object/ObjectExistence", "attribute / counting", "Made/Up"]')
    (('Object/ObjectExistence', 'Attribute/Counting'), 1)
    >>> parse_categories("[]")
    ((), 0)
    """
    try:
        names = json_array(reply, str)
    except UnreadableReply:
        return None
    keys = [_category_key(name) for name in names]
    known = tuple(dict.fromkeys(_CATEGORY_BY_KEY[k] for k in keys if k in _CATEGORY_BY_KEY))
    unknown = sum(k not in _CATEGORY_BY_KEY for k in keys)
    return known, unknown


def parse_score(reply: str) -> float | None:
    """The 0-5 score of a Table 16 reply, clipped to [0, 5]; None if unreadable.

    >>> [parse_score(r) for r in ("'score': 3.5", "{'score': 4}", '**Score:** "2.5"', "4.2", "no idea")]
    [3.5, 4.0, 2.5, 4.2, None]
    """
    match = _SCORE.search(reply) or _NUMBER_ONLY.match(reply)
    if match is None:
        return None
    value = float(match.group(1))
    return min(5.0, max(0.0, value))


def parse_relevance(reply: str) -> Judgement | None:
    """The relevance classifier's reading of a response, or None if unreadable.

    >>> parse_relevance('{"relevant": true, "start": 1, "end": 4.5}').segment
    (1.0, 4.5)
    >>> parse_relevance("{'relevant': False, 'start': None, 'end': None}").refused
    True
    """
    try:
        data = json_object(reply, ("relevant",))
    except UnreadableReply:
        return None
    relevant = data["relevant"]
    if isinstance(relevant, str):
        relevant = _BOOLEAN.get(relevant.strip().lower())
    if not isinstance(relevant, bool):
        return None
    if not relevant:
        return Judgement(refused=True, segment=None)
    try:
        start, end = float(data.get("start")), float(data.get("end"))
    except (TypeError, ValueError, OverflowError):
        return Judgement(refused=False, segment=None)
    valid = 0 <= start <= end < float("inf")
    return Judgement(refused=False, segment=(start, end) if valid else None)


def judged_text(text: str) -> str:
    """What a judge is shown of a response: its text, cut to MAX_JUDGED_CHARS."""
    return text if len(text) <= MAX_JUDGED_CHARS else text[:MAX_JUDGED_CHARS] + " [...]"


class LlmJudge:
    def __init__(self, client: ChatClient):
        self.client = client
        self.report = JudgeReport()

    def _ask(self, requests: list[tuple[str, list[dict], Callable[[str], Verdict | None]]]) -> list[Verdict | None]:
        """Parsed replies, all requests sent concurrently; None where a request failed or stayed unreadable.

        An unreadable reply is asked once more (under its own cache key, so it reaches the endpoint).
        """
        parsed: list[Verdict | None] = [None] * len(requests)
        pending = list(range(len(requests)))
        for attempt in (0, 1):
            replies = asyncio.run(self._gather([requests[i][1] for i in pending], attempt)) if pending else []
            retry = []
            for i, reply in zip(pending, replies, strict=True):
                kind, _, parse = requests[i]
                if not attempt:
                    self.report.count(self.report.asked, kind)
                if isinstance(reply, LLMError):
                    self.report.count(self.report.failed, kind)
                    self.report.last_error[kind] = str(reply)
                    continue
                parsed[i] = parse(reply)
                if parsed[i] is not None:
                    self.report.count(self.report.judged, kind)
                elif attempt:
                    self.report.count(self.report.unreadable, kind)
                else:
                    retry.append(i)
            pending = retry
        return parsed

    async def _gather(self, requests: list[list[dict]], attempt: int) -> list[str | LLMError]:
        from tqdm.asyncio import tqdm

        async with self.client.session() as ask:

            async def one(messages):
                try:
                    return await ask(messages, attempt=attempt)
                except LLMError as error:
                    return error

            return await tqdm.gather(*(one(m) for m in requests), desc="LLM judge", disable=len(requests) < 20)

    def relevance(self, predictions: Sequence[Prediction], readings: Sequence[Reading]) -> list[Judgement]:
        """The released evaluation's reading: an LLM reads the answer text, decides refusal and extracts the
        top-1 span.

        Where no readable verdict comes back, the core parser's judgement stands.
        """
        judged = self._ask(
            [
                ("relevance", llm_prompts.relevance_messages(p.query, judged_text(r.answer)), parse_relevance)
                for p, r in zip(predictions, readings, strict=True)
            ]
        )
        return [j if isinstance(j, Judgement) else rule_judgement(r) for r, j in zip(readings, judged, strict=True)]

    def explanations(
        self, predictions: Sequence[Prediction], readings: Sequence[Reading], judgements: Sequence[Judgement]
    ) -> list[Judgement]:
        """Adds RT-IoU categories and the LLM score to refused irrelevant queries with a reference."""
        targets = [i for i, (p, j) in enumerate(zip(predictions, judgements, strict=True)) if explanation_scored(p, j)]
        answers = {i: judged_text(readings[i].answer) for i in targets}
        requests = [("rt-iou", llm_prompts.rt_iou_messages(answers[i]), parse_categories) for i in targets]
        requests += [
            ("llm-score", llm_prompts.llm_score_messages(answers[i], predictions[i].gt_output), parse_score)
            for i in targets
        ]
        parsed = self._ask(requests)
        out = list(judgements)
        for i, categories, score in zip(targets, parsed[: len(targets)], parsed[len(targets) :], strict=True):
            if categories is not None:
                self.report.unknown_categories += categories[1]
            out[i] = replace(out[i], categories=categories[0] if categories is not None else None, llm_score=score)
        return out
