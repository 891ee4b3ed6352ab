"""rarft-train's checks before Ray starts; each returns every problem it finds, as one line each.

- the training stack is installed (`missing_training_stack`: before anything else, as it is cheap), with
  flash-attn's CUDA extension where the attention asks for it (`attention_problem`);
- each dataset file (`validate_dataset`): every line a sound prompt row (`rarft_plugin.prompt_row.row_problems`:
  a label the reward variant can score, one video item in the chat, an absolute video, a prompt built
  with the expected template) whose label holds text only and, in the training set, a span its video
  can hold (`rarft_plugin.schema.label_problems`: the rule every reader applies), every distinct
  clip decoded at its window's ends, in threads, and every prompt's length (chat tokens + the clip's
  video tokens, counted without decoding by the model's family: `LengthLimit`) plus
  --rollout.max_new_tokens within --data.max_len, which is also vLLM's max_model_len (a video prompt
  cannot be truncated: the executor would fail the rollout);
- the policy model (`validate_model`): a local directory whose config.json describes a
  vision-language model of a registered family (`rarft_plugin.models`; a hub name only with
  --rarft.allow_hub_models);
- the SentenceBERT model (`validate_sbert`): resolved as the workers resolve it, and loaded once;
- the placement (`placement_problems`): actor, reference and vLLM engines laid out on the GPUs as train_ppo_ray
  places them, and the batch sizes divided over them, by the rules of OpenRLHF 0.11.2 and DeepSpeed that would
  otherwise fail (or hang) only after Ray has started and the models have loaded (`Placement`);
- with --rarft.dry_run, OpenRLHF's own argument handling on the final command (`openrlhf_check`).

The checks take a while (clips decoded, SentenceBERT loaded, OpenRLHF imported): each says what it
checks as it starts, through `say` (rarft-train prints it on stderr and lists it again at the end).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rarft_plugin.cli import cpu_deepspeed
from rarft_plugin.clips import ClipInfo
from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import iter_jsonl
from rarft_plugin.launch.upstream import openrlhf_arguments
from rarft_plugin.launch.wiring import Launch, flag_values, last_value
from rarft_plugin.models import ModelFamily, family_of_model, family_of_processor, supported_text
from rarft_plugin.prompt_row import INPUT_KEY, LABEL_KEY, VIDEO_KEY, label_of, row_problems, video_of
from rarft_plugin.schema import label_problems
from rarft_plugin.similarity import resolve_model
from rarft_plugin.video import VideoSpec, probe_clips

if TYPE_CHECKING:
    from transformers import ProcessorMixin

__all__ = [
    "INSTALL_HINT",
    "Say",
    "TRAINING_STACK",
    "LengthLimit",
    "Placement",
    "attention_problem",
    "clip_problems",
    "dataset_files",
    "length_limit",
    "length_problems",
    "missing_training_stack",
    "openrlhf_check",
    "placement_problems",
    "preflight",
    "silent",
    "validate_dataset",
    "validate_model",
    "validate_sbert",
    "visible_gpus",
]

# What a real launch imports; a dry run needs only openrlhf and its parser's imports.
TRAINING_STACK = ("openrlhf", "ray", "deepspeed", "vllm", "flash_attn")
INSTALL_HINT = 'pip install -e ".[train]" on the GPU machine (docs/train.md)'
MAX_LISTED = 20  # problems listed per dataset file; the rest are counted
Say = Callable[[str], None]  # told what is checked, as each check starts


def silent(_: str) -> None:
    """A `Say` that says nothing (the default: library callers and tests)."""


def _findable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ValueError:  # in sys.modules without a spec: imported by other means
        return True


def missing_training_stack() -> list[str]:
    """The modules of TRAINING_STACK that cannot be found (a cheap look-up: nothing is imported)."""
    return [name for name in TRAINING_STACK if not _findable(name)]


# OpenRLHF 0.11's --ds.attn_implementation default, which --ds.packing_samples also forces
FLASH_ATTENTION_2 = "flash_attention_2"
FLASH_EXTENSION = "flash_attn_2_cuda"  # the compiled module a flash-attn 2 install puts beside flash_attn


def attention_problem(argv: Sequence[str], findable: Callable[[str], bool] = _findable) -> str | None:
    """Why the actor cannot load with the command's attention, or None. flash_attention_2 needs flash-attn's
    CUDA extension; an install without it (a CPU wheel, a stub) imports `flash_attn` but fails inside the actors'
    model load, minutes after Ray started (seen on an H100 on 2026-12-06: 271 s in)."""
    wanted = last_value(argv, "--ds.attn_implementation") or FLASH_ATTENTION_2
    if "--ds.packing_samples" in argv:
        wanted = FLASH_ATTENTION_2
    if wanted != FLASH_ATTENTION_2 or findable(FLASH_EXTENSION):
        return None
    return (
        f"--ds.attn_implementation {FLASH_ATTENTION_2} (OpenRLHF's default, the recipes' and --ds.packing_samples') "
        f"needs flash-attn's CUDA extension, and {FLASH_EXTENSION} cannot be found here: install flash-attn built "
        "for this torch on the GPU machine (docs/train.md), or pass --ds.attn_implementation sdpa (slower: "
        "Qwen2.5-VL's vision tower then attends window by window)"
    )


def preflight(launch: Launch, say: Say = silent) -> list[str]:
    """Every problem of the launch's datasets, policy model and SentenceBERT model."""
    options, argv = launch.options, launch.argv
    gpus = visible_gpus()
    say(
        "the placement of actor, reference and vLLM engines and the batch sizes over them"
        + (f" ({gpus} GPUs visible here)" if gpus else "")
    )
    problems = placement_problems(argv, gpus)
    limit = length_limit(argv)
    for flag in ("--data.prompt_dataset", "--eval.dataset"):
        spec = last_value(argv, flag)
        if flag == "--data.prompt_dataset" and not spec:
            problems.append("no dataset: pass --data.prompt_dataset FILE.jsonl (from rarft-prep to-openrlhf)")
        for path in dataset_files(spec or ""):
            # Evaluation prompts may come from another template (e.g. a baseline's); their rows must still be sound.
            training = flag == "--data.prompt_dataset"
            template = options.template if training else None
            found = validate_dataset(path, template, options.rewards.variant, training=training, limit=limit, say=say)
            problems += found[:MAX_LISTED]
            if len(found) > MAX_LISTED:
                problems.append(f"{path}: ... and {len(found) - MAX_LISTED} more problems")
    model = last_value(argv, "--actor.model_name_or_path")
    say(f"the policy model {model}: a local vision-language model directory")
    problems += validate_model(model, options.allow_hub)
    say(f"the SentenceBERT model of the rewards ({options.rewards.sbert_model or 'the packaged default'}): loaded once")
    problems += validate_sbert(options.rewards.sbert_model, options.rewards.sbert_device, options.allow_hub)
    return problems


