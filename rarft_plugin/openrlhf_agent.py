"""Video rollout executor for OpenRLHF 0.11: `--train.agent_func_path <this file>`.

OpenRLHF loads this file inside each vLLM engine actor and calls
`AgentExecutor().execute(prompt, label, sampling_params, max_length, hf_tokenizer, llm_engine, images)`
once per rollout; `hf_tokenizer` is the model's processor. Here `images` is the dataset's video
field (`--data.image_key video`): a JSON string `{"path", "video_start", "video_end"}` written by
`rarft-prep to-openrlhf`. The executor

1. samples the clip's frames (`rarft_plugin.video`) and runs the model's processor on prompt +
   frames, called as vLLM calls it (same frames, same metadata, the processor's own settings), so
   the expanded prompt tokens and `pixel_values_videos` / `video_grid_thw` / `second_per_grid_ts`
   it trains on are the ones the rollout saw. Both steps are cached per process and single-flight:
   the G rollouts of a prompt, which OpenRLHF starts together, decode and preprocess the clip once;
2. sends vLLM the prompt with the video placeholder collapsed to one token, plus
   `multi_modal_data={"video": (frames, metadata)}` (vLLM expands the placeholder itself and, for
   Qwen2.5-VL, requires the metadata);
3. scores the response with `rarft_plugin.rewards.score` (options from RARFT_* variables, see
   `rarft_plugin.openrlhf_reward`) and returns everything the trainer needs.

Upstream gap handled here: `Actor.forward` picks the token-type key `mm_token_type_ids` (the one
Qwen2.5-VL's M-RoPE reads) only when `image_grid_thw` is among the multimodal inputs; with video
alone it would pass `token_type_ids`, which Qwen2.5-VL ignores. The executor therefore adds an
empty `image_grid_thw` (shape (0, 3)); it merges and concatenates like any other tensor and
describes zero images. The other gaps are flag choices and a vLLM version floor (0.31, see
`check_vllm_version`): see docs/video.md.
"""

from __future__ import annotations

import asyncio
from copy import deepcopy
from typing import Any

import torch
from openrlhf.utils.agent import AgentExecutorBase
from openrlhf.utils.vlm_utils import dedup_media_tokens

from rarft_plugin.openrlhf_reward import reward_options_from_env
from rarft_plugin.rewards import REWARD_NAMES, score
from rarft_plugin.video import (
    LruCache,
    SampledVideo,
    VideoError,
    VideoSpec,
    cache_key,
    processor_video_inputs,
    sample_frames,
    vllm_video_item,
)

MM_TRAIN_KEYS = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")
# (processor, prompt, clip) -> (frames, prompt ids, training tensors). Single-flight, so the G
# concurrent rollouts of a prompt share one entry whatever the size; an entry holds up to ~90 MB
# (frames + float32 pixels at the default budget), hence a small LRU. The tensors are only read downstream.
_PREPARED = LruCache(8)
# A rollout whose video is not ready by then fails, naming the file, rather than hanging the engine actor
# (a 60-s clip takes about a second; decoders have been seen to stall on damaged files).
PREPARE_TIMEOUT_S = 300.0
# vLLM hands a Qwen2.5-VL video's metadata to the HF processor from 0.31 on. 0.29 and 0.30 drop it, and the
# processor then assumes 24 fps: rollouts would get second_per_grid_ts = 2/24 while training uses 2/fps.
MIN_VLLM_VERSION = "0.31.0"


def process_video_prompt(processor: Any, prompt: str, video: SampledVideo) -> tuple[list[int], dict[str, torch.Tensor]]:
    """Expanded prompt token ids and the training tensors for one video prompt.

    The processor runs with its own settings on the frames and metadata vLLM receives, so both
    sides compute the same grid (a no-op resize when the frames already fit the processor's bounds).
    """
    out = processor(text=[prompt], **processor_video_inputs([video]), add_special_tokens=False, return_tensors="pt")
    tensors = {key: out[key] for key in MM_TRAIN_KEYS}
    tensors["second_per_grid_ts"] = torch.as_tensor(tensors["second_per_grid_ts"], dtype=torch.float32).reshape(-1)
    tensors["image_grid_thw"] = torch.zeros((0, 3), dtype=torch.long)  # see the module docstring
    return out["input_ids"][0].tolist(), tensors


def processor_key(processor: Any) -> str:
    """What makes two processors tokenise and preprocess alike (Ray hands every call a fresh copy)."""
    tokenizer = getattr(processor, "tokenizer", processor)
    return f"{tokenizer.name_or_path}|{len(tokenizer)}|{processor.video_processor.to_json_string()}"


