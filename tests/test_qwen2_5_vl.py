"""The Qwen2.5-VL family: frame sampling rules, the processor call, and the video positions.

Positions: rarft's reference equals vLLM's algorithm; transformers 5.x as installed does not.

`qwen2_5_vl_positions` (tests/support/vllm_qwen.py) is vLLM 0.26's
`Qwen2_5_VLForConditionalGeneration.get_mrope_input_positions` (with `iter_mm_grid_thw`), re-typed with numpy
so that it runs where vLLM does not install; the GPU test `tests/gpu/test_vllm_video_positions.py` checks the
reference against the installed vLLM itself.
"""

import numpy as np
import pytest
import torch
from support.vllm_qwen import qwen2_5_vl_positions
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel

from rarft_plugin.clips import VideoError
from rarft_plugin.models import family_named
from rarft_plugin.models.qwen2_5_vl import reference_rope_index
from rarft_plugin.models.qwen_vl import smart_resize
from rarft_plugin.prompts import build_messages
from rarft_plugin.stand_ins import write_test_video
from rarft_plugin.video import VideoSpec, sample_frames

FAMILY = family_named("qwen2_5_vl")
MIN_PIXELS = FAMILY.MIN_PIXELS
use_reference_video_positions = FAMILY.use_reference_video_positions


pytestmark = pytest.mark.usefixtures("installed_positions")


@pytest.fixture(scope="module")
def tiny(loaded_tiny):
    return loaded_tiny("qwen2_5_vl")


def prompt_and_inputs(processor, clip, purpose):
    prompt = processor.apply_chat_template(
        build_messages("ra_rft", "the bar moves", purpose=purpose), tokenize=False, add_generation_prompt=True
    )
    return FAMILY.process_video_prompt(processor, prompt, sample_frames(VideoSpec(str(clip)), cache=False))


def positions(model, processor, ids, tensors, attention=None):
    x = torch.tensor([ids]) if not isinstance(ids, torch.Tensor) else ids
    types = (x == processor.video_token_id).long() * 2
    out, _ = model.model.get_rope_index(
        x,
        types,
        video_grid_thw=tensors["video_grid_thw"],
        second_per_grid_ts=tensors["second_per_grid_ts"],
        attention_mask=torch.ones_like(x) if attention is None else attention,
    )
    return out


@pytest.mark.parametrize(
    "seconds, fps, purpose",
    [
        (12, 10, "train"),  # 24 frames at 2 FPS: 12 temporal grids, text (the response) after the video
        (12, 10, "eval"),  # video first: the whole question follows it
        (1.5, 10, "train"),  # 4 frames from 15: sampled at 2.67 FPS, second_per_grid 0.75
        (9.7, 30, "train"),  # 18 frames from 291: 1.86 FPS
    ],
)
def test_reference_equals_vllm_and_installed_transformers_does_not(tmp_path, tiny, seconds, fps, purpose):
    processor, model = tiny
    clip = write_test_video(tmp_path / "clip.mp4", seconds=seconds, fps=fps, size=(112, 84))
    ids, tensors = prompt_and_inputs(processor, clip, purpose)
    expected = qwen2_5_vl_positions(
        ids, tensors["video_grid_thw"][0], tensors["second_per_grid_ts"].item(), model.config, processor.video_token_id
    )
    installed = positions(model, processor, ids, tensors)[:, 0].numpy()
    assert use_reference_video_positions()
    reference = positions(model, processor, ids, tensors)[:, 0].numpy()
    assert np.array_equal(reference, expected)
    assert not np.array_equal(installed, expected)  # transformers 5.x: text after a video, truncated seconds


def test_the_installed_transformers_is_probed_and_replaced_once():
    assert not FAMILY.rope_index_matches_reference(Qwen2_5_VLModel)  # transformers 5.15, as OpenRLHF 0.11.2 pins it
    assert use_reference_video_positions() is True
    assert Qwen2_5_VLModel.get_rope_index is reference_rope_index and FAMILY.rope_index_matches_reference()
    assert use_reference_video_positions() is False  # idempotent


def test_training_log_probs_change_with_the_positions_and_generation_still_runs(tmp_path, tiny):
    processor, model = tiny
    clip = write_test_video(tmp_path / "clip.mp4", seconds=12, size=(112, 84))
    ids, tensors = prompt_and_inputs(processor, clip, "train")
    x = torch.tensor([ids])
    inputs = {
        "input_ids": x,
        "attention_mask": torch.ones_like(x),
        "mm_token_type_ids": (x == processor.video_token_id).long() * 2,
        **{k: v for k, v in tensors.items() if k != "image_grid_thw"},
    }
    with torch.no_grad():
        installed = model(**inputs).logits
        use_reference_video_positions()
        reference = model(**inputs).logits
        generated = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert not torch.allclose(installed[0, -1], reference[0, -1])  # the response's positions moved
    assert generated.shape[1] == len(ids) + 4


# ---------------------------------------------------------------- sampling rules and the processor call


@pytest.mark.parametrize(
    "height, width, max_pixels, expected",
    [
        (240, 320, 100 * 28 * 28, (252, 308)),  # already within budget: nearest multiples of 28
        (1080, 1920, 100 * 28 * 28, (196, 364)),  # shrunk under the budget, aspect kept
        (20, 20, 100 * 28 * 28, (112, 112)),  # grown to the minimum
    ],
)
def test_smart_resize(height, width, max_pixels, expected):
    h, w = smart_resize(height, width, factor=28, min_pixels=MIN_PIXELS, max_pixels=max_pixels)
    assert (h, w) == expected and h % 28 == 0 and w % 28 == 0
    assert MIN_PIXELS <= h * w <= max_pixels


def test_extreme_aspect_ratio_is_refused():
    with pytest.raises(VideoError, match="aspect ratio"):
        smart_resize(10, 4000, factor=28, min_pixels=MIN_PIXELS, max_pixels=10**6)


@pytest.mark.parametrize(
    "total, fps, first, last, count",
    [
        (200, 10, 0, 199, 40),
        (200, 10, 50, 99, 10),
        (5, 10, 0, 4, 4),
        (3000, 25, 0, 2999, 240),
        (10**5, 30, 0, 10**5 - 1, 768),  # capped at 768 frames
    ],
)
def test_frame_indices_are_even_at_2_fps(total, fps, first, last, count):
    indices = FAMILY.frame_indices(total, fps, first, last)
    assert len(indices) == count and len(indices) % 2 == 0
    assert indices[0] == first and indices[-1] == last and np.all(np.diff(indices) > 0)


def test_metadata_gives_the_processor_the_sampling_fps(tiny, tmp_path):
    processor, _ = tiny
    clip = write_test_video(tmp_path / "clip.mp4", seconds=20, fps=10, size=(320, 240))
    video = sample_frames(VideoSpec(str(clip), 0.0, 7.5), cache=False)  # 75 frames -> 14: fps 1.87, not 2
    assert video.fps == pytest.approx(14 / 75 * 10)
    out = processor(
        text=["<|vision_start|><|video_pad|><|vision_end|>"],
        **FAMILY.processor_video_inputs([video]),
        return_tensors="pt",
    )
    assert out["second_per_grid_ts"].tolist() == pytest.approx([2 / video.fps])  # temporal patch of 2 frames
    assert tuple(out["video_grid_thw"][0].tolist()) == (7, video.frames.shape[1] // 14, video.frames.shape[2] // 14)