def dataset_files(spec: str) -> list[str]:
    """The files of a --data.prompt_dataset value ('a.jsonl,b.jsonl', each optionally 'path@dir')."""
    return [part.split("@")[0].strip() for part in spec.split(",") if part.strip()]


def validate_dataset(
    path: str,
    template: str | None,
    variant: str | None = None,
    *,
    training: bool = True,
    workers: int = 8,
    limit: LengthLimit | None = None,
    say: Say = silent,
) -> list[str]:
    """Every problem of one dataset file, as 'file: record: field: message' lines.

    Rows are checked one by one (`row_problems`, and `label_problems`: the span rule only where
    `training`, since the paper's evaluation files keep their known defects); then every distinct
    clip the rows use is probed once (`rarft_plugin.video.probe_clips`, in `workers` threads), each
    failure reported with the first line that uses the clip; with `limit`, the clips are sampled as its
    model's family samples them and the prompts that do not fit it are reported (`length_problems`).
    """
    file = Path(path)
    if file.suffix != ".jsonl":
        return [f"{path}: expected the JSONL written by rarft-prep to-openrlhf (a .jsonl file)"]
    say(f"the dataset {path}: every row (JSON, label, one video item, the {template or 'any'} template)")
    try:
        rows = list(iter_jsonl(file))
    except DataError as error:  # not found, a directory, not text
        return [str(error)]
    problems: list[str] = []
    clips: dict[VideoSpec, int] = {}  # clip -> first line using it
    prompts: list[tuple[int, list, VideoSpec]] = []  # (line, chat messages, clip) of the sound rows
    for number, row in rows:
        where = {"source": path, "record": f"line {number}"}
        if isinstance(row, DataError):
            problems.append(str(row))
            continue
        found = row_problems(row, template, variant)
        if LABEL_KEY in row and not any(str(error.field).startswith(LABEL_KEY) for error in found):
            found += [
                DataError(error.message, field=f"{LABEL_KEY}.{error.field}")
                for error in label_problems(label_of(row[LABEL_KEY]), spans=training)
            ]
        problems += [str(error.located(**where)) for error in found]
        if VIDEO_KEY in row and not any(error.field == VIDEO_KEY for error in found):
            clips.setdefault(video_of(row[VIDEO_KEY]), number)
            if not found:
                prompts.append((number, row[INPUT_KEY], video_of(row[VIDEO_KEY])))
    if not rows:
        problems.append(f"{path}: no prompts")
    say(f"the {len(clips)} distinct clip(s) of its {len(rows)} row(s): each decoded at its window's ends")
    family = limit.family if limit is not None else None
    clip_found, infos = _probe_clips(clips, path, family=family, workers=workers)
    problems += clip_found
    if limit is not None and not clip_found:
        problems += length_problems(prompts, infos, limit, path)
    return problems


