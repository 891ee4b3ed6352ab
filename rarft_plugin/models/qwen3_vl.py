"""The Qwen3-VL model family, and Qwen3.5, which shares its video path (rarft_plugin.models).

What differs from Qwen2.5-VL (`rarft_plugin.models.qwen2_5_vl`), each where training and rollout could
silently disagree:

- Patches: 16 pixels, merged 2 x 2, so frame sides are multiples of 32. Sampling keeps Qwen's rule (2 FPS, an
  even number of frames in [4, 768]: qwen-vl-utils 0.0.14 `smart_nframes` is Qwen2.5-VL's) and the paper's
  token budget: at most 3584 video tokens (3584·32·32 pixels) and at least 16 tokens a frame, so a recipe's
  `--data.max_len` counts video tokens as for Qwen2.5-VL (plus the timestamps below).
- Time is text: the processor writes `<t seconds>` before each frame group (two frames, one temporal patch),
  t the mean time of the group's two frames from the video metadata (`frames_indices` / `fps`), each group
  wrapped in its own `<|vision_start|>`/`<|vision_end|>` inside the prompt's pair; there is no
  `second_per_grid_ts`. The metadata here (`video_metadata`) places the frames at their times from the start
  of the clip window (the origin of the label's spans), on the grid of the file's frame rate: the times the
  model reads are the frames' own, not a uniform spacing. Qwen's own utilities give times from the file's
  start, which for a windowed clip would disagree with its clip-relative spans.
- vLLM (read from the 0.26.0 source, `model_executor/models/qwen3_vl.py`) requires the metadata in the video
  item (`video_needs_metadata` is True for Qwen3-VL from 0.26 on), computes the same timestamps from it,
  tokenises each timestamp text on its own and expands only the `<|video_pad|>` placeholder, keeping the
  prompt's `<|vision_start|>`/`<|vision_end|>` (transformers >= 5.10 processors). Since special tokens bound
  every timestamp text, tokenising it alone gives the ids the processor gives in context; the executor sends
  the prompt with each video's expansion collapsed to `<|vision_start|><|video_pad|><|vision_end|>`
  (`vllm_prompt_ids`). `tests/test_qwen3_vl.py` checks vLLM's expansion (transcribed) against the processor's.
- Positions: every frame group is a (1, h, w) grid starting where it appears; the text after it continues at
  its largest position + 1 (vLLM `_get_mrope_input_positions`). transformers 5.15's `Qwen3VLModel.get_rope_index`
  splits a video into its frame groups and continues after each at start + max(h, w) / merge, which for a
  one-frame grid is the same number, so it agrees with vLLM (the Qwen2.5-VL disagreement came from the
  temporal extent, which a one-frame grid does not have). `reference_rope_index` is vLLM's algorithm; the
  family installs it only where a transformers release disagrees on a probe, as Qwen2.5-VL's does.
  The M-RoPE frequencies are interleaved (T, H, W alternating) in both transformers and vLLM
  (`apply_interleaved_mrope` / `apply_interleaved_rope`), and the vision tower's DeepStack features are
  added inside the models: neither changes what rarft hands them.
- Prompt length: `video_token_count` counts what a probed clip expands to without decoding it (per frame group its
  merged patches, its own marker pair and its timestamp text, tokenised alone as above), so `rarft-train`'s
  pre-flight refuses prompts over `--data.max_len` for Qwen3-VL exactly as for Qwen2.5-VL
  (`tests/test_paper_scale.py` checks the count against the processor on decoded frames).
- Training tensors: `pixel_values_videos`, `video_grid_thw` and the empty `image_grid_thw`
  (`rarft_plugin.models.qwen_vl`): Qwen3-VL's model refuses video inputs without `mm_token_type_ids`, which
  OpenRLHF's actor passes only with `image_grid_thw` present.
- Chat: ChatML, as Qwen2.5-VL, without a default system message in the template.

Qwen3.5 (`qwen3_5`) takes the same path in transformers 5.15 and vLLM 0.26: its processor is `Qwen3VLProcessor`
with `Qwen3VLVideoProcessor` (transformers' auto mappings), its `Qwen3_5Model.get_rope_index` is a copy of
Qwen3-VL's, and vLLM serves it with `Qwen3VLMultiModalProcessor` and Qwen3-VL's position code
(`Qwen3_5ForConditionalGeneration` extends `Qwen3VLForConditionalGeneration`). It differs in the language model
(linear-attention layers), the vision tower (no DeepStack) and the vocabulary, none of which rarft touches.
`Qwen3_5` extends `Qwen3_VL` with its model type and model class; it claims no processor class, since the
executor, which sees only the processor, gets the Qwen3-VL family for a Qwen3VLProcessor and does for
Qwen3.5 exactly what the Qwen3.5 family would.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import TYPE_CHECKING, Protocol

import torch

from rarft_plugin.clips import ClipInfo, SampledVideo
from rarft_plugin.models import VllmVideoRequest, register
from rarft_plugin.models.qwen_vl import IMAGE, VIDEO, QwenVL, bare_model, media_types, mrope_positions

if TYPE_CHECKING:
    from transformers import ProcessorMixin, Qwen3VLConfig

__all__ = ["VLLM_OLDEST_SUPPORTED", "Qwen3_5", "Qwen3_VL", "group_times", "reference_rope_index", "window_frames"]

# Qwen3-VL's video path was read in vLLM 0.26.0; older releases are refused.
VLLM_OLDEST_SUPPORTED = "0.26.0"


class _ModelWithConfig(Protocol):
    """A Qwen3VLModel, as far as its positions need it (the probe passes a namespace)."""

    config: Qwen3VLConfig


def reference_rope_index(
    self: _ModelWithConfig,
    input_ids: torch.Tensor,
    mm_token_type_ids: torch.Tensor | None = None,
    image_grid_thw: torch.Tensor | None = None,
    video_grid_thw: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    **kwargs: object,
) -> tuple[torch.Tensor, torch.Tensor]:
    """M-RoPE positions (3, batch, length) and rope deltas (batch, 1) as vLLM computes them for Qwen3-VL: every
    frame group of a video a (1, h, w) grid.

    Same signature as transformers 5.x's `Qwen3VLModel.get_rope_index` (bound as its replacement).
    """
    videos = video_grid_thw.tolist() if video_grid_thw is not None else []
    frame_groups = [[1, height, width] for frames, height, width in videos for _ in range(frames)]
    return mrope_positions(
        input_ids,
        media_types(input_ids, self.config) if mm_token_type_ids is None else mm_token_type_ids,
        {IMAGE: image_grid_thw.tolist() if image_grid_thw is not None else [], VIDEO: frame_groups},
        self.config.vision_config.spatial_merge_size,
        itertools.repeat(1.0),
        attention_mask,
    )


def window_frames(video: SampledVideo | ClipInfo) -> tuple[float, list[int]]:
    """(rate, indices): sampled frames as frames of their clip window at the file's frame rate (a hand-made clip
    without its file's rate: at the sampling rate), the first sampled frame at index 0.

    >>> import numpy as np
    >>> window_frames(SampledVideo(np.zeros((3, 32, 32, 3), np.uint8), 2.0, (10.0, 10.6, 11.0), source_fps=10.0))
    (10.0, [0, 6, 10])
    """
    rate = video.source_fps or video.fps
    return rate, [round((t - video.timestamps[0]) * rate) for t in video.timestamps]


def group_times(indices: list[int], fps: float, merge: int) -> list[float]:
    """The time (s) the processor writes before each frame group: the mean of its first and last frame's,
    `indices` padded with the last to a multiple of `merge` (transformers' `Qwen3VLProcessor._calculate_timestamps`,
    the same float operations, so `.1f` rounds alike).

    >>> group_times([0, 6, 10, 15, 20], 10.0, 2)
    [0.3, 1.25, 2.0]
    """
    padded = indices + [indices[-1]] * (-len(indices) % merge)
    times = [index / fps for index in padded]
    return [(times[i] + times[i + merge - 1]) / 2 for i in range(0, len(times), merge)]


@register
class Qwen3_VL(QwenVL):
    """Qwen3-VL (TimeLens-8B's base)."""

    NAME = "qwen3_vl"
    MODEL_TYPES = ("qwen3_vl",)
    PROCESSOR_CLASSES = ("Qwen3VLProcessor",)
    IMAGE_FACTOR = 32  # 16-pixel patches, merged 2 x 2
    TOTAL_PIXELS = 3584 * 32 * 32  # the paper's budget in tokens: at most 3584 video tokens
    MIN_PIXELS = 16 * 32 * 32
    MAX_PIXELS_PER_FRAME = 768 * 32 * 32  # qwen-vl-utils' VIDEO_MAX_TOKEN_NUM for 16-pixel patches
    TRAIN_INPUT_KEYS = ("pixel_values_videos", "video_grid_thw")
    VLLM_OLDEST_SUPPORTED = VLLM_OLDEST_SUPPORTED
    VLLM_PATH = (
        f"rarft follows the Qwen3-VL video path of vLLM {VLLM_OLDEST_SUPPORTED} (metadata in the video item, "
        "timestamps from it)"
    )
    POSITION_MODEL = ("transformers.models.qwen3_vl.modeling_qwen3_vl", "Qwen3VLModel")
    reference_rope_index = staticmethod(reference_rope_index)

    def video_metadata(self, video: SampledVideo) -> dict[str, object]:
        """The clip window as a video at the file's frame rate, and which of its frames were sampled.

        The processor and vLLM write each frame group's time from `frames_indices` / `fps`: the frames' own
        times from the window's first frame.

        >>> import numpy as np
        >>> clip = SampledVideo(np.zeros((4, 32, 32, 3), np.uint8), 2.0, (10.0, 10.6, 11.0, 11.5), source_fps=10.0)
        >>> Qwen3_VL().video_metadata(clip)["frames_indices"]
        [0, 6, 10, 15]
        """
        count, height, width = video.frames.shape[:3]
        rate, indices = window_frames(video)
        return {
            "total_num_frames": indices[-1] + 1,
            "fps": rate,
            "width": width,
            "height": height,
            "duration": (indices[-1] + 1) / rate,
            "frames_indices": indices,
        }

    def video_token_count(self, processor: ProcessorMixin, clip: ClipInfo) -> int:
        """The merged patches (`QwenVL.video_token_count`) plus, for every frame group, its own
        `<|vision_start|>` and `<|vision_end|>` and its timestamp text `<t seconds>`, t as the processor computes
        it from `video_metadata` (`group_times`), tokenised on its own: special tokens bound it in the prompt.

        >>> from rarft_plugin.stand_ins import build_qwen2_5_tokenizer  # Qwen's vocabulary: one token per digit
        >>> from rarft_plugin.clips import ClipInfo
        >>> clip = ClipInfo(30.0, 4, 64, 96, 2.0, (0.0, 0.5, 1.0, 1.5), 30.0)  # 2 groups of 2 x 3 merged patches
        >>> Qwen3_VL().video_token_count(build_qwen2_5_tokenizer(), clip)  # 2 x 6 + 2 x 2 + <0.2 seconds>, <1.2 ...
        28
        """
        rate, indices = window_frames(clip)
        tokenizer = getattr(processor, "tokenizer", processor)
        times = group_times(indices, rate, self.FRAME_FACTOR)
        text = sum(len(tokenizer(f"<{t:.1f} seconds>", add_special_tokens=False)["input_ids"]) for t in times)
        return super().video_token_count(processor, clip) + 2 * len(times) + text

    def vllm_prompt_ids(self, processor: ProcessorMixin, prompt_ids: list[int]) -> list[int]:
        """The expanded prompt with each video's timestamped frame groups collapsed to one `<|video_pad|>` between
        the prompt's own `<|vision_start|>` and `<|vision_end|>`.

        >>> processor = SimpleNamespace(vision_start_token_id=3, vision_end_token_id=4, video_token_id=2)
        >>> Qwen3_VL().vllm_prompt_ids(processor, [0, 3, 9, 3, 2, 2, 4, 8, 3, 2, 2, 4, 4, 0])
        [0, 3, 2, 4, 0]
        """
        start, end, pad = processor.vision_start_token_id, processor.vision_end_token_id, processor.video_token_id
        ids, out, at = list(prompt_ids), [], 0
        while pad in ids[at:]:
            first = ids.index(pad, at)
            outer = max(i for i in range(first - 1) if ids[i] == start)  # the prompt's own, before the first time
            last = first
            while True:  # frame groups until the prompt's own <|vision_end|> follows one
                last = ids.index(end, last)
                if last + 1 >= len(ids) or ids[last + 1] == end:
                    break
                last = ids.index(pad, last)
            out += [*ids[at : outer + 1], pad]
            at = last + 1
        return out + ids[at:]

    def vllm_video_request(self, video: SampledVideo, vllm_version: str) -> VllmVideoRequest:
        """Frames and their metadata in the video item (vLLM requires it for Qwen3-VL from 0.26 on).

        >>> import numpy as np
        >>> clip = SampledVideo(np.zeros((2, 32, 32, 3), np.uint8), 2.0, (0.0, 0.5))
        >>> Qwen3_VL().vllm_video_request(clip, "0.26.0").multi_modal_data["video"][1]["do_sample_frames"]
        False
        """
        self.check_vllm_version(vllm_version)
        return VllmVideoRequest({"video": (video.frames, {**self.video_metadata(video), "do_sample_frames": False})})

    def probe_positions(self, model_class: type) -> tuple[torch.Tensor, torch.Tensor]:
        """Installed and reference positions of a small prompt: text, a video of two frame groups of 1 x 2 merged
        patches, each after its timestamp text, then text."""
        config = SimpleNamespace(
            vision_config=SimpleNamespace(spatial_merge_size=2),
            image_token_id=1,
            video_token_id=2,
            vision_start_token_id=3,
            vision_end_token_id=4,
        )
        # text, <vs>, time, <vs>, 2 video tokens, <ve>, time, time, <vs>, 2 video tokens, <ve>, <ve>, text
        ids = torch.tensor([[0, 3, 5, 3, 2, 2, 4, 5, 5, 3, 2, 2, 4, 4, 0, 0]])
        types = (ids == 2).long() * VIDEO
        video = {"video_grid_thw": torch.tensor([[2, 2, 4]])}
        reference, _ = reference_rope_index(SimpleNamespace(config=config), ids, types, **video)
        installed, _ = model_class.get_rope_index(bare_model(model_class, config), ids, types, **video)
        return installed, reference


@register
class Qwen3_5(Qwen3_VL):
    """Qwen3.5: Qwen3-VL's processor and positions with another language model (see the module docstring)."""

    NAME = "qwen3_5"
    MODEL_TYPES = ("qwen3_5",)
    PROCESSOR_CLASSES = ()  # Qwen3VLProcessor: the executor gets the Qwen3-VL family, which does the same
    POSITION_MODEL = ("transformers.models.qwen3_5.modeling_qwen3_5", "Qwen3_5Model")  # a copy of Qwen3-VL's code
