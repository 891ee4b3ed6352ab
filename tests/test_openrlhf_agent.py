"""The video rollout executor, loaded by OpenRLHF's own loader, driving each model family's tiny stand-in on CPU.

`VllmLikeEngine` stands in for OpenRLHF's vLLM engine actor. It takes what vLLM takes for a video (prompt ids
with one placeholder per video; frames, with their metadata in the item or, for Qwen2.5-VL on vLLM 0.26-0.30,
in `mm_processor_kwargs` through the actor's engine, `.llm.generate`), expands the placeholder as vLLM does for
the family (`EXPANSIONS`), and either generates with the model or answers a scripted text. Every test runs for
each family with a stand-in (the `family` fixture of conftest.py) unless it names one.
"""

import asyncio
import json
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from support.import_stand_ins import install_import_stand_ins
from support.vllm_qwen import qwen3_vl_expand

from rarft_plugin.clips import SampledVideo, VideoError
from rarft_plugin.models import family_named
from rarft_plugin.paths import plugin_path
from rarft_plugin.prompts import build_messages
from rarft_plugin.rewards import REWARD_NAMES, score
from rarft_plugin.rollout_logs import ROLLOUT_LOG_NAMES
from rarft_plugin.stand_ins import write_test_video
from rarft_plugin.video import VideoSpec, cache_stats, clear_cache

install_import_stand_ins()

LABEL = {
    "relevant": True,
    "timestamp": [2.0, 4.0],
    "duration": 6.0,
    "query": "the bar moves right",
    "answer_time": "2.00 to 4.00",
    "answer_refusal": "The video shows no such thing.",
    "query_relevant": "the bar moves right",
}
RESPONSE = "<think>The bar moves.</think> <answer>2.00 to 4.50</answer> <correct></correct>"
# Processor bounds that make the processor resize the executor's frames (transformers' own for Qwen2.5-VL; for
# Qwen3-VL, whose bounds count every frame, a budget under the 6-s clip's).
RESIZING_PIXELS = {
    "qwen2_5_vl": {"min_pixels": 128 * 28 * 28, "max_pixels": 768 * 28 * 28},
    "qwen3_vl": {"min_pixels": 4 * 32 * 32, "max_pixels": 12 * 64 * 96},
}


@pytest.fixture(scope="module")
def tiny(family, tiny_model):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model), tiny_model


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_test_video(tmp_path_factory.mktemp("videos") / "clip.mp4", seconds=6, size=(112, 84))


def _processor_kwargs(video, mm_processor_kwargs):
    """What reaches the HF processor: item metadata where the item has it, else only what mm_processor_kwargs carry."""
    if isinstance(video, tuple):
        video, metadata = video
        return video, {
            "video_metadata": {k: v for k, v in metadata.items() if k != "do_sample_frames"},
            "do_sample_frames": metadata["do_sample_frames"],
        }
    return video, dict(mm_processor_kwargs or {})


def expand_qwen2_5_vl(engine, prompt_token_ids, video, kwargs):
    """vLLM's Qwen2.5-VL expansion: the processor's expansion of the one placeholder, spliced in."""
    placeholder = "<|vision_start|><|video_pad|><|vision_end|>"
    out = engine.processor(text=[placeholder], videos=[video], return_tensors="pt", **kwargs)
    at = prompt_token_ids.index(engine.processor.video_token_id)
    return prompt_token_ids[: at - 1] + out["input_ids"][0].tolist() + prompt_token_ids[at + 2 :], out


def expand_qwen3_vl(engine, prompt_token_ids, video, kwargs):
    """vLLM's Qwen3-VL expansion (tests/support/vllm_qwen.py): pixels from the processor, the timestamped frame
    groups built from the metadata in place of the bare placeholder."""
    if "video_metadata" not in kwargs:
        raise ValueError("Video metadata is required but not found in mm input")  # vLLM >= 0.26 for Qwen3-VL
    out = engine.processor(
        text=["<|vision_start|><|video_pad|><|vision_end|>"], videos=[video], return_tensors="pt", **kwargs
    )
    expanded, _ = qwen3_vl_expand(
        prompt_token_ids,
        out["video_grid_thw"][0],
        kwargs["video_metadata"],
        engine.processor.tokenizer,
        engine.config,
        engine.processor.video_processor.temporal_patch_size,
    )
    return expanded, out


EXPANSIONS = {"qwen2_5_vl": expand_qwen2_5_vl, "qwen3_vl": expand_qwen3_vl}


