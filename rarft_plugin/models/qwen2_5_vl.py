"""The Qwen2.5-VL model family (rarft_plugin.models): everything rarft does specifically for Qwen2.5-VL.

Sampling (the released code's Qwen vision utilities): 2 FPS between `video_start` and `video_end`,
an even number of evenly spaced frames in [4, 768]; sides multiples of 28 (14-pixel patches merged
2 x 2), aspect kept, per-frame pixels at most min(768·28·28, total / frames · 2) with a total budget of
3584·28·28 (≈ 2.8M, the paper's) and at least 16·28·28·1.05.

Frames to the model: the processor derives `second_per_grid_ts` (temporal patch size / fps, the
temporal M-RoPE positions) from the frames' metadata; without it, it assumes 24 fps. rarft hands
both the processor (`processor_video_inputs`, called as vLLM calls it) and vLLM
(`vllm_video_request`, per vLLM release) the frames with their metadata, and trains on exactly the
tensors the processor makes of them (`process_video_prompt`), plus an empty `image_grid_thw`:
OpenRLHF's `Actor.forward` names the token types `mm_token_type_ids` (what Qwen2.5-VL's M-RoPE
reads) only when `image_grid_thw` is among the inputs, and with video alone would pass
`token_type_ids`, which Qwen2.5-VL ignores. The empty tensor (shape (0, 3)) merges like any other
and describes zero images.

Chat template: ChatML markers (`<|im_start|>assistant`, `<|im_end|>`); a response must not hold a
special token but the end-of-turn ones (a sampled `<|video_pad|>` breaks the actor's forward).

Video positions. Qwen2.5-VL gives each video token a (temporal, height, width) position. The model's reference
implementation (transformers 4.x) and vLLM (`Qwen2_5_VLForConditionalGeneration.get_mrope_input_positions`)
agree:

- temporal index of grid t = int(t * second_per_grid * tokens_per_second), the product taken in
  floating point, then truncated;
- the text after a video continues at (largest position of the video) + 1.

transformers 5.x (5.15 is what OpenRLHF 0.11.2 pins; 5.17 behaves the same) computes both
differently for videos: it truncates `second_per_grid` to an integer before multiplying (a clip
sampled slightly above 2 FPS then gets every frame at temporal position 0), and lets the text after
a video continue at (start of the video) + max(height, width) / merge, which ignores the temporal
extent. The second makes every response token of a video prompt sit at another position in
training (OpenRLHF's actor lets the model compute its positions) than in the vLLM rollout that
sampled it: on the one-GPU run, a model warm-started under transformers' positions kept 34% of its
samples in format under `generate` and 0% in vLLM rollouts, and GRPO had nothing to learn from.

`use_reference_video_positions()` replaces `Qwen2_5_VLModel.get_rope_index` with
`reference_rope_index` when (and only when) the installed transformers disagrees with it on a probe
video, so a transformers release that fixes this is left alone. rarft applies it in every Ray
worker of a training run (`rarft-train`'s runtime environment), in `rarft-eval infer`'s transformers
backend and in the GPU scripts; vLLM needs nothing.
"""

from __future__ import annotations

import itertools
import logging
import math
from types import SimpleNamespace
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from rarft_plugin.models import ChatMarkers, VllmVideoRequest
from rarft_plugin.video import SampledVideo, VideoError

if TYPE_CHECKING:
    from transformers import ProcessorMixin, Qwen2_5_VLConfig

__all__ = [
    "CHAT",
    "FPS",
    "MIN_PIXELS",
    "MODEL_TYPES",
    "NAME",
    "PROCESSOR_CLASSES",
    "PUBLISHED_CONFIGS",
    "TOTAL_PIXELS",
    "check_vllm_version",
    "end_of_turn_ids",
    "forbidden_response_ids",
    "frame_indices",
    "frame_size",
    "process_video_prompt",
    "processor_video_inputs",
    "reference_rope_index",
    "restore_installed_video_positions",
    "rope_index_matches_reference",
    "smart_resize",
    "use_reference_video_positions",
    "video_metadata",
    "video_token_count",
    "video_token_id",
    "vllm_video_request",
]

