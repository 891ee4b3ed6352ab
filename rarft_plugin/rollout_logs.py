"""What each rollout reports to OpenRLHF besides its rewards: the task score, task quantities and exploit signals.

Both OpenRLHF entries, the video executor (`rarft_plugin.openrlhf_agent`) and the text reward file
(`rarft_plugin.openrlhf_reward`), score rollouts with `score_with_logs`: the rewards are
`rarft_plugin.rewards.score_many`'s, unchanged; besides them each rollout gets

- **its score** (OpenRLHF's `scores`, read by `--algo.dynamic_filtering_enable`), in {0, 1}:
  1 iff the response states an answer (a complete, non-empty `<answer>` block), holds no special token, and
  its RA-IoU (`rarft_plugin.task_metrics`, the rule reading) is at least `SCORE_IOU` = 0.5: an
  irrelevant query refused, or a relevant one answered with a segment of IoU >= 0.5. A group's
  mean score is the share of its rollouts that do the task (R@0.5 of RA-IoU, the paper's headline
  number, among responses that state an answer). OpenRLHF keeps a group when that mean lies
  strictly inside `--algo.dynamic_filtering_range` (default (0, 1)): with a binary score, exactly
  the groups where some rollouts succeed and some fail. The total reward (up to about 5) was the
  score before; with the default range it dropped every group whose mean reward reached 1.
- **extra logs** (`ROLLOUT_LOGS`, each in [0, 1]): the task quantities of the in-loop evaluation
  and the signals of the exploits `rarft-audit` scores (`eval/exploits.py`). OpenRLHF averages
  every extra log over a step's rollouts; rarft-train's trainer hook (`rarft_plugin.trainer_logs`,
  installed by `rarft_plugin.launch.upstream`) reads them per rollout instead: RA-IoU, F1 and
  format compliance per hardness level at each evaluation, the exploit monitors' rates at each step.

The two similarity signals compare texts the reward encodes anyway (the answer â, the correction ĉ,
q_r, a_refusal) with two texts of the query (q itself and `templated_refusal`), which repeat over the
G rollouts of a prompt: their pairs join the reward's one similarity call (`_MonitorPairs`), so a
rollout still makes one encoder call; `bench/rollout_logs_cost.py` measures what they add.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rarft_plugin.parsing import ParsedResponse, answer_blocks, parse_response
from rarft_plugin.prompts import TEMPLATE_FOR_VARIANT, TEMPLATES, instruction
from rarft_plugin.rewards import Correction, Explain, Variant, score_many, templated_refusal
from rarft_plugin.schema import Label
from rarft_plugin.similarity import Similarity
from rarft_plugin.task_metrics import complies, ra_iou_value, rule_segment

__all__ = [
    "ROLLOUT_LOGS",
    "ROLLOUT_LOG_NAMES",
    "SCORE_IOU",
    "WHOLE_VIDEO_SHARE",
    "RolloutLog",
    "Scored",
    "compliance_template",
    "score_with_logs",
    "task_score",
]

SCORE_IOU = 0.5
# A segment this long a share of the clip or longer counts as a whole-clip span (rarft-audit's `whole_video`
# answers `0.00 to DURATION`).
WHOLE_VIDEO_SHARE = 0.9


@dataclass(frozen=True)
class RolloutLog:
    """One extra log of every rollout: its key in OpenRLHF's `extra_logs` and what a value of 1 means."""

    name: str
    help: str


# The extra logs of every rollout, 0 or 1 unless said. The similarity signals concern irrelevant queries only.
ROLLOUT_LOGS: tuple[RolloutLog, ...] = (
    RolloutLog("rarft/answered", "the rule reading finds a segment: the response answers (else it refuses)"),
    RolloutLog("rarft/ra_iou", "RA-IoU of the response, in [0, 1] (rarft_plugin.task_metrics)"),
    RolloutLog("rarft/compliant", "exactly the output blocks of the template the prompt was built with"),
    RolloutLog(
        "rarft/no_answer", "no complete <answer> block, or an empty one (nothing said, or cut off before </answer>)"
    ),
    RolloutLog("rarft/multi_answer", "two or more complete <answer> blocks"),
    RolloutLog("rarft/whole_video", f"a segment covering at least {WHOLE_VIDEO_SHARE:.0%} of the clip"),
    RolloutLog("rarft/special_token", "a special-token marker (<|...|>): every reward is 0"),
    RolloutLog(
        "rarft/copied_correction",
        "irrelevant query: the correction is closer to the query than to q_r, and at least as close to the query as "
        "q_r is (it paraphrases the query instead of correcting it)",
    ),
    RolloutLog(
        "rarft/templated_explain",
        "irrelevant query refused: the answer is closer to the query in a refusal template (REFUSAL_TEMPLATE) than to "
        "the reference refusal a_refusal",
    ),
)
ROLLOUT_LOG_NAMES: tuple[str, ...] = tuple(log.name for log in ROLLOUT_LOGS)


@dataclass(frozen=True)
class Scored:
    """One rollout scored: `score_many`'s rewards (and total), the score in {0, 1}, and the extra logs."""

    rewards: dict[str, float]
    score: float
    logs: dict[str, float]