class VllmLikeEngine:
    """Records each call; expands the video placeholder as vLLM does; generates or answers `text`."""

    def __init__(self, directory, *, text=RESPONSE, model=None):
        from transformers import AutoConfig, AutoProcessor

        self.processor = AutoProcessor.from_pretrained(directory)  # the engine loads its own copy
        self.config = AutoConfig.from_pretrained(directory)
        self.family = family_named(self.config.model_type)
        self.text, self.model, self.calls = text, model, []
        self.llm = SimpleNamespace(generate=self._engine_generate)  # the actor's vLLM engine (0.26-0.30 path)

    def expand(self, prompt_token_ids, multi_modal_data, mm_processor_kwargs=None):
        """(expanded ids, the processor's training tensors) as vLLM computes them from what it was sent."""
        video, kwargs = _processor_kwargs(multi_modal_data["video"], mm_processor_kwargs)
        assert prompt_token_ids.count(self.processor.video_token_id) == 1
        expanded, out = EXPANSIONS[self.family.NAME](self, prompt_token_ids, video, kwargs)
        return expanded, {key: out[key] for key in self.family.TRAIN_INPUT_KEYS}

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        """OpenRLHF's RolloutRayActor.generate: forwards multi_modal_data only."""
        return self._answer(list(prompt_token_ids), multi_modal_data, None, sampling_params)

    async def _engine_generate(self, prompt, sampling_params, request_id):
        yield self._answer(
            list(prompt["prompt_token_ids"]),
            prompt["multi_modal_data"],
            prompt.get("mm_processor_kwargs"),
            sampling_params,
        )

    def _answer(self, prompt_token_ids, multi_modal_data, mm_processor_kwargs, sampling_params):
        self.calls.append((prompt_token_ids, multi_modal_data, sampling_params, mm_processor_kwargs))
        expanded, inputs = self.expand(prompt_token_ids, multi_modal_data, mm_processor_kwargs)
        if self.model is None:
            ids = self.processor.tokenizer(self.text + "<|im_end|>", add_special_tokens=False)["input_ids"]
            logprobs = [{token: SimpleNamespace(logprob=-0.5)} for token in ids]
            text = self.text
        else:
            ids, logprobs = self.sample(expanded, inputs, sampling_params.max_tokens)
            text = self.processor.tokenizer.decode(ids, skip_special_tokens=True)
        return SimpleNamespace(
            outputs=[SimpleNamespace(token_ids=ids, text=text, logprobs=logprobs, finish_reason="stop")]
        )

    @torch.no_grad()
    def sample(self, expanded, inputs, max_tokens):
        self.model.eval()
        torch.manual_seed(len(self.calls))
        input_ids = torch.tensor([expanded])
        types = (input_ids == self.processor.video_token_id).long() * 2  # as the processor marks them (M-RoPE)
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            mm_token_type_ids=types,
            **inputs,
            max_new_tokens=max_tokens,
            do_sample=True,
            top_k=None,
            top_p=None,
            temperature=1.0,
            use_cache=True,
            output_logits=True,
            return_dict_in_generate=True,
        )
        ids = out.sequences[0, len(expanded) :].tolist()
        logprobs = [
            {t: SimpleNamespace(logprob=torch.log_softmax(step[0].float(), -1)[t].item())}
            for step, t in zip(out.logits, ids, strict=True)
        ]
        return ids, logprobs


def load_executor_like_openrlhf(sbert):
    from openrlhf.trainer.ray.vllm_engine import _load_agent_executor

    executor = _load_agent_executor(str(plugin_path("agent")))
    executor._reward_options = {"variant": "paper", "weights": None, "similarity": sbert}
    return executor


def chat_prompt(processor, query=LABEL["query"]):
    return processor.apply_chat_template(build_messages("ra_rft", query), tokenize=False, add_generation_prompt=True)


def rollout(processor, engine, clip, sbert, *, label=LABEL, start=None, end=None, max_tokens=64, vllm_version=None):
    executor = load_executor_like_openrlhf(sbert)
    executor.vllm_version = vllm_version or executor.vllm_version
    params = SimpleNamespace(max_tokens=max_tokens, logprobs=1)
    return asyncio.run(
        executor.execute(
            chat_prompt(processor, label["query"]),
            json.dumps(label),
            params,
            4096,
            processor,
            engine,
            images=VideoSpec(str(clip), start, end).to_json(),
        )
    )


# The time of the last of the 12 frames (6 s at 10 fps, 2 FPS) that each family's metadata tells the processor:
# Qwen2.5-VL describes the frames as a video at the sampling rate, Qwen3-VL places them at their own times.
LAST_FRAME_SECONDS = {"qwen2_5_vl": 5.5, "qwen3_vl": 5.9}