def clip_problems(clips: dict[VideoSpec, int], source: str, *, workers: int = 8) -> list[str]:
    """Missing, empty and undecodable clips, each with the first line that uses it (files checked once)."""
    return _probe_clips(clips, source, workers=workers)[0]


def _probe_clips(
    clips: dict[VideoSpec, int], source: str, *, family: ModelFamily | None = None, workers: int = 8
) -> tuple[list[str], dict[VideoSpec, ClipInfo]]:
    """`clip_problems`, and what probing learnt of every clip that opens (sampled as `family` samples)."""
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
            problems.append(str(DataError(present[spec.path], source=source, record=f"line {number}", field=VIDEO_KEY)))
    infos, failed = probe_clips(probed, family=family, workers=workers)
    for spec, error in failed.items():
        problems.append(
            str(
                DataError(
                    error.message, source=source, record=f"line {probed[spec]}", field=f"{VIDEO_KEY} ({spec.path})"
                )
            )
        )
    return problems, infos


@dataclass(frozen=True)
class LengthLimit:
    """What every prompt must fit: `--data.max_len` (also vLLM's max_model_len), with `--rollout.max_new_tokens`
    new tokens (None: each rollout takes what is left, at least one token); prompts counted with the model's
    processor and the family the executor takes for it."""

    max_len: int
    max_new_tokens: int | None
    processor: ProcessorMixin
    family: ModelFamily

    def text_tokens(self, messages: list) -> int:
        """A chat's tokens as the processor renders it (chat template, generation prompt), its video placeholders
        left out."""
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = getattr(self.processor, "tokenizer", self.processor)(text, add_special_tokens=False)["input_ids"]
        return len(ids) - ids.count(self.processor.video_token_id)

    def video_tokens(self, clip: ClipInfo) -> int:
        """What the placeholder of a prompt on `clip` (probed with `family`) expands to."""
        return self.family.video_token_count(self.processor, clip)


def length_limit(argv: Sequence[str]) -> LengthLimit | None:
    """The `LengthLimit` of a command line, with the processor of its --actor.model_name_or_path; None when the
    processor does not load or has no family (`validate_model` says why)."""
    model = last_value(argv, "--actor.model_name_or_path")
    try:
        max_len = int(last_value(argv, "--data.max_len") or OPENRLHF_MAX_LEN)
        new = int(last_value(argv, "--rollout.max_new_tokens") or 0) or None
    except ValueError:  # OpenRLHF's parser names the flag
        return None
    if not model or not Path(os.path.expanduser(model)).is_dir():
        return None
    try:
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(os.path.expanduser(model))
        family = family_of_processor(processor)  # the executor's family: it samples the clips
    except Exception:  # noqa: BLE001 -- whatever the loader raises, validate_model reports the model's problem
        return None
    return LengthLimit(max_len, new, processor, family)


# train_ppo_ray's default --data.max_len (OpenRLHF 0.11.2)
OPENRLHF_MAX_LEN = 2048


