"""One GRPO step on a GPU in bf16: video executor -> OpenRLHF Actor -> PolicyLoss -> backward -> AdamW.

Skipped where CUDA is absent. Runs the executor on generated videos with each model family's tiny
random stand-in (the `family` fixture), whose rollouts come from `generate` on the GPU (an engine
stand-in: vLLM is not needed), then trains through OpenRLHF's own actor wrapper and loss.
"""

import asyncio
import importlib.util
import json
from types import SimpleNamespace

import pytest
import torch
from support.import_stand_ins import install_import_stand_ins

from rarft_plugin.paths import plugin_path
from rarft_plugin.stand_ins import write_test_video
from rarft_plugin.video import VideoSpec

pytestmark = pytest.mark.gpu
DEVICE = "cuda"
install_import_stand_ins()

LABEL = {"relevant": True, "timestamp": [1.0, 3.0], "duration": 6.0, "query": "the bar moves"}


class ConstantSimilarity:
    """No SentenceBERT on the GPU image: the rewards' similarity terms are checked on CPU."""

    def cosine_pairs(self, pairs):
        return [0.0] * len(pairs)


class GenerateEngine:
    """Stands in for vLLM: samples a response with the tiny model's own `generate` on the GPU.

    Takes both request forms the executor sends: `generate(..., multi_modal_data={"video": (frames,
    metadata)})` (vLLM >= 0.31) and, through the actor's engine `.llm.generate`, frames with the
    metadata in `mm_processor_kwargs` (vLLM 0.26-0.30, as installed with the packed training stack).
    """

    def __init__(self, model, processor, video):
        self.model, self.processor, self.video, self.received = model, processor, video, []
        self.llm = SimpleNamespace(generate=self._engine_generate)

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        frames, metadata = multi_modal_data["video"]
        return self._sample(prompt_token_ids, sampling_params, frames, metadata)

    async def _engine_generate(self, prompt, sampling_params, request_id):
        kwargs = prompt["mm_processor_kwargs"]
        yield self._sample(
            prompt["prompt_token_ids"],
            sampling_params,
            prompt["multi_modal_data"]["video"],
            {**kwargs["video_metadata"], "do_sample_frames": kwargs["do_sample_frames"]},
        )

    def _sample(self, prompt_token_ids, sampling_params, frames, metadata):
        from transformers.video_utils import VideoMetadata

        self.received.append((list(prompt_token_ids), frames))
        prompt = self.processor.tokenizer.decode(prompt_token_ids)
        metadata = VideoMetadata(**{k: v for k, v in metadata.items() if k != "do_sample_frames"})
        inputs = self.processor(
            text=[prompt],
            videos=[frames],
            video_metadata=[metadata],
            do_sample_frames=False,
            add_special_tokens=False,
            return_tensors="pt",
        ).to(DEVICE)
        out = self.model.generate(
            **inputs, max_new_tokens=sampling_params.max_tokens, do_sample=True, temperature=1.0, top_k=0
        )
        ids = out[0, inputs["input_ids"].shape[1] :].tolist()
        text = self.processor.tokenizer.decode(ids, skip_special_tokens=True)
        return SimpleNamespace(
            outputs=[SimpleNamespace(token_ids=ids, text=text, logprobs=None, finish_reason="length")]
        )


def load_executor():
    """Exactly what OpenRLHF's `_load_agent_executor` does with --train.agent_func_path."""
    spec = importlib.util.spec_from_file_location("agent_module", str(plugin_path("agent")))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.AgentExecutor({"variant": "paper", "weights": None, "similarity": ConstantSimilarity()})


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model):
    from openrlhf.models import Actor
    from transformers import AutoProcessor

    torch.manual_seed(0)
    directory = tiny_model
    clip = write_test_video(tmp_path_factory.mktemp("videos") / "clip.mp4", seconds=6, size=(112, 84))
    processor = AutoProcessor.from_pretrained(directory)
    actor = Actor(str(directory), attn_implementation="sdpa", param_dtype="bf16").to(DEVICE)
    return processor, actor, clip, directory


def rollouts(processor, actor, clip, count=4):
    from rarft_plugin.prompts import build_messages

    executor = load_executor()
    prompt = processor.apply_chat_template(
        build_messages("ra_rft", LABEL["query"]), tokenize=False, add_generation_prompt=True
    )
    engine = GenerateEngine(actor.model, processor, clip)
    params = SimpleNamespace(max_tokens=16, logprobs=None)
    actor.model.eval()
    with torch.no_grad():
        outputs = [
            asyncio.run(
                executor.execute(
                    prompt, json.dumps(LABEL), params, 4096, processor, engine, images=VideoSpec(str(clip)).to_json()
                )
            )
            for _ in range(count)
        ]
    return outputs, engine