@pytest.mark.parametrize("resize", [False, True], ids=["frames-unchanged", "processor-resizes"])
def test_engine_gets_one_placeholder_and_frames_and_expands_to_the_trained_prompt(
    family, tiny_models, clip, sbert, resize
):
    from transformers import AutoProcessor

    directory = (
        tiny_models(family.NAME, video_pixels=RESIZING_PIXELS[family.NAME]) if resize else tiny_models(family.NAME)
    )
    processor = AutoProcessor.from_pretrained(directory)
    engine = VllmLikeEngine(directory)
    output = rollout(processor, engine, clip, sbert)
    ((sent_ids, mm_data, _, _),) = engine.calls
    frames, metadata = mm_data["video"]
    assert frames.ndim == 4 and frames.shape[0] == 12 and frames.shape[-1] == 3  # 6 s at 2 FPS
    assert frames.shape[1] % family.IMAGE_FACTOR == 0 and frames.shape[2] % family.IMAGE_FACTOR == 0
    assert metadata["frames_indices"][-1] / metadata["fps"] == pytest.approx(LAST_FRAME_SECONDS[family.NAME])
    assert metadata["do_sample_frames"] is False
    assert sent_ids.count(processor.video_token_id) == 1

    # what vLLM expands the one placeholder to is exactly the prompt the trainer sees, with the same pixels
    expanded, inputs = engine.expand(sent_ids, mm_data)
    prompt_end = output["action_ranges"][0][0]
    assert output["observation_tokens"][:prompt_end] == expanded
    for key, value in inputs.items():
        assert torch.equal(torch.as_tensor(output["mm_train_inputs"][key]).float(), torch.as_tensor(value).float()), key
    grid = output["mm_train_inputs"]["video_grid_thw"][0]
    assert expanded.count(processor.video_token_id) == int(grid.prod()) // 4  # spatial merge 2 x 2
    patch = family.IMAGE_FACTOR // 2
    assert (tuple(grid[1:] * patch) == frames.shape[1:3]) is not resize  # within the bounds: the resize is a no-op


def test_reward_equals_rewards_score(tiny, clip, sbert):
    processor, directory = tiny
    output = rollout(processor, VllmLikeEngine(directory), clip, sbert)
    expected = score(RESPONSE, LABEL, similarity=sbert)
    assert output["reward"].item() == pytest.approx(expected["total"], abs=1e-5)
    assert {k: output["extra_logs"][k].item() for k in REWARD_NAMES} == pytest.approx(
        {k: expected[k] for k in REWARD_NAMES}, abs=1e-5
    )
    # the task score (IoU 2/2.5 >= 0.5) and the rollout logs the trainer hook reads (rarft_plugin.rollout_logs)
    assert output["scores"].item() == 1.0 and output["extra_logs"]["rarft/ra_iou"].item() == pytest.approx(0.8)
    assert set(ROLLOUT_LOG_NAMES) <= set(output["extra_logs"]) and output["extra_logs"]["rarft/compliant"] == 1.0
    timings = [
        output["extra_logs"][name].item() for name in ("rarft/video_prep_s", "rarft/generate_s", "rarft/reward_s")
    ]
    assert all(t >= 0 for t in timings) and output["extra_logs"]["rarft/malformed"].item() == 0.0
    start, end = output["action_ranges"][0]
    assert end == len(output["observation_tokens"])
    assert output["observation_tokens"][-1] == processor.tokenizer.eos_token_id
    assert len(output["rollout_log_probs"]) == end and output["rollout_log_probs"][start:] == [-0.5] * (end - start)


def _seconds_per_grid(output, processor):
    return output["mm_train_inputs"]["second_per_grid_ts"].tolist()


def _timestamps_in_the_prompt(output, processor):
    prompt = processor.tokenizer.decode(output["observation_tokens"][: output["action_ranges"][0][0]])
    return [part.split(" seconds>")[0] for part in prompt.split("<")[1:] if " seconds>" in part]


# How each family tells the model the time of the clip's frames, for the 2-4 s window of the 10-fps clip (frames
# 20, 26, 33, 39 of the file): Qwen2.5-VL the temporal patch's length (2 frames at 2 FPS), Qwen3-VL each frame
# group's mean time from the window's first frame ((0 + 0.6) / 2 and (1.3 + 1.9) / 2).
WINDOW_TIMES = {"qwen2_5_vl": (_seconds_per_grid, [1.0]), "qwen3_vl": (_timestamps_in_the_prompt, ["0.3", "1.6"])}


def test_clip_window_sets_the_frames_and_their_times(family, tiny, clip, sbert):
    processor, directory = tiny
    engine = VllmLikeEngine(directory)
    output = rollout(processor, engine, clip, sbert, start=2.0, end=4.0)
    assert engine.calls[0][1]["video"][0].shape[0] == 4  # 2 s at 2 FPS
    read, expected = WINDOW_TIMES[family.NAME]
    assert read(output, processor) == pytest.approx(expected)


