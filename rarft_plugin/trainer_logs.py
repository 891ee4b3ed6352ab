"""What rarft-train adds to the trainer's logs: the task metrics at each evaluation, the exploit monitors at each step.

Pure functions of per-rollout records (`Rollout`: a label, the total reward, the truncation flag and
the extra logs of `rarft_plugin.rollout_logs`); `rarft_plugin.launch.upstream` builds the records
from OpenRLHF's samples and puts the results where OpenRLHF logs (the console's "Global step" and
"Evaluation completed" lines, TensorBoard, wandb).

**At each evaluation** (`--eval.dataset FILE --eval.steps K`; FILE from `rarft-prep to-openrlhf` of an
evaluation split): `eval_logs`, the definitions of `rarft-eval` (`rarft_plugin.task_metrics`) over
every sampled response of the file (with `--eval.n_samples_per_prompt` n, every sample counts as a
query: the means over samples). Relevance is read by the rule reading only: no LLM judge runs in
the loop, so the numbers equal `rarft-eval`'s with its rule judge. Keys (TensorBoard adds `eval/`):

| key | value |
|---|---|
| `rarft/ra_iou/R0.3`, `R0.5`, `R0.7`, `mIoU` | RA-IoU recall at 0.3 / 0.5 / 0.7, and its mean (tags take no `@`) |
| `rarft/f1/relevant`, `irrelevant`, `average` | F1 of each class (answered / refused) and their mean |
| `rarft/accuracy`, `rarft/queries` | the share of right relevance decisions; the responses scored |
| `rarft/format_compliance` | share of responses with exactly the output blocks of the prompt's template |
| `rarft/LEVEL/refusal_f1`, `refusal_accuracy` | per hardness level (strong / moderate / weak / shuffled): the |
| | released per-level F1 on the level's irrelevant queries, and their refusal rate |
| `rarft/LEVEL/f1/...`, `.../ra_iou/...`, `.../accuracy` | the same keys on the level's 1:1 subset (`level_subsets`) |

A response's item (for the 1:1 subsets) is its label's `id` up to the last ':' (rarft-prep writes
"ITEM:QUERY"); a label without `id` is its own item.

**At each step** (`step_logs`): `rarft/monitor/NAME`, the rate of each monitor of `MONITORS` over
its population, and `rarft/zero_variance_groups`, the share of the step's groups (the
`--rollout.n_samples_per_prompt` rollouts of one prompt) whose rewards are all equal: their
group-normalised advantages are 0, so they teach nothing. `ExploitWatch` prints one warning line
when a monitor's rate stays above its threshold for `WARN_AFTER_STEPS` steps in a row, naming the
exploit and the option that counters it; the thresholds are ours (a judgement, not a measurement):
a rate that high for that long means the policy is drifting towards the exploit, not sampling it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean
from typing import Literal

from rarft_plugin.schema import Label
from rarft_plugin.task_metrics import Grounding, grounding, level_subsets, refusal_f1, relevance

__all__ = [
    "MONITORS",
    "MONITOR_INPUTS",
    "WARN_AFTER_STEPS",
    "ZERO_VARIANCE_KEY",
    "ExploitWatch",
    "Monitor",
    "Rollout",
    "eval_logs",
    "monitor_rates",
    "step_logs",
    "zero_variance_share",
]

WARN_AFTER_STEPS = 3
ZERO_VARIANCE_KEY = "rarft/zero_variance_groups"
# Rewards closer than this are equal (float32 rewards of identical responses agree exactly; different
# responses scored alike differ by rounding at most).
REWARD_TOLERANCE = 1e-6

Population = Literal["all", "relevant", "irrelevant", "answered"]


@dataclass(frozen=True)
class Rollout:
    """One rollout as the trainer sees it (`item`, `gt_relevant`, `hardness_level`: `task_metrics.LevelKey`)."""

    label: Label
    reward: float
    truncated: bool
    logs: Mapping[str, float]  # its extra logs (`rarft_plugin.rollout_logs.ROLLOUT_LOGS`)

    @property
    def item(self) -> str:
        return str(self.label.id).rsplit(":", 1)[0] if self.label.id is not None else f"query {self.label.query}"

    @property
    def gt_relevant(self) -> bool:
        return self.label.relevant

    @property
    def hardness_level(self) -> str | None:
        return self.label.difficulty

    @property
    def answered(self) -> bool:
        return self.logs["rarft/answered"] >= 0.5

    def flag(self, name: str) -> bool:
        return self.logs[name] >= 0.5


# ---------------------------------------------------------------- evaluation


def _grounding_logs(prefix: str, values: Grounding) -> dict[str, float | None]:
    return {
        f"{prefix}/R0.3": values.r_at_0_3,
        f"{prefix}/R0.5": values.r_at_0_5,
        f"{prefix}/R0.7": values.r_at_0_7,
        f"{prefix}/mIoU": values.miou,
    }


def _task_logs(prefix: str, rollouts: Sequence[Rollout]) -> dict[str, float | None]:
    """RA-IoU and refusal F1 of a set of responses, under `prefix`."""
    classes = relevance([r.gt_relevant for r in rollouts], [r.answered for r in rollouts])
    return {
        **_grounding_logs(f"{prefix}/ra_iou", grounding([r.logs["rarft/ra_iou"] for r in rollouts])),
        f"{prefix}/f1/relevant": classes.f1_rel,
        f"{prefix}/f1/irrelevant": classes.f1_irrel,
        f"{prefix}/f1/average": classes.f1_avg,
        f"{prefix}/accuracy": classes.accuracy,
    }


def eval_logs(rollouts: Sequence[Rollout]) -> dict[str, float | None]:
    """The task metrics of an evaluation's responses (module docstring); {} without any."""
    if not rollouts:
        return {}
    out = _task_logs("rarft", rollouts)
    out["rarft/format_compliance"] = fmean(r.logs["rarft/compliant"] for r in rollouts)
    out["rarft/queries"] = float(len(rollouts))
    for level, indices in level_subsets(rollouts).items():
        own = [r for r in rollouts if not r.gt_relevant and r.hardness_level == level]
        out[f"rarft/{level}/refusal_f1"] = refusal_f1([not r.answered for r in own])
        out[f"rarft/{level}/refusal_accuracy"] = fmean(not r.answered for r in own)
        out.update(_task_logs(f"rarft/{level}", [rollouts[i] for i in indices]))
    return out


