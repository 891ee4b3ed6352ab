"""The Qwen3-VL family (and Qwen3.5, which shares its video path): what differs from Qwen2.5-VL, against vLLM.

vLLM's side is transcribed from the vllm 0.26.0 source in `tests/support/vllm_qwen.py` (vLLM does not install
here); `tests/gpu/test_vllm_video_positions.py` checks the same against the installed vLLM on a GPU. Findings:
transformers 5.15 computes the positions vLLM computes, text after a video included (every frame group is a
one-frame grid, so "start + max(h, w) / merge" and "largest position + 1" are the same number), and the prompt
vLLM expands from one placeholder is the processor's, timestamps included, token for token.
"""

import numpy as np
import pytest
import torch
from support.vllm_qwen import interleaved_mrope_cos_sin, qwen3_vl_expand, qwen3_vl_positions, qwen3_vl_timestamps
from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLModel

from rarft_plugin.models import family_for_model_type, family_named, family_of_processor
from rarft_plugin.models.qwen3_vl import reference_rope_index
from rarft_plugin.models.qwen_vl import bare_model, restore_installed_video_positions
from rarft_plugin.prompts import build_messages
from rarft_plugin.stand_ins import write_test_video
from rarft_plugin.video import VideoSpec, sample_frames

FAMILY = family_named("qwen3_vl")


pytestmark = pytest.mark.usefixtures("installed_positions")


@pytest.fixture(scope="module")
def tiny(loaded_tiny):
    return loaded_tiny("qwen3_vl")


def prepared(processor, clip, purpose, window=(None, None)):
    prompt = processor.apply_chat_template(
        build_messages("ra_rft", "the bar moves", purpose=purpose), tokenize=False, add_generation_prompt=True
    )
    video = sample_frames(VideoSpec(str(clip), *window), family=FAMILY, cache=False)
    return video, *FAMILY.process_video_prompt(processor, prompt, video)


def rope_index(model_class, config, ids, tensors, attention=None):
    x = torch.tensor([ids]) if not isinstance(ids, torch.Tensor) else ids
    types = (x == config.video_token_id).long() * 2  # as the processor marks video tokens
    attention = torch.ones_like(x) if attention is None else attention
    positions, _ = model_class.get_rope_index(
        bare_model(model_class, config), x, types, video_grid_thw=tensors["video_grid_thw"], attention_mask=attention
    )
    return positions


@pytest.fixture(
    scope="module",
    params=[
        (12, 10, "train", (None, None)),  # 24 frames: 12 frame groups, the response after the video
        (12, 10, "eval", (None, None)),  # video first: the whole question follows it
        (1.5, 10, "train", (None, None)),  # 4 frames from 15
        (9.7, 30, "train", (None, None)),  # 18 frames from 291
        (12, 10, "train", (3.0, 7.5)),  # a window: times from its first frame
    ],
    ids=["train", "eval", "4-frames", "30-fps", "window"],
)
def clip_prompt(request, tiny, tmp_path_factory):
    """(video, expanded prompt ids, training tensors) of a clip prompt."""
    seconds, fps, purpose, window = request.param
    clip = write_test_video(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=seconds, fps=fps, size=(112, 84))
    return prepared(tiny[0], clip, purpose, window)


def test_vllm_expands_one_placeholder_to_the_processors_prompt_timestamps_included(tiny, clip_prompt):
    processor, model = tiny
    video, ids, tensors = clip_prompt
    sent = FAMILY.vllm_prompt_ids(processor, ids)
    assert sent.count(processor.video_token_id) == 1 and len(sent) < len(ids)
    metadata = FAMILY.vllm_video_request(video, "0.26.0").multi_modal_data["video"][1]
    expanded, _ = qwen3_vl_expand(sent, tensors["video_grid_thw"][0], metadata, processor.tokenizer, model.config, 2)
    assert expanded == ids  # token for token, each timestamp tokenised on its own as vLLM does
    times = qwen3_vl_timestamps(metadata, 2)
    assert f"<{times[-1]:.1f} seconds>" in processor.tokenizer.decode(ids)
    first = video.timestamps[0]
    assert times[0] == pytest.approx((video.timestamps[1] - first) / 2, abs=1e-9)  # from the window's first frame


def test_installed_transformers_positions_equal_vllms_text_after_the_video_included(tiny, clip_prompt):
    processor, model = tiny
    _, ids, tensors = clip_prompt
    offset = ids.index(processor.vision_start_token_id) + 1  # where vLLM's placeholder starts: the first time
    expected = qwen3_vl_positions(ids, tensors["video_grid_thw"][0], offset, model.config)
    installed = rope_index(Qwen3VLModel, model.config, ids, tensors)[:, 0].numpy()
    reference = rope_index(type("Reference", (), {"get_rope_index": reference_rope_index}), model.config, ids, tensors)
    assert np.array_equal(installed, expected) and np.array_equal(reference[:, 0].numpy(), expected)
    after = ids.index(processor.vision_end_token_id, len(ids) - ids[::-1].index(processor.video_token_id))
    assert expected[0, after + 1] == expected[:, : after + 1].max() + 1  # the text after the video
    assert FAMILY.use_reference_video_positions() is False  # nothing to replace in transformers 5.15


def test_a_transformers_that_disagreed_would_be_replaced_by_the_reference(monkeypatch):
    def text_after_video_at_its_start(self, input_ids, mm_token_type_ids, **kwargs):
        positions, deltas = reference_rope_index(self, input_ids, mm_token_type_ids, **kwargs)
        return positions.clamp(max=3), deltas  # a wrong release

    monkeypatch.setattr(Qwen3VLModel, "get_rope_index", text_after_video_at_its_start)
    try:
        assert not FAMILY.rope_index_matches_reference()
        assert FAMILY.use_reference_video_positions() is True
        assert Qwen3VLModel.get_rope_index is reference_rope_index and FAMILY.use_reference_video_positions() is False
    finally:
        restore_installed_video_positions()  # back to the wrong release, which monkeypatch then undoes


