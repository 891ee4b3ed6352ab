"""What the Qwen vision-language families share (a helper module of rarft_plugin.models, not a family).

`QwenVL` is the base class of the Qwen families: Qwen's vision utilities for sampling (2 FPS, an even
number of evenly spaced frames in [4, 768]; sides multiples of the merged patch, aspect kept, the
clip's pixel budget shared by its temporal patches), the processor call on the frames vLLM gets
(training tensors plus an empty `image_grid_thw`), ChatML markers and special tokens, and the
machinery that replaces transformers' `get_rope_index` with a family's reference where the installed
transformers computes other video positions than vLLM. A subclass sets the patch sizes, the pixel
defaults and the training tensors, and defines its metadata, vLLM request and reference positions.

Why the empty `image_grid_thw`: OpenRLHF's `Actor.forward` names the token types it rebuilds
`mm_token_type_ids` (what Qwen's M-RoPE reads) only when `image_grid_thw` is among the inputs, and
with video alone would pass `token_type_ids`, which the Qwen models ignore. The empty tensor (shape
(0, 3)) merges like any other and describes zero images.
"""

from __future__ import annotations

import abc
import importlib
import itertools
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from rarft_plugin.clips import ClipInfo, SampledVideo, VideoError
from rarft_plugin.models import ModelFamily
from rarft_plugin.parsing import CHATML, ChatMarkers

if TYPE_CHECKING:
    from transformers import ProcessorMixin

__all__ = [
    "IMAGE",
    "TEXT",
    "VIDEO",
    "QwenVL",
    "bare_model",
    "collapse_runs",
    "media_types",
    "mrope_positions",
    "restore_installed_video_positions",
    "smart_resize",
]

TEXT, IMAGE, VIDEO = 0, 1, 2  # mm_token_type_ids, as the processor marks tokens

_log = logging.getLogger(__name__)
_REPLACED: dict[type, object] = {}  # model class -> the get_rope_index it had


