"""The Qwen2.5-VL model family (rarft_plugin.models): everything rarft does specifically for Qwen2.5-VL.

Sampling (the released code's Qwen vision utilities, `rarft_plugin.models.qwen_vl.QwenVL`): 2 FPS
between `video_start` and `video_end`, an even number of evenly spaced frames in [4, 768]; sides
multiples of 28 (14-pixel patches merged 2 x 2), aspect kept, per-frame pixels at most
min(768·28·28, total / frames · 2) with a total budget of 3584·28·28 (≈ 2.8M, the paper's) and at
least 16·28·28·1.05.

Frames to the model: the processor derives `second_per_grid_ts` (temporal patch size / fps, the
temporal M-RoPE positions) from the frames' metadata; without it, it assumes 24 fps. rarft hands
both the processor (`processor_video_inputs`, called as vLLM calls it) and vLLM
(`vllm_video_request`, per vLLM release) the frames with their metadata, and trains on exactly the
tensors the processor makes of them (`process_video_prompt`), plus an empty `image_grid_thw`
(`rarft_plugin.models.qwen_vl` says why).

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
from types import SimpleNamespace
from typing import TYPE_CHECKING, Protocol

import torch

from rarft_plugin.clips import SampledVideo
from rarft_plugin.models import VllmVideoRequest, register
from rarft_plugin.models.qwen_vl import IMAGE, VIDEO, QwenVL, bare_model, media_types, mrope_positions

if TYPE_CHECKING:
    from transformers import Qwen2_5_VLConfig

__all__ = ["PUBLISHED_CONFIGS", "VLLM_METADATA_IN_ITEM", "VLLM_OLDEST_SUPPORTED", "Qwen2_5_VL", "reference_rope_index"]

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

# The published architectures (Qwen2.5-VL-7B-Instruct's and -3B-Instruct's config.json; Time-R1-7B and the VideoChat-R1
# models are 7B fine-tunes), in transformers' Qwen2_5_VLConfig layout. Used to build weightless stand-ins of paper size
# (`rarft_plugin.stand_ins.build_paper_qwen2_5_vl`) and to estimate memory (`rarft_plugin.launch.memory`); data beside
# the family, which does not use them. Only Qwen2.5-VL has a paper-size stand-in and a memory estimate.
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
    tokens_per_second = vision.tokens_per_second
    seconds = second_per_grid_ts.tolist() if second_per_grid_ts is not None else []
    return mrope_positions(
        input_ids,
        media_types(input_ids, self.config) if mm_token_type_ids is None else mm_token_type_ids,
        {
            IMAGE: image_grid_thw.tolist() if image_grid_thw is not None else [],
            VIDEO: video_grid_thw.tolist() if video_grid_thw is not None else [],
        },
        vision.spatial_merge_size,
        itertools.chain((s * tokens_per_second for s in seconds), itertools.repeat(tokens_per_second)),
        attention_mask,
    )


@register
class Qwen2_5_VL(QwenVL):
    """Qwen2.5-VL: Time-R1-7B, the paper's base model, and every baseline of the paper."""

    NAME = "qwen2_5_vl"
    MODEL_TYPES = ("qwen2_5_vl",)
    PROCESSOR_CLASSES = ("Qwen2_5_VLProcessor",)
    # Sampling defaults, the paper's and the released code's.
    TOTAL_PIXELS = 3584 * 28 * 28
    MIN_PIXELS = 16 * 28 * 28
    IMAGE_FACTOR = 28  # 14-pixel patches, merged 2 x 2
    MAX_PIXELS_PER_FRAME = 768 * 28 * 28
    TRAIN_INPUT_KEYS = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")
    VLLM_OLDEST_SUPPORTED = VLLM_OLDEST_SUPPORTED
    VLLM_PATH = (
        "rarft hands Qwen2.5-VL the frames' metadata (fps, hence the temporal positions) through per-request "
        f"processor options verified from vLLM {VLLM_OLDEST_SUPPORTED} on"
    )
    POSITION_MODEL = ("transformers.models.qwen2_5_vl.modeling_qwen2_5_vl", "Qwen2_5_VLModel")
    reference_rope_index = staticmethod(reference_rope_index)

    def video_metadata(self, video: SampledVideo) -> dict[str, object]:
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

    def train_tensors(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """`second_per_grid_ts` as a float32 tensor (the processor may give a list)."""
        seconds = torch.as_tensor(tensors["second_per_grid_ts"], dtype=torch.float32).reshape(-1)
        return {**tensors, "second_per_grid_ts": seconds}

    def vllm_video_request(self, video: SampledVideo, vllm_version: str) -> VllmVideoRequest:
        """The video part of a vLLM prompt for `vllm_version` (see the table above `VLLM_METADATA_IN_ITEM`).

        >>> import numpy as np
        >>> clip = SampledVideo(np.zeros((2, 28, 28, 3), np.uint8), 2.0, (0.0, 0.5))
        >>> Qwen2_5_VL().vllm_video_request(clip, "0.31.0").mm_processor_kwargs is None
        True
        >>> Qwen2_5_VL().vllm_video_request(clip, "0.26.0").mm_processor_kwargs["video_metadata"]["fps"]
        2.0
        """
        from packaging.version import Version

        self.check_vllm_version(vllm_version)
        metadata = self.video_metadata(video)
        if Version(vllm_version) >= Version(VLLM_METADATA_IN_ITEM):
            return VllmVideoRequest({"video": (video.frames, {**metadata, "do_sample_frames": False})})
        return VllmVideoRequest({"video": video.frames}, {"video_metadata": metadata, "do_sample_frames": False})

    def probe_positions(self, model_class: type) -> tuple[torch.Tensor, torch.Tensor]:
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
        model = bare_model(model_class, config)  # the installed method needs only config and helpers
        try:
            installed, _ = model_class.get_rope_index(model, ids, mm_token_type_ids=types, **video)
        except TypeError:  # transformers 4.x: no mm_token_type_ids argument
            installed, _ = model_class.get_rope_index(model, ids, **video)
        return installed, reference
