"""`rarft-train`: OpenRLHF's trainer (`python -m openrlhf.cli.train_ppo_ray`) with the RA-RFT plugin wired in.

    rarft-train --actor.model_name_or_path /models/Time-R1-7B --data.prompt_dataset train.jsonl \\
        --algo.advantage.estimator group_norm --rollout.n_samples_per_prompt 8 ...

Every OpenRLHF 0.11 flag passes through unchanged; the recipes in `recipes/` hold the paper's setup.
rarft-train wires the plugin into the command line (`rarft_plugin.launch.wiring`), checks the data,
the models and the flags before Ray starts, listing every problem at once (`rarft_plugin.launch.checks`),
and runs train_ppo_ray in this process with the reward options on every Ray worker
(`rarft_plugin.launch.run`, `rarft_plugin.launch.upstream`).

`--rarft.dry_run` (or `RARFT_DRY_RUN=1`) stops after the checks, runs OpenRLHF's own argument
handling on the final command, and prints the command. It needs OpenRLHF but not the GPU-only
modules its trainer imports at load (vLLM, flash-attn), so a CPU machine checks every flag as a GPU
node would. A real launch needs the whole training stack; without it rarft-train says in one line
what to install and exits before any check.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence

from rarft_plugin.cli import entry_point
from rarft_plugin.launch import checks, run, wiring

__all__ = ["main", "prepare"]


def prepare(argv: Sequence[str], say: checks.Say = checks.silent) -> wiring.Launch:
    """The launch of a command line with every problem the wiring and the checks find (nothing started)."""
    launch = wiring.wire(argv)
    return dataclasses.replace(launch, problems=[*launch.problems, *checks.preflight(launch, say)])


def _checking(checked: list[str]) -> checks.Say:
    """Print each check on stderr as it starts, and keep it for the summary."""

    def say(what: str) -> None:
        checked.append(what)
        print(f"rarft-train: checking {what}", file=sys.stderr, flush=True)

    return say


@entry_point("rarft-train")
def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not wiring.wants_dry_run(argv):
        missing = checks.missing_training_stack()
        if missing:  # before any check: they take a while, and the launch would fail after them anyway
            print(
                f"rarft-train: error: the training stack is not installed here (missing: {', '.join(missing)}): "
                f"{checks.INSTALL_HINT}; --rarft.dry_run checks a command without it",
                file=sys.stderr,
            )
            return 2
        attention = checks.attention_problem(argv)
        if attention:
            print(f"rarft-train: error: {attention}; nothing started", file=sys.stderr)
            return 2
    checked: list[str] = []
    say = _checking(checked)
    try:
        launch = prepare(argv, say)
    except wiring.LaunchError as error:
        print(f"rarft-train: error: {error}", file=sys.stderr)
        return 2
    for notice in launch.notices:
        print(f"rarft-train: {notice}", file=sys.stderr)
    problems = launch.problems
    if launch.options.dry_run and not problems:
        say("every flag of the final command through OpenRLHF's own argument parser")
        problems = checks.openrlhf_check(launch.argv)
    if problems:
        print(f"rarft-train: {len(problems)} problem(s), nothing started:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    if launch.options.dry_run:
        print(f"rarft-train: dry run: no problem in {len(checked)} checks, nothing started:", file=sys.stderr)
        for what in checked:
            print(f"  - {what}", file=sys.stderr)
        print(wiring.command_line(launch.argv, launch.env))
        return 0
    for directory in run.train(launch.argv, launch.env):
        print(
            f"rarft-train: {directory}: processor files added from the base model (OpenRLHF saves only the tokenizer)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