def batch(outputs, pad_id):
    from openrlhf.utils.vlm_utils import merge_mm_train_inputs

    length = max(len(o["observation_tokens"]) for o in outputs)
    response = max(e - s for o in outputs for s, e in o["action_ranges"])
    sequences = torch.full((len(outputs), length), pad_id, dtype=torch.long)
    attention = torch.zeros_like(sequences)
    action_mask = torch.zeros((len(outputs), response), dtype=torch.bool)
    for row, o in enumerate(outputs):
        tokens = o["observation_tokens"]
        start, end = o["action_ranges"][0]
        sequences[row, length - len(tokens) :] = torch.tensor(tokens)
        attention[row, length - len(tokens) :] = 1
        action_mask[row, response - (end - start) :] = True
    mm = merge_mm_train_inputs([[o["mm_train_inputs"] for o in outputs]], DEVICE)
    return sequences.to(DEVICE), attention.to(DEVICE), action_mask.to(DEVICE), mm


def test_executor_output_trains_on_gpu(setup):
    from openrlhf.models import PolicyLoss

    processor, actor, clip, _ = setup
    outputs, engine = rollouts(processor, actor, clip)
    video_id = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert all(ids.count(video_id) == 1 for ids, _ in engine.received)  # one collapsed placeholder each
    sequences, attention, action_mask, mm = batch(outputs, processor.tokenizer.pad_token_id)
    assert mm["pixel_values_videos"].device.type == torch.device(DEVICE).type and mm["video_grid_thw"].shape[0] == len(
        outputs
    )

    # log-probs through OpenRLHF's Actor equal a plain transformers forward with the processor's token types
    actor.model.eval()
    with torch.no_grad():
        ours = actor(sequences, action_mask=action_mask, attention_mask=attention, **mm)
        types = (sequences == video_id).long() * 2
        plain = {k: v for k, v in mm.items() if k != "image_grid_thw"}
        logits = actor.model(sequences, attention_mask=attention, mm_token_type_ids=types, **plain).logits.float()
        reference = torch.log_softmax(logits[:, :-1], -1).gather(-1, sequences[:, 1:, None])[..., 0]
        reference = reference[:, -action_mask.shape[1] :] * action_mask
    assert torch.allclose(ours, reference, atol=2e-2), (ours - reference).abs().max()

    # a fixed reward: rollouts 0 and 1 good, 2 and 3 bad; group-normalised advantages (GRPO)
    rewards = torch.tensor([1.0, 1.0, 0.0, 0.0], device=DEVICE)
    advantages = ((rewards - rewards.mean()) / (rewards.std() + 1e-6))[:, None].expand_as(ours) * action_mask
    old = ours.detach()
    optimizer = torch.optim.AdamW([p for p in actor.model.parameters() if p.requires_grad], lr=1e-3)
    actor.model.train()
    log_probs = actor(sequences, action_mask=action_mask, attention_mask=attention, **mm)
    loss, *_ = PolicyLoss(clip_eps_low=0.2, clip_eps_high=0.2)(log_probs, old, advantages, action_mask=action_mask)
    assert torch.isfinite(loss)
    loss.backward()
    grads = {n: p.grad for n, p in actor.model.named_parameters() if p.grad is not None}
    assert any("language_model" in n and g.abs().sum() > 0 for n, g in grads.items())
    assert any("visual" in n and g.abs().sum() > 0 for n, g in grads.items()), "no gradient reached the vision tower"
    optimizer.step()

    actor.model.eval()
    with torch.no_grad():
        after = actor(sequences, action_mask=action_mask, attention_mask=attention, **mm)

    def mean_logp(x):
        return (x * action_mask).sum(-1) / action_mask.sum(-1)

    delta = mean_logp(after) - mean_logp(old)
    assert delta[:2].mean() > 0 > delta[2:].mean(), delta  # rewarded responses became more likely


def test_frozen_vision_tower_gets_no_gradient(setup):
    from openrlhf.models import Actor

    processor, actor, clip, directory = setup
    outputs, _ = rollouts(processor, actor, clip, count=2)
    frozen = Actor(str(directory), attn_implementation="sdpa", param_dtype="bf16", freeze_visual_encoder=True)
    frozen = frozen.to(DEVICE)
    sequences, attention, action_mask, mm = batch(outputs, processor.tokenizer.pad_token_id)
    frozen.model.train()
    (-(frozen(sequences, action_mask=action_mask, attention_mask=attention, **mm) * action_mask).sum()).backward()
    visual = [p.grad for n, p in frozen.model.named_parameters() if "visual" in n]
    language = [p.grad for n, p in frozen.model.named_parameters() if "language_model" in n]
    assert visual and all(g is None for g in visual)
    assert any(g is not None and g.abs().sum() > 0 for g in language)
