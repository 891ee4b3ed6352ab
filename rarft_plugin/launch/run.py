"""Running OpenRLHF's train_ppo_ray for a wired, checked launch, and what follows the run."""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path

from rarft_plugin.launch.upstream import OPENRLHF_MODULE, complete_saved_processors, forwarding_worker_env
from rarft_plugin.launch.wiring import last_value

__all__ = ["run_openrlhf", "saved_model_dirs", "train"]


def run_openrlhf(argv: Sequence[str], env: dict[str, str]) -> None:
    """`python -m openrlhf.cli.train_ppo_ray argv`, with `env` on every Ray worker.

    In this process, not a child one: only here can ray.init be wrapped (`upstream.forwarding_worker_env`).
    """
    os.environ.update(env)
    # Under `ray job submit`, Ray refuses a ray.init env var that the job's runtime env also sets;
    # the values here are the ones rarft-train validated, so they may replace the job's.
    os.environ.setdefault("RAY_OVERRIDE_JOB_RUNTIME_ENV", "1")
    saved = sys.argv
    sys.argv = [OPENRLHF_MODULE, *argv]
    try:
        with forwarding_worker_env(env):
            runpy.run_module(OPENRLHF_MODULE, run_name="__main__", alter_sys=True)
    finally:
        sys.argv = saved


def saved_model_dirs(argv: Sequence[str]) -> list[Path]:
    """The Hugging Face model folders a run writes: the final one (--ckpt.output_dir) and the *_hf checkpoints."""
    final = last_value(argv, "--ckpt.output_dir")
    checkpoints = last_value(argv, "--ckpt.path")
    dirs = [Path(final)] if final else []
    if checkpoints and Path(checkpoints).is_dir():
        dirs += sorted(Path(checkpoints).glob("*_hf"))
    return [d for d in dirs if (d / "config.json").is_file()]


def train(argv: Sequence[str], env: dict[str, str]) -> list[Path]:
    """Run the training, then give the saved models the base model's processor files; the folders completed."""
    run_openrlhf(argv, env)
    return complete_saved_processors(last_value(argv, "--actor.model_name_or_path"), saved_model_dirs(argv))
