"""Qwen2.5-VL's windowed vision attention in a few sdpa calls instead of one per window.

Without flash-attn, transformers' `Qwen2_5_VLVisionAttention` attends each window on its own, in a Python loop: a
Charades-like clip at the paper's budget is 336 windows in each of 28 windowed blocks, 9,408 small sdpa calls a
forward. On an H100 the 3B's vision tower took 538 ms a forward that way, for ~17.6 TFLOP of matrix work
(`bench/vision_attention.py`, docs/gpu.md "Paper scale"), and every rollout pays it in each forward of
make_experience and ppo_train. Windows are mostly of one length (the window's patches; the clip's edges make a few
shorter), so `grouped_window_sdpa` gathers the windows of each length into one batch: one sdpa call per distinct
length, the same numbers as the loop (each window still attends only to itself).

`use_grouped_window_attention()` installs it on the installed transformers' class where the attention
implementation is sdpa (flash-attn's varlen path and eager are left as they are), after checking on a probe that
it gives the loop's output; a transformers release whose attention differs is left alone, with a warning. rarft
applies it where it applies `use_reference_video_positions`: every Ray worker of a training run, `rarft-eval
infer`'s transformers backend and the GPU scripts.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

__all__ = ["grouped_window_sdpa", "restore_window_attention", "use_grouped_window_attention"]

_log = logging.getLogger(__name__)
_ORIGINAL: dict[type, object] = {}  # class -> its own forward, while replaced


def grouped_window_sdpa(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, cu_seqlens: torch.Tensor, scaling: float
) -> torch.Tensor:
    """Attention within each window [cu_seqlens[i], cu_seqlens[i + 1]) of (heads, seq, dim) tensors, the windows of
    one length in one sdpa call; (seq, heads, dim), the layout transformers' loop concatenates."""
    bounds = cu_seqlens.tolist()
    starts, lengths = bounds[:-1], [end - start for start, end in zip(bounds[:-1], bounds[1:], strict=True)]
    output = query.new_empty(query.shape)
    for length in sorted(set(lengths) - {0}):
        first = torch.tensor([s for s, n in zip(starts, lengths, strict=True) if n == length], device=query.device)
        positions = first[:, None] + torch.arange(length, device=query.device)  # (windows, length)
        q, k, v = (tensor[:, positions].transpose(0, 1) for tensor in (query, key, value))  # (windows, heads, L, d)
        attended = F.scaled_dot_product_attention(q, k, v, scale=scaling)
        output[:, positions] = attended.transpose(0, 1)
    return output.transpose(0, 1)


def _grouped_forward(original):
    def forward(self, hidden_states, cu_seqlens, position_embeddings=None, max_seqlen=None, **kwargs):
        if self.config._attn_implementation != "sdpa" or (self.training and self.attention_dropout):
            return original(self, hidden_states, cu_seqlens, position_embeddings, max_seqlen, **kwargs)
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import apply_rotary_pos_emb_vision

        seq_length = hidden_states.shape[0]
        query, key, value = (
            self.qkv(hidden_states).reshape(seq_length, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
        )
        cos, sin = position_embeddings
        query, key = apply_rotary_pos_emb_vision(query, key, cos, sin)
        attended = grouped_window_sdpa(
            query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1), cu_seqlens, self.scaling
        )
        return self.proj(attended.reshape(seq_length, -1).contiguous())

    forward.rarft_grouped = True
    return forward


def _probe_matches(attention_class, config_class) -> bool:
    """Whether the grouped forward gives the installed forward's output on a small random attention (windows of
    three lengths), in float64."""
    config = config_class(hidden_size=32, num_heads=4)
    config._attn_implementation = "sdpa"
    with torch.random.fork_rng(devices=[]):  # a worker's global random state is left as it was
        torch.manual_seed(0)
        module = attention_class(config).double().eval()
    seq = 23
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(seq, 32, dtype=torch.float64, generator=generator)
    angles = torch.randn(seq, 4, dtype=torch.float64, generator=generator)  # half the head dimension
    embeddings = (torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin())
    cu_seqlens = torch.tensor([0, 8, 16, 16, 20, 23], dtype=torch.int32)
    original = _ORIGINAL.get(attention_class, attention_class.forward)
    with torch.no_grad():
        expected = original(module, hidden, cu_seqlens, position_embeddings=embeddings)
        grouped = _grouped_forward(original)(module, hidden, cu_seqlens, position_embeddings=embeddings)
    return torch.allclose(expected, grouped, atol=1e-10)


def use_grouped_window_attention() -> bool:
    """Install the grouped attention on transformers' Qwen2.5-VL vision attention (sdpa only); True if it is
    installed now. Idempotent; left alone where the probe disagrees or the class is missing."""
    try:
        from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as modeling
    except ImportError:
        return False
    attention = modeling.Qwen2_5_VLVisionAttention
    if getattr(attention.forward, "rarft_grouped", False):
        return True
    try:
        matches = _probe_matches(attention, modeling.Qwen2_5_VLVisionConfig)
    except Exception as error:  # noqa: BLE001 -- another transformers layout: keep its own attention
        _log.warning("rarft: Qwen2.5-VL's vision attention left as is (the probe failed: %s)", error)
        return False
    if not matches:
        _log.warning("rarft: Qwen2.5-VL's vision attention left as is (grouped windows differ on the probe)")
        return False
    _ORIGINAL[attention] = attention.forward
    attention.forward = _grouped_forward(attention.forward)
    return True


def restore_window_attention() -> None:
    """Undo `use_grouped_window_attention` (tests and benches compare both)."""
    for attention_class, forward in _ORIGINAL.items():
        attention_class.forward = forward
    _ORIGINAL.clear()