# ---------------------------------------------------------------- every step


@dataclass(frozen=True)
class Monitor:
    """One exploit monitor: the share of its population flagged, the threshold and the counter-measure."""

    name: str  # rarft/monitor/<name>
    population: Population
    flagged: Callable[[Rollout], bool] = field(repr=False)
    threshold: float
    exploit: str  # what a high rate reveals (the rarft-audit policy it resembles)
    counter: str  # the option that counters it
    inputs: tuple[str, ...] = ()  # the extra logs it reads (rarft-train's step logs show the monitor instead)


# The known exploits (rarft-audit's policies, eval/exploits.py; README "What the rewards can be gamed by").
MONITORS: tuple[Monitor, ...] = (
    Monitor(
        "no_answer",
        "all",
        lambda r: r.flag("rarft/no_answer"),
        0.2,
        "responses that state no answer: no complete <answer> block, or an empty one (Visual-RFT#176; "
        "rarft-audit `empty`)",
        '--rarft.variant paper (pays a missing or empty text nothing; the released variant encodes it as "" and '
        "pays its similarities) and explain's weight in --rarft.reward_weights (an empty answer earns explain 0)",
        ("rarft/no_answer",),
    ),
    Monitor(
        "truncated",
        "all",
        lambda r: r.truncated,
        0.1,
        "responses cut off by the length limit (their unclosed blocks earn nothing)",
        "a larger --rollout.max_new_tokens",
    ),
    Monitor(
        "refused_relevant",
        "relevant",
        lambda r: not r.answered,
        0.5,
        "refusing relevant queries (rarft-audit `always_refuse`)",
        "--rarft.correction gain or contrastive (always_refuse's correction copies the query: 0 or -1 there) and "
        "more relevant queries in the mix (rarft-prep to-openrlhf --ratio)",
    ),
    Monitor(
        "whole_video",
        "answered",
        lambda r: r.flag("rarft/whole_video"),
        0.5,
        "segments spanning the whole clip (rarft-audit `whole_video`)",
        "--rarft.variant released (its distance-penalised IoU pays a whole-clip span less than the paper's IoU)",
        ("rarft/whole_video",),
    ),
    Monitor(
        "multi_answer",
        "all",
        lambda r: r.flag("rarft/multi_answer"),
        0.1,
        "several <answer> blocks (rarft-audit `multi_answer`)",
        "--rarft.variant paper (its format reward pays 0; the released lenient regex pays 1)",
        ("rarft/multi_answer",),
    ),
    Monitor(
        "copied_correction",
        "irrelevant",
        lambda r: r.flag("rarft/copied_correction"),
        0.3,
        "corrections that paraphrase the query instead of correcting it (rarft-audit `copy_correction`)",
        "--rarft.correction gain (the copy earns 0, a partial fix partial credit) or contrastive (the copy earns -1)",
        ("rarft/copied_correction",),
    ),
    Monitor(
        "templated_explain",
        "irrelevant",
        lambda r: r.flag("rarft/templated_explain"),
        0.3,
        "refusals in the references' style that say nothing about the video (rarft-audit `templated_refusal`)",
        "--rarft.explain debiased (boilerplate removed; the query in a refusal template earns at most 0), else a "
        "lower explain weight (--rarft.reward_weights explain=0.5): eq. 6 pays the references' style",
        ("rarft/templated_explain",),
    ),
    Monitor(
        "special_token",
        "all",
        lambda r: r.flag("rarft/special_token"),
        0.01,
        "special-token markers in responses (scored 0 on every reward)",
        "none in the rewards; sampling's logit bias should keep them out (docs/video.md)",
        ("rarft/special_token",),
    ),
)
MONITOR_INPUTS: tuple[str, ...] = tuple(name for monitor in MONITORS for name in monitor.inputs)

