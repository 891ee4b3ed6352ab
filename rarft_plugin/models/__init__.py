"""Base-model families: everything rarft does differently for one family of vision-language models.

A family is one module of this package that defines every name `ModelFamily` lists: how a clip is
sampled for the model (frame count, frame size, sampling defaults), how the model's processor and
vLLM take the frames (metadata, processor call, vLLM request per vLLM version, training tensors),
its chat-template markers and special tokens, and whatever the installed transformers needs to
compute the positions vLLM computes. rarft ships `qwen2_5_vl` (Qwen2.5-VL: the paper's base model
Time-R1-7B and every baseline).

The rest of rarft reaches a family only through this module:

- the rollout executor, from the processor OpenRLHF hands it: `family_of_processor`;
- `rarft-eval infer`, from the checkpoint's `config.json`: `family_of_model`;
- frame sampling and probing, given a family or else `default_family()`;
- `rarft-train`'s Ray worker setup hook: `use_reference_video_positions` (every family's).

To add a family: a module here defining every name of `ModelFamily` (it is found by its presence;
`tests/test_models.py` checks each module against the protocol), plus a recipe that trains it.
"""

from __future__ import annotations

import functools
import importlib
import json
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from rarft_plugin.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from transformers import ProcessorMixin

    from rarft_plugin.video import SampledVideo

__all__ = [
    "DEFAULT_MODEL_TYPE",
    "ChatMarkers",
    "ModelFamily",
    "UnknownModelFamily",
    "VllmVideoRequest",
    "default_family",
    "families",
    "family_for_model_type",
    "family_of_model",
    "family_of_processor",
    "use_reference_video_positions",
]

# Used where no model is at hand (probing clips while converting data, reading decoded text in the
# reward file): the paper's base model and all its baselines are Qwen2.5-VL.
DEFAULT_MODEL_TYPE = "qwen2_5_vl"


@dataclass(frozen=True)
class ChatMarkers:
    """Where a chat template's assistant turn starts and what ends it, as text."""

    assistant_start: str  # the last one in a decoded prompt+response starts the response
    turn_ends: tuple[str, ...]  # each ends a response; the first is the end-of-turn token


@dataclass(frozen=True)
class VllmVideoRequest:
    """What a vLLM prompt carries for one video: `multi_modal_data`, and `mm_processor_kwargs` where needed."""

    multi_modal_data: dict[str, object]
    mm_processor_kwargs: dict[str, object] | None = None

    def prompt_fields(self) -> dict[str, object]:
        """The fields to add to a vLLM prompt (a dict or `vllm.inputs.TokensPrompt`)."""
        if self.mm_processor_kwargs is None:
            return {"multi_modal_data": self.multi_modal_data}
        return {"multi_modal_data": self.multi_modal_data, "mm_processor_kwargs": self.mm_processor_kwargs}