def execute_together(executor, processor, engine, clips) -> list[dict]:
    """One rollout per clip, all started at once (as OpenRLHF's engine actor starts them), 16 new tokens each."""
    params = SimpleNamespace(max_tokens=16, logprobs=None)

    async def together():
        return await asyncio.gather(
            *[
                executor.execute(
                    chat_prompt(processor),
                    json.dumps(LABEL),
                    params,
                    4096,
                    processor,
                    engine,
                    images=VideoSpec(str(clip)).to_json(),
                )  # fmt: skip
                for clip in clips
            ]
        )

    return asyncio.run(together())


def test_the_g_concurrent_rollouts_of_a_prompt_decode_and_preprocess_once(tiny, tmp_path, sbert):
    processor, directory = tiny
    fresh = write_test_video(tmp_path / "fresh.mp4", seconds=4)
    clear_cache()
    executor = load_executor_like_openrlhf(sbert)
    prepared = type(executor).execute.__globals__["_PREPARED"]  # OpenRLHF loads the file as a module of its own
    engine = VllmLikeEngine(directory)
    outputs = execute_together(executor, processor, engine, [fresh] * 8)  # as RolloutRayActor starts a prompt's G
    assert (prepared.hits, prepared.misses) == (7, 1)
    assert cache_stats()[1] == 1  # one decode
    assert len({o["observation_tokens"][0] for o in outputs}) == 1 and len(engine.calls) == 8
    assert {o["extra_logs"]["rarft/video_ready"].item() for o in outputs} == {0.0}  # none was ready at its start


def test_a_steps_distinct_clips_decode_at_the_same_time_with_pyav(tiny, tmp_path, sbert, monkeypatch):
    """decord's lock queued a step's clips one behind the other in the engine (most of the 3B's generation phase
    on an H100, docs/gpu.md "Paper scale"); the rollouts' decoder, PyAV, needs no lock."""
    import threading

    from rarft_plugin import video

    state, counting = {"now": 0, "most": 0}, threading.Lock()

    class CountingPyAV(video._PyAVReader):
        def resized(self, indices, size):
            with counting:
                state["now"] += 1
                state["most"] = max(state["most"], state["now"])
            time.sleep(0.3)  # long enough for the other clips' threads to arrive
            with counting:
                state["now"] -= 1
            return super().resized(indices, size)

    def no_decord(path):
        raise AssertionError("a rollout decoded with decord")

    monkeypatch.setattr(video, "_PyAVReader", CountingPyAV)
    monkeypatch.setattr(video, "_DecordReader", no_decord)
    processor, directory = tiny
    clips = [write_test_video(tmp_path / f"clip{i}.mp4", seconds=2) for i in range(4)]
    clear_cache()
    executor = load_executor_like_openrlhf(sbert)
    execute_together(executor, processor, VllmLikeEngine(directory), clips)  # a step's prompts, dispatched at once
    assert cache_stats()[1] == 4 and state["most"] == 4


def prefetch_then_rollout(executor, processor, engine, clip, keep=3):
    """A prefetch request for the clip, as the trainer sends it during the previous step, then its rollout."""
    params = SimpleNamespace(max_tokens=16, logprobs=None)
    spec = VideoSpec(str(clip)).to_json()

    async def step():
        ahead = await executor.execute(chat_prompt(processor), json.dumps(LABEL), None, keep, processor, engine, spec)
        return ahead, await executor.execute(
            chat_prompt(processor), json.dumps(LABEL), params, 4096, processor, engine, spec
        )

    return asyncio.run(step())


def test_a_prefetched_clip_is_the_rollouts_cache_entry_and_gives_the_same_rollout(tiny, tmp_path, sbert):
    """The trainer's prefetch request (`launch.prefetch.prefetch_request`: `sampling_params=None`) starts the clip's
    preparation and returns without a rollout; the rollout then finds it prepared: one decode, and the same prompt
    tokens and training tensors as without prefetch."""
    processor, directory = tiny
    fresh = write_test_video(tmp_path / "ahead.mp4", seconds=3)
    clear_cache()
    executor = load_executor_like_openrlhf(sbert)
    prepared = type(executor).execute.__globals__["_PREPARED"]
    prepared.clear()
    engine = VllmLikeEngine(directory)
    ahead, output = prefetch_then_rollout(executor, processor, engine, fresh, keep=prepared.size + 4)
    assert ahead is None and len(engine.calls) == 1  # the prefetch reached no engine
    assert (prepared.hits, prepared.misses) == (1, 1) and cache_stats()[1] == 1 and executor.prefetch_failures == 0
    assert prepared.size >= 12  # the trainer said how many clips come to this engine: all of them kept

    prepared.clear()
    clear_cache()
    (plain,) = execute_together(load_executor_like_openrlhf(sbert), processor, VllmLikeEngine(directory), [fresh])
    assert (
        output["observation_tokens"][: output["action_ranges"][0][0]]
        == plain["observation_tokens"][: plain["action_ranges"][0][0]]
    )
    assert output["mm_train_inputs"].keys() == plain["mm_train_inputs"].keys()
    assert all(torch.equal(output["mm_train_inputs"][k], plain["mm_train_inputs"][k]) for k in plain["mm_train_inputs"])


