"""rarft-train's command line -> the final train_ppo_ray command line, and rarft-train's own options.

Every OpenRLHF 0.11 flag passes through unchanged. The wiring

1. takes rarft-train's own options (`--rarft.*`, `build_parser`: the reward options of
   `rarft_plugin.reward_options`, the prompt template, hub models, dry run);
2. drops `--reward_pretrain rarft_plugin`, the spelling with which older OpenRLHF launch scripts name
   the plugin (one notice: it stands for the wiring below);
3. appends the video contract (`VIDEO_CONTRACT`): the rollout executor, the dataset flags of the
   prompt rows (`rarft_plugin.prompt_row.DATASET_FLAGS`) and `--data.max_images_per_prompt 0`; a
   conflicting value, or a flag the video path cannot honour (`REFUSED_FLAGS`), is a problem;
4. reads `--algo.dynamic_filtering_enable` against rarft's scores (`dynamic_filtering`): says which
   groups the range keeps, and refuses a range that keeps none.
"""

from __future__ import annotations

import argparse
import os
import shlex
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from rarft_plugin.launch.prefetch import prefetch_env
from rarft_plugin.launch.upstream import OPENRLHF_MODULE
from rarft_plugin.models import family_env
from rarft_plugin.paths import plugin_path
from rarft_plugin.prompt_row import DATASET_FLAGS
from rarft_plugin.prompts import TEMPLATE_FOR_VARIANT, TEMPLATES
from rarft_plugin.reward_options import RewardOptions, add_arguments, reward_table
from rarft_plugin.rollout_logs import SCORE_IOU
from rarft_plugin.video import decode_env

__all__ = [
    "ANY_TEMPLATE",
    "CRITIC_FREE_ESTIMATORS",
    "DRY_RUN_ENV",
    "PLUGIN_NAME",
    "REFUSED_FLAGS",
    "VIDEO_CONTRACT",
    "Launch",
    "LaunchError",
    "LaunchOptions",
    "build_parser",
    "command_line",
    "drop_plugin_flag",
    "dynamic_filtering",
    "flag_values",
    "last_value",
    "wants_dry_run",
    "wire",
    "wire_plugin",
]

PLUGIN_NAME = "rarft_plugin"
# How older launch scripts name the plugin: the reward-model flag of OpenRLHF < 0.10 (and its 0.11 spelling).
PLUGIN_FLAGS = ("--reward_pretrain", "--reward.model_name_or_path")
DRY_RUN_ENV = "RARFT_DRY_RUN"

# What every video run passes to train_ppo_ray (None marks a switch). The executor scores each rollout
# itself, so no --reward.remote_url: OpenRLHF ignores it when --train.agent_func_path is set.
VIDEO_CONTRACT: dict[str, str | None] = {
    "--train.agent_func_path": str(plugin_path("agent")),
    **DATASET_FLAGS,
    # > 0 would make vLLM's limit_mm_per_prompt image-only and refuse the video.
    "--data.max_images_per_prompt": "0",
}

# Flags the video path cannot honour, and why.
REFUSED_FLAGS: dict[str, str] = {
    "--reward.remote_url": "OpenRLHF ignores it when --train.agent_func_path is set: the rarft executor scores "
    "every rollout with rarft_plugin.rewards (options via --rarft.*)",
    "--reward.model_name_or_path": "rarft-train rewards with the RA-RFT rewards, not a reward model "
    f"(`--reward_pretrain {PLUGIN_NAME}` is accepted and means the plugin)",
    "--reward_pretrain": f"OpenRLHF < 0.10's reward-model flag; rarft-train accepts only `--reward_pretrain "
    f"{PLUGIN_NAME}`, which means the plugin",
    # OpenRLHF asserts both for VLMs only when --data.max_images_per_prompt > 0, which videos keep at 0.
    "--ds.packing_samples": "packing breaks the alignment of video tokens with pixel_values_videos and "
    "Qwen2.5-VL's M-RoPE position ids",
}

# train_ppo_ray's critic-free advantage estimators (GRPO is group_norm). Upstream refuses a critic for
# VLMs only when --data.max_images_per_prompt > 0; the video path keeps it at 0, so the check is here.
CRITIC_FREE_ESTIMATORS = ("group_norm", "dr_grpo", "rloo", "reinforce_baseline", "reinforce", "flash_reinforce")

