"""The checkpoint `rarft-eval infer` runs: found, complete and fingerprinted before anything loads.

A checkpoint directory needs `config.json` (with a `model_type`), its weights (one file, or an
index and every shard it lists), tokenizer files, a chat template and the processor's
configuration (`preprocessor_config.json`, or transformers 5's `processor_config.json` with an
`image_processor`). What is missing is said in one line naming the directory.

A checkpoint written by OpenRLHF's `--ckpt.save_hf` for Qwen2.5-VL holds the model and its
tokenizer but no processor configuration: `--processor BASE` takes the processor files (and a
chat template, where the checkpoint has none) from the base model's directory. The backends then
load an overlay directory (`overlay`): symbolic links to every file of the checkpoint plus the
base model's processor files the checkpoint lacks, so transformers and vLLM both see one complete
checkpoint whose weights and tokenizer are the trained ones.

`--model` may also name a model on the Hugging Face hub ("Qwen/Qwen2.5-VL-7B-Instruct"); it is
taken from the local hub cache, or downloaded unless HF_HUB_OFFLINE is set.

The fingerprint (`fingerprint`) identifies a checkpoint's content without reading every weight:
SHA-256 over config.json, the weights index, and each weight file's name, size and three 64 KiB
blocks (start, middle, end). Two checkpoints of one training run differ in every block, so a
checkpoint overwritten in place gets a new fingerprint; a full hash of a 7B model's 15 GB would
take minutes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rarft_plugin.errors import DataError

__all__ = [
    "CHAT_TEMPLATE_FILES",
    "PROCESSOR_FILES",
    "TOKENIZER_FILES",
    "WEIGHT_FILES",
    "WEIGHT_INDEXES",
    "Checkpoint",
    "fingerprint",
    "has_chat_template",
    "has_processor",
    "local_directory",
    "model_problems",
    "overlay",
    "resolve_checkpoint",
]

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")
CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json", "video_preprocessor_config.json")
_HUB_NAME = re.compile(r"^[\w.-]+/[\w.-]+$")
_BLOCK = 1 << 16


@dataclass(frozen=True)
class Checkpoint:
    model: Path  # the checkpoint directory: config, weights, tokenizer
    processor: Path | None  # where the processor files come from when the checkpoint has none (--processor)
    fingerprint: str


def local_directory(name: str, flag: str) -> Path:
    """`name` as a local directory: itself, or a hub model from the cache (downloaded unless offline)."""
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise DataError(f"{flag} {name}: not a directory (give the checkpoint directory)")
        return path.resolve()
    if not _HUB_NAME.match(name):
        raise DataError(f"{flag} {name}: no such directory")
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    try:
        return Path(snapshot_download(name, local_files_only=True))
    except Exception:  # noqa: BLE001 - any miss means: not in the cache
        if offline:
            raise DataError(
                f"{flag} {name}: no such directory, and not in the local hub cache (HF_HUB_OFFLINE is "
                "set, so the hub is not asked); give a checkpoint directory"
            ) from None
    try:
        return Path(snapshot_download(name))
    except Exception as error:  # noqa: BLE001 - network, authentication, unknown repository
        raise DataError(
            f"{flag} {name}: no such directory, and the hub could not provide it "
            f"({type(error).__name__}); give a checkpoint directory"
        ) from None


def _json_file(path: Path) -> tuple[dict | None, str | None]:
    """(content, None) or (None, what is wrong with it)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        return None, f"{path.name} is empty"
    try:
        content = json.loads(text)
    except ValueError as error:
        return None, f"{path.name} is not valid JSON ({error})"
    if not isinstance(content, dict):
        return None, f"{path.name} is not a JSON object"
    return content, None


def has_processor(directory: Path) -> bool:
    """A processor configuration transformers can load (image processor included)."""
    if (directory / "preprocessor_config.json").is_file():
        return True
    combined = directory / "processor_config.json"
    if combined.is_file():
        content, _ = _json_file(combined)
        return bool(content) and "image_processor" in content
    return False


def has_chat_template(directory: Path) -> bool:
    if any((directory / name).is_file() for name in CHAT_TEMPLATE_FILES):
        return True
    config = directory / "tokenizer_config.json"
    if config.is_file():
        content, _ = _json_file(config)
        return bool(content) and bool(content.get("chat_template"))
    return False