class LoopHoldingEngine(VllmLikeEngine):
    """Holds the event loop for `hold` seconds a request, as vLLM's AsyncLLM runs each request's input processing
    (the video's processor pass, `InputProcessor.process_inputs`) in the loop itself, then frees it while the
    GPU generates."""

    hold = 0.3

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        time.sleep(self.hold)
        await asyncio.sleep(0.01)
        return await super().generate(prompt_token_ids, sampling_params, multi_modal_data)

    async def _engine_generate(self, prompt, sampling_params, request_id):
        time.sleep(self.hold)
        await asyncio.sleep(0.01)
        async for output in super()._engine_generate(prompt, sampling_params, request_id):
            yield output


def test_a_prefetched_clip_costs_its_rollout_no_thread_and_no_wait_for_the_loop(tiny, tmp_path, sbert):
    """On an H100 a step's rollouts still spent 2.3 s each in video preparation with every clip prefetched
    (docs/gpu.md, "Paper scale"): each went through a worker thread and then waited for the event loop, held by
    vLLM's processing of the other rollouts' videos. A clip that is ready is taken in the loop: no thread (the
    module's `prepare_video_prompt` is not called), no wait, and the step logs say so."""
    processor, directory = tiny
    clips = [write_test_video(tmp_path / f"ready{i}.mp4", seconds=2) for i in range(4)]
    clear_cache()
    executor = load_executor_like_openrlhf(sbert)
    module = type(executor).execute.__globals__  # OpenRLHF loads the file as a module of its own
    module["_PREPARED"].clear()
    engine = LoopHoldingEngine(directory)
    params = SimpleNamespace(max_tokens=16, logprobs=None)
    specs = [VideoSpec(str(clip)).to_json() for clip in clips]

    async def step():
        for spec in specs:  # the trainer's prefetch during the previous step
            await executor.execute(chat_prompt(processor), json.dumps(LABEL), None, 4, processor, engine, spec)
        await asyncio.gather(*executor._prefetching)
        module["prepare_video_prompt"] = no_thread
        return await asyncio.gather(
            *[
                executor.execute(chat_prompt(processor), json.dumps(LABEL), params, 4096, processor, engine, spec)
                for spec in specs
            ]  # fmt: skip
        )

    def no_thread(*args, **kwargs):
        raise AssertionError("a prefetched clip was prepared again in a worker thread")

    prepare = module["prepare_video_prompt"]
    try:
        outputs = asyncio.run(step())
    finally:
        module["prepare_video_prompt"] = prepare
    logs = [output["extra_logs"] for output in outputs]
    assert [log["rarft/video_ready"].item() for log in logs] == [1.0] * 4
    assert max(log["rarft/video_prep_s"].item() for log in logs) < engine.hold  # through a thread: 0.3-0.9 s
    assert len(engine.calls) == 4 and cache_stats()[1] == 4


def test_a_prefetch_that_fails_does_not_raise_and_its_rollout_names_the_file(tiny, tmp_path, sbert):
    processor, directory = tiny
    missing = tmp_path / "gone.mp4"
    executor = load_executor_like_openrlhf(sbert)
    spec = VideoSpec(str(missing)).to_json()

    async def prefetch():
        assert await executor.execute(chat_prompt(processor), json.dumps(LABEL), None, 2, processor, None, spec) is None
        await asyncio.gather(*executor._prefetching, return_exceptions=True)
        await asyncio.sleep(0)  # the done callbacks

    asyncio.run(prefetch())
    assert executor.prefetch_failures == 1 and not executor._prefetching
    with pytest.raises(VideoError, match="gone.mp4"):
        prefetch_then_rollout(executor, processor, VllmLikeEngine(directory), missing)


