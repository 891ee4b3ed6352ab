"""The video rollout executor, loaded by OpenRLHF's own loader, driving a tiny Qwen2.5-VL on CPU."""

import asyncio
import json
from types import SimpleNamespace

import pytest
import torch

from rarft_plugin.paths import plugin_path
from rarft_plugin.rewards import REWARD_NAMES, score
from rarft_plugin.testing import build_tiny_qwen2_5_vl, install_import_stand_ins, write_test_video
from rarft_plugin.video import VideoSpec

install_import_stand_ins()

LABEL = {
    "relevant": True, "timestamp": [2.0, 4.0], "duration": 6.0, "query": "the bar moves right",
    "answer_time": "2.00 to 4.00", "answer_refusal": "The video shows no such thing.",
    "query_relevant": "the bar moves right",
}
RESPONSE = "<think>The bar moves.</think> <answer>2.00 to 4.50</answer> <correct></correct>"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoProcessor

    directory = build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("tiny-qwen"))
    return AutoProcessor.from_pretrained(directory), directory


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_test_video(tmp_path_factory.mktemp("videos") / "clip.mp4", seconds=6, size=(112, 84))


class RecordingEngine:
    """Stands in for OpenRLHF's vLLM engine actor: records what it is sent, answers a scripted text."""

    def __init__(self, processor, text):
        self.processor, self.text, self.calls = processor, text, []

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        self.calls.append((list(prompt_token_ids), multi_modal_data, sampling_params))
        ids = self.processor.tokenizer(self.text + "<|im_end|>", add_special_tokens=False)["input_ids"]
        logprobs = [{token: SimpleNamespace(logprob=-0.5)} for token in ids]
        return SimpleNamespace(outputs=[SimpleNamespace(token_ids=ids, text=self.text, logprobs=logprobs,
                                                        finish_reason="stop")])


def load_executor_like_openrlhf():
    from openrlhf.trainer.ray.vllm_engine import _load_agent_executor

    return _load_agent_executor(str(plugin_path("agent")))


def rollout(processor, clip, sbert, text=RESPONSE, label=LABEL, start=None, end=None):
    from rarft_plugin.prompts import build_messages

    executor = load_executor_like_openrlhf()
    executor._reward_options = {"variant": "paper", "weights": None, "similarity": sbert}
    prompt = processor.apply_chat_template(build_messages("ra_rft", label["query"]), tokenize=False,
                                           add_generation_prompt=True)
    engine = RecordingEngine(processor, text)
    params = SimpleNamespace(max_tokens=64, logprobs=1)
    output = asyncio.run(executor.execute(prompt, json.dumps(label), params, 4096, processor, engine,
                                          images=VideoSpec(str(clip), start, end).to_json()))
    return output, engine


def test_engine_gets_one_placeholder_and_the_frames(tiny, clip, sbert):
    processor, _ = tiny
    output, engine = rollout(processor, clip, sbert)
    (sent_ids, mm_data, _), = engine.calls
    video_id = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert sent_ids.count(video_id) == 1
    frames = mm_data["video"]
    assert frames.ndim == 4 and frames.shape[0] == 12 and frames.shape[-1] == 3  # 6 s at 2 FPS
    assert frames.shape[1] % 28 == 0 and frames.shape[2] % 28 == 0
    expanded = output["observation_tokens"][: output["action_ranges"][0][0]]
    grid = output["mm_train_inputs"]["video_grid_thw"][0]
    assert expanded.count(video_id) == int(grid.prod()) // 4  # spatial merge 2 x 2
    assert [t for t in expanded if t != video_id] == [t for t in sent_ids if t != video_id]


def test_reward_equals_rewards_score(tiny, clip, sbert):
    output, _ = rollout(tiny[0], clip, sbert)
    expected = score(RESPONSE, LABEL, similarity=sbert)
    assert output["reward"].item() == pytest.approx(expected["total"], abs=1e-5)
    assert output["scores"].item() == pytest.approx(expected["total"], abs=1e-5)
    assert {k: v.item() for k, v in output["extra_logs"].items()} == pytest.approx(
        {k: expected[k] for k in REWARD_NAMES}, abs=1e-5)
    start, end = output["action_ranges"][0]
    assert end - start == len(output["observation_tokens"]) - start
    assert len(output["rollout_log_probs"]) == len(output["observation_tokens"])


def test_clip_window_sets_the_frames(tiny, clip, sbert):
    output, engine = rollout(tiny[0], clip, sbert, start=2.0, end=4.0)
    assert engine.calls[0][1]["video"].shape[0] == 4  # 2 s at 2 FPS
    assert output["mm_train_inputs"]["second_per_grid_ts"].tolist() == pytest.approx([1.0])


