"""The reward options, one typed object: variant, weights, SentenceBERT model and device, correction, explain.

Whatever takes them reads them through `RewardOptions`: the OpenRLHF reward file and the video
executor (`from_env`, once per rollout worker), rarft-train (`add_arguments` + `from_args`, then
`to_env` for every Ray worker) and rarft-score (`add_arguments` + `from_args`). Each option has a
`RARFT_*` variable; a flag wins over its variable, which wins over the default. rarft-score reads
only the SentenceBERT variables (as `rarft_plugin.similarity` does everywhere), so that a score's
reward definitions are on its command line.

    python -m rarft_plugin.reward_options    # the variables and the reward table (recipes' --help)

Help texts are built here from `OPTIONS` and from the reward table (`rarft_plugin.rewards.REWARDS`),
so a new reward shows up in every --help without an edit here.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, TypedDict

from rarft_plugin.rewards import (
    CORRECTIONS,
    EXPLAINS,
    REWARD_NAMES,
    REWARD_WEIGHTS,
    REWARDS,
    TOTAL_EQUATION,
    VARIANTS,
    Correction,
    Explain,
    Reward,
    Variant,
    parse_weights,
    reward_bounds,
)
from rarft_plugin.similarity import DEVICE_ENV, MODEL_ENV, Similarity

__all__ = [
    "CORRECTION_ENV",
    "EXPLAIN_ENV",
    "OPTIONS",
    "VARIANT_ENV",
    "WEIGHTS_ENV",
    "Option",
    "RewardOptions",
    "ScoreOptions",
    "add_arguments",
    "reward_table",
    "variables_help",
]

VARIANT_ENV = "RARFT_VARIANT"
CORRECTION_ENV = "RARFT_CORRECTION"
EXPLAIN_ENV = "RARFT_EXPLAIN"
WEIGHTS_ENV = "RARFT_REWARD_WEIGHTS"
# MODEL_ENV and DEVICE_ENV belong to rarft_plugin.similarity, which falls back to them wherever no
# model or device is given (so rarft-score and rarft-audit honour them too).

Style = Literal["launcher", "plain"]  # rarft-train's dotted flags, or the plain flags of rarft-score


def _weights_text(weights: Mapping[str, float]) -> str:
    return ",".join(f"{name}={value:g}" for name, value in weights.items())


@dataclass(frozen=True)
class Option:
    """One reward option: its field of `RewardOptions`, its variable, its flags and its help."""

    field: str
    env: str
    launcher_flag: str
    plain_flag: str
    help: str
    default: str  # what applies when neither flag nor variable is set, in words
    metavar: str | None = None
    # rarft_plugin.similarity reads the variable wherever the option is unset, in every command
    env_everywhere: bool = False


# Order: --help and `to_env` (the correction and explain options come last there, as the recipes print them).
OPTIONS: tuple[Option, ...] = (
    Option(
        "variant",
        VARIANT_ENV,
        "--rarft.variant",
        "--variant",
        "reward equations: paper (the paper's) | released (the authors' released reward code)",
        "paper",
    ),
    Option(
        "weights",
        WEIGHTS_ENV,
        "--rarft.reward_weights",
        "--weights",
        f"weights of the total ({TOTAL_EQUATION}), NAME=W for any of " + ", ".join(REWARD_NAMES),
        _weights_text(REWARD_WEIGHTS),
        metavar="NAME=W,...",
    ),
    Option(
        "sbert_model",
        MODEL_ENV,
        "--rarft.sbert_model",
        "--sbert-model",
        "SentenceBERT directory or name for the explain and correction rewards",
        "the packaged all-MiniLM-L6-v2, the authors' model",
        metavar="MODEL",
        env_everywhere=True,
    ),
    Option(
        "sbert_device",
        DEVICE_ENV,
        "--rarft.sbert_device",
        "--device",
        "SentenceBERT device (rarft-train: in each rollout worker): cpu, cuda, cuda:1, ...",
        "cpu",
        metavar="DEVICE",
        env_everywhere=True,
    ),
    Option(
        "correction",
        CORRECTION_ENV,
        "--rarft.correction",
        "--correction",
        "correction reward: similarity (eq. 7) | contrastive (copying the query into the correction "
        "scores -1) | gain (partial credit, the copy scores 0; README 'What the rewards can be gamed by')",
        "similarity",
    ),
    Option(
        "explain",
        EXPLAIN_ENV,
        "--rarft.explain",
        "--explain",
        "explain reward: similarity (eq. 6) | debiased (boilerplate removed, measured against the query in a "
        "refusal template; README 'What the rewards can be gamed by')",
        "similarity",
    ),
)
_CHOICES: dict[str, Sequence[str]] = {"variant": VARIANTS, "correction": CORRECTIONS, "explain": EXPLAINS}


class ScoreOptions(TypedDict):
    """The keyword arguments of `rarft_plugin.rewards.score` / `score_many`."""

    variant: Variant
    correction: Correction
    explain: Explain
    weights: dict[str, float]
    similarity: Similarity


@dataclass(frozen=True)
class RewardOptions:
    """How rollouts are scored. None leaves an option to its default (the reward table's weights;
    SentenceBERT: `rarft_plugin.similarity`'s variable, else the packaged model on the CPU).

    >>> env = RewardOptions.from_env({"RARFT_VARIANT": "released", "RARFT_REWARD_WEIGHTS": "explain=0.5"}).to_env()
    >>> env["RARFT_VARIANT"], env["RARFT_CORRECTION"], "explain=0.5" in env["RARFT_REWARD_WEIGHTS"].split(",")
    ('released', 'similarity', True)
    """

    variant: Variant = "paper"
    weights: Mapping[str, float] | None = None
    sbert_model: str | None = None
    sbert_device: str | None = None
    correction: Correction = "similarity"
    explain: Explain = "similarity"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> RewardOptions:
        """The options the `RARFT_*` variables set; a bad value is a ValueError naming its variable."""
        values: dict[str, object] = {}
        for option in OPTIONS:
            text = environ.get(option.env, "").strip()
            if not text:
                continue
            allowed = _CHOICES.get(option.field)
            if allowed is not None and text not in allowed:
                raise ValueError(f"{option.env}={text!r}: expected one of {list(allowed)}")
            try:
                values[option.field] = parse_weights(text) if option.field == "weights" else text
            except ValueError as error:
                raise ValueError(f"{option.env}: {error}") from None
        return cls(**values)

    @classmethod
    def from_args(cls, args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> RewardOptions:
        """The options of a command line parsed with `add_arguments`: flags, else variables, else defaults."""
        given = {option.field: getattr(args, option.field) for option in OPTIONS}
        return replace(cls.from_env(environ), **{name: value for name, value in given.items() if value is not None})

    def to_env(self) -> dict[str, str]:
        """The variables that reproduce these options in another process (unset options are left out;
        variant, correction and explain always, so that a stale value in a worker's environment cannot win)."""
        env = {}
        for option in OPTIONS:
            value = getattr(self, option.field)
            if value is not None:
                env[option.env] = _weights_text(parse_weights(value)) if option.field == "weights" else str(value)
        return env

    def score_options(self, similarity: Similarity | None = None) -> ScoreOptions:
        """The keyword arguments of `score` / `score_many`; loads the SentenceBERT model unless one is given."""
        if similarity is None:
            from rarft_plugin.similarity import get_similarity

            similarity = get_similarity(self.sbert_model, self.sbert_device)
        return ScoreOptions(
            variant=self.variant,
            correction=self.correction,
            explain=self.explain,
            weights=parse_weights(self.weights),
            similarity=similarity,
        )


def _weights_argument(text: str) -> dict[str, float]:
    try:
        return parse_weights(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _option_help(option: Option, environment: bool) -> str:
    default = f"${option.env}, else {option.default}" if environment or option.env_everywhere else option.default
    return f"{option.help} (default: {default})"


def add_arguments(parser: argparse.ArgumentParser, style: Style, *, environment: bool = True) -> None:
    """The reward options as flags of `parser` (all default to None: `RewardOptions.from_args` fills them in).

    `environment`: whether the command reads the `RARFT_*` variables for unset flags (`from_args`' environ).
    """
    group = parser.add_argument_group("reward options", "the rewards themselves: see the reward table below")
    for option in OPTIONS:
        flag = option.launcher_flag if style == "launcher" else option.plain_flag
        group.add_argument(
            flag,
            dest=option.field,
            default=None,
            choices=_CHOICES.get(option.field),
            type=_weights_argument if option.field == "weights" else None,
            metavar=option.metavar,
            help=_option_help(option, environment),
        )


def _bounds_text(bounds: tuple[float, float]) -> str:
    return f"[{bounds[0]:g}, {bounds[1]:g}]"


def reward_table(rewards: Sequence[Reward] = REWARDS) -> str:
    """The reward table as text: name, equation, weight and bounds per variant, then each reward's line.

    >>> print(reward_table().splitlines()[1])
    format      eq. 4     1       [0, 1]    [0, 1]
    """
    widths = (12, 10, 8, *(10 for _ in VARIANTS))

    def row(*cells: str) -> str:
        return "".join(f"{cell:<{width}}" for cell, width in zip(cells, widths, strict=True)).rstrip()

    lines = [row("reward", "equation", "weight", *VARIANTS)]
    lines += [row(r.name, r.equation, f"{r.weight:g}", *(_bounds_text(r.bounds[v]) for v in VARIANTS)) for r in rewards]
    lines.append(row("total", TOTAL_EQUATION, "", "sum of weight x reward", *("" for _ in VARIANTS[1:])))
    lines += [f"  {reward.name}: {reward.help}" for reward in rewards]
    # bounds that another correction or explain mode changes
    for option, mode in [("correction", c) for c in CORRECTIONS[1:]] + [("explain", e) for e in EXPLAINS[1:]]:
        changed = []
        for variant in VARIANTS:
            default, other = reward_bounds(variant), reward_bounds(variant, **{option: mode})
            changed += [
                f"{name} {_bounds_text(bounds)} ({variant})"
                for name, bounds in other.items()
                if bounds != default[name]
            ]
        if changed:
            lines.append(f"  with {option} {mode}: " + ", ".join(changed))
    return "\n".join(lines)


def variables_help(indent: int = 2, width: int = 100) -> str:
    """One entry per `RARFT_*` variable of the reward options, in the layout of the recipes' --help."""
    column = indent + 22
    entries = []
    for option in OPTIONS:
        text = f"{option.help} (default: {option.default})"
        entries.append(
            textwrap.fill(
                text, width=width, initial_indent=" " * indent + f"{option.env:<22}", subsequent_indent=" " * column
            )
        )
    return "\n".join(entries)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv:
        print(
            "usage: python -m rarft_plugin.reward_options (prints the reward variables and the reward table)",
            file=sys.stderr,
        )
        return 2
    print(variables_help())
    print()
    print(textwrap.indent(reward_table(), "  "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