ANY_TEMPLATE = "any"


class LaunchError(Exception):
    """A command line rarft-train cannot run; the message says what to change."""


@dataclass(frozen=True)
class LaunchOptions:
    """rarft-train's own options."""

    rewards: RewardOptions
    template: str | None  # the template the training prompts must be built with; None: any
    allow_hub: bool  # hub names for the policy / SentenceBERT model (every node downloads them)
    dry_run: bool


@dataclass(frozen=True)
class Launch:
    """A wired command line: what to run, with which worker variables, and what is wrong with it so far."""

    options: LaunchOptions
    argv: list[str]  # the final train_ppo_ray argv
    env: dict[str, str]  # the variables of every Ray worker (the reward options, the model family)
    notices: list[str]
    problems: list[str]


# ---------------------------------------------------------------- flags


def _split_flag(token: str) -> tuple[str, str | None]:
    """'--a.b=3' -> ('--a.b', '3'); '--a.b' -> ('--a.b', None); values -> (token, None)."""
    if token.startswith("--") and "=" in token:
        name, value = token.split("=", 1)
        return name, value
    return token, None


def _is_flag(token: str) -> bool:
    return token.startswith("--") and len(token) > 2


def flag_values(argv: Sequence[str]) -> list[tuple[str, list[str], int, int]]:
    """(flag, values, start, end) for each flag in argv; values are the tokens up to the next flag."""
    found = []
    index = 0
    while index < len(argv):
        name, inline = _split_flag(argv[index])
        start = index
        index += 1
        if not _is_flag(name):
            continue
        values = [] if inline is None else [inline]
        while inline is None and index < len(argv) and not _is_flag(argv[index]):
            values.append(argv[index])
            index += 1
        found.append((name, values, start, index))
    return found


def last_value(argv: Sequence[str], flag: str) -> str | None:
    """The value the last `flag` in argv sets (argparse: the last one wins); None when absent."""
    values = [v for name, v, _, _ in flag_values(argv) if name == flag]
    return values[-1][0] if values and values[-1] else None


def _contract_tokens() -> list[str]:
    tokens: list[str] = []
    for flag, value in VIDEO_CONTRACT.items():
        tokens += [flag] if value is None else [flag, value]
    return tokens