def model_problems(directory: Path) -> list[str]:
    """What a checkpoint directory lacks for inference, processor aside (empty when complete)."""
    problems = []
    config = directory / "config.json"
    if not config.is_file():
        problems.append("no config.json")
    else:
        content, problem = _json_file(config)
        if problem:
            problems.append(problem)
        elif not content.get("model_type"):
            problems.append("config.json has no model_type")
    index = next((directory / name for name in WEIGHT_INDEXES if (directory / name).is_file()), None)
    if index is not None:
        content, problem = _json_file(index)
        shards = sorted(set((content or {}).get("weight_map", {}).values()))
        missing = [shard for shard in shards if not (directory / shard).is_file()]
        if problem or not shards:
            problems.append(problem or f"{index.name} lists no weight file")
        elif missing:
            problems.append(
                f"{len(missing)} of the {len(shards)} weight files {index.name} lists (first: {missing[0]})"
            )
    elif not any((directory / name).is_file() for name in WEIGHT_FILES):
        problems.append(f"no weights ({' or '.join(WEIGHT_FILES + WEIGHT_INDEXES[:1])})")
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        problems.append(f"no tokenizer ({' or '.join(TOKENIZER_FILES)})")
    return problems


def resolve_checkpoint(model: str, processor: str | None = None) -> Checkpoint:
    """The checkpoint of `--model` (and `--processor`), checked; a DataError in one line otherwise."""
    directory = local_directory(model, "--model")
    problems = model_problems(directory)
    base = local_directory(processor, "--processor") if processor else None
    if base is not None and not has_processor(base):
        raise DataError(
            f"--processor {base}: no preprocessor_config.json (nor a processor_config.json with an "
            "image_processor); give the base model's directory"
        )
    if not has_chat_template(directory) and not (base is not None and has_chat_template(base)):
        problems.append(
            f"no chat template ({' or '.join(CHAT_TEMPLATE_FILES)}, or chat_template in tokenizer_config.json)"
        )
    if problems:
        raise DataError(f"--model {directory}: not a complete checkpoint: {'; '.join(problems)}")
    if base is None and not has_processor(directory):
        raise DataError(
            f"--model {directory}: no preprocessor_config.json (a checkpoint saved by OpenRLHF's "
            "--ckpt.save_hf has none): add --processor BASE_MODEL_DIR to take the processor from the "
            "base model"
        )
    return Checkpoint(
        model=directory,
        processor=base if base is not None and base != directory else None,
        fingerprint=fingerprint(directory),
    )


def fingerprint(directory: Path) -> str:
    """A content fingerprint of a checkpoint (module docstring)."""
    digest = hashlib.sha256()
    for name in ("config.json", *WEIGHT_INDEXES):
        if (directory / name).is_file():
            digest.update(name.encode() + b"\0" + (directory / name).read_bytes())
    weights = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in (".safetensors", ".bin"))
    for path in weights:
        size = path.stat().st_size
        digest.update(f"{path.name}\0{size}\0".encode())
        with open(path, "rb") as handle:
            for offset in sorted({0, max(0, size // 2 - _BLOCK // 2), max(0, size - _BLOCK)}):
                handle.seek(offset)
                digest.update(handle.read(_BLOCK))
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def overlay(checkpoint: Checkpoint) -> Iterator[Path]:
    """The directory the backends load: the checkpoint itself, or (with --processor) a temporary
    directory of links to its files plus the base model's processor files and chat template it lacks."""
    if checkpoint.processor is None:
        yield checkpoint.model
        return
    with tempfile.TemporaryDirectory(prefix="rarft-checkpoint-") as scratch:
        merged = Path(scratch)
        for path in checkpoint.model.iterdir():
            (merged / path.name).symlink_to(path.resolve())
        borrowed = PROCESSOR_FILES + (() if has_chat_template(checkpoint.model) else CHAT_TEMPLATE_FILES)
        for name in borrowed:
            source = checkpoint.processor / name
            if source.is_file() and not (merged / name).exists():
                (merged / name).symlink_to(source.resolve())
        yield merged