_POPULATIONS: dict[str, Callable[[Rollout], bool]] = {
    "all": lambda r: True,
    "relevant": lambda r: r.gt_relevant,
    "irrelevant": lambda r: not r.gt_relevant,
    "answered": lambda r: r.answered,
}


def monitor_rates(rollouts: Sequence[Rollout]) -> dict[str, float | None]:
    """`rarft/monitor/NAME`: each monitor's share of flagged rollouts in its population (None: population empty)."""
    out: dict[str, float | None] = {}
    for monitor in MONITORS:
        population = [r for r in rollouts if _POPULATIONS[monitor.population](r)]
        out[f"rarft/monitor/{monitor.name}"] = (
            sum(monitor.flagged(r) for r in population) / len(population) if population else None
        )
    return out


def zero_variance_share(rewards: Sequence[float], group_size: int) -> float | None:
    """Share of the groups (consecutive `group_size` rewards) whose rewards are all equal; None without a group.

    >>> zero_variance_share([1.0, 1.0, 0.0, 2.0], 2)
    0.5
    """
    groups = [rewards[i : i + group_size] for i in range(0, len(rewards) - group_size + 1, group_size)]
    if group_size < 1 or not groups:
        return None
    return sum(max(g) - min(g) <= REWARD_TOLERANCE for g in groups) / len(groups)


def step_logs(rollouts: Sequence[Rollout], group_size: int) -> dict[str, float | None]:
    """One step's monitor rates and zero-variance share (module docstring)."""
    return {
        **monitor_rates(rollouts),
        ZERO_VARIANCE_KEY: zero_variance_share([r.reward for r in rollouts], group_size),
    }


class ExploitWatch:
    """The monitors' state across steps: one warning line when a rate stays above its threshold for `steps` steps
    in a row (and again only after it has dropped below and risen for as long again)."""

    def __init__(self, steps: int = WARN_AFTER_STEPS):
        self.steps = steps
        self.streaks = {monitor.name: 0 for monitor in MONITORS}

    def update(self, step: int, logs: Mapping[str, float | None]) -> list[str]:
        """The warning lines for `step`, given its `step_logs` (a monitor whose population was empty keeps its
        streak)."""
        warnings = []
        for monitor in MONITORS:
            rate = logs.get(f"rarft/monitor/{monitor.name}")
            if rate is None:
                continue
            self.streaks[monitor.name] = self.streaks[monitor.name] + 1 if rate > monitor.threshold else 0
            if self.streaks[monitor.name] == self.steps:
                warnings.append(
                    f"rarft exploit monitor: {monitor.name} above {monitor.threshold:g} of {monitor.population} "
                    f"rollouts for {self.steps} steps (steps {step - self.steps + 1}-{step}, now {rate:.2f}): "
                    f"{monitor.exploit}; counter: {monitor.counter}"
                )
        return warnings
