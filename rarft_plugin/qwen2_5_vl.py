"""Qwen2.5-VL video positions: make training compute the M-RoPE positions that rollouts (vLLM) use.

Qwen2.5-VL gives each video token a (temporal, height, width) position. The model's reference
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
from typing import Any

import torch

__all__ = [
    "reference_rope_index",
    "restore_installed_video_positions",
    "rope_index_matches_reference",
    "use_reference_video_positions",
]

_log = logging.getLogger(__name__)
_REPLACED: dict[Any, Any] = {}  # class -> the get_rope_index it had
TEXT, IMAGE, VIDEO = 0, 1, 2  # mm_token_type_ids, as the processor marks tokens


def reference_rope_index(
    self: Any,
    input_ids: torch.Tensor,
    mm_token_type_ids: torch.Tensor | None = None,
    image_grid_thw: torch.Tensor | None = None,
    video_grid_thw: torch.Tensor | None = None,
    second_per_grid_ts: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """M-RoPE positions (3, batch, length) and rope deltas (batch, 1) as vLLM and Qwen's reference compute them.

    Same signature as transformers 5.x's `Qwen2_5_VLModel.get_rope_index` (bound as its replacement).
    """
    vision = self.config.vision_config
    merge, tokens_per_second = vision.spatial_merge_size, vision.tokens_per_second
    if mm_token_type_ids is None:  # callers of transformers 4.x's signature: types from the token ids
        mm_token_type_ids = (input_ids == self.config.image_token_id) * IMAGE + (
            input_ids == self.config.video_token_id) * VIDEO
    grids = {IMAGE: iter(image_grid_thw.tolist() if image_grid_thw is not None else []),
             VIDEO: iter(video_grid_thw.tolist() if video_grid_thw is not None else [])}
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
                grid = torch.stack(torch.meshgrid(
                    (torch.arange(frames, dtype=torch.float64) * scale).long(),
                    torch.arange(height // merge), torch.arange(width // merge), indexing="ij"))
                if grid[0].numel() != length:
                    raise ValueError(f"{length} media tokens but a grid of {frames}x{height}x{width} patches "
                                     f"merged {merge}x{merge}: the prompt and the media inputs disagree")
                parts.append(grid.reshape(3, -1) + start)
            start = int(parts[-1].max()) + 1
        joined = torch.cat(parts, dim=1) if parts else torch.zeros(3, 0, dtype=torch.long)
        positions[:, row, keep] = joined.to(positions)
        deltas.append(start - len(types))
    return positions, torch.tensor(deltas, device=input_ids.device).unsqueeze(1)


def _probe(model_class: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Installed and reference positions of a small prompt: text, a 2-grid video sampled at 1.9 FPS, text."""
    from types import SimpleNamespace

    config = SimpleNamespace(vision_config=SimpleNamespace(spatial_merge_size=2, tokens_per_second=2),
                             image_token_id=1, video_token_id=2, vision_start_token_id=3)
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


def rope_index_matches_reference(model_class: Any = None) -> bool:
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

    Idempotent; usable as a Ray `worker_process_setup_hook` ("rarft_plugin.qwen2_5_vl.use_reference_video_positions").
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
    _log.warning("rarft: transformers %s computes Qwen2.5-VL video positions unlike vLLM and the reference; "
                 "using the reference (rarft_plugin.qwen2_5_vl)", transformers.__version__)
    return True


def restore_installed_video_positions() -> None:
    """Undo `use_reference_video_positions` (tests compare both)."""
    for model_class, original in _REPLACED.items():
        model_class.get_rope_index = original
    _REPLACED.clear()
