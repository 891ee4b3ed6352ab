"""Base-model families: everything rarft does differently for one family of vision-language models.

A family is a subclass of `ModelFamily` registered with `@register`: how a clip is sampled for the
model (frame count, frame size, sampling defaults) and the prompt tokens it expands to, how the model's
processor and vLLM take the frames (metadata, processor call, vLLM request per vLLM version, training
tensors), its chat-template markers and special tokens, and whatever the installed transformers needs
to compute the positions vLLM computes. Families are classes, so one family can extend another and
override only what differs. rarft ships `qwen2_5_vl` (Qwen2.5-VL: the paper's base model Time-R1-7B and every baseline),
`qwen3_vl` (Qwen3-VL) and `qwen3_5` (Qwen3.5, Qwen3-VL's video path with another language model).

The registry is explicit: `FAMILY_MODULES` names the modules of this package that define families
(each registers its classes when imported); any other module here is a helper and is never taken
for a family. `register` refuses a class that lacks a name of the interface, and one whose name,
model types or processor classes another family already claims.

The rest of rarft reaches a family only through this module:

- the rollout executor, from the processor OpenRLHF hands it: `family_of_processor`;
- `rarft-eval infer` and `rarft-train`'s pre-flight, from the checkpoint's `config.json`: `family_of_model`;
- frame sampling and probing, given a family or else `default_family()`;
- the OpenRLHF reward file, from the worker's `RARFT_MODEL_FAMILY` (which `rarft-train` sets from the
  model's config.json): `family_from_env`;
- `rarft-train`'s Ray worker setup hook: `use_reference_video_positions` (every family's).

To add a family: a module here with a registered `ModelFamily` subclass, its name in `FAMILY_MODULES`,
and a recipe that trains it (docs/architecture.md).
"""

from __future__ import annotations

import abc
import importlib
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypeVar

from rarft_plugin.errors import DataError
from rarft_plugin.parsing import ChatMarkers

if TYPE_CHECKING:
    import numpy as np
    import torch
    from transformers import ProcessorMixin

    from rarft_plugin.clips import ClipInfo, SampledVideo

__all__ = [
    "DEFAULT_MODEL_TYPE",
    "FAMILY_ENV",
    "FAMILY_MODULES",
    "FamilyRegistry",
    "ModelFamily",
    "UnknownModelFamily",
    "VllmVideoRequest",
    "default_family",
    "families",
    "family_env",
    "family_for_model_type",
    "family_from_env",
    "family_named",
    "family_of_model",
    "family_of_processor",
    "register",
    "supported_text",
    "use_reference_video_positions",
]

# Used where no model is at hand (probing clips while converting data, reading decoded text in the
# reward file without RARFT_MODEL_FAMILY): the paper's base model and all its baselines are Qwen2.5-VL.
DEFAULT_MODEL_TYPE = "qwen2_5_vl"
# The modules of this package that define families; the others are helpers.
FAMILY_MODULES = ("qwen2_5_vl", "qwen3_vl")
# The family's NAME in a Ray worker's environment (the OpenRLHF reward file reads it; rarft-train sets it).
FAMILY_ENV = "RARFT_MODEL_FAMILY"


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