def test_rollout_log_probs_equal_the_trainers_through_openrlhf_batching(tiny, clip, sbert):
    """Rollouts generated from (placeholder, frames) are scored by OpenRLHF's Actor on the executor's tensors."""
    from openrlhf.models import Actor
    from openrlhf.trainer.ppo_utils.experience import Experience
    from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator
    from openrlhf.utils.vlm_utils import merge_mm_train_inputs

    processor, directory = tiny
    actor = Actor(str(directory), attn_implementation="eager", param_dtype="bf16")  # a VLM, as training loads it
    assert actor.is_vlm
    actor.model.float()  # fp32 on CPU so that rollout and training log-probs agree to rounding
    engine = VllmLikeEngine(directory, model=actor.model)
    outputs = [
        rollout(processor, engine, clip, sbert, max_tokens=12),
        rollout(processor, engine, clip, sbert, start=1.0, end=5.0, max_tokens=12),
    ]
    samples = [SamplesGenerator._process_response_into_experience(None, o, max_len=4096) for o in outputs]
    batch = Experience.concat_experiences(samples, processor.tokenizer.pad_token_id)  # right padding, as OpenRLHF
    merged = merge_mm_train_inputs(batch.mm_train_inputs, "cpu")
    assert merged["image_grid_thw"].shape == (0, 3) and merged["video_grid_thw"].shape == (2, 3)

    actor.model.eval()
    with torch.no_grad():
        log_probs = actor(batch.sequences, batch.action_mask, attention_mask=batch.attention_mask, **merged)
    mask = batch.action_mask.bool()
    assert mask.sum() == sum(e - s for o in outputs for s, e in o["action_ranges"])
    assert torch.allclose(log_probs[mask], batch.rollout_log_probs[mask].float(), atol=1e-4)

    actor.model.train()
    actor.model.zero_grad()
    log_probs = actor(batch.sequences, batch.action_mask, attention_mask=batch.attention_mask, **merged)
    (-(log_probs * mask).sum()).backward()
    grads = {n: p.grad for n, p in actor.model.named_parameters() if p.grad is not None}
    assert any("visual" in n and g.abs().sum() > 0 for n, g in grads.items()), "no gradient reached the vision tower"
    assert any("language_model" in n and g.abs().sum() > 0 for n, g in grads.items())


def _not_close(compute, reference):
    assert not torch.allclose(compute(), reference, atol=1e-4)  # silently other positions


def _refused(compute, reference):
    with pytest.raises(ValueError, match="mm_token_type_ids"):  # Qwen3-VL refuses video without token types
        compute()


WITHOUT_THE_GAP_FIX = {"qwen2_5_vl": _not_close, "qwen3_vl": _refused}


def test_actor_log_probs_need_the_token_type_gap_fix(family, tiny, clip, sbert):
    from openrlhf.models import Actor
    from openrlhf.utils.vlm_utils import merge_mm_train_inputs

    processor, directory = tiny
    output = rollout(processor, VllmLikeEngine(directory), clip, sbert)
    merged = merge_mm_train_inputs([[output["mm_train_inputs"]]], "cpu")
    sequences = torch.tensor([output["observation_tokens"]])
    attention = torch.ones_like(sequences)
    start, end = output["action_ranges"][0]
    action_mask = torch.ones((1, end - start), dtype=torch.bool)
    actor = Actor(str(directory), attn_implementation="eager", param_dtype="bf16").eval()
    with torch.no_grad():
        ours = actor(sequences, action_mask=action_mask, attention_mask=attention, **merged)
        # the reference: the model called directly, token types as the HF processor marks them
        types = (sequences == processor.video_token_id).long() * 2
        video_only = {k: v for k, v in merged.items() if k != "image_grid_thw"}
        logits = actor.model(sequences, attention_mask=attention, mm_token_type_ids=types, **video_only).logits.float()
        reference = torch.log_softmax(logits[:, :-1], -1).gather(-1, sequences[:, 1:, None])[..., 0][
            :, -(end - start) :
        ]
        assert torch.allclose(ours, reference, atol=1e-4)
        WITHOUT_THE_GAP_FIX[family.NAME](  # upstream alone: no mm_token_type_ids for video-only inputs
            lambda: actor(sequences, action_mask=action_mask, attention_mask=attention, **video_only), reference
        )


@pytest.mark.parametrize(
    "images, message",
    [
        (None, "has no video"),
        (VideoSpec("/nonexistent/clip.mp4").to_json(), "video file not found"),
        ('{"path": 3}', "expected a path"),
    ],
)
def test_bad_video_inputs_fail_clearly_before_generation(tiny, sbert, images, message):
    processor, directory = tiny
    engine = VllmLikeEngine(directory)
    with pytest.raises(ValueError, match=message):
        asyncio.run(
            load_executor_like_openrlhf(sbert).execute(
                "prompt",
                json.dumps(LABEL),
                SimpleNamespace(max_tokens=8, logprobs=None),
                512,
                processor,
                engine,
                images=images,
            )
        )
    assert engine.calls == []


