"""vLLM 0.26.0's handling of a Qwen video, transcribed with numpy so that it runs where vLLM does not install.

From the vllm 0.26.0 wheel (read, not installed):

- `qwen2_5_vl_positions`: `vllm/model_executor/models/qwen2_5_vl.py`,
  `Qwen2_5_VLForConditionalGeneration.get_mrope_input_positions` with `iter_mm_grid_thw` (one video);
- `qwen3_vl_positions`: `vllm/model_executor/models/qwen3_vl.py`,
  `Qwen3VLForConditionalGeneration._get_mrope_input_positions` with `_iter_mm_grid_hw` (every frame group a
  (1, h, w) grid found between its `<|vision_start|>` and `<|vision_end|>`; without EVS pruning, so no "lumped"
  placeholder). `vllm/model_executor/models/qwen3_5.py` serves Qwen3.5 with the same class and processor;
- `qwen3_vl_timestamps`: `Qwen3VLProcessingInfo._get_video_second_idx` (`do_sample_frames` False: the
  metadata's `frames_indices`) and `_calculate_timestamps`;
- `interleaved_mrope_cos_sin`: `vllm/model_executor/layers/rotary_embedding/mrope.py`, `MRotaryEmbedding` with
  `mrope_interleaved` (Qwen3-VL's text config sets it): the cos / sin cache of `base.py` indexed by the three
  position rows, then `apply_interleaved_rope` (frequency i from H where i % 3 == 1, from W where i % 3 == 2,
  within their sections, else from T);
- `qwen3_vl_expand`: the prompt update of `Qwen3VLMultiModalProcessor` for a transformers >= 5.10 processor
  (`_expands_only_video_token`: the bare `<|video_pad|>` is the target, the prompt's own
  `<|vision_start|>`/`<|vision_end|>` stay) with `get_video_repl`: per frame group the timestamp text
  `<{t:.1f} seconds>` tokenised on its own, `<|vision_start|>`, the group's video tokens, `<|vision_end|>`.

The GPU test `tests/gpu/test_vllm_video_positions.py` checks the families against the installed vLLM itself.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "interleaved_mrope_cos_sin",
    "qwen2_5_vl_positions",
    "qwen3_vl_expand",
    "qwen3_vl_positions",
    "qwen3_vl_timestamps",
]


def qwen2_5_vl_positions(ids, grid, second_per_grid, config, video_token_id):
    """vLLM 0.26's M-RoPE positions of one Qwen2.5-VL prompt with one video."""
    merge, tokens_per_second = config.vision_config.spatial_merge_size, config.vision_config.tokens_per_second
    frames, height, width = (int(v) for v in grid)
    height, width = height // merge, width // merge
    offset = ids.index(video_token_id)
    parts = [np.broadcast_to(np.arange(offset), (3, offset))]
    indices = np.indices((frames, height, width))
    t_factor = second_per_grid * tokens_per_second
    if t_factor != 1.0:
        indices[0] = (indices[0] * t_factor).astype(np.int64)
    parts.append(indices.reshape(3, -1) + offset)
    rest = len(ids) - offset - frames * height * width
    if rest:
        parts.append(np.broadcast_to(np.arange(rest), (3, rest)) + parts[-1].max() + 1)
    return np.concatenate(parts, axis=1)


def _frame_groups(ids, offset, frames, config):
    """`_iter_mm_grid_hw` for one video whose placeholder starts at `offset`: (first video token, token count)."""
    for _ in range(frames):
        offset = ids.index(config.vision_start_token_id, offset)
        end = ids.index(config.vision_end_token_id, offset)
        first = ids.index(config.video_token_id, offset, end)
        yield first, end - first
        offset = end + 1


def qwen3_vl_positions(ids, grid, offset, config):
    """vLLM 0.26's M-RoPE positions of one Qwen3-VL prompt with one video whose placeholder starts at `offset`."""
    merge = config.vision_config.spatial_merge_size
    frames, height, width = (int(v) for v in grid)
    height, width = height // merge, width // merge
    parts, start = [], 0
    for first, count in _frame_groups(ids, offset, frames, config):
        assert count == height * width, "EVS pruning is not transcribed"
        text = first - start
        at = parts[-1].max() + 1 if parts else 0
        parts.append(np.broadcast_to(np.arange(text), (3, text)) + at)
        parts.append(np.indices((1, height, width)).reshape(3, -1) + text + at)
        start = first + count
    if start < len(ids):
        at = parts[-1].max() + 1 if parts else 0
        parts.append(np.broadcast_to(np.arange(len(ids) - start), (3, len(ids) - start)) + at)
    return np.concatenate(parts, axis=1)


def qwen3_vl_timestamps(metadata, temporal_patch_size):
    """The seconds vLLM writes before each frame group: the mean time of the group's first and last frame."""
    indices = list(metadata["frames_indices"])
    if len(indices) % temporal_patch_size:
        indices += [indices[-1]] * (temporal_patch_size - len(indices) % temporal_patch_size)
    seconds = [index / metadata["fps"] for index in indices]
    return [
        (seconds[i] + seconds[i + temporal_patch_size - 1]) / 2 for i in range(0, len(seconds), temporal_patch_size)
    ]


def qwen3_vl_expand(prompt_ids, grid, metadata, tokenizer, config, temporal_patch_size):
    """The prompt vLLM runs for token ids holding one `<|video_pad|>`, and the offset of the video's placeholder."""
    frames, height, width = (int(v) for v in grid)
    per_frame = height * width // config.vision_config.spatial_merge_size**2
    replacement = []
    for second in qwen3_vl_timestamps(metadata, temporal_patch_size):
        assert frames, "more timestamps than frame groups"
        replacement += tokenizer.encode(f"<{second:.1f} seconds>", add_special_tokens=False)
        replacement += [config.vision_start_token_id, *[config.video_token_id] * per_frame, config.vision_end_token_id]
        frames -= 1
    assert frames == 0 and prompt_ids.count(config.video_token_id) == 1
    at = prompt_ids.index(config.video_token_id)
    return prompt_ids[:at] + replacement + prompt_ids[at + 1 :], at


def interleaved_mrope_cos_sin(positions, rotary_dim, base, mrope_section):
    """vLLM's cos and sin (tokens, rotary_dim / 2) for M-RoPE positions (3, tokens), sections interleaved."""
    inv_freq = 1.0 / (base ** (torch.arange(0, rotary_dim, 2, dtype=torch.float) / rotary_dim))
    t = torch.arange(int(positions.max()) + 1, dtype=torch.float)
    freqs = torch.einsum("i,j -> ij", t, inv_freq)
    cos, sin = freqs.cos()[positions], freqs.sin()[positions]  # (3, tokens, rotary_dim / 2)

    def interleave(x):
        chosen = x[0].clone()
        chosen[..., 1 : mrope_section[1] * 3 : 3] = x[1, ..., 1 : mrope_section[1] * 3 : 3]
        chosen[..., 2 : mrope_section[2] * 3 : 3] = x[2, ..., 2 : mrope_section[2] * 3 : 3]
        return chosen

    return interleave(cos), interleave(sin)