class ModelFamily(abc.ABC):
    """One family of base models. Subclasses set the class attributes and implement every abstract method;
    `register` makes one instance of a subclass the family the registry hands out."""

    NAME: ClassVar[str]  # shown in errors, part of cache keys, the value of RARFT_MODEL_FAMILY
    MODEL_TYPES: ClassVar[tuple[str, ...]]  # the `model_type` values of config.json it serves
    PROCESSOR_CLASSES: ClassVar[tuple[str, ...]]  # HF processor class names it serves (the executor sees only those)
    FPS: ClassVar[float]  # default frame sampling rate
    TOTAL_PIXELS: ClassVar[int]  # default pixel budget of a clip
    MIN_PIXELS: ClassVar[int]  # default lower bound of a frame's pixels
    CHAT: ClassVar[ChatMarkers]

    ATTRIBUTES: ClassVar[tuple[str, ...]] = (  # the class attributes `register` requires (a base may add its own)
        "NAME",
        "MODEL_TYPES",
        "PROCESSOR_CLASSES",
        "FPS",
        "TOTAL_PIXELS",
        "MIN_PIXELS",
        "CHAT",
    )

    def __repr__(self) -> str:
        return f"<model family {self.NAME}>"

    @abc.abstractmethod
    def frame_indices(self, total_frames: int, video_fps: float, first: int, last: int, fps: float) -> np.ndarray:
        """Which frames of [first, last] to sample at about `fps` (int64 indices, increasing)."""

    @abc.abstractmethod
    def frame_size(
        self, height: int, width: int, frames: int, *, total_pixels: int, min_pixels: int
    ) -> tuple[int, int]:
        """(height, width) every one of `frames` sampled frames of a height x width video is resized to."""

    @abc.abstractmethod
    def video_token_count(self, processor: ProcessorMixin, clip: ClipInfo) -> int:
        """The tokens `processor` expands a prompt's video placeholder to for the frames `clip` describes (a probed
        clip: `rarft_plugin.video.probe_clip` with this family), exactly as `process_video_prompt` does on the
        decoded frames: a prompt's length without decoding the clip (`rarft-train`'s pre-flight)."""

    @abc.abstractmethod
    def video_metadata(self, video: SampledVideo) -> dict[str, object]:
        """The sampled frames described as transformers' `VideoMetadata` fields."""

    @abc.abstractmethod
    def processor_video_inputs(self, videos: list[SampledVideo]) -> dict[str, object]:
        """The video keyword arguments of a processor call, built as vLLM builds them."""

    @abc.abstractmethod
    def process_video_prompt(
        self, processor: ProcessorMixin, prompt: str, video: SampledVideo
    ) -> tuple[list[int], dict[str, torch.Tensor]]:
        """Expanded prompt token ids, and the tensors OpenRLHF's trainer needs (`mm_train_inputs`)."""

    @abc.abstractmethod
    def vllm_prompt_ids(self, processor: ProcessorMixin, prompt_ids: list[int]) -> list[int]:
        """The prompt vLLM gets: `process_video_prompt`'s expanded ids with each video collapsed to the
        placeholder vLLM expands itself (to exactly these ids again)."""

    @abc.abstractmethod
    def end_of_turn_ids(self, processor: ProcessorMixin) -> tuple[int, ...]:
        """Tokens that end a response, the one a cut response ends with first."""

    @abc.abstractmethod
    def forbidden_response_ids(self, processor: ProcessorMixin) -> frozenset[int]:
        """Special tokens a response must not hold (biased away at sampling)."""

    @abc.abstractmethod
    def check_vllm_version(self, version: str) -> None:
        """Raise RuntimeError for a vLLM release this family's video requests are not known to work with."""

    @abc.abstractmethod
    def vllm_video_request(self, video: SampledVideo, vllm_version: str) -> VllmVideoRequest:
        """The video part of a vLLM prompt, as `vllm_version` takes it."""

    @abc.abstractmethod
    def use_reference_video_positions(self) -> bool:
        """Make the installed transformers compute the video positions vLLM computes; True if it changed anything.

        Idempotent. Runs in every Ray worker of a training run and before transformers inference.
        """


class UnknownModelFamily(DataError):
    """A model or processor of a family rarft has no class for."""


Family = TypeVar("Family", bound=type[ModelFamily])