def test_a_stuck_decoder_fails_the_rollout_naming_the_file_instead_of_hanging(tiny, clip, sbert):
    processor, directory = tiny
    executor = load_executor_like_openrlhf(sbert)
    module = type(executor).execute.__globals__  # the file as OpenRLHF loaded it
    module["PREPARE_TIMEOUT_S"] = 0.2
    module["sample_frames"] = lambda spec, **options: time.sleep(1.0)  # a decoder that stalls
    engine = VllmLikeEngine(directory)
    with pytest.raises(VideoError, match=f"{clip}: decoding and preprocessing took over 0.2 s"):
        asyncio.run(
            executor.execute(
                chat_prompt(processor),
                json.dumps(LABEL),
                SimpleNamespace(max_tokens=8, logprobs=None),
                4096,
                processor,
                engine,
                images=VideoSpec(str(clip)).to_json(),
            )
        )
    assert engine.calls == []


def test_prompt_too_long_is_refused_before_generation(tiny, clip, sbert):
    processor, directory = tiny
    engine = VllmLikeEngine(directory)
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "video", "text": ""}]}], tokenize=False, add_generation_prompt=True
    )
    with pytest.raises(ValueError, match="exceeds --data.max_len 100"):
        asyncio.run(
            load_executor_like_openrlhf(sbert).execute(
                prompt,
                json.dumps(LABEL),
                SimpleNamespace(max_tokens=64, logprobs=None),
                100,
                processor,
                engine,
                images=VideoSpec(str(clip)).to_json(),
            )
        )
    assert engine.calls == []


@pytest.mark.parametrize(
    "name, version, path",
    [
        ("qwen2_5_vl", "0.25.1", None),
        ("qwen2_5_vl", "0.26.0", "processor options"),
        ("qwen2_5_vl", "0.30.2", "processor options"),
        ("qwen2_5_vl", "0.31.0rc1", "processor options"),
        ("qwen2_5_vl", "0.31.0", "video item"),
        ("qwen2_5_vl", "0.33.0", "video item"),
        ("qwen3_vl", "0.25.1", None),
        ("qwen3_vl", "0.26.0", "video item"),  # vLLM requires Qwen3-VL's metadata in the item from 0.26 on
        ("qwen3_vl", "0.33.0", "video item"),
    ],
)
def test_each_vllm_version_gets_the_frame_rate_its_own_way_or_is_refused(name, version, path):
    family = family_named(name)
    clip = SampledVideo(np.zeros((4, 32, 32, 3), np.uint8), 2.0, (0.0, 0.5, 1.0, 1.5))
    if path is None:
        with pytest.raises(RuntimeError, match="not supported for .*video rollouts"):
            family.check_vllm_version(version)
        return
    family.check_vllm_version(version)
    request = family.vllm_video_request(clip, version)
    if path == "video item":
        frames, metadata = request.multi_modal_data["video"]
        assert request.mm_processor_kwargs is None and metadata["do_sample_frames"] is False
        assert metadata["frames_indices"][-1] / metadata["fps"] == 1.5
    else:
        assert request.multi_modal_data["video"] is clip.frames  # frames alone: 0.26-0.30 drop item metadata
        assert request.mm_processor_kwargs == {"video_metadata": family.video_metadata(clip), "do_sample_frames": False}


@pytest.fixture(scope="module")
def qwen2_5_vl(tiny_models):
    from transformers import AutoProcessor

    directory = tiny_models("qwen2_5_vl")
    return AutoProcessor.from_pretrained(directory), directory


def test_vllm_0_26_path_gives_the_engine_the_training_frame_rate_through_processor_options(qwen2_5_vl, clip, sbert):
    processor, directory = qwen2_5_vl
    engine = VllmLikeEngine(directory)
    output = rollout(processor, engine, clip, sbert, vllm_version="0.26.0")
    ((sent_ids, mm_data, _, kwargs),) = engine.calls  # through the actor's engine, not RolloutRayActor.generate
    assert kwargs is not None and kwargs["video_metadata"]["fps"] == pytest.approx(2.0)
    expanded, inputs = engine.expand(sent_ids, mm_data, kwargs)
    assert output["observation_tokens"][: output["action_ranges"][0][0]] == expanded
    trained = output["mm_train_inputs"]["second_per_grid_ts"]
    assert torch.equal(inputs["second_per_grid_ts"].float(), trained) and trained.tolist() == [1.0]  # 2 / 2 fps
    # what OpenRLHF's own generate would have sent: the processor falls back to 24 fps
    _, without = engine.expand(sent_ids, mm_data)
    assert without["second_per_grid_ts"].tolist() == pytest.approx([2 / 24])