def test_merged_inputs_train_the_model_through_openrlhf_actor(tiny, clip, sbert):
    from openrlhf.models import Actor
    from openrlhf.utils.vlm_utils import merge_mm_train_inputs

    processor, directory = tiny
    outputs = [rollout(processor, clip, sbert)[0], rollout(processor, clip, sbert, start=1.0, end=5.0)[0]]
    merged = merge_mm_train_inputs([[o["mm_train_inputs"] for o in outputs]], "cpu")
    assert merged["image_grid_thw"].shape == (0, 3) and merged["video_grid_thw"].shape == (2, 3)

    length = max(len(o["observation_tokens"]) for o in outputs)
    pad = processor.tokenizer.pad_token_id
    sequences = torch.full((2, length), pad, dtype=torch.long)
    attention = torch.zeros((2, length), dtype=torch.long)
    for row, o in enumerate(outputs):  # left padding, as OpenRLHF batches rollouts
        tokens = o["observation_tokens"]
        sequences[row, length - len(tokens):] = torch.tensor(tokens)
        attention[row, length - len(tokens):] = 1
    response_length = max(e - s for o in outputs for s, e in o["action_ranges"])
    action_mask = attention[:, -response_length:].bool()

    actor = Actor(str(directory), attn_implementation="eager", param_dtype="bf16")  # loads it as a VLM, as training does
    assert actor.is_vlm
    model = actor.model
    model.train()
    model.zero_grad()
    log_probs = actor(sequences, action_mask=action_mask, attention_mask=attention, **merged)
    assert log_probs.shape == (2, response_length) and torch.isfinite(log_probs).all()
    (-(log_probs * action_mask).sum()).backward()
    visual = [p.grad for n, p in model.named_parameters() if "visual" in n and p.grad is not None]
    language = [p.grad for n, p in model.named_parameters() if "language_model" in n and p.grad is not None]
    assert visual and any(g.abs().sum() > 0 for g in visual), "no gradient reached the vision tower"
    assert language and any(g.abs().sum() > 0 for g in language)


@pytest.mark.parametrize(
    "images, message",
    [
        (None, "has no video"),
        (VideoSpec("/nonexistent/clip.mp4").to_json(), "video file not found"),
        ('{"path": 3}', "expected a path"),
    ],
)
def test_bad_video_inputs_fail_clearly(tiny, sbert, images, message):
    executor = load_executor_like_openrlhf()
    executor._reward_options = {"variant": "paper", "weights": None, "similarity": sbert}
    engine = RecordingEngine(tiny[0], RESPONSE)
    with pytest.raises(ValueError, match=message):
        asyncio.run(executor.execute("prompt", json.dumps(LABEL), SimpleNamespace(max_tokens=8, logprobs=None), 512,
                                     tiny[0], engine, images=images))
    assert engine.calls == []


def test_prompt_too_long_is_refused_before_generation(tiny, clip, sbert):
    executor = load_executor_like_openrlhf()
    executor._reward_options = {"variant": "paper", "weights": None, "similarity": sbert}
    engine = RecordingEngine(tiny[0], RESPONSE)
    prompt = tiny[0].apply_chat_template([{"role": "user", "content": [{"type": "video", "text": ""}]}],
                                         tokenize=False, add_generation_prompt=True)
    with pytest.raises(ValueError, match="exceeds max length"):
        asyncio.run(executor.execute(prompt, json.dumps(LABEL), SimpleNamespace(max_tokens=64, logprobs=None), 100,
                                     tiny[0], engine, images=VideoSpec(str(clip)).to_json()))


def test_actor_log_probs_match_a_plain_forward_and_need_the_gap_fix(tiny, clip, sbert):
    from openrlhf.models import Actor
    from openrlhf.utils.vlm_utils import merge_mm_train_inputs

    processor, directory = tiny
    output = rollout(processor, clip, sbert)[0]
    merged = merge_mm_train_inputs([[output["mm_train_inputs"]]], "cpu")
    sequences = torch.tensor([output["observation_tokens"]])
    attention = torch.ones_like(sequences)
    start, end = output["action_ranges"][0]
    action_mask = torch.ones((1, end - start), dtype=torch.bool)
    actor = Actor(str(directory), attn_implementation="eager", param_dtype="bf16").eval()
    video_id = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    with torch.no_grad():
        ours = actor(sequences, action_mask=action_mask, attention_mask=attention, **merged)
        # the reference: the model called directly, token types as the HF processor marks them
        types = (sequences == video_id).long() * 2
        video_only = {k: v for k, v in merged.items() if k != "image_grid_thw"}
        logits = actor.model(sequences, attention_mask=attention, mm_token_type_ids=types, **video_only).logits.float()
        reference = torch.log_softmax(logits[:, :-1], -1).gather(-1, sequences[:, 1:, None])[..., 0][:, -(end - start):]
        without_fix = actor(sequences, action_mask=action_mask, attention_mask=attention, **video_only)
    assert torch.allclose(ours, reference, atol=1e-4)
    assert not torch.allclose(without_fix, reference, atol=1e-4)  # upstream alone gets M-RoPE positions wrong
