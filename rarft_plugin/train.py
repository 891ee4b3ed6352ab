"""`rarft-train`: OpenRLHF's trainer (`python -m openrlhf.cli.train_ppo_ray`) with the RA-RFT plugin wired in.

    rarft-train --actor.model_name_or_path /models/Time-R1-7B --data.prompt_dataset train.jsonl \\
        --algo.advantage.estimator group_norm --rollout.n_samples_per_prompt 8 ...

Every OpenRLHF 0.11 flag passes through unchanged; the recipes in `recipes/` hold the paper's setup.
The launcher

1. maps OpenRLHF < 0.10 spellings (`--pretrain`, `--prompt_data`, `--micro_train_batch_size`, ...) to
   0.11's dotted flags (`LEGACY_FLAGS`), one notice per flag; the design card's
   `--reward_pretrain rarft_plugin` is accepted and stands for the plugin wiring below;
2. appends the video contract (`VIDEO_CONTRACT`): the rollout executor, the dataset keys of
   `rarft-prep to-openrlhf`, and `--data.max_images_per_prompt 0`; a conflicting value is an error;
3. checks, before Ray starts, and reports every problem at once: the dataset (each JSONL line parses,
   has one video item in its chat, an absolute video, a label `parse_label` accepts and that has
   what the reward variant needs, and a prompt built with the expected template; every distinct
   clip is decoded at its window's ends, in threads: missing, empty, truncated and non-video files
   fail here, named, with a line that uses them), the model (a local directory whose config.json
   describes a vision-language model; a hub name only with `--rarft.allow_hub_models`), the
   SentenceBERT model (resolved by `rarft_plugin.similarity` and loaded once), the reward options,
   and what the video path cannot train with (see `REFUSED_FLAGS`);
4. runs the installed `openrlhf.cli.train_ppo_ray` in this process, with the reward options
   (`RARFT_VARIANT`, `RARFT_CORRECTION`, `RARFT_REWARD_WEIGHTS`, `RARFT_SBERT_MODEL`, `RARFT_SBERT_DEVICE`)
   added to the runtime environment OpenRLHF passes to `ray.init`, so every Ray worker sees them
   (workers of an already running cluster do not inherit the launcher's environment).

`--rarft.dry_run` (or `RARFT_DRY_RUN=1`) stops after the checks, runs OpenRLHF's own argument
handling on the final command, and prints the command. It needs OpenRLHF but not the GPU-only
modules its trainer imports at load (vLLM, flash-attn): on a machine without them, minimal
stand-ins are registered while the parser is built and removed afterwards (`gpu_module_stand_ins`),
so a CPU machine checks every flag as a GPU node would. A real launch needs the whole training
stack; without it rarft-train says in one line what to install and exits before any check.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import runpy
import shlex
import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator, Sequence

from rarft_plugin.cli import entry_point
from rarft_plugin.errors import DataError
from rarft_plugin.schema import parse_label
from rarft_plugin import rewards
from rarft_plugin.schema import Label
from rarft_plugin.paths import plugin_path
from rarft_plugin.prompts import TEMPLATES, instruction
from rarft_plugin.rewards import CORRECTIONS, VARIANTS, parse_weights
from rarft_plugin.similarity import DEVICE_ENV, MODEL_ENV, resolve_model
from rarft_plugin.video import VideoError, VideoSpec, probe_all

OPENRLHF_MODULE = "openrlhf.cli.train_ppo_ray"
PLUGIN_NAME = "rarft_plugin"
VARIANT_ENV = "RARFT_VARIANT"
CORRECTION_ENV = "RARFT_CORRECTION"
WEIGHTS_ENV = "RARFT_REWARD_WEIGHTS"
DRY_RUN_ENV = "RARFT_DRY_RUN"
MAX_LISTED = 20

# What a real launch imports (module -> what provides it); a dry run needs only openrlhf and its parser's imports.
TRAINING_STACK = ("openrlhf", "ray", "deepspeed", "vllm", "flash_attn")
INSTALL_HINT = 'pip install -e ".[train]" on the GPU machine (docs/train.md)'
# Imported by train_ppo_ray's module at load, and installable only with CUDA.
GPU_ONLY_MODULES = ("vllm", "flash_attn")

# The video contract (README "OpenRLHF: videos and the rollout executor"): what every video run
# passes to train_ppo_ray. None marks a switch. The executor scores each rollout itself, so no
# --reward.remote_url: OpenRLHF ignores it when --train.agent_func_path is set.
VIDEO_CONTRACT: dict[str, str | None] = {
    "--train.agent_func_path": str(plugin_path("agent")),
    "--data.input_key": "input",
    "--data.label_key": "label",
    "--data.image_key": "video",
    "--data.apply_chat_template": None,
    # > 0 would make vLLM's limit_mm_per_prompt image-only and refuse the video.
    "--data.max_images_per_prompt": "0",
}

# Flags the video path cannot honour, and why.
REFUSED_FLAGS: dict[str, str] = {
    "--reward.remote_url": "OpenRLHF ignores it when --train.agent_func_path is set: the rarft executor scores "
    "every rollout with rarft_plugin.rewards (options via --rarft.*)",
    "--reward.model_name_or_path": "rarft-train rewards with the RA-RFT rewards, not a reward model "
    "(`--reward_pretrain rarft_plugin` is accepted and means the plugin)",
    # OpenRLHF asserts both for VLMs only when --data.max_images_per_prompt > 0, which videos keep at 0.
    "--ds.packing_samples": "packing breaks the alignment of video tokens with pixel_values_videos and "
    "Qwen2.5-VL's M-RoPE position ids",
}

# train_ppo_ray's critic-free advantage estimators (GRPO is group_norm). Upstream refuses a critic for
# VLMs only when --data.max_images_per_prompt > 0; the video path keeps it at 0, so the check is here.
CRITIC_FREE_ESTIMATORS = ("group_norm", "dr_grpo", "rloo", "reinforce_baseline", "reinforce", "flash_reinforce")

# Reward variant -> the template whose output format that variant's format reward checks.
VARIANT_TEMPLATE = {"paper": "ra_rft", "released": "ra_rft_released"}
ANY_TEMPLATE = "any"

# OpenRLHF 0.9 spellings (read from openrlhf 0.9.10 / 0.8.11's train_ppo_ray) -> 0.11's. The tokens
# replace the flag; its values follow unchanged. Per-entity options (learning rate, scheduler,
# betas, weight decay, grad clip) go to the actor: GRPO has no critic.
LEGACY_FLAGS: dict[str, tuple[str, ...]] = {
    "--pretrain": ("--actor.model_name_or_path",),
    "--reward_pretrain": ("--reward.model_name_or_path",),
    "--remote_rm_url": ("--reward.remote_url",),
    "--agent_func_path": ("--train.agent_func_path",),
    "--prompt_data": ("--data.prompt_dataset",),
    "--prompt_data_probs": ("--data.prompt_probs",),
    "--prompt_split": ("--data.prompt_split",),
    "--eval_dataset": ("--eval.dataset",),
    "--eval_split": ("--eval.split",),
    "--eval_steps": ("--eval.steps",),
    "--eval_temperature": ("--eval.temperature",),
    "--eval_n_samples_per_prompt": ("--eval.n_samples_per_prompt",),
    "--input_key": ("--data.input_key",),
    "--label_key": ("--data.label_key",),
    "--input_template": ("--data.input_template",),
    "--apply_chat_template": ("--data.apply_chat_template",),
    "--max_len": ("--data.max_len",),
    "--max_samples": ("--data.max_samples",),
    "--generate_max_len": ("--rollout.max_new_tokens",),
    "--max_new_tokens": ("--rollout.max_new_tokens",),
    "--dataloader_num_workers": ("--data.dataloader_num_workers",),
    "--actor_num_nodes": ("--actor.num_nodes",),
    "--actor_num_gpus_per_node": ("--actor.num_gpus_per_node",),
    "--ref_num_nodes": ("--ref.num_nodes",),
    "--ref_num_gpus_per_node": ("--ref.num_gpus_per_node",),
    "--colocate_actor_ref": ("--train.colocate_actor_ref",),
    "--colocate_all_models": ("--train.colocate_all",),
    "--vllm_num_engines": ("--vllm.num_engines",),
    "--vllm_tensor_parallel_size": ("--vllm.tensor_parallel_size",),
    "--vllm_gpu_memory_utilization": ("--vllm.gpu_memory_utilization",),
    "--vllm_sync_backend": ("--vllm.sync_backend",),
    "--vllm_enable_sleep": ("--vllm.enable_sleep",),
    "--enable_prefix_caching": ("--vllm.enable_prefix_caching",),
    "--enforce_eager": ("--vllm.enforce_eager",),
    "--deepspeed_enable_sleep": ("--ds.enable_sleep",),
    "--zero_stage": ("--ds.zero_stage",),
    "--bf16": ("--ds.param_dtype", "bf16"),
    "--param_dtype": ("--ds.param_dtype",),
    "--attn_implementation": ("--ds.attn_implementation",),
    "--adam_offload": ("--ds.adam_offload",),
    "--packing_samples": ("--ds.packing_samples",),
    "--gradient_checkpointing": ("--actor.gradient_checkpointing_enable",),
    "--ref_reward_offload": ("--ref.offload", "--reward.offload"),
    "--save_path": ("--ckpt.output_dir",),
    "--ckpt_path": ("--ckpt.path",),
    "--save_steps": ("--ckpt.save_steps",),
    "--save_hf_ckpt": ("--ckpt.save_hf",),
    "--max_ckpt_num": ("--ckpt.max_num",),
    "--load_checkpoint": ("--ckpt.load_enable",),
    "--logging_steps": ("--logger.logging_steps",),
    "--use_wandb": ("--logger.wandb.key",),
    "--wandb_project": ("--logger.wandb.project",),
    "--wandb_run_name": ("--logger.wandb.run_name",),
    "--use_tensorboard": ("--logger.tensorboard_dir",),
    "--seed": ("--train.seed",),
    "--num_episodes": ("--train.num_episodes",),
    "--max_epochs": ("--train.max_epochs",),
    "--rollout_batch_size": ("--rollout.batch_size",),
    "--micro_rollout_batch_size": ("--rollout.micro_batch_size",),
    "--train_batch_size": ("--train.batch_size",),
    "--micro_train_batch_size": ("--train.micro_batch_size",),
    "--n_samples_per_prompt": ("--rollout.n_samples_per_prompt",),
    "--temperature": ("--rollout.temperature",),
    "--top_p": ("--rollout.top_p",),
    "--advantage_estimator": ("--algo.advantage.estimator",),
    "--no_advantage_std_norm": ("--algo.advantage.no_std_norm",),
    "--init_kl_coef": ("--algo.kl.init_coef",),
    "--kl_estimator": ("--algo.kl.estimator",),
    "--use_kl_loss": ("--algo.kl.use_loss",),
    "--dynamic_filtering": ("--algo.dynamic_filtering_enable",),
    "--dynamic_filtering_reward_range": ("--algo.dynamic_filtering_range",),
    "--eps_clip": ("--actor.eps_clip",),
    "--eps_clip_low_high": ("--actor.eps_clip_low_high",),
    "--policy_loss_type": ("--actor.policy_loss_type",),
    "--entropy_loss_coef": ("--actor.entropy_coef",),
    "--actor_learning_rate": ("--actor.adam.lr",),
    "--adam_betas": ("--actor.adam.betas",),
    "--l2": ("--actor.adam.weight_decay",),
    "--lr_scheduler": ("--actor.lr_scheduler",),
    "--lr_warmup_ratio": ("--actor.lr_warmup_ratio",),
    "--max_norm": ("--actor.max_norm",),
}

# Old flags with no 0.11 counterpart, and what to do instead.
REMOVED_FLAGS: dict[str, str] = {
    "--prompt_max_len": "OpenRLHF 0.11 bounds prompt + response together: use --data.max_len",
}


class LaunchError(Exception):
    """A command line rarft-train cannot run; the message says what to change."""


# ---------------------------------------------------------------- command line


def _split_flag(token: str) -> tuple[str, str | None]:
    """'--a.b=3' -> ('--a.b', '3'); '--a.b' -> ('--a.b', None); values -> (token, None)."""
    if token.startswith("--") and "=" in token:
        name, value = token.split("=", 1)
        return name, value
    return token, None


def _is_flag(token: str) -> bool:
    return token.startswith("--") and len(token) > 2


def translate_legacy(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Old spellings -> 0.11 flags. Returns (argv, notices); `--reward_pretrain rarft_plugin` is dropped
    (the plugin is always wired). Raises LaunchError for a removed flag.

    >>> translate_legacy(["--pretrain", "/m", "--seed=3"])[0]
    ['--actor.model_name_or_path', '/m', '--train.seed=3']
    """
    out: list[str] = []
    notices: dict[str, str] = {}
    tokens = list(argv)
    index = 0
    while index < len(tokens):
        name, value = _split_flag(tokens[index])
        index += 1
        if name in ("--reward_pretrain", "--reward.model_name_or_path"):
            if value is None and index < len(tokens) and not _is_flag(tokens[index]):
                value = tokens[index]
                index += 1
            if value == PLUGIN_NAME:
                notices[name] = (f"{name} {PLUGIN_NAME}: the plugin is wired in as "
                                 f"{' '.join(_contract_tokens())}")
                continue
            rest = [] if value is None else [value]
            name = LEGACY_FLAGS.get(name, (name,))[0]
            out += [name, *rest]
            continue
        if name in REMOVED_FLAGS:
            raise LaunchError(f"{name} does not exist in OpenRLHF 0.11: {REMOVED_FLAGS[name]}")
        if name not in LEGACY_FLAGS:
            out.append(tokens[index - 1])
            continue
        replacement = LEGACY_FLAGS[name]
        notices.setdefault(name, f"{name} is the OpenRLHF < 0.10 spelling; passing {' '.join(replacement)}")
        if value is None:
            out += replacement
        elif len(replacement) == 1:
            out.append(f"{replacement[0]}={value}")
        else:
            raise LaunchError(f"{name} takes no value (it stands for {' '.join(replacement)})")
    return out, list(notices.values())