NAME = "qwen2_5_vl"
MODEL_TYPES = ("qwen2_5_vl",)
PROCESSOR_CLASSES = ("Qwen2_5_VLProcessor",)

# Sampling defaults, the paper's and the released code's.
FPS = 2.0
TOTAL_PIXELS = 3584 * 28 * 28
MIN_PIXELS = 16 * 28 * 28
# Qwen's vision utilities.
IMAGE_FACTOR = 28  # 14-pixel patches, merged 2 x 2
FRAME_FACTOR = 2  # the temporal patch: frames come in pairs, and second_per_grid_ts = FRAME_FACTOR / fps
MIN_FRAMES = 4
MAX_FRAMES = 768
MAX_PIXELS_PER_FRAME = 768 * 28 * 28

# The published architectures (Qwen2.5-VL-7B-Instruct's and -3B-Instruct's config.json; Time-R1-7B and the VideoChat-R1
# models are 7B fine-tunes), in transformers' Qwen2_5_VLConfig layout. Used to build weightless stand-ins of paper size
# (`rarft_plugin.stand_ins.build_paper_qwen2_5_vl`) and to estimate memory (`rarft_plugin.launch.memory`).
_VISION = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "spatial_merge_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "tokens_per_second": 2,
    "hidden_act": "silu",
    "in_channels": 3,
}
# Special-token ids of the Qwen2.5 vocabulary (151,643 byte-level BPE tokens, then these).
_TOKEN_IDS = {
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "pad_token_id": 151643,
}
_MEDIA_IDS = {
    "image_token_id": 151655,
    "video_token_id": 151656,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
}


def _published(hidden: int, layers: int, heads: int, kv_heads: int, intermediate: int, vocab: int, tied: bool) -> dict:
    return {
        "text_config": {
            "vocab_size": vocab,
            "hidden_size": hidden,
            "intermediate_size": intermediate,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "num_key_value_heads": kv_heads,
            "hidden_act": "silu",
            "max_position_embeddings": 128000,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
            "initializer_range": 0.02,
            **_TOKEN_IDS,
        },
        "vision_config": {**_VISION, "out_hidden_size": hidden},
        "tie_word_embeddings": tied,
        **_MEDIA_IDS,
    }


PUBLISHED_CONFIGS: dict[str, dict] = {
    "7b": _published(3584, 28, 28, 4, 18944, 152064, tied=False),
    "3b": _published(2048, 36, 16, 2, 11008, 151936, tied=True),
}

CHAT = ChatMarkers(assistant_start="<|im_start|>assistant", turn_ends=("<|im_end|>", "<|endoftext|>"))

# The processor's outputs the trainer needs (OpenRLHF's `mm_train_inputs`).
TRAIN_INPUT_KEYS = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")

# How vLLM takes a Qwen2.5-VL video whose frames are already sampled, by release. Both ways hand the HF
# processor the frames' metadata, so it derives second_per_grid_ts = temporal patch size / fps (the
# temporal M-RoPE positions) exactly as training does:
# - >= 0.31: `multi_modal_data={"video": (frames, metadata)}`; the metadata reaches the processor.
# - 0.26-0.30: Qwen2-VL's data parser drops item metadata (`video_needs_metadata` is False there) and the
#   processor then assumes 24 fps (positions 12x too dense for 2-FPS frames). Per-request
#   `mm_processor_kwargs` do reach the processor call, so the frames go alone and the metadata rides there.
# - older: not supported; the per-request metadata path was verified from 0.26 on only.
VLLM_METADATA_IN_ITEM = "0.31.0"
VLLM_OLDEST_SUPPORTED = "0.26.0"

_log = logging.getLogger(__name__)
_REPLACED: dict[type, object] = {}  # model class -> the get_rope_index it had
TEXT, IMAGE, VIDEO = 0, 1, 2  # mm_token_type_ids, as the processor marks tokens