def length_problems(
    prompts: Sequence[tuple[int, list, VideoSpec]], infos: dict[VideoSpec, ClipInfo], limit: LengthLimit, source: str
) -> list[str]:
    """One problem naming how many prompts (line, chat, clip) do not fit `limit`, the longest, and the flag to change.

    A prompt's length is its chat's tokens plus its clip's video tokens (`LengthLimit.video_tokens`: from the
    sampled frames' count, size and times, without decoding the clip), exactly what the executor's processor call
    expands it to.
    """
    new = limit.max_new_tokens or 1
    lengths, video = [], {}
    for number, messages, spec in prompts:
        if spec in infos:
            text = limit.text_tokens(messages)
            if spec not in video:
                video[spec] = limit.video_tokens(infos[spec])
            lengths.append((text + video[spec], text, number, spec))
    over = [entry for entry in lengths if entry[0] + new > limit.max_len]
    if not over:
        return []
    total, text, number, spec = max(over)
    needed = total + new
    shown = f"--rollout.max_new_tokens {limit.max_new_tokens}" if limit.max_new_tokens else "1 new token at least"
    return [
        str(
            DataError(
                f"{len(over)} of {len(lengths)} prompts do not fit --data.max_len {limit.max_len} with {shown}; the "
                f"longest ({spec.path}) is {total} tokens ({total - text} video + {text} text) + {new} = {needed}: "
                f"raise --data.max_len to {needed} (vLLM's max_model_len follows it), lower "
                "--rollout.max_new_tokens, or cut the clip's window (video_start / video_end)",
                source=source,
                record=f"line {number}",
                field="input",
            )
        )
    ]


# ---------------------------------------------------------------- placement on the GPUs
# train_ppo_ray asserts its layout inside `train()`, after Ray has started, and DeepSpeed checks the batch sizes when
# each model loads; a batch that does not divide over the ranks is not checked at all and hangs ZeRO-3's collectives.
# The rules below are OpenRLHF 0.11.2's and DeepSpeed's (each cites where), checked before anything starts.


@dataclass(frozen=True)
class Placement:
    """What train_ppo_ray places on the GPUs and the batch sizes it divides over them, read from a command line with
    the parser's defaults (`Placement.of`; tests/test_train.py compares the defaults with OpenRLHF's parser)."""

    actor_nodes: int = 1
    actor_gpus: int = 8  # per node
    ref_nodes: int = 1
    ref_gpus: int = 8
    engines: int = 0  # --vllm.num_engines unset: none
    vllm_tp: int = 1
    colocate_all: bool = False
    colocate_actor_ref: bool = False
    async_train: bool = False
    reference: bool = True  # a reference model: --algo.kl.init_coef > 0 (OpenRLHF's default 0.01)
    rollout_batch: int = 1024  # prompts a step
    samples_per_prompt: int = 1
    rollout_micro: int = 1
    train_batch: int = 128
    train_micro: int = 1
    ring: int = 1
    ds_tp: int = 1
    dynamic_batch: bool = False

    @classmethod
    def of(cls, argv: Sequence[str]) -> Placement | None:
        """The placement of a command line; None when a value does not parse (OpenRLHF's parser names it)."""
        present = {name for name, *_ in flag_values(argv)}
        try:
            numbers = {field: int(value) for field, flag in _NUMBERS.items() if (value := last_value(argv, flag))}
            kl = last_value(argv, "--algo.kl.init_coef")
            reference = float(kl) > 0 if kl is not None else cls.reference
        except ValueError:
            return None
        return cls(**numbers, **{field: flag in present for field, flag in _SWITCHES.items()}, reference=reference)

    @property
    def actor_ranks(self) -> int:
        return self.actor_nodes * self.actor_gpus

    @property
    def ref_ranks(self) -> int:
        return self.ref_nodes * self.ref_gpus

    @property
    def hybrid(self) -> bool:
        """The vLLM engines share the actor's GPUs (colocate_all; async training colocates only DeepSpeed's models)."""
        return self.colocate_all and not self.async_train

    def gpus_needed(self) -> tuple[int, str] | None:
        """(GPUs, what takes them) on the one node every model is on; None for several nodes."""
        if max(self.actor_nodes, self.ref_nodes) > 1:
            return None
        vllm = f"vLLM {self.engines} x {self.vllm_tp} (--vllm.num_engines x --vllm.tensor_parallel_size)"
        if self.hybrid:
            return (
                self.actor_gpus,
                f"actor, reference and {vllm} on the actor's {self.actor_gpus} (--train.colocate_all)",
            )
        parts = [(self.actor_gpus, f"actor {self.actor_gpus} (--actor.num_gpus_per_node)")]
        if self.reference and not (self.colocate_all or self.colocate_actor_ref):
            parts.append((self.ref_gpus, f"reference {self.ref_gpus} (--ref.num_gpus_per_node)"))
        if self.engines:
            parts.append((self.engines * self.vllm_tp, vllm))
        return sum(count for count, _ in parts), " + ".join(text for _, text in parts)