def test_the_rope_frequencies_are_interleaved_as_vllm_interleaves_them(tmp_path, tiny):
    from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLTextRotaryEmbedding

    processor, model = tiny
    clip = write_test_video(tmp_path / "clip.mp4", seconds=6, size=(112, 84))
    _, ids, tensors = prepared(processor, clip, "train")
    positions = rope_index(Qwen3VLModel, model.config, ids, tensors)  # (3, 1, tokens)
    text = model.config.text_config
    rope = Qwen3VLTextRotaryEmbedding(text)
    cos, sin = rope(torch.zeros(1, dtype=torch.float32), positions)
    section = text.rope_parameters["mrope_section"]
    expected_cos, expected_sin = interleaved_mrope_cos_sin(
        positions[:, 0], text.head_dim, text.rope_parameters["rope_theta"], section
    )
    half = text.head_dim // 2
    # Both sides compute float32 angles (position x frequency, positions up to a few hundred) by other
    # kernels (matmul vs einsum), which round apart by up to ~|angle| x 6e-8; a section taken from the
    # wrong axis would differ by O(1).
    assert torch.allclose(cos[0, :, :half], expected_cos, atol=1e-4)
    assert torch.allclose(sin[0, :, :half], expected_sin, atol=1e-4)
    assert text.rope_parameters["mrope_interleaved"] and not torch.equal(positions[0], positions[1])


@pytest.mark.parametrize(
    "height, width, frames, size, tokens",
    [
        (240, 320, 40, (256, 320), 1600),  # within the budget: nearest multiples of 32
        (1080, 1920, 40, (320, 544), 3400),  # shrunk to the clip's share of 3584·32·32, aspect kept
        (240, 320, 144, (192, 256), 3456),  # a 72-s Charades clip
        (1080, 1920, 768, (96, 160), 5760),  # 768 frames: the per-frame minimum (about 16 tokens) takes over
        (84, 112, 12, (128, 160), 120),  # grown to the minimum
    ],
)
def test_frame_size_in_32_pixel_patches_within_the_papers_token_budget(height, width, frames, size, tokens):
    h, w = FAMILY.frame_size(height, width, frames, total_pixels=FAMILY.TOTAL_PIXELS, min_pixels=FAMILY.MIN_PIXELS)
    assert (h, w) == size and h % 32 == 0 and w % 32 == 0
    assert frames // 2 * (h // 32) * (w // 32) == tokens  # video tokens: one per 32 x 32 pixels of a frame pair


def test_the_frame_rule_is_qwen2_5_vls():
    qwen2_5 = family_named("qwen2_5_vl")
    for total, fps, first, last in [(200, 10, 0, 199), (200, 10, 50, 99), (5, 10, 0, 4), (10**5, 30, 0, 10**5 - 1)]:
        assert np.array_equal(
            FAMILY.frame_indices(total, fps, first, last), qwen2_5.frame_indices(total, fps, first, last)
        )


def test_metadata_places_the_frames_at_their_times_from_the_window_start(tmp_path):
    clip = write_test_video(tmp_path / "clip.mp4", seconds=20, fps=10, size=(112, 84))
    video = sample_frames(VideoSpec(str(clip), 5.0, 12.5), family=FAMILY, cache=False)  # 75 frames -> 14
    metadata = FAMILY.video_metadata(video)
    assert metadata["fps"] == 10.0 and metadata["frames_indices"][0] == 0
    seconds = np.array(metadata["frames_indices"]) / metadata["fps"]
    assert np.allclose(seconds, np.array(video.timestamps) - 5.0)  # each frame's own time in the window
    assert metadata["frames_indices"][-1] == 74  # the window's last frame, not 13 / 1.87 fps


# ---------------------------------------------------------------- Qwen3.5: the same video path


def test_qwen3_5_is_qwen3_vls_video_path_with_its_own_model_class(tmp_path, tiny):
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES
    from transformers.models.auto.video_processing_auto import VIDEO_PROCESSOR_MAPPING_NAMES
    from transformers.models.qwen3_5.modeling_qwen3_5 import Qwen3_5Model

    processor, model = tiny
    qwen3_5 = family_for_model_type("qwen3_5")
    assert qwen3_5.NAME == "qwen3_5" and isinstance(qwen3_5, type(FAMILY))
    # transformers processes Qwen3.5 videos with Qwen3-VL's processors, so the executor's family is Qwen3-VL's
    assert PROCESSOR_MAPPING_NAMES["qwen3_5"] == PROCESSOR_MAPPING_NAMES["qwen3_vl"] == "Qwen3VLProcessor"
    assert VIDEO_PROCESSOR_MAPPING_NAMES["qwen3_5"] == VIDEO_PROCESSOR_MAPPING_NAMES["qwen3_vl"]
    assert family_of_processor(processor) is FAMILY
    # its own copy of the position code computes vLLM's positions too
    assert qwen3_5.position_model_class() is Qwen3_5Model and qwen3_5.rope_index_matches_reference()
    clip = write_test_video(tmp_path / "clip.mp4", seconds=12, size=(112, 84))
    _, ids, tensors = prepared(processor, clip, "train")
    offset = ids.index(processor.vision_start_token_id) + 1
    expected = qwen3_vl_positions(ids, tensors["video_grid_thw"][0], offset, model.config)
    assert np.array_equal(rope_index(Qwen3_5Model, model.config, ids, tensors)[:, 0].numpy(), expected)