def test_special_tokens_are_biased_away_at_sampling_but_end_of_turn_is_not(tiny, clip, sbert):
    processor, directory = tiny
    engine = VllmLikeEngine(directory)
    rollout(processor, engine, clip, sbert)
    bias = engine.calls[0][2].logit_bias
    tokenizer = processor.tokenizer
    for name in ("<|video_pad|>", "<|image_pad|>", "<|vision_start|>", "<|im_start|>"):
        assert bias[tokenizer.convert_tokens_to_ids(name)] == -100.0, name
    for name in ("<|im_end|>", "<|endoftext|>"):
        assert tokenizer.convert_tokens_to_ids(name) not in bias, name


def test_a_random_stand_in_puts_the_masked_share_of_its_mass_on_the_forbidden_ids(family, tiny):
    """What the GPU smoke's `vllm_kl` bound rests on (`masked_sampling_kl`, tests/gpu/test_train_ppo_ray.py): the
    stand-in is near uniform, so sampling with its K forbidden ids masked raises each sampled token's log-prob by
    -log(1 - K / V) over the unmasked softmax that training scores (0.0118 and 0.0116 logged on an H100)."""
    from transformers import AutoModelForImageTextToText

    from rarft_plugin.stand_ins import masked_sampling_kl

    processor, directory = tiny
    model = AutoModelForImageTextToText.from_pretrained(directory).eval()
    ids = processor.tokenizer("<answer>2.00 to 4.50</answer> the bar moves left", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        log_probs = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
    masked = sorted(family.forbidden_response_ids(processor))
    offsets = -torch.log1p(-log_probs[:, masked].exp().sum(-1))  # one per position
    expected = masked_sampling_kl(directory)
    assert 0.005 < expected < 0.05 and offsets.mean().item() == pytest.approx(expected, abs=0.002)


MEDIA_TOKEN_RESPONSE = "<think>The bar <|video_pad|> moves.</think> <answer>2.00 to 4.50</answer> <correct></correct>"


def test_a_sampled_media_token_ends_the_response_and_pays_nothing(tiny, clip, sbert):
    processor, directory = tiny
    output = rollout(processor, VllmLikeEngine(directory, text=MEDIA_TOKEN_RESPONSE), clip, sbert)
    start, end = output["action_ranges"][0]
    action = output["observation_tokens"][start:end]
    tokenizer = processor.tokenizer
    assert tokenizer.convert_tokens_to_ids("<|video_pad|>") not in action
    assert action[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(action[:-1]) == "<think>The bar "
    assert len(output["rollout_log_probs"]) == end
    assert {name: output["extra_logs"][name].item() for name in REWARD_NAMES} == dict.fromkeys(REWARD_NAMES, 0.0)
    assert output["reward"].item() == 0.0 and output["extra_logs"]["rarft/malformed"].item() == 1.0
    assert output["scores"].item() == 0.0 and output["extra_logs"]["rarft/special_token"].item() == 1.0


def test_openrlhf_actor_trains_on_a_rollout_that_sampled_a_media_token(tiny, clip, sbert):
    """Without the cut, the actor's forward fails: "Video features and video tokens do not match"."""
    from openrlhf.models import Actor
    from openrlhf.trainer.ppo_utils.experience import Experience
    from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator
    from openrlhf.utils.vlm_utils import merge_mm_train_inputs

    processor, directory = tiny
    outputs = [
        rollout(processor, VllmLikeEngine(directory, text=text), clip, sbert)
        for text in (MEDIA_TOKEN_RESPONSE, RESPONSE)
    ]
    samples = [SamplesGenerator._process_response_into_experience(None, o, max_len=4096) for o in outputs]
    batch = Experience.concat_experiences(samples, processor.tokenizer.pad_token_id)
    merged = merge_mm_train_inputs(batch.mm_train_inputs, "cpu")
    actor = Actor(str(directory), attn_implementation="eager", param_dtype="bf16").eval()
    with torch.no_grad():
        log_probs = actor(batch.sequences, batch.action_mask, attention_mask=batch.attention_mask, **merged)
        assert torch.isfinite(log_probs).all()
        uncut = batch.sequences.clone()
        uncut[0, outputs[0]["action_ranges"][0][0] + 3] = processor.video_token_id  # a media token left in
        with pytest.raises(ValueError, match="do not match"):
            actor(uncut, batch.action_mask, attention_mask=batch.attention_mask, **merged)