_NUMBERS = {
    "actor_nodes": "--actor.num_nodes",
    "actor_gpus": "--actor.num_gpus_per_node",
    "ref_nodes": "--ref.num_nodes",
    "ref_gpus": "--ref.num_gpus_per_node",
    "engines": "--vllm.num_engines",
    "vllm_tp": "--vllm.tensor_parallel_size",
    "rollout_batch": "--rollout.batch_size",
    "samples_per_prompt": "--rollout.n_samples_per_prompt",
    "rollout_micro": "--rollout.micro_batch_size",
    "train_batch": "--train.batch_size",
    "train_micro": "--train.micro_batch_size",
    "ring": "--ds.ring_attn_size",
    "ds_tp": "--ds.tensor_parallel_size",
}
_SWITCHES = {
    "colocate_all": "--train.colocate_all",
    "colocate_actor_ref": "--train.colocate_actor_ref",
    "async_train": "--train.async_enable",
    "dynamic_batch": "--train.dynamic_batch_enable",
}


def placement_problems(argv: Sequence[str], gpus: int | None = None) -> list[str]:
    """The layout and batch problems of a command line, one line each naming the flag to change; with `gpus` (those
    a Ray cluster started on this node would have), also a layout that needs more of them."""
    place = Placement.of(argv)
    if place is None:
        return []
    problems = []
    if place.engines < 1:
        # the executor runs inside the engines; without one, generation has no engine to send prompts to
        problems.append(
            f"--vllm.num_engines {place.engines or '(unset)'}: rarft's video executor (--train.agent_func_path) runs "
            "inside vLLM's engines: use --vllm.num_engines 1 or more"
        )
    elif place.hybrid and place.engines * place.vllm_tp != place.actor_ranks:
        # train_ppo_ray.py:train asserts actor nodes x GPUs == engines x TP under colocate_all, once Ray has started
        fix = (
            f"use --vllm.num_engines {place.actor_ranks // place.vllm_tp}"
            if place.actor_ranks % place.vllm_tp == 0
            else f"use a --vllm.tensor_parallel_size that divides {place.actor_ranks}"
        )
        problems.append(
            f"--vllm.num_engines {place.engines} x --vllm.tensor_parallel_size {place.vllm_tp} = "
            f"{place.engines * place.vllm_tp} vLLM GPUs, but --train.colocate_all puts the engines on the actor's "
            f"{place.actor_ranks} GPUs (--actor.num_nodes x --actor.num_gpus_per_node), one engine GPU each: {fix}"
        )
    if (
        place.reference
        and (place.colocate_all or place.colocate_actor_ref)
        and (place.ref_nodes, place.ref_gpus) != (place.actor_nodes, place.actor_gpus)
    ):
        # train_ppo_ray.py:train asserts it: the reference's ranks go into the actor's placement group
        problems.append(
            f"--ref.num_gpus_per_node {place.ref_gpus} (--ref.num_nodes {place.ref_nodes}) differs from the actor's "
            f"{place.actor_gpus} ({place.actor_nodes}): colocated (--train.colocate_all or --train.colocate_actor_ref) "
            f"with a KL term (--algo.kl.init_coef > 0) each reference rank shares an actor rank's GPU: use "
            f"--ref.num_gpus_per_node {place.actor_gpus} --ref.num_nodes {place.actor_nodes}"
        )
    problems += _batch_problems(place)
    needed = place.gpus_needed()
    if gpus and needed and needed[0] > gpus:
        problems.append(
            f"the layout needs {needed[0]} GPUs on this node ({needed[1]}) and {gpus} are visible: Ray would wait for "
            "the others forever; lower those flags (on a Ray cluster of several nodes, set RAY_ADDRESS: the check "
            "then leaves the placement to Ray)"
        )
    return problems