@runtime_checkable
class ModelFamily(Protocol):
    """What a family module defines (module-level names; functions take no `self`)."""

    NAME: str  # shown in errors and part of cache keys
    MODEL_TYPES: tuple[str, ...]  # the `model_type` values of config.json it serves
    PROCESSOR_CLASSES: tuple[str, ...]  # class names of the HF processors it serves (the executor sees only those)
    FPS: float  # default frame sampling rate
    TOTAL_PIXELS: int  # default pixel budget of a clip
    MIN_PIXELS: int  # default lower bound of a frame's pixels
    CHAT: ChatMarkers

    def frame_indices(self, total_frames: int, video_fps: float, first: int, last: int, fps: float) -> np.ndarray:
        """Which frames of [first, last] to sample at about `fps` (int64 indices, increasing)."""
        ...

    def frame_size(
        self, height: int, width: int, frames: int, *, total_pixels: int, min_pixels: int
    ) -> tuple[int, int]:
        """(height, width) every one of `frames` sampled frames of a height x width video is resized to."""
        ...

    def video_token_count(self, frames: int, height: int, width: int) -> int:
        """Tokens the model's processor expands `frames` sampled frames of height x width (from `frame_size`) to."""
        ...

    def video_metadata(self, video: SampledVideo) -> dict[str, object]:
        """The sampled frames described as transformers' `VideoMetadata` fields."""
        ...

    def processor_video_inputs(self, videos: list[SampledVideo]) -> dict[str, object]:
        """The video keyword arguments of a processor call, built as vLLM builds them."""
        ...

    def process_video_prompt(
        self, processor: ProcessorMixin, prompt: str, video: SampledVideo
    ) -> tuple[list[int], dict[str, torch.Tensor]]:
        """Expanded prompt token ids, and the tensors OpenRLHF's trainer needs (`mm_train_inputs`)."""
        ...

    def video_token_id(self, processor: ProcessorMixin) -> int:
        """The video placeholder token (collapsed to one before vLLM, which expands it itself)."""
        ...

    def end_of_turn_ids(self, processor: ProcessorMixin) -> tuple[int, ...]:
        """Tokens that end a response, the one a cut response ends with first."""
        ...

    def forbidden_response_ids(self, processor: ProcessorMixin) -> frozenset[int]:
        """Special tokens a response must not hold (biased away at sampling)."""
        ...

    def check_vllm_version(self, version: str) -> None:
        """Raise RuntimeError for a vLLM release this family's video requests are not known to work with."""
        ...

    def vllm_video_request(self, video: SampledVideo, vllm_version: str) -> VllmVideoRequest:
        """The video part of a vLLM prompt, as `vllm_version` takes it."""
        ...

    def use_reference_video_positions(self) -> bool:
        """Make the installed transformers compute the video positions vLLM computes; True if it changed anything.

        Idempotent. Runs in every Ray worker of a training run and before transformers inference.
        """
        ...


class UnknownModelFamily(DataError):
    """A model or processor of a family rarft has no module for."""


@functools.cache
def families() -> tuple[ModelFamily, ...]:
    """Every family module of this package, imported; one that lacks a name of `ModelFamily` is an error."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if not isinstance(module, ModelFamily):
            missing = sorted(name for name in _protocol_names() if not hasattr(module, name))
            raise TypeError(f"model family {module.__name__} lacks {', '.join(missing)} (see rarft_plugin.models)")
        found.append(module)
    return tuple(found)


def family_for_model_type(model_type: str) -> ModelFamily:
    """The family serving config.json's `model_type`."""
    for family in families():
        if model_type in family.MODEL_TYPES:
            return family
    raise UnknownModelFamily(
        f"model_type {model_type!r} has no rarft model family (known: {_known('MODEL_TYPES')}); "
        "a new family is a module of rarft_plugin.models (docs/video.md)"
    )


def default_family() -> ModelFamily:
    return family_for_model_type(DEFAULT_MODEL_TYPE)


def family_of_model(directory: str | Path) -> ModelFamily:
    """The family of the model saved in `directory` (its config.json's `model_type`)."""
    config = Path(directory) / "config.json"
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as error:
        raise DataError(f"cannot read the model_type ({type(error).__name__}: {error})", source=str(config)) from None
    try:
        return family_for_model_type(str(model_type))
    except UnknownModelFamily as error:
        raise error.located(source=str(config)) from None


def family_of_processor(processor: ProcessorMixin) -> ModelFamily:
    """The family whose processor class `processor` is (or derives from)."""
    names = {cls.__name__ for cls in type(processor).__mro__}
    for family in families():
        if names.intersection(family.PROCESSOR_CLASSES):
            return family
    raise UnknownModelFamily(
        f"processor {type(processor).__name__} has no rarft model family (known: "
        f"{_known('PROCESSOR_CLASSES')}); a new family is a module of rarft_plugin.models"
    )


def use_reference_video_positions() -> bool:
    """Every family's `use_reference_video_positions`: `rarft-train`'s Ray worker setup hook.

    A worker does not know which model it will load, and each family changes only its own model
    classes, so all of them run.
    """
    changed = [family.use_reference_video_positions() for family in families()]  # every one, not up to the first
    return any(changed)


def _protocol_names() -> list[str]:
    return [name for name in {*ModelFamily.__annotations__, *vars(ModelFamily)} if not name.startswith("_")]


def _known(attribute: str) -> str:
    return ", ".join(value for family in families() for value in getattr(family, attribute))