class FamilyRegistry:
    """Families by name, each registered once; `modules` (imported on first use) register the shipped ones."""

    def __init__(self, package: str | None = None, modules: tuple[str, ...] = ()):
        self.package, self.modules = package, modules
        self._families: dict[str, ModelFamily] = {}
        self._lock = threading.Lock()

    def register(self, cls: Family) -> Family:
        """Class decorator: one instance of `cls` becomes a family. Refuses an incomplete class, and a name, model
        type or processor class another family has (TypeError naming both)."""
        if not (isinstance(cls, type) and issubclass(cls, ModelFamily)):
            raise TypeError(f"a model family is a subclass of rarft_plugin.models.ModelFamily, not {cls!r}")
        missing = sorted({name for name in cls.ATTRIBUTES if not hasattr(cls, name)} | cls.__abstractmethods__)
        if missing:
            raise TypeError(f"model family {cls.__module__}.{cls.__qualname__} lacks {', '.join(missing)}")
        family = cls()
        with self._lock:
            for other in self._families.values():
                for attribute in ("NAME", "MODEL_TYPES", "PROCESSOR_CLASSES"):
                    shared = set(_values(family, attribute)) & set(_values(other, attribute))
                    if shared:
                        raise TypeError(
                            f"model family {cls.__qualname__}: {attribute} {', '.join(sorted(shared))} is already "
                            f"registered by {type(other).__module__}.{type(other).__qualname__}"
                        )
            self._families[family.NAME] = family
        return cls

    def families(self) -> tuple[ModelFamily, ...]:
        """Every registered family, in registration order (the shipped modules imported first)."""
        for module in self.modules:
            importlib.import_module(f"{self.package}.{module}")  # registers its families (once: modules are cached)
        return tuple(self._families.values())


def _values(family: ModelFamily, attribute: str) -> tuple[str, ...]:
    value = getattr(family, attribute)
    return (value,) if isinstance(value, str) else tuple(value)


REGISTRY = FamilyRegistry(__name__, FAMILY_MODULES)
register = REGISTRY.register


def families() -> tuple[ModelFamily, ...]:
    """Every registered family (importing the modules of `FAMILY_MODULES`)."""
    return REGISTRY.families()


def supported_text() -> str:
    """The supported families and the model types each serves, for error messages.

    >>> supported_text()
    'qwen2_5_vl (model_type qwen2_5_vl); qwen3_vl (model_type qwen3_vl); qwen3_5 (model_type qwen3_5)'
    """
    return "; ".join(f"{family.NAME} (model_type {', '.join(family.MODEL_TYPES)})" for family in families())


def family_named(name: str) -> ModelFamily:
    """The family whose NAME is `name`."""
    for family in families():
        if family.NAME == name:
            return family
    raise UnknownModelFamily(f"no rarft model family is named {name!r} (supported: {supported_text()})")


def family_for_model_type(model_type: str) -> ModelFamily:
    """The family serving config.json's `model_type`."""
    for family in families():
        if model_type in family.MODEL_TYPES:
            return family
    raise UnknownModelFamily(
        f"model_type {model_type!r} has no rarft model family (supported: {supported_text()}); "
        "a new family is a class registered in rarft_plugin.models (docs/video.md)"
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
    """The family whose processor class `processor` is (or derives from); the most derived class decides."""
    for cls in type(processor).__mro__:
        for family in families():
            if cls.__name__ in family.PROCESSOR_CLASSES:
                return family
    raise UnknownModelFamily(
        f"processor {type(processor).__name__} has no rarft model family (supported: {supported_text()}); "
        "a new family is a class registered in rarft_plugin.models"
    )


def family_env(model: str | Path | None) -> dict[str, str]:
    """`{RARFT_MODEL_FAMILY: name}` for a local model of a known family, else {} (the pre-flight reports why)."""
    if not model:
        return {}
    try:
        return {FAMILY_ENV: family_of_model(Path(os.path.expanduser(str(model)))).NAME}
    except DataError:
        return {}


def family_from_env(environ: Mapping[str, str] | None = None) -> ModelFamily:
    """The family named by RARFT_MODEL_FAMILY (unset or empty: the default family)."""
    name = (os.environ if environ is None else environ).get(FAMILY_ENV, "")
    if not name:
        return default_family()
    try:
        return family_named(name)
    except UnknownModelFamily as error:
        raise UnknownModelFamily(f"{FAMILY_ENV}={name}: {error.message}") from None


def use_reference_video_positions() -> bool:
    """Every family's `use_reference_video_positions`: `rarft-train`'s Ray worker setup hook.

    A worker does not know which model it will load, and each family changes only its own model
    classes, so all of them run.
    """
    changed = [family.use_reference_video_positions() for family in families()]  # every one, not up to the first
    return any(changed)