def _batch_problems(place: Placement) -> list[str]:
    """The batch sizes against each DeepSpeed group: the actor (unless batches are dynamic) and the reference."""
    groups: dict[int, list[str]] = {}  # ranks -> the groups with that many
    groups.setdefault(place.actor_ranks, []).append("actor")
    if place.reference:
        groups.setdefault(place.ref_ranks, []).append("reference")
    problems = []
    sharded = place.ring * place.ds_tp  # ranks that hold one data-parallel replica between them
    samples = place.rollout_batch * place.samples_per_prompt
    micro_batches = -(-samples // place.rollout_micro)
    for ranks, names in groups.items():
        who, replicas = " and ".join(names), max(1, ranks // sharded)
        # DeepSpeed: train_batch_size = micro x accumulation x world, the accumulation being OpenRLHF's integer
        # quotient (utils/deepspeed/deepspeed.py:DeepspeedStrategy.setup_distributed, get_ds_train_config and
        # get_ds_eval_config; deepspeed runtime/config.py:DeepSpeedConfig._batch_assertion). Dynamic batches leave
        # the actor's train config without it; the reference's eval config keeps it.
        unit = place.train_micro * ranks
        checked = [name for name in names if name != "actor" or not place.dynamic_batch]
        if checked and (place.train_batch * sharded % unit or place.train_batch * sharded < unit):
            problems.append(
                f"--train.batch_size {place.train_batch} is not a multiple of --train.micro_batch_size "
                f"{place.train_micro} x the {' and '.join(checked)}'s {replicas} data-parallel ranks: DeepSpeed "
                "refuses it at start-up (train batch = micro batch x accumulation steps x ranks)"
            )
        # experience_maker.py:split_rollout_samples cuts the step's samples into micro-batches of
        # --rollout.micro_batch_size, launcher.py:RayActorGroup.async_run_method_batch hands each data-parallel rank
        # ceil(micro-batches / ranks) of them: unless they divide, the last ranks get fewer or none, and their ZeRO-3
        # forward passes and the training steps' collectives stop matching the others' (a hang). train_ppo_ray asserts
        # only that there are at least as many as ranks. Dynamic batches are balanced over the ranks instead.
        if not place.dynamic_batch and micro_batches % replicas:
            problems.append(
                f"--rollout.batch_size {place.rollout_batch} x --rollout.n_samples_per_prompt "
                f"{place.samples_per_prompt} = {samples} samples a step, {micro_batches} micro-batches of "
                f"--rollout.micro_batch_size {place.rollout_micro}, do not divide over the {who}'s "
                f"{replicas} data-parallel ranks: OpenRLHF gives each rank {-(-micro_batches // replicas)} and the "
                "last ones fewer or none, whose collectives then hang; use a rollout batch whose micro-batches are a "
                "multiple of the ranks"
            )
    return problems


def visible_gpus() -> int | None:
    """The GPUs a Ray cluster that train_ppo_ray starts here would have; None where Ray joins a cluster (RAY_ADDRESS)
    or no GPU is visible (a machine checking a command for another)."""
    if os.environ.get("RAY_ADDRESS"):
        return None
    try:
        import torch

        return torch.cuda.device_count() or None  # counted without initialising CUDA in this process
    except Exception:  # noqa: BLE001 -- no usable torch: nothing to compare with
        return None


def _looks_like_path(name: str) -> bool:
    """A filesystem path rather than a hub name ('org/name')."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1


def validate_model(name: str | None, allow_hub: bool) -> list[str]:
    """The policy model must be a local directory whose config.json describes a vision-language model of a
    registered family (an unsupported one is refused naming the supported families)."""
    if not name:
        return [f"no model: pass --actor.model_name_or_path DIR (a local checkpoint of {supported_text()})"]
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
        return [
            f"{config}: model_type {kind!r} has no vision_config; the video executor needs a "
            f"vision-language model of a supported family ({supported_text()})"
        ]
    try:
        family_of_model(directory)
    except DataError as error:  # a model family rarft cannot feed video: refused here, not inside a Ray actor
        return [str(error)]
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
            problems.append(
                f"--rarft.sbert_model {resolved}: not a local directory (a hub name downloads on every "
                "node: add --rarft.allow_hub_models)"
            )
        return problems
    try:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        SentenceTransformer(resolved, device="cpu").encode(["a person opens a door"])
    except Exception as error:  # whatever the loader raises, the user needs the path and the reason
        problems.append(f"SentenceBERT model {resolved}: cannot load it ({type(error).__name__}: {error})")
    return problems


def openrlhf_check(argv: Sequence[str]) -> list[str]:
    """Problems OpenRLHF's own argument handling finds in the final command (it must import)."""
    cpu_deepspeed()  # the parser's imports load deepspeed
    try:
        with contextlib.redirect_stdout(sys.stderr):
            openrlhf_arguments(argv)
    except ImportError as error:
        return [
            f"OpenRLHF's argument parser cannot be loaded here ({error}): {INSTALL_HINT}, or on a CPU "
            "machine bash scripts/setup_env.sh (OpenRLHF without its GPU-only modules)"
        ]
    except SystemExit:
        return ["OpenRLHF's parser rejected the command (message above)"]
    except AssertionError as error:
        return [f"OpenRLHF refused the arguments: {error}"]
    except Exception as error:  # its post-parse fix-ups fail on some combinations (e.g. gae without a model)
        return [f"OpenRLHF failed on the arguments: {type(error).__name__}: {error}"]
    return []