def prepare_video_prompt(
    processor: Any, prompt: str, spec: Any, *, cache: bool = True
) -> tuple[SampledVideo, list[int], dict[str, torch.Tensor]]:
    """Frames, expanded prompt ids and training tensors for one rollout (cached per process)."""
    spec = VideoSpec.parse(spec)

    def prepare():
        video = sample_frames(spec, cache=cache)
        return (video, *process_video_prompt(processor, prompt, video))

    if cache:
        key = (processor_key(processor), prompt, cache_key(spec))
        video, prompt_ids, tensors = _PREPARED.get_or_create(key, prepare)
    else:
        video, prompt_ids, tensors = prepare()
    return video, list(prompt_ids), dict(tensors)


def clear_prepared_cache() -> None:
    _PREPARED.clear()


def check_vllm_version(version: str) -> None:
    """Refuse a vLLM that would roll out videos with other temporal positions than training uses."""
    from packaging.version import Version

    if Version(version) < Version(MIN_VLLM_VERSION):
        raise RuntimeError(
            f"rarft AgentExecutor: vLLM {version} drops video metadata for Qwen2.5-VL, so rollouts and training "
            f"would disagree on temporal positions; install vllm>={MIN_VLLM_VERSION} (0.31.0 fits openrlhf 0.11.2's "
            "transformers==5.15.0)"
        )


class AgentExecutor(AgentExecutorBase):
    """Single-turn video grounding rollouts scored with the RA-RFT rewards."""

    def __init__(self, reward_options: dict[str, Any] | None = None):
        import vllm  # OpenRLHF constructs the executor inside its vLLM engine actor

        check_vllm_version(vllm.__version__)
        self._reward_options = reward_options

    def reward_options(self) -> dict[str, Any]:
        if self._reward_options is None:
            self._reward_options = reward_options_from_env()
        return self._reward_options

    async def execute(self, prompt, label, sampling_params, max_length: int, hf_tokenizer, llm_engine, images=None):
        if images is None:
            raise ValueError("rarft AgentExecutor: the sample has no video; run with --data.image_key video")
        spec = VideoSpec.parse(images)
        try:
            video, prompt_ids, mm_train_inputs = await asyncio.wait_for(
                asyncio.to_thread(prepare_video_prompt, hf_tokenizer, prompt, spec), PREPARE_TIMEOUT_S
            )
        except asyncio.TimeoutError:
            message = f"decoding and preprocessing took over {PREPARE_TIMEOUT_S:g} s"
            raise VideoError(message, source=spec.path) from None

        params = deepcopy(sampling_params)
        if params.max_tokens is None:
            params.max_tokens = max(1, max_length - len(prompt_ids))
        if len(prompt_ids) + params.max_tokens > max_length:
            raise ValueError(
                f"video prompt of {len(prompt_ids)} tokens ({spec.path}) plus {params.max_tokens} new tokens exceeds "
                f"--data.max_len {max_length}; raise --data.max_len (docs/video.md says by how much) "
                "or lower --rollout.max_new_tokens"
            )
        request = await llm_engine.generate(
            dedup_media_tokens(prompt_ids, {hf_tokenizer.video_token_id}),  # one placeholder: vLLM expands it
            params,
            multi_modal_data={"video": vllm_video_item(video)},
        )
        generation = request.outputs[0]
        action_ids = list(generation.token_ids)
        observation = prompt_ids + action_ids

        rollout_log_probs = None
        if sampling_params.logprobs is not None and generation.logprobs is not None:
            rollout_log_probs = [0.0] * len(prompt_ids)
            for token_id, logprob_dict in zip(action_ids, generation.logprobs):
                entry = logprob_dict.get(token_id)
                rollout_log_probs.append(entry.logprob if entry is not None else 0.0)

        rewards = await asyncio.to_thread(score, generation.text, label, **self.reward_options())
        total = torch.tensor([rewards["total"]], dtype=torch.float32)
        return {
            "prompt": prompt,
            "label": label,
            "images": images,
            "mm_train_inputs": mm_train_inputs,
            "observation_tokens": observation,
            "action_ranges": [(len(prompt_ids), len(observation))],
            "rollout_log_probs": rollout_log_probs,
            "truncated": generation.finish_reason == "length",
            "reward": total,
            "scores": total.clone(),
            "extra_logs": {name: torch.tensor([rewards[name]], dtype=torch.float32) for name in REWARD_NAMES},
        }
