"""Qwen2.5-VL's windowed vision attention in one sdpa call per window length (`rarft_plugin.models.window_attention`):
the numbers of transformers' per-window loop, in fewer calls, installed only where a probe agrees."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rarft_plugin.models import window_attention
from rarft_plugin.models.window_attention import (
    grouped_window_sdpa,
    restore_window_attention,
    use_grouped_window_attention,
)

TINY = {"depth": 4, "hidden_size": 64, "intermediate_size": 128, "num_heads": 4, "fullatt_block_indexes": [3],
        "out_hidden_size": 64}  # fmt: skip


@pytest.fixture(autouse=True)
def transformers_own_attention():
    restore_window_attention()
    yield
    restore_window_attention()


def per_window(query, key, value, bounds, scaling):
    """transformers' loop: each window on its own."""
    outputs = [
        F.scaled_dot_product_attention(query[:, a:b], key[:, a:b], value[:, a:b], scale=scaling).transpose(0, 1)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    return torch.cat(outputs, dim=0)


@pytest.mark.parametrize(
    "bounds",
    [
        [0, 64, 128, 192, 224],  # full windows and an edge one
        [0, 5],  # one window
        [0, 3, 3, 10, 14, 17, 17, 20],  # empty windows (repeated bounds) and three lengths
        [0, 16, 32, 48, 64],  # all of one length (a full-attention block's frames)
    ],
)
def test_grouped_windows_give_the_loops_numbers(bounds):
    generator = torch.Generator().manual_seed(len(bounds))
    query, key, value = (torch.randn(4, bounds[-1], 8, generator=generator, dtype=torch.float64) for _ in range(3))
    cu_seqlens = torch.tensor(bounds, dtype=torch.int32)
    expected = per_window(query, key, value, bounds, 0.35)
    assert torch.allclose(grouped_window_sdpa(query, key, value, cu_seqlens, 0.35), expected, atol=1e-12)


def tiny_tower(implementation):
    from transformers import Qwen2_5_VLConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

    config = Qwen2_5_VLConfig(vision_config=TINY).vision_config
    config._attn_implementation = implementation
    torch.manual_seed(0)
    return Qwen2_5_VisionTransformerPretrainedModel(config).eval()


def forward_counting_calls(tower, monkeypatch):
    calls = []
    real = F.scaled_dot_product_attention

    def counted(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counted)
    grid = torch.tensor([[4, 8, 12]])  # 8 frames of 112x168: 2 windows a temporal patch
    pixels = torch.randn(4 * 8 * 12, 3 * 2 * 14 * 14, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = tower(pixels, grid_thw=grid)
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", real)
    return out.pooler_output, len(calls)


def test_the_tower_gives_the_same_output_in_fewer_attention_calls(monkeypatch):
    tower = tiny_tower("sdpa")
    looped, loop_calls = forward_counting_calls(tower, monkeypatch)
    assert use_grouped_window_attention()
    grouped, grouped_calls = forward_counting_calls(tower, monkeypatch)
    assert torch.allclose(looped, grouped, atol=1e-5)
    # a temporal patch's 4 x 6 merged units make a window of 4 x 4 and one of 4 x 2: the loop calls sdpa for each
    # of 3 windowed blocks x 8 windows + 1 full-attention block x 4 temporal patches; grouped, once a length
    assert (loop_calls, grouped_calls) == (3 * 8 + 4, 3 * 2 + 1)


def test_installing_is_idempotent_and_other_implementations_keep_their_path(monkeypatch):
    assert use_grouped_window_attention() and use_grouped_window_attention()
    tower = tiny_tower("eager")
    _, calls = forward_counting_calls(tower, monkeypatch)
    assert calls == 0  # eager attention: transformers' own loop, no sdpa


def test_a_transformers_whose_attention_differs_is_left_alone(monkeypatch, caplog):
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as modeling

    own = modeling.Qwen2_5_VLVisionAttention.forward

    def other(self, hidden_states, cu_seqlens, position_embeddings=None, max_seqlen=None, **kwargs):
        return 2 * own(self, hidden_states, cu_seqlens, position_embeddings, max_seqlen, **kwargs)

    monkeypatch.setattr(modeling.Qwen2_5_VLVisionAttention, "forward", other)
    assert not use_grouped_window_attention()
    assert modeling.Qwen2_5_VLVisionAttention.forward is other and "left as is" in caplog.text
    assert window_attention._ORIGINAL == {}


def test_grouped_windows_give_the_loops_gradients():
    """A vision tower that trains (no --actor.freeze_visual_encoder) back-propagates through the grouped calls."""
    bounds = [0, 6, 12, 15]
    generator = torch.Generator().manual_seed(3)
    inputs = [torch.randn(2, 15, 4, generator=generator, dtype=torch.float64) for _ in range(3)]
    gradients = []
    for attend in (
        lambda q, k, v: per_window(q, k, v, bounds, 0.5),
        lambda q, k, v: grouped_window_sdpa(q, k, v, torch.tensor(bounds), 0.5),
    ):
        leaves = [tensor.clone().requires_grad_() for tensor in inputs]
        (attend(*leaves) * torch.arange(15.0, dtype=torch.float64)[:, None, None]).sum().backward()
        gradients.append([leaf.grad for leaf in leaves])
    assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(*gradients, strict=True))


def test_installing_leaves_the_global_random_state_alone():
    """The probe runs in every Ray worker's setup: it must not reseed what the trainer seeds."""
    state = torch.random.get_rng_state()
    assert use_grouped_window_attention()
    assert torch.equal(torch.random.get_rng_state(), state)