def smart_resize(
    height: int, width: int, *, factor: int = IMAGE_FACTOR, min_pixels: int, max_pixels: int
) -> tuple[int, int]:
    """Qwen2.5-VL's resize: multiples of `factor`, aspect ratio kept, pixels within [min, max].

    >>> smart_resize(240, 320, min_pixels=16 * 28 * 28, max_pixels=100 * 28 * 28)
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


def frame_size(height: int, width: int, frames: int, *, total_pixels: int, min_pixels: int) -> tuple[int, int]:
    """Size of each of `frames` sampled frames: the clip's budget shared by its temporal grids, then `smart_resize`.

    >>> frame_size(240, 320, 40, total_pixels=TOTAL_PIXELS, min_pixels=MIN_PIXELS)
    (252, 308)
    """
    max_pixels = max(min(MAX_PIXELS_PER_FRAME, total_pixels / frames * FRAME_FACTOR), int(min_pixels * 1.05))
    return smart_resize(height, width, min_pixels=min_pixels, max_pixels=int(max_pixels))


def frame_indices(total_frames: int, video_fps: float, first: int, last: int, fps: float = FPS) -> np.ndarray:
    """Evenly spaced frame indices in [first, last] at about `fps`, an even count (Qwen's rule).

    >>> frame_indices(200, 10.0, 50, 99).tolist()
    [50, 55, 61, 66, 72, 77, 83, 88, 94, 99]
    """
    available = last - first + 1
    wanted = available / video_fps * fps
    count = min(max(wanted, MIN_FRAMES), MAX_FRAMES, available)
    count = max(FRAME_FACTOR, int(count // FRAME_FACTOR) * FRAME_FACTOR)
    if count > available:
        raise VideoError(f"the clip has {available} frame(s); at least {FRAME_FACTOR} are needed")
    return np.linspace(first, last, count).round().astype(np.int64)


def video_token_count(frames: int, height: int, width: int) -> int:
    """Video tokens of `frames` frames of height x width (multiples of 28): one per 2 frames x 28 x 28 pixels.

    The processor cuts 14-pixel patches in pairs of frames (the temporal patch) and merges them 2 x 2, so a
    clip that `frame_size` sized needs no decoding to know its prompt length.

    >>> video_token_count(60, 252, 336)  # 30 s at 2 FPS, 480p at the default budget
    3240
    """
    return frames // FRAME_FACTOR * (height // IMAGE_FACTOR) * (width // IMAGE_FACTOR)


def video_metadata(video: SampledVideo) -> dict[str, object]:
    """The frames described as transformers' `VideoMetadata`: these frames are the video, at `fps`.

    Qwen2.5-VL's processor derives `second_per_grid_ts` from it (temporal patch size / fps),
    and vLLM requires it beside the frames of a Qwen2.5-VL video.
    """
    count, height, width = video.frames.shape[:3]
    return {
        "total_num_frames": count,
        "fps": video.fps,
        "width": width,
        "height": height,
        "duration": count / video.fps,
        "frames_indices": list(range(count)),
    }


def processor_video_inputs(videos: list[SampledVideo]) -> dict[str, object]:
    """`videos=` and `video_metadata=` for a Qwen2.5-VL processor call, built as vLLM builds them.

    >>> inputs = processor(text=prompts, **processor_video_inputs(clips), return_tensors="pt")  # doctest: +SKIP
    """
    from transformers.video_utils import VideoMetadata

    return {
        "videos": [v.frames for v in videos],
        "video_metadata": [VideoMetadata(**video_metadata(v)) for v in videos],
    }


def process_video_prompt(
    processor: ProcessorMixin, prompt: str, video: SampledVideo
) -> tuple[list[int], dict[str, torch.Tensor]]:
    """Expanded prompt token ids and the training tensors for one video prompt.

    The processor runs with its own settings on the frames and metadata vLLM receives, so both
    sides compute the same grid (a no-op resize when the frames already fit the processor's bounds).
    The tensors carry an empty `image_grid_thw` (see the module docstring).
    """
    out = processor(text=[prompt], **processor_video_inputs([video]), add_special_tokens=False, return_tensors="pt")
    tensors = {key: out[key] for key in TRAIN_INPUT_KEYS}
    tensors["second_per_grid_ts"] = torch.as_tensor(tensors["second_per_grid_ts"], dtype=torch.float32).reshape(-1)
    tensors["image_grid_thw"] = torch.zeros((0, 3), dtype=torch.long)
    return out["input_ids"][0].tolist(), tensors


def video_token_id(processor: ProcessorMixin) -> int:
    return processor.video_token_id


def end_of_turn_ids(processor: ProcessorMixin) -> tuple[int, ...]:
    """Ids of the tokens that end a response (`CHAT.turn_ends` the tokenizer knows), eos first."""
    tokenizer = getattr(processor, "tokenizer", processor)
    vocabulary = tokenizer.get_vocab()
    known = [tokenizer.convert_tokens_to_ids(marker) for marker in CHAT.turn_ends if marker in vocabulary]
    return tuple(dict.fromkeys([tokenizer.eos_token_id, *known]))


def forbidden_response_ids(processor: ProcessorMixin) -> frozenset[int]:
    """Special tokens a response must not contain: media placeholders and chat markers, all but end-of-turn ones.

    A `<|video_pad|>` or `<|image_pad|>` in a response breaks the actor's forward (its count must match
    the media features); the others are chat scaffolding no answer holds.
    """
    tokenizer = getattr(processor, "tokenizer", processor)
    special = set(tokenizer.all_special_ids)
    special |= {getattr(processor, name) for name in ("image_token_id", "video_token_id") if hasattr(processor, name)}
    return frozenset(special - set(end_of_turn_ids(processor)) - {None})


def check_vllm_version(version: str) -> None:
    """Refuse a vLLM that rarft cannot hand a Qwen2.5-VL video's frame rate (see `vllm_video_request`)."""
    from packaging.version import Version

    if Version(version) < Version(VLLM_OLDEST_SUPPORTED):
        raise RuntimeError(
            f"vLLM {version} is not supported for video rollouts: rarft hands Qwen2.5-VL the frames' metadata "
            f"(fps, hence the temporal positions) through per-request processor options verified from vLLM "
            f"{VLLM_OLDEST_SUPPORTED} on; install vllm>={VLLM_OLDEST_SUPPORTED} (docs/gpu.md lists tested pairs)"
        )


def vllm_video_request(video: SampledVideo, vllm_version: str) -> VllmVideoRequest:
    """The video part of a vLLM prompt for `vllm_version` (see the table above `VLLM_METADATA_IN_ITEM`).

    >>> clip = SampledVideo(np.zeros((2, 28, 28, 3), np.uint8), 2.0, (0.0, 0.5))
    >>> vllm_video_request(clip, "0.31.0").mm_processor_kwargs is None
    True
    >>> vllm_video_request(clip, "0.26.0").mm_processor_kwargs["video_metadata"]["fps"]
    2.0
    """
    from packaging.version import Version

    check_vllm_version(vllm_version)
    metadata = video_metadata(video)
    if Version(vllm_version) >= Version(VLLM_METADATA_IN_ITEM):
        return VllmVideoRequest({"video": (video.frames, {**metadata, "do_sample_frames": False})})
    return VllmVideoRequest({"video": video.frames}, {"video_metadata": metadata, "do_sample_frames": False})


class _ModelWithConfig(Protocol):
    """A Qwen2_5_VLModel, as far as its positions need it (the probe passes a namespace)."""

    config: Qwen2_5_VLConfig


def reference_rope_index(
    self: _ModelWithConfig,
    input_ids: torch.Tensor,
    mm_token_type_ids: torch.Tensor | None = None,
    image_grid_thw: torch.Tensor | None = None,
    video_grid_thw: torch.Tensor | None = None,
    second_per_grid_ts: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    **kwargs: object,
) -> tuple[torch.Tensor, torch.Tensor]:
    """M-RoPE positions (3, batch, length) and rope deltas (batch, 1) as vLLM and Qwen's reference compute them.

    Same signature as transformers 5.x's `Qwen2_5_VLModel.get_rope_index` (bound as its replacement).
    """
    vision = self.config.vision_config
    merge, tokens_per_second = vision.spatial_merge_size, vision.tokens_per_second
    if mm_token_type_ids is None:  # callers of transformers 4.x's signature: types from the token ids
        mm_token_type_ids = (input_ids == self.config.image_token_id) * IMAGE + (
            input_ids == self.config.video_token_id
        ) * VIDEO
    grids = {
        IMAGE: iter(image_grid_thw.tolist() if image_grid_thw is not None else []),
        VIDEO: iter(video_grid_thw.tolist() if video_grid_thw is not None else []),
    }
    seconds = iter(second_per_grid_ts.tolist() if second_per_grid_ts is not None else [])
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
                scale = next(seconds, 1.0) * tokens_per_second if kind == VIDEO else 1.0
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


def _probe(model_class: type) -> tuple[torch.Tensor, torch.Tensor]:
    """Installed and reference positions of a small prompt: text, a 2-grid video sampled at 1.9 FPS, text."""
    config = SimpleNamespace(
        vision_config=SimpleNamespace(spatial_merge_size=2, tokens_per_second=2),
        image_token_id=1,
        video_token_id=2,
        vision_start_token_id=3,
    )
    ids = torch.tensor([[0, 3, 2, 2, 4, 0, 0]])  # text, <vision_start>, 2 video tokens, <vision_end>, text
    types = (ids == 2).long() * VIDEO
    video = {"video_grid_thw": torch.tensor([[2, 2, 2]]), "second_per_grid_ts": torch.tensor([2 / 1.9])}
    reference, _ = reference_rope_index(SimpleNamespace(config=config), ids, types, **video)
    model = model_class.__new__(model_class)  # a bare instance: the installed method needs only config and helpers
    for name, value in (("_modules", {}), ("_parameters", {}), ("_buffers", {}), ("config", config)):
        object.__setattr__(model, name, value)
    try:
        installed, _ = model_class.get_rope_index(model, ids, mm_token_type_ids=types, **video)
    except TypeError:  # transformers 4.x: no mm_token_type_ids argument
        installed, _ = model_class.get_rope_index(model, ids, **video)
    return installed, reference


def rope_index_matches_reference(model_class: type | None = None) -> bool:
    """Whether the installed transformers computes Qwen2.5-VL video positions as the reference does."""
    if model_class is None:
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel as model_class
    if model_class.get_rope_index is reference_rope_index:
        return True
    try:
        installed, reference = _probe(model_class)
    except Exception as error:  # noqa: BLE001 -- an unknown transformers: leave it alone, say so
        _log.warning("rarft: cannot probe transformers' Qwen2.5-VL positions (%s); left as installed", error)
        return True
    return torch.equal(installed.long(), reference.long())


def use_reference_video_positions() -> bool:
    """Replace transformers' Qwen2.5-VL `get_rope_index` where it differs from the reference; True if replaced.

    Idempotent (the family's `use_reference_video_positions`; `rarft-train` runs it in every Ray worker through
    `rarft_plugin.models.use_reference_video_positions`).
    """
    try:
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel
    except ImportError:
        return False
    if rope_index_matches_reference(Qwen2_5_VLModel):
        return False
    import transformers

    _REPLACED.setdefault(Qwen2_5_VLModel, Qwen2_5_VLModel.get_rope_index)
    Qwen2_5_VLModel.get_rope_index = reference_rope_index
    _log.warning(
        "rarft: transformers %s computes Qwen2.5-VL video positions unlike vLLM and the reference; "
        "using the reference (rarft_plugin.models.qwen2_5_vl)",
        transformers.__version__,
    )
    return True


def restore_installed_video_positions() -> None:
    """Undo `use_reference_video_positions` (tests compare both)."""
    for model_class, original in _REPLACED.items():
        model_class.get_rope_index = original
    _REPLACED.clear()