def _contract_tokens() -> list[str]:
    tokens: list[str] = []
    for flag, value in VIDEO_CONTRACT.items():
        tokens += [flag] if value is None else [flag, value]
    return tokens


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
                problems.append(f"{flag} {' '.join(values)}: rarft-train sets {shown} (the rarft-prep "
                                f"to-openrlhf layout and the video executor); leave it out")
            keep[start:end] = [False] * (end - start)
    estimator = last_value(argv, "--algo.advantage.estimator")
    if estimator not in CRITIC_FREE_ESTIMATORS:
        problems.append(
            f"--algo.advantage.estimator {estimator or '(OpenRLHF default gae)'}: the video path trains without "
            f"a critic (none supports video input); use one of {', '.join(CRITIC_FREE_ESTIMATORS)} "
            "(group_norm is GRPO)"
        )
    kept = [token for token, flag in zip(argv, keep) if flag]
    return kept + _contract_tokens(), problems


# ---------------------------------------------------------------- checks before Ray starts


def dataset_files(spec: str) -> list[str]:
    """The files of a --data.prompt_dataset value ('a.jsonl,b.jsonl', each optionally 'path@dir')."""
    return [part.split("@")[0].strip() for part in spec.split(",") if part.strip()]


def variant_label_problems(label: Label, variant: str | None) -> list[str]:
    """What reward variant `variant` cannot score in `label` (e.g. the released variant needs its duration).

    HOOK: the check itself is `rarft_plugin.rewards.variant_label_problems`, which the rewards module
    owns; until it exists there, nothing is checked here.
    """
    check = getattr(rewards, "variant_label_problems", None)
    if variant is None or check is None:
        return []
    return [str(problem) for problem in check(label, variant)]