def smart_resize(height: int, width: int, *, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen's resize: multiples of `factor`, aspect ratio kept, pixels within [min, max].

    >>> smart_resize(240, 320, factor=28, min_pixels=16 * 28 * 28, max_pixels=100 * 28 * 28)
    (252, 308)
    """
    if max(height, width) / max(1, min(height, width)) > 200:
        raise VideoError(f"aspect ratio of {width}x{height} is beyond 200")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def mrope_positions(
    input_ids: torch.Tensor,
    mm_token_type_ids: torch.Tensor,
    grids: dict[int, Iterable[tuple[int, int, int]]],
    merge: int,
    video_scales: Iterator[float],
    attention_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """M-RoPE positions (3, batch, length) and rope deltas (batch, 1) as vLLM computes them for the Qwen models.

    Each run of media tokens is the next (t, h, w) patch grid of its kind (`grids`, in prompt order), its
    positions the grid's indices (spatial sides merged `merge` x `merge`; for a video the temporal index times
    the next of `video_scales`, the product taken in floating point, then truncated) plus where it starts; text
    continues at the largest position so far + 1. Padding (attention 0) gets position 0.
    """
    grids = {kind: iter(values) for kind, values in grids.items()}
    positions = torch.zeros(3, *input_ids.shape, dtype=input_ids.dtype, device=input_ids.device)
    deltas = []
    for row in range(input_ids.shape[0]):
        keep = attention_mask[row].bool() if attention_mask is not None else torch.ones_like(input_ids[row]).bool()
        types = mm_token_type_ids[row][keep].tolist()
        parts, start = [], 0
        for kind, group in itertools.groupby(types):
            length = len(list(group))
            if kind == TEXT:
                parts.append(torch.arange(length).expand(3, -1) + start)
            else:
                frames, height, width = next(grids[kind])
                scale = next(video_scales) if kind == VIDEO else 1.0
                grid = torch.stack(
                    torch.meshgrid(
                        (torch.arange(frames, dtype=torch.float64) * scale).long(),
                        torch.arange(height // merge),
                        torch.arange(width // merge),
                        indexing="ij",
                    )
                )
                if grid[0].numel() != length:
                    raise ValueError(
                        f"{length} media tokens but a grid of {frames}x{height}x{width} patches "
                        f"merged {merge}x{merge}: the prompt and the media inputs disagree"
                    )
                parts.append(grid.reshape(3, -1) + start)
            start = int(parts[-1].max()) + 1
        joined = torch.cat(parts, dim=1) if parts else torch.zeros(3, 0, dtype=torch.long)
        positions[:, row, keep] = joined.to(positions)
        deltas.append(start - len(types))
    return positions, torch.tensor(deltas, device=input_ids.device).unsqueeze(1)


def media_types(input_ids: torch.Tensor, config: object) -> torch.Tensor:
    """Token types from the token ids (callers of transformers 4.x's signature pass none)."""
    return (input_ids == config.image_token_id) * IMAGE + (input_ids == config.video_token_id) * VIDEO


def collapse_runs(ids: list[int], token: int) -> list[int]:
    """`ids` with every run of `token` collapsed to one (what OpenRLHF's `dedup_media_tokens` does).

    >>> collapse_runs([1, 7, 7, 7, 2, 7, 3], 7)
    [1, 7, 2, 7, 3]
    """
    return [t for i, t in enumerate(ids) if not (t == token and i and ids[i - 1] == token)]


class QwenVL(ModelFamily):
    """The Qwen vision-language conventions; subclasses are the registered families."""

    FPS: ClassVar[float] = 2.0
    CHAT: ClassVar[ChatMarkers] = CHATML
    FRAME_FACTOR: ClassVar[int] = 2  # the temporal patch: frames come in pairs
    MIN_FRAMES: ClassVar[int] = 4
    MAX_FRAMES: ClassVar[int] = 768
    IMAGE_FACTOR: ClassVar[int]  # spatial patch x merge: frame sides are multiples of it
    MAX_PIXELS_PER_FRAME: ClassVar[int]
    TRAIN_INPUT_KEYS: ClassVar[tuple[str, ...]]  # the processor's outputs the trainer needs (`mm_train_inputs`)
    VLLM_OLDEST_SUPPORTED: ClassVar[str] = "0.26.0"
    VLLM_PATH: ClassVar[str]  # how the family's video requests reach vLLM's processor, and from which release
    ATTRIBUTES: ClassVar[tuple[str, ...]] = (
        *ModelFamily.ATTRIBUTES,
        "IMAGE_FACTOR",
        "MAX_PIXELS_PER_FRAME",
        "TRAIN_INPUT_KEYS",
        "VLLM_PATH",
        "POSITION_MODEL",
        "reference_rope_index",
    )

    def check_vllm_version(self, version: str) -> None:
        """Refuse a vLLM older than the release whose video path the family's requests follow (`VLLM_PATH`)."""
        from packaging.version import Version

        if Version(version) < Version(self.VLLM_OLDEST_SUPPORTED):
            raise RuntimeError(
                f"vLLM {version} is not supported for {self.NAME} video rollouts: {self.VLLM_PATH}; install "
                f"vllm>={self.VLLM_OLDEST_SUPPORTED} (docs/gpu.md lists tested pairs)"
            )

    def frame_indices(self, total_frames: int, video_fps: float, first: int, last: int, fps: float = 2.0) -> np.ndarray:
        """Evenly spaced frame indices in [first, last] at about `fps`, an even count (Qwen's rule).

        >>> from rarft_plugin.models import default_family
        >>> default_family().frame_indices(200, 10.0, 50, 99).tolist()
        [50, 55, 61, 66, 72, 77, 83, 88, 94, 99]
        """
        available = last - first + 1
        wanted = available / video_fps * fps
        count = min(max(wanted, self.MIN_FRAMES), self.MAX_FRAMES, available)
        count = max(self.FRAME_FACTOR, int(count // self.FRAME_FACTOR) * self.FRAME_FACTOR)
        if count > available:
            raise VideoError(f"the clip has {available} frame(s); at least {self.FRAME_FACTOR} are needed")
        return np.linspace(first, last, count).round().astype(np.int64)

    def frame_size(
        self, height: int, width: int, frames: int, *, total_pixels: int, min_pixels: int
    ) -> tuple[int, int]:
        """Size of each of `frames` sampled frames: the clip's budget shared by its temporal patches, then
        `smart_resize`.

        >>> from rarft_plugin.models import default_family
        >>> family = default_family()
        >>> family.frame_size(240, 320, 40, total_pixels=family.TOTAL_PIXELS, min_pixels=family.MIN_PIXELS)
        (252, 308)
        """
        budget = total_pixels / frames * self.FRAME_FACTOR
        max_pixels = max(min(self.MAX_PIXELS_PER_FRAME, budget), int(min_pixels * 1.05))
        return smart_resize(height, width, factor=self.IMAGE_FACTOR, min_pixels=min_pixels, max_pixels=int(max_pixels))

    def video_token_count(self, processor: ProcessorMixin, clip: ClipInfo) -> int:
        """The video's merged patches: one token per temporal patch (`FRAME_FACTOR` frames, an odd count padded
        with the last frame as the processor pads it) per `IMAGE_FACTOR` x `IMAGE_FACTOR` pixels.

        >>> from rarft_plugin.models import default_family
        >>> from rarft_plugin.clips import ClipInfo
        >>> clip = ClipInfo(30.0, 60, 252, 336, 2.0, (), 30.0)  # 30 s at 2 FPS, 480p at the default budget
        >>> default_family().video_token_count(None, clip)
        3240
        """
        groups = -(-clip.frames // self.FRAME_FACTOR)
        return groups * (clip.height // self.IMAGE_FACTOR) * (clip.width // self.IMAGE_FACTOR)

    def processor_video_inputs(self, videos: list[SampledVideo]) -> dict[str, object]:
        """`videos=`, `video_metadata=` and `do_sample_frames=False` for a processor call, built as vLLM builds them.

        The frames are already sampled: Qwen3-VL's video processor would otherwise sample again from the metadata
        (its default), as vLLM's `do_sample_frames` False (from the item's metadata) keeps it from doing.

        >>> processor(text=prompts, **family.processor_video_inputs(clips), return_tensors="pt")  # doctest: +SKIP
        """
        from transformers.video_utils import VideoMetadata

        return {
            "videos": [v.frames for v in videos],
            "video_metadata": [VideoMetadata(**self.video_metadata(v)) for v in videos],
            "do_sample_frames": False,
        }

    def process_video_prompt(
        self, processor: ProcessorMixin, prompt: str, video: SampledVideo
    ) -> tuple[list[int], dict[str, torch.Tensor]]:
        """Expanded prompt token ids and the training tensors for one video prompt.

        The processor runs with its own settings on the frames and metadata vLLM receives, so both
        sides compute the same grid (a no-op resize when the frames already fit the processor's bounds).
        The tensors carry an empty `image_grid_thw` (see the module docstring).
        """
        out = processor(
            text=[prompt], **self.processor_video_inputs([video]), add_special_tokens=False, return_tensors="pt"
        )
        tensors = self.train_tensors({key: out[key] for key in self.TRAIN_INPUT_KEYS})
        tensors["image_grid_thw"] = torch.zeros((0, 3), dtype=torch.long)
        return out["input_ids"][0].tolist(), tensors

    def train_tensors(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The processor's training tensors as OpenRLHF merges them (a subclass converts what needs it)."""
        return tensors

    def vllm_prompt_ids(self, processor: ProcessorMixin, prompt_ids: list[int]) -> list[int]:
        """The expanded prompt with each video's tokens collapsed to the one placeholder vLLM expands itself."""
        return collapse_runs(prompt_ids, processor.video_token_id)

    def end_of_turn_ids(self, processor: ProcessorMixin) -> tuple[int, ...]:
        """Ids of the tokens that end a response (`CHAT.turn_ends` the tokenizer knows), eos first."""
        tokenizer = getattr(processor, "tokenizer", processor)
        vocabulary = tokenizer.get_vocab()
        known = [tokenizer.convert_tokens_to_ids(marker) for marker in self.CHAT.turn_ends if marker in vocabulary]
        return tuple(dict.fromkeys([tokenizer.eos_token_id, *known]))

    def forbidden_response_ids(self, processor: ProcessorMixin) -> frozenset[int]:
        """Special tokens a response must not contain: media placeholders and chat markers, all but end-of-turn ones.

        A `<|video_pad|>` or `<|image_pad|>` in a response breaks the actor's forward (its count must match
        the media features); the others are chat scaffolding no answer holds.
        """
        tokenizer = getattr(processor, "tokenizer", processor)
        special = set(tokenizer.all_special_ids)
        special |= {getattr(processor, n) for n in ("image_token_id", "video_token_id") if hasattr(processor, n)}
        return frozenset(special - set(self.end_of_turn_ids(processor)) - {None})

    # ------------------------------------------------------------ positions: the reference where transformers differs

    # a staticmethod with the signature of transformers' get_rope_index, bound to the model class in its place
    reference_rope_index: ClassVar[Callable[..., tuple[torch.Tensor, torch.Tensor]]]
    POSITION_MODEL: ClassVar[tuple[str, str]]  # (module, class) of the transformers model computing the positions

    def position_model_class(self) -> type | None:
        """The installed transformers' model class whose `get_rope_index` computes the positions (None: absent)."""
        module, name = self.POSITION_MODEL
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            return None

    @abc.abstractmethod
    def probe_positions(self, model_class: type) -> tuple[torch.Tensor, torch.Tensor]:
        """Installed and reference positions of a small video prompt."""

    def rope_index_matches_reference(self, model_class: type | None = None) -> bool:
        """Whether the installed transformers computes this family's video positions as the reference does."""
        model_class = model_class or self.position_model_class()
        if model_class is None or model_class.get_rope_index is type(self).reference_rope_index:
            return True
        try:
            installed, reference = self.probe_positions(model_class)
        except Exception as error:  # noqa: BLE001 -- an unknown transformers: leave it alone, say so
            _log.warning("rarft: cannot probe transformers' %s positions (%s); left as installed", self.NAME, error)
            return True
        return torch.equal(installed.long(), reference.long())

    def use_reference_video_positions(self) -> bool:
        """Replace transformers' `get_rope_index` where it differs from the reference; True if replaced.

        Idempotent (`rarft-train` runs it in every Ray worker through
        `rarft_plugin.models.use_reference_video_positions`).
        """
        model_class = self.position_model_class()
        if model_class is None or self.rope_index_matches_reference(model_class):
            return False
        import transformers

        _REPLACED.setdefault(model_class, model_class.get_rope_index)
        model_class.get_rope_index = type(self).reference_rope_index
        _log.warning(
            "rarft: transformers %s computes %s video positions unlike vLLM and the reference; "
            "using the reference (%s)",
            transformers.__version__,
            self.NAME,
            type(self).__module__,
        )
        return True


def bare_model(model_class: type, config: object) -> object:
    """An instance of a transformers model class with only `config` set: enough for its `get_rope_index`."""
    model = model_class.__new__(model_class)
    for name, value in (("_modules", {}), ("_parameters", {}), ("_buffers", {}), ("config", config)):
        object.__setattr__(model, name, value)
    return model


def restore_installed_video_positions() -> None:
    """Undo every family's `use_reference_video_positions` (tests compare both)."""
    for model_class, original in _REPLACED.items():
        model_class.get_rope_index = original
    _REPLACED.clear()