def compliance_template(prompt: str, query: str, variant: Variant = "paper") -> str:
    """The template a prompt was built with (the one whose instruction for `query` it holds); for a prompt built
    from none, the variant's (`TEMPLATE_FOR_VARIANT`).

    >>> compliance_template(instruction("videochat_r1", "a dog barks"), "a dog barks"), compliance_template("", "q")
    ('videochat_r1', 'ra_rft')
    """
    return next((name for name in TEMPLATES if instruction(name, query) in prompt), TEMPLATE_FOR_VARIANT[variant])


def task_score(parsed: ParsedResponse, ra_iou: float) -> float:
    """1.0 iff the response states an answer (a non-empty answer block), holds no special token and its RA-IoU is
    >= `SCORE_IOU`, else 0.0."""
    return float(bool(parsed.answer) and parsed.special_token is None and ra_iou >= SCORE_IOU)


class _MonitorPairs:
    """A `Similarity` that adds the signals' sentence pairs to the reward's one `cosine_pairs` call, so that one
    encoder call serves both; `cosines()` gives the signals' share (computed alone where the reward asked for none)."""

    def __init__(self, inner: Similarity, extra: list[tuple[str, str]]):
        self.inner, self.extra = inner, extra
        self.model_path = getattr(inner, "model_path", "")
        self._cosines: list[float] | None = None

    def cosine_pairs(self, pairs) -> list[float]:
        pairs = list(pairs)
        if self._cosines is not None:
            return self.inner.cosine_pairs(pairs)
        both = self.inner.cosine_pairs(pairs + self.extra)
        self._cosines = both[len(pairs) :]
        return both[: len(pairs)]

    def cosines(self) -> list[float]:
        if self._cosines is None:
            self._cosines = self.inner.cosine_pairs(self.extra) if self.extra else []
        return self._cosines


@dataclass(frozen=True)
class _Signals:
    """The sentence pairs one rollout's similarity signals compare (empty where a signal does not apply)."""

    correction: list[tuple[str, str]]  # (q, ĉ), (q_r, ĉ), (q, q_r)
    explain: list[tuple[str, str]]  # (templated refusal of q, â), (a_refusal, â)


def _signal_pairs(parsed: ParsedResponse, refused: bool, label: Label, variant: Variant) -> _Signals:
    if label.relevant or parsed.special_token is not None:
        return _Signals([], [])
    block = parsed.correction if variant == "paper" else parsed.correction_released
    correction = (
        [(label.query, block), (label.query_relevant, block), (label.query, label.query_relevant)]
        if block and label.query_relevant
        else []
    )
    answer = parsed.answer
    explain = (
        [(templated_refusal(label), answer), (label.answer_refusal, answer)]
        if refused and answer and label.answer_refusal
        else []
    )
    return _Signals(correction, explain)


def _copied(cosines: Sequence[float]) -> bool:
    if len(cosines) != 3:
        return False
    to_query, to_reference, query_to_reference = cosines
    return to_query > to_reference and to_query >= query_to_reference


def _templated(cosines: Sequence[float]) -> bool:
    return len(cosines) == 2 and cosines[0] > cosines[1]


def _whole_video(segment: tuple[float, float] | None, label: Label) -> bool:
    duration = label.duration
    return segment is not None and bool(duration) and segment[1] - segment[0] >= WHOLE_VIDEO_SHARE * duration


def score_with_logs(
    responses: Sequence[str],
    labels: Sequence[Label],
    prompts: Sequence[str],
    *,
    variant: Variant = "paper",
    weights: dict[str, float] | str | None = None,
    similarity: Similarity | None = None,
    correction: Correction = "similarity",
    explain: Explain = "similarity",
) -> list[Scored]:
    """Rewards (`score_many`, the same keyword options), score and extra logs of each response to its prompt.

    Never raises on model output; every extra log and the score lie in [0, 1].
    """
    if not len(responses) == len(labels) == len(prompts):
        raise ValueError(f"{len(responses)} responses, {len(labels)} labels and {len(prompts)} prompts")
    parsed = [parse_response(text) for text in responses]
    segments = [rule_segment(text) for text in responses]
    signals = [
        _signal_pairs(p, segment is None, label, variant)
        for p, segment, label in zip(parsed, segments, labels, strict=True)
    ]
    extra = [pair for s in signals for pair in s.correction + s.explain]
    if extra and similarity is None:
        from rarft_plugin.similarity import get_similarity

        similarity = get_similarity()
    shared = _MonitorPairs(similarity, extra) if extra else similarity
    rewards = score_many(
        responses,
        list(labels),
        variant=variant,
        weights=weights,
        similarity=shared,
        correction=correction,
        explain=explain,
    )
    cosines = iter(shared.cosines() if extra else [])
    out = []
    for text, p, segment, label, prompt, s, reward in zip(
        responses, parsed, segments, labels, prompts, signals, rewards, strict=True
    ):
        correction_cosines = [next(cosines) for _ in s.correction]
        explain_cosines = [next(cosines) for _ in s.explain]
        ra_iou = ra_iou_value(label.relevant, label.timestamp, segment is None, segment)
        values = (
            segment is not None,
            ra_iou,
            complies(text, compliance_template(prompt, label.query, variant)),
            not p.answer,
            answer_blocks(text) > 1,
            _whole_video(segment, label),
            p.special_token is not None,
            _copied(correction_cosines),
            _templated(explain_cosines),
        )
        logs = {name: float(value) for name, value in zip(ROLLOUT_LOG_NAMES, values, strict=True)}
        out.append(Scored(rewards=reward, score=task_score(p, ra_iou), logs=logs))
    return out
