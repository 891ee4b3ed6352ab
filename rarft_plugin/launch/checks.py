"""rarft-train's checks before Ray starts; each returns every problem it finds, as one line each.

- the training stack is installed (`missing_training_stack`: before anything else, as it is cheap);
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
from rarft_plugin.launch.wiring import Launch, last_value
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
    "clip_problems",
    "dataset_files",
    "length_limit",
    "length_problems",
    "missing_training_stack",
    "openrlhf_check",
    "preflight",
    "silent",
    "validate_dataset",
    "validate_model",
    "validate_sbert",
]

# What a real launch imports; a dry run needs only openrlhf and its parser's imports.
TRAINING_STACK = ("openrlhf", "ray", "deepspeed", "vllm", "flash_attn")
INSTALL_HINT = 'pip install -e ".[train]" on the GPU machine (docs/train.md)'
MAX_LISTED = 20  # problems listed per dataset file; the rest are counted
Say = Callable[[str], None]  # told what is checked, as each check starts


def silent(_: str) -> None:
    """A `Say` that says nothing (the default: library callers and tests)."""


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


def preflight(launch: Launch, say: Say = silent) -> list[str]:
    """Every problem of the launch's datasets, policy model and SentenceBERT model."""
    options, argv = launch.options, launch.argv
    problems = []
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