def row_problems(row: Any, template: str | None, variant: str | None = None) -> list[DataError]:
    """What is wrong with one dataset row (a rarft-prep to-openrlhf line), file I/O aside.

    `template` is the prompt template the row must be built with (None: any); `variant` the reward
    variant that will score it (None: no check).
    """
    if not isinstance(row, dict):
        return [DataError("expected a JSON object")]
    problems = []
    for key in ("input", "video", "label"):
        if key not in row:
            problems.append(DataError("missing", field=key))
    label = None
    if "label" in row:
        try:
            label = parse_label(row["label"])
        except DataError as error:
            problems.append(DataError(error.message, field=f"label.{error.field}" if error.field else "label"))
        else:
            problems += [DataError(f"the {variant} reward variant cannot use this label: {problem}", field="label")
                         for problem in variant_label_problems(label, variant)]
    if "input" in row:
        problems += _input_problems(row["input"], label, template)
    if "video" in row:
        try:
            spec = VideoSpec.parse(row["video"])
        except VideoError as error:
            problems.append(DataError(error.message, field="video"))
        else:
            if not os.path.isabs(spec.path):
                problems.append(DataError(f"relative path {spec.path!r}: Ray workers do not share the launcher's "
                                          "working directory (rarft-prep to-openrlhf writes absolute paths)",
                                          field="video"))
    return problems