def drop_plugin_flag(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """argv without `--reward_pretrain rarft_plugin` (any spelling of PLUGIN_FLAGS); returns (argv, notices).

    The plugin is always wired; other values of those flags stay, for `wire_plugin` to refuse.

    >>> drop_plugin_flag(["--reward_pretrain", "rarft_plugin", "--train.seed=3"])[0]
    ['--train.seed=3']
    """
    keep = [True] * len(argv)
    notices: dict[str, str] = {}
    for name, values, start, end in flag_values(argv):
        if name in PLUGIN_FLAGS and values == [PLUGIN_NAME]:
            notices[name] = f"{name} {PLUGIN_NAME}: the plugin is wired in as {' '.join(_contract_tokens())}"
            keep[start:end] = [False] * (end - start)
    return [token for token, kept in zip(argv, keep, strict=True) if kept], list(notices.values())


def wire_plugin(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """argv with the video contract appended. Returns (argv, problems): a contract flag set to another
    value, or a refused flag, is a problem; a repeat of the contract's own value is dropped.

    >>> wire_plugin(["--data.label_key", "label", "--algo.advantage.estimator", "group_norm"])[0][-3:]
    ['--data.apply_chat_template', '--data.max_images_per_prompt', '0']
    """
    problems = []
    keep = [True] * len(argv)
    for flag, values, start, end in flag_values(argv):
        if flag in REFUSED_FLAGS:
            problems.append(f"{flag}: not with rarft-train: {REFUSED_FLAGS[flag]}")
        elif flag in VIDEO_CONTRACT:
            wanted = VIDEO_CONTRACT[flag]
            if values != ([] if wanted is None else [wanted]):
                shown = flag if wanted is None else f"{flag} {wanted}"
                problems.append(
                    f"{flag} {' '.join(values)}: rarft-train sets {shown} (the rarft-prep "
                    f"to-openrlhf layout and the video executor); leave it out"
                )
            keep[start:end] = [False] * (end - start)
    estimator = last_value(argv, "--algo.advantage.estimator")
    if estimator not in CRITIC_FREE_ESTIMATORS:
        problems.append(
            f"--algo.advantage.estimator {estimator or '(OpenRLHF default gae)'}: the video path trains without "
            f"a critic (none supports video input); use one of {', '.join(CRITIC_FREE_ESTIMATORS)} "
            "(group_norm is GRPO)"
        )
    kept = [token for token, flag in zip(argv, keep, strict=True) if flag]
    return kept + _contract_tokens(), problems


FILTERING_FLAG = "--algo.dynamic_filtering_enable"
FILTERING_RANGE = "--algo.dynamic_filtering_range"
SCORE_MEANING = (
    f"rarft's score is 1 for a rollout whose response states an answer and has RA-IoU >= {SCORE_IOU:g} (an "
    "irrelevant query refused, a relevant one grounded), else 0 (rarft_plugin.rollout_logs)"
)


TRAINING_LOGS_HELP = "\n\n".join(
    textwrap.fill(paragraph, 100)
    for paragraph in (
        f"Dynamic filtering ({FILTERING_FLAG}; {FILTERING_RANGE} LOW HIGH, default 0 1): OpenRLHF keeps a group "
        f"of rollouts when the mean of their scores lies strictly inside (LOW, HIGH). {SCORE_MEANING}: the "
        "default keeps the groups where some rollouts succeed and some fail. A range that keeps no group, or every "
        "group, is refused.",
        "Task metrics and exploit monitors: with --eval.dataset FILE (rarft-prep to-openrlhf of an evaluation "
        "split) and --eval.steps K, every K steps the run logs RA-IoU R@0.3/0.5/0.7 and mIoU, refusal F1 and format "
        "compliance, overall and per hardness level (relevance read by the rule reading, no LLM judge); every step "
        "logs the exploit monitors' rates and warns when one stays high (docs/train.md, 'What a run logs').",
    )
)


def dynamic_filtering(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(problems, notices) of `--algo.dynamic_filtering_enable` on rarft's scores: OpenRLHF keeps a group of n
    rollouts when the mean of its scores lies strictly inside the range; a score is 0 or 1, so the mean is k/n.
    A range that keeps no k, or every k (it filters nothing), is a problem; the notice says which k it keeps.
    Values OpenRLHF's parser would refuse are left to it.

    >>> dynamic_filtering(["--algo.dynamic_filtering_enable", "--algo.dynamic_filtering_range", "1", "2"])[0][0][:56]
    '--algo.dynamic_filtering_range 1 2 keeps no group: rarft'
    """
    flags = {name: values for name, values, _, _ in flag_values(argv)}
    if FILTERING_FLAG not in flags:
        return [], []
    try:
        low, high = (float(value) for value in flags.get(FILTERING_RANGE, ["0", "1"]))
        n = int(last_value(argv, "--rollout.n_samples_per_prompt") or 1)
    except ValueError:
        return [], []
    kept = [k for k in range(n + 1) if low < k / max(n, 1) < high]
    shown = f"{FILTERING_RANGE} {low:g} {high:g}"
    if not kept:
        return [
            f"{shown} keeps no group: {SCORE_MEANING}, so a group's mean score is k/{n} for k of its {n} rollouts; "
            "use a range inside [0, 1] (the default 0 1 keeps the groups where some rollouts succeed and some fail)"
        ], []
    if len(kept) == n + 1:
        return [
            f"{shown} keeps every group, so it filters nothing: {SCORE_MEANING}, so a group's mean score lies in "
            "[0, 1]; use a range inside [0, 1] (the default 0 1), or leave out --algo.dynamic_filtering_enable"
        ], []
    notice = (
        f"dynamic filtering ({shown}): a group of {n} is kept when {kept[0]} to {kept[-1]} of its rollouts score 1; "
        f"{SCORE_MEANING}. Dropped groups are replaced by new prompts: with a model that rarely succeeds, most are "
        "dropped (dynamic_filtering_pass_rate in the step logs)"
    )
    uniform = [word for k, word in ((0, "none"), (n, "all")) if k in kept]
    if uniform:
        notice += (
            f"; groups where {' or '.join(uniform)} of the rollouts score 1 pass too: their scores do not vary "
            "(OpenRLHF#1270; rarft/zero_variance_groups counts the groups whose rewards do not)"
        )
    return [], [notice]


# ---------------------------------------------------------------- rarft-train's own options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rarft-train",
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run OpenRLHF's train_ppo_ray with the RA-RFT plugin (video rollouts, RA-RFT rewards).",
        epilog=(
            "Every other flag goes to `python -m openrlhf.cli.train_ppo_ray` unchanged (OpenRLHF 0.11 dotted\n"
            f"flags; `--reward_pretrain {PLUGIN_NAME}` is accepted and stands for the plugin). rarft-train\n"
            f"adds: {' '.join(_contract_tokens())}\n"
            "The recipes in recipes/ hold the paper's setup per base model.\n\n" + TRAINING_LOGS_HELP + "\n\n"
            "The rewards (rarft_plugin.rewards):\n" + reward_table()
        ),
    )
    add_arguments(parser, "launcher")
    parser.add_argument(
        "--rarft.template",
        dest="template",
        choices=[*TEMPLATES, ANY_TEMPLATE],
        default=None,
        help="prompt template the dataset must be built with (default: ra_rft for --rarft.variant "
        f"paper, ra_rft_released for released; {ANY_TEMPLATE!r} skips the check)",
    )
    parser.add_argument(
        "--rarft.allow_hub_models",
        dest="allow_hub",
        action="store_true",
        help="accept hub names for the policy / SentenceBERT model (each node downloads them)",
    )
    parser.add_argument(
        "--rarft.dry_run",
        dest="dry_run",
        action="store_true",
        default=os.environ.get(DRY_RUN_ENV, "") not in ("", "0"),
        help=f"check everything and print the command instead of training (${DRY_RUN_ENV}=1)",
    )
    return parser


def wants_dry_run(argv: Sequence[str]) -> bool:
    """Whether the command line (or $RARFT_DRY_RUN) asks for a dry run; nothing else is looked at."""
    return build_parser().parse_known_args(argv)[0].dry_run


def wire(argv: Sequence[str]) -> Launch:
    """The launch of a rarft-train command line, with the problems the wiring finds (checks: `checks.preflight`).

    Raises LaunchError for an unknown --rarft.* option or a bad reward option in the environment.
    """
    parsed, rest = build_parser().parse_known_args(argv)
    unknown = [token for token in rest if token.startswith("--rarft.")]
    if unknown:
        raise LaunchError(f"unknown option {unknown[0]} (see rarft-train --help)")
    try:
        rewards = RewardOptions.from_args(parsed, os.environ)
        decoding = decode_env(os.environ)  # the executors' decoding processes (rarft_plugin.video.DecodePool)
        decoding.update(prefetch_env(os.environ))  # the trainer's prefetch of the next step's clips
    except ValueError as error:
        raise LaunchError(str(error)) from None
    template = parsed.template or TEMPLATE_FOR_VARIANT[rewards.variant]
    options = LaunchOptions(
        rewards=rewards,
        template=None if template == ANY_TEMPLATE else template,
        allow_hub=parsed.allow_hub,
        dry_run=parsed.dry_run,
    )
    rest, notices = drop_plugin_flag(rest)
    final, problems = wire_plugin(rest)
    filtering_problems, filtering_notices = dynamic_filtering(final)
    # the reward file reads responses with the policy's chat markers (an unknown model: the pre-flight says why)
    env = {**rewards.to_env(), **family_env(last_value(final, "--actor.model_name_or_path")), **decoding}
    return Launch(
        options=options,
        argv=final,
        env=env,
        notices=notices + filtering_notices,
        problems=problems + filtering_problems,
    )


def command_line(argv: Sequence[str], env: dict[str, str]) -> str:
    """The equivalent shell command (worker variables as a prefix)."""
    prefix = [f"{name}={shlex.quote(value)}" for name, value in env.items()]
    return " ".join([*prefix, "python", "-m", OPENRLHF_MODULE, *map(shlex.quote, argv)])