def _input_problems(messages: Any, label: Any, template: str | None) -> list[DataError]:
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return [DataError("expected a list of chat messages", field="input")]
    items = [item for m in messages if isinstance(m.get("content"), list) for item in m["content"]
             if isinstance(item, dict)]
    problems = []
    videos = sum(item.get("type") == "video" for item in items)
    if videos != 1:
        problems.append(DataError(f"expected one video item in the chat, found {videos}", field="input"))
    if template is not None and label is not None:
        texts = {item.get("text") for item in items if item.get("type") == "text"}
        if instruction(template, label.query) not in texts:
            built = [name for name in TEMPLATES if instruction(name, label.query) in texts]
            how = f"built with template {built[0]!r}" if built else "not built from any rarft template"
            problems.append(DataError(f"prompt {how}, expected {template!r} "
                                      f"(rarft-prep to-openrlhf --template {template})", field="input"))
    return problems


def validate_dataset(path: str, template: str | None, variant: str | None = None, *,
                     workers: int = 8) -> list[str]:
    """Every problem of one dataset file, as 'file: record: field: message' lines.

    Rows are checked one by one (`row_problems`); then every distinct clip the rows use is probed
    once (`rarft_plugin.video.probe_all`, in `workers` threads), each failure reported with the
    first line that uses the clip.
    """
    file = Path(path)
    if file.suffix != ".jsonl":
        return [f"{path}: expected the JSONL written by rarft-prep to-openrlhf (a .jsonl file)"]
    if not file.is_file():
        return [f"{path}: file not found"]
    problems: list[str] = []
    clips: dict[VideoSpec, int] = {}  # clip -> first line using it
    rows = 0
    with open(file, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            rows += 1
            where = {"source": path, "record": f"line {number}"}
            try:
                row = json.loads(line)
            except ValueError as error:
                problems.append(str(DataError(f"not valid JSON ({error})", **where)))
                continue
            found = row_problems(row, template, variant)
            problems += [str(error.located(**where)) for error in found]
            if isinstance(row, dict) and not any(error.field == "video" for error in found) and "video" in row:
                clips.setdefault(VideoSpec.parse(row["video"]), number)
    if rows == 0:
        problems.append(f"{path}: no prompts")
    return problems + clip_problems(clips, path, workers=workers)


def clip_problems(clips: dict[VideoSpec, int], source: str, *, workers: int = 8) -> list[str]:
    """Missing, empty and undecodable clips, each with the first line that uses it (files checked once)."""
    problems, probed = [], {}
    present: dict[str, str | None] = {}  # video file -> None, or why it cannot be used
    for spec, number in clips.items():
        if spec.path not in present:
            if not os.path.isfile(spec.path):
                present[spec.path] = f"video file not found: {spec.path}"
            elif os.path.getsize(spec.path) == 0:
                present[spec.path] = f"video file is empty (0 bytes): {spec.path}"
            else:
                present[spec.path] = None
        if present[spec.path] is None:
            probed[spec] = number
        elif present[spec.path] not in problems:
            problems.append(str(DataError(present[spec.path], source=source, record=f"line {number}",
                                          field="video")))
    for spec, error in probe_all(probed, workers=workers).items():
        problems.append(str(DataError(error.message, source=source, record=f"line {probed[spec]}",
                                      field=f"video ({spec.path})")))
    return problems


def _looks_like_path(name: str) -> bool:
    """A filesystem path rather than a hub name ('org/name')."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1


def validate_model(name: str | None, allow_hub: bool) -> list[str]:
    """The policy model must be a local directory whose config.json describes a vision-language model."""
    if not name:
        return ["no model: pass --actor.model_name_or_path DIR (a local Qwen2.5-VL-family checkpoint)"]
    directory = Path(os.path.expanduser(name))
    if not directory.exists():
        if allow_hub and not _looks_like_path(name):
            return []
        hint = "" if _looks_like_path(name) else " (a hub name downloads on every node: add --rarft.allow_hub_models)"
        return [f"--actor.model_name_or_path {name}: not a local directory{hint}"]
    config = directory / "config.json"
    if not config.is_file():
        return [f"--actor.model_name_or_path {name}: no config.json in that directory"]
    try:
        fields = json.loads(config.read_text(encoding="utf-8"))
    except ValueError as error:
        return [f"{config}: not valid JSON ({error})"]
    if not isinstance(fields, dict) or "vision_config" not in fields:
        kind = fields.get("model_type", "?") if isinstance(fields, dict) else "?"
        return [f"{config}: model_type {kind!r} has no vision_config; the video executor needs a "
                "vision-language model of the Qwen2.5-VL family"]
    return []


def validate_sbert(model: str | None, device: str | None, allow_hub: bool) -> list[str]:
    """The SentenceBERT model the rewards use: resolvable, and loadable when local."""
    problems = []
    if device:
        import torch

        try:
            torch.device(device)
        except (RuntimeError, ValueError) as error:
            problems.append(f"--rarft.sbert_device {device}: {error}")
    try:
        resolved = resolve_model(model)
    except FileNotFoundError as error:
        return problems + [f"--rarft.sbert_model: {error}"]
    if not Path(resolved).is_dir():
        if not allow_hub:
            problems.append(f"--rarft.sbert_model {resolved}: not a local directory (a hub name downloads on every "
                            "node: add --rarft.allow_hub_models)")
        return problems
    try:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        SentenceTransformer(resolved, device="cpu").encode(["a person opens a door"])
    except Exception as error:  # whatever the loader raises, the user needs the path and the reason
        problems.append(f"SentenceBERT model {resolved}: cannot load it ({type(error).__name__}: {error})")
    return problems


# ---------------------------------------------------------------- running OpenRLHF


def openrlhf_arguments(argv: Sequence[str]) -> tuple[argparse.ArgumentParser, SimpleNamespace]:
    """train_ppo_ray's own argument handling on argv (its parser, fix-ups and assertions), without training.

    The installed module builds its parser inside `if __name__ == "__main__":`, a block that ends with
    `train(args)`; this runs the module's source with that call left out and returns (parser, args).
    Its imports load the trainer, which imports vllm and flash_attn: where those are not installed,
    stand-ins take their place meanwhile (`gpu_module_stand_ins`). A parse error raises SystemExit as
    the module does; a failed check raises AssertionError.
    """
    spec = importlib.util.find_spec(OPENRLHF_MODULE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"{OPENRLHF_MODULE} is not installed (pip install openrlhf==0.11.2)")
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"), spec.origin)
    block = tree.body[-1]
    if not (_is_main_guard(block) and _calls(block.body[-1], "train")):
        raise RuntimeError(f"{spec.origin}: no `if __name__ == '__main__': ... train(args)` block; "
                           "rarft-train supports the layout of openrlhf 0.11")
    block.body.pop()
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": spec.origin}
    saved = sys.argv
    sys.argv = [spec.origin, *argv]
    try:
        with gpu_module_stand_ins():
            exec(compile(tree, spec.origin, "exec"), namespace)
    finally:
        sys.argv = saved
    return namespace["parser"], namespace["args"]


class _Unavailable:
    """What a stand-in module hands out for any name: usable in imports and class bodies, never called."""

    def __init__(self, *args: Any, **kwargs: Any):
        raise RuntimeError(f"{type(self).__qualname__} is a stand-in for argument checking; the real package "
                           f"is not installed ({INSTALL_HINT})")


class _StandInLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return types.ModuleType(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__path__ = []  # a package, so its submodules (vllm.inputs, flash_attn.bert_padding) load too
        module.__version__ = "0"

        def attribute(name: str) -> Any:  # PEP 562: every other name is a class that refuses to be used
            if name.startswith("__"):
                raise AttributeError(name)
            return type(f"{module.__name__}.{name}", (_Unavailable,), {})

        module.__getattr__ = attribute


class _StandInFinder(importlib.abc.MetaPathFinder):
    def __init__(self, roots: Sequence[str]):
        self.roots = set(roots)

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name.split(".")[0] not in self.roots:
            return None
        return importlib.machinery.ModuleSpec(name, _StandInLoader(), is_package=True)


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:  # absent, or present but unusable here (a flash-attn built without CUDA kernels)
        return False
    return True


@contextlib.contextmanager
def gpu_module_stand_ins() -> Iterator[list[str]]:
    """While active, `import vllm` / `import flash_attn...` give stand-ins where the real ones do not import.

    Only for building OpenRLHF's argument parser on a machine without a GPU stack: the stand-ins
    carry names, not behaviour. On exit they leave sys.modules, with every openrlhf module imported
    meanwhile (those hold references to them), so later imports see the machine as it is.
    Yields the stand-in roots (empty where the real modules import).
    """
    roots = [name for name in GPU_ONLY_MODULES if not _importable(name)]
    if not roots:
        yield []
        return
    before = set(sys.modules)
    finder = _StandInFinder(roots)
    sys.meta_path.append(finder)
    try:
        yield roots
    finally:
        sys.meta_path.remove(finder)
        for name in set(sys.modules) - before:
            if name.split(".")[0] in (*roots, "openrlhf"):
                del sys.modules[name]


def _is_main_guard(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test).replace("'", '"') == '__name__ == "__main__"'


def _calls(node: ast.stmt, function: str) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name) and node.value.func.id == function)


# Every Ray worker of a run (policy, reference, vLLM engines) runs this first: transformers 5.x computes
# Qwen2.5-VL video positions unlike vLLM, so training would score other positions than the rollouts
# sampled (rarft_plugin.models: each model family installs what its models need).
WORKER_SETUP_HOOK = "rarft_plugin.models.use_reference_video_positions"


def with_worker_env(runtime_env: dict | None, env: dict[str, str]) -> dict:
    """A copy of a ray.init runtime_env with `env` added to its env_vars (ours win: they were validated) and
    rarft's worker setup hook (a hook the runtime_env already names is kept).

    >>> with_worker_env({"env_vars": {"NCCL_DEBUG": "WARN"}}, {"RARFT_VARIANT": "paper"})["env_vars"]
    {'NCCL_DEBUG': 'WARN', 'RARFT_VARIANT': 'paper'}
    """
    merged = dict(runtime_env or {})
    merged["env_vars"] = {**merged.get("env_vars", {}), **env}
    merged.setdefault("worker_process_setup_hook", WORKER_SETUP_HOOK)
    return merged


@contextlib.contextmanager
def forwarding_worker_env(env: dict[str, str]) -> Iterator[None]:
    """While active, every ray.init call adds `env` to the runtime environment it is given."""
    import ray

    original = ray.init

    def init(*args: Any, runtime_env: dict | None = None, **kwargs: Any):
        return original(*args, runtime_env=with_worker_env(runtime_env, env), **kwargs)

    ray.init = init
    try:
        yield
    finally:
        ray.init = original


def run_openrlhf(argv: Sequence[str], env: dict[str, str]) -> None:
    """`python -m openrlhf.cli.train_ppo_ray argv`, in this process, with `env` on every Ray worker."""
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


def complete_saved_processors(base: str | None, dirs: Sequence[Path]) -> list[Path]:
    """Add the base model's processor files to saved model folders that lack them; the folders completed.

    OpenRLHF saves a vision-language model with its tokenizer only (no processor configuration), so
    neither `rarft-eval infer` nor a later `--actor.model_name_or_path` could load the checkpoint's
    processor. Files already there are kept.
    """
    lacking = [d for d in dirs if not _has_processor(d)]
    if not base or not lacking or not _has_processor(Path(base)):
        return []
    import shutil
    import tempfile

    from transformers import AutoProcessor

    with tempfile.TemporaryDirectory() as scratch:
        AutoProcessor.from_pretrained(base).save_pretrained(scratch)
        for directory in lacking:
            for file in Path(scratch).iterdir():
                if not (directory / file.name).exists():
                    shutil.copy2(file, directory / file.name)
    return lacking


def _has_processor(directory: Path) -> bool:
    # transformers 5 writes processor_config.json; 4.x wrote preprocessor_config.json
    return any((directory / name).is_file() for name in ("processor_config.json", "preprocessor_config.json"))


# ---------------------------------------------------------------- entry point


def _weights(text: str) -> str:
    try:
        weights = parse_weights(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return ",".join(f"{name}={value:g}" for name, value in weights.items())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rarft-train",
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run OpenRLHF's train_ppo_ray with the RA-RFT plugin (video rollouts, RA-RFT rewards).",
        epilog=(
            "Every other flag goes to `python -m openrlhf.cli.train_ppo_ray` unchanged (OpenRLHF 0.11 dotted\n"
            "flags; older spellings such as --pretrain or --prompt_data are mapped with a notice). rarft-train\n"
            f"adds: {' '.join(_contract_tokens())}\n"
            "The recipes in recipes/ hold the paper's setup per base model."
        ),
    )
    env = os.environ
    parser.add_argument("--rarft.variant", dest="variant", choices=VARIANTS, default=env.get(VARIANT_ENV) or "paper",
                        help=f"reward variant: the paper's equations or the released code's (${VARIANT_ENV})")
    parser.add_argument("--rarft.correction", dest="correction", choices=CORRECTIONS,
                        default=env.get(CORRECTION_ENV) or "similarity",
                        help="correction reward: similarity (eq. 7, default) or contrastive (copying the query "
                             f"scores -1; README 'What the rewards can be gamed by') (${CORRECTION_ENV})")
    parser.add_argument("--rarft.reward_weights", dest="weights", type=_weights, default=env.get(WEIGHTS_ENV),
                        help=f"e.g. format=1,refuse_iou=1,explain=1,correction=1 (${WEIGHTS_ENV}; default all 1)")
    parser.add_argument("--rarft.sbert_model", dest="sbert_model", default=env.get(MODEL_ENV),
                        help=f"SentenceBERT directory or name (${MODEL_ENV}; default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--rarft.sbert_device", dest="sbert_device", default=env.get(DEVICE_ENV),
                        help=f"device of SentenceBERT in each rollout worker: cpu, cuda (${DEVICE_ENV}; default cpu)")
    parser.add_argument("--rarft.template", dest="template", choices=[*TEMPLATES, ANY_TEMPLATE], default=None,
                        help="prompt template the dataset must be built with (default: ra_rft for --rarft.variant "
                             f"paper, ra_rft_released for released; {ANY_TEMPLATE!r} skips the check)")
    parser.add_argument("--rarft.allow_hub_models", dest="allow_hub", action="store_true",
                        help="accept hub names for the policy / SentenceBERT model (each node downloads them)")
    parser.add_argument("--rarft.dry_run", dest="dry_run", action="store_true",
                        default=env.get(DRY_RUN_ENV, "") not in ("", "0"),
                        help=f"check everything and print the command instead of training (${DRY_RUN_ENV}=1)")
    return parser


def worker_env(options: argparse.Namespace) -> dict[str, str]:
    """The RARFT_* variables the rollout workers read (unset ones keep the workers' defaults)."""
    env = {VARIANT_ENV: options.variant}
    for name, value in ((WEIGHTS_ENV, options.weights), (MODEL_ENV, options.sbert_model),
                        (DEVICE_ENV, options.sbert_device)):
        if value:
            env[name] = value
    env[CORRECTION_ENV] = options.correction  # always: a stale value in the workers' environment must not win
    return env


def prepare(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str], dict[str, str], list[str], list[str]]:
    """(options, OpenRLHF argv, worker env, notices, problems) for a rarft-train command line."""
    options, rest = build_parser().parse_known_args(argv)
    unknown = [token for token in rest if token.startswith("--rarft.")]
    if unknown:
        raise LaunchError(f"unknown option {unknown[0]} (see rarft-train --help)")
    # argparse does not check a default against its choices, and these defaults come from the environment.
    for name, value, allowed in ((VARIANT_ENV, options.variant, VARIANTS),
                                 (CORRECTION_ENV, options.correction, CORRECTIONS)):
        if value not in allowed:
            raise LaunchError(f"{name}={value!r}: expected one of {list(allowed)}")
    rest, notices = translate_legacy(rest)
    final, problems = wire_plugin(rest)
    template = options.template or VARIANT_TEMPLATE[options.variant]
    template = None if template == ANY_TEMPLATE else template
    for flag in ("--data.prompt_dataset", "--eval.dataset"):
        spec = last_value(final, flag)
        if flag == "--data.prompt_dataset" and not spec:
            problems.append("no dataset: pass --data.prompt_dataset FILE.jsonl (from rarft-prep to-openrlhf)")
        for path in dataset_files(spec or ""):
            # Evaluation prompts may come from another template (e.g. a baseline's); their rows must still be sound.
            found = validate_dataset(path, template if flag == "--data.prompt_dataset" else None, options.variant)
            problems += found[:MAX_LISTED]
            if len(found) > MAX_LISTED:
                problems.append(f"{path}: ... and {len(found) - MAX_LISTED} more problems")
    problems += validate_model(last_value(final, "--actor.model_name_or_path"), options.allow_hub)
    problems += validate_sbert(options.sbert_model, options.sbert_device, options.allow_hub)
    return options, final, worker_env(options), notices, problems


def command_line(argv: Sequence[str], env: dict[str, str]) -> str:
    """The equivalent shell command (worker variables as a prefix)."""
    prefix = [f"{name}={shlex.quote(value)}" for name, value in env.items()]
    return " ".join([*prefix, "python", "-m", OPENRLHF_MODULE, *map(shlex.quote, argv)])


def _openrlhf_check(argv: Sequence[str]) -> list[str]:
    """Problems OpenRLHF's own argument handling finds in the final command (it must import)."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            openrlhf_arguments(argv)
    except ImportError as error:
        return [f"OpenRLHF's argument parser cannot be loaded here ({error}): {INSTALL_HINT}, or on a CPU "
                "machine bash scripts/setup_env.sh (OpenRLHF without its GPU-only modules)"]
    except SystemExit:
        return ["OpenRLHF's parser rejected the command (message above)"]
    except AssertionError as error:
        return [f"OpenRLHF refused the arguments: {error}"]
    except Exception as error:  # its post-parse fix-ups fail on some combinations (e.g. gae without a model)
        return [f"OpenRLHF failed on the arguments: {type(error).__name__}: {error}"]
    return []


def missing_training_stack() -> list[str]:
    """The modules of TRAINING_STACK that cannot be found (a cheap look-up: nothing is imported)."""
    missing = []
    for name in TRAINING_STACK:
        try:
            found = importlib.util.find_spec(name) is not None
        except ValueError:  # in sys.modules without a spec: imported by other means
            found = True
        if not found:
            missing.append(name)
    return missing


@entry_point("rarft-train")
def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    options, _ = build_parser().parse_known_args(argv)
    if not options.dry_run:
        missing = missing_training_stack()
        if missing:  # before any check: they take a while, and the launch would fail after them anyway
            print(f"rarft-train: error: the training stack is not installed here (missing: {', '.join(missing)}): "
                  f"{INSTALL_HINT}; --rarft.dry_run checks a command without it", file=sys.stderr)
            return 2
    try:
        options, final, env, notices, problems = prepare(argv)
    except LaunchError as error:
        print(f"rarft-train: error: {error}", file=sys.stderr)
        return 2
    for notice in notices:
        print(f"rarft-train: {notice}", file=sys.stderr)
    if options.dry_run and not problems:
        problems = _openrlhf_check(final)
    if problems:
        print(f"rarft-train: {len(problems)} problem(s), nothing started:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    if options.dry_run:
        print(command_line(final, env))
        return 0
    run_openrlhf(final, env)
    completed = complete_saved_processors(last_value(final, "--actor.model_name_or_path"), saved_model_dirs(final))
    for directory in completed:
        print(f"rarft-train: {directory}: processor files added from the base model (OpenRLHF saves only the "
              "tokenizer)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
