"""Video rollout executor for OpenRLHF 0.11: `--train.agent_func_path <this file>`.

OpenRLHF loads this file inside each vLLM engine actor and calls
`AgentExecutor().execute(prompt, label, sampling_params, max_length, hf_tokenizer, llm_engine, images)`
once per rollout; `hf_tokenizer` is the model's processor. Here `images` is the dataset's video
field (`--data.image_key video`): a JSON string `{"path", "video_start", "video_end"}` written by
`rarft-prep to-openrlhf`. Everything model-specific comes from the processor's model family
(`rarft_plugin.models.family_of_processor`; Qwen2.5-VL: `rarft_plugin.models.qwen2_5_vl`, Qwen3-VL:
`rarft_plugin.models.qwen3_vl`). The executor

1. samples the clip's frames (`rarft_plugin.video`) and runs the model's processor on prompt +
   frames, called as vLLM calls it (same frames, same metadata, the processor's own settings), so
   the expanded prompt tokens and training tensors (`mm_train_inputs`) it trains on are the ones
   the rollout saw (`process_video_prompt` of the family). Both steps are cached per process and
   single-flight: the G rollouts of a prompt, which OpenRLHF starts together, decode and preprocess
   the clip once. Clips are decoded with PyAV (`rarft_plugin.video.ROLLOUT_BACKEND`: the same frames as
   decord's, and no lock), so the distinct clips of a step, which OpenRLHF dispatches all at once, decode
   at the same time in the engine's threads. $RARFT_DECODE_PROCESSES > 0 decodes them in that many worker
   processes instead (`rarft_plugin.video.DecodePool`); the default, 0, decodes in this process: on the
   H100 host the pool was slower for Charades-like clips (0.74-0.81x, docs/gpu.md "Paper scale");
   `bench/gpu_scale.sh` measures both. The trainer sends each engine the next step's prompts while the
   current step trains (`rarft_plugin.launch.prefetch`: a request with `sampling_params=None`, no rollout), and
   `AgentExecutor.prefetch` prepares them in the background into that cache: a step's rollouts then find their
   clips ready instead of waiting for them. A ready clip is taken in the event loop itself (`ready_video_prompt`),
   not through a worker thread: a thread's result waits for the loop, which vLLM holds for each request's input
   processing, so on an H100 prefetched clips still cost 2.3 s a rollout that way (`rarft/video_ready` logs the
   share of a step's rollouts that found their clip ready);
2. sends vLLM the prompt with the video collapsed to its one placeholder (`vllm_prompt_ids` of the
   family) and the frames with their metadata, the way the installed vLLM takes them
   (`vllm_video_request` of the family), and
   keeps special tokens out of the response (`forbidden_response_ids`, a logit bias at sampling);
3. scores the response with `rarft_plugin.rollout_logs.score_with_logs` (the rewards of
   `rarft_plugin.rewards`, options from the RARFT_* variables: `rarft_plugin.reward_options`; the task
   score in {0, 1} as `scores`; the rollout logs that rarft-train's evaluation and exploit monitors
   read) and returns everything the trainer needs, with the time each rollout spent in rarft's code
   (`rarft/video_prep_s`, `rarft/reward_s`) beside vLLM's (`rarft/generate_s`) in the step logs.

Upstream gaps handled here:
- OpenRLHF's `RolloutRayActor.generate` forwards only `multi_modal_data`; where the family's request
  also needs `mm_processor_kwargs` (Qwen2.5-VL on vLLM 0.26-0.30), the executor builds the same
  `TokensPrompt` with them and hands it to that actor's vLLM engine (`llm_engine.llm.generate`) itself.
- A sampled media placeholder (`<|video_pad|>` / `<|image_pad|>`) in a response makes the actor's
  forward fail ("Video features and video tokens do not match") and ends the run. Sampling gives
  every special token but the end-of-turn ones a logit bias of -100 (vLLM's floor, probability
  ~e^-100); should one come through anyway, the response ends there (the token becomes the
  end-of-turn token) and the rollout is scored as malformed: every reward 0 (`rarft/malformed`
  counts them).
- The trainer's token types for M-RoPE: the family's training tensors carry what OpenRLHF's
  `Actor.forward` needs (Qwen2.5-VL: an empty `image_grid_thw`, see its module).
See docs/video.md for the flag choices.
"""

from __future__ import annotations

import asyncio
import functools
import time
from copy import deepcopy
from typing import TYPE_CHECKING, Any

import torch
from openrlhf.utils.agent import AgentExecutorBase

from rarft_plugin.cache import LruCache
from rarft_plugin.clips import SampledVideo, VideoError
from rarft_plugin.models import VllmVideoRequest, family_of_processor
from rarft_plugin.parsing import extract_response
from rarft_plugin.prompt_row import label_of, video_of
from rarft_plugin.reward_options import RewardOptions, ScoreOptions
from rarft_plugin.rewards import REWARD_NAMES
from rarft_plugin.rollout_logs import score_with_logs
from rarft_plugin.video import (
    ROLLOUT_BACKEND,
    Backend,
    DecodePool,
    Sampling,
    SpecLike,
    VideoSpec,
    cache_key,
    decode_pool,
    sample_frames,
)

if TYPE_CHECKING:
    from transformers import ProcessorMixin

__all__ = [
    "AgentExecutor",
    "clear_prepared_cache",
    "is_prepared",
    "prefetch_video_prompt",
    "prepare_video_prompt",
    "ready_video_prompt",
]

Prepared = tuple[SampledVideo, list[int], dict[str, torch.Tensor]]  # frames, expanded prompt ids, training tensors
# (processor, prompt, clip) -> Prepared. Single-flight, so the G concurrent rollouts of a prompt share one
# entry whatever the size; an entry holds up to ~90 MB (frames + float32 pixels at the default budget),
# hence a small LRU. The tensors are only read downstream.
PREPARED_CACHE_SIZE = 8  # at least; the prefetch raises it to the clips an engine gets a step
_PREPARED: LruCache[Prepared] = LruCache(PREPARED_CACHE_SIZE)
# A rollout whose video is not ready by then fails, naming the file, rather than hanging the engine actor
# (a 60-s clip takes about a second; decoders have been seen to stall on damaged files).
PREPARE_TIMEOUT_S = 300.0
# vLLM clips logit biases to [-100, 100]; -100 leaves a banned token a probability of about e^-100.
BANNED_TOKEN_BIAS = -100.0
TIMING_LOGS = ("rarft/video_prep_s", "rarft/generate_s", "rarft/reward_s")
# 1 where the rollout found its clip prepared (the prefetch kept up), 0 where it prepared or waited for it: a
# step's mean is the share of its rollouts whose video cost them nothing
READY_LOG = "rarft/video_ready"


def processor_key(processor: ProcessorMixin) -> str:
    """What makes two processors tokenise and preprocess alike (Ray hands every call a fresh copy)."""
    tokenizer = getattr(processor, "tokenizer", processor)
    return f"{tokenizer.name_or_path}|{len(tokenizer)}|{processor.video_processor.to_json_string()}"


def prepare_video_prompt(
    processor: ProcessorMixin,
    prompt: str,
    spec: SpecLike,
    *,
    cache: bool = True,
    pool: DecodePool | None = None,
    backend: Backend = ROLLOUT_BACKEND,
) -> Prepared:
    """Frames, expanded prompt ids and training tensors for one rollout (cached per process; decoded in `pool`)."""
    spec = VideoSpec.parse(spec)
    family = family_of_processor(processor)

    def prepare() -> Prepared:
        video = sample_frames(spec, family=family, backend=backend, cache=cache, pool=pool)
        return (video, *family.process_video_prompt(processor, prompt, video))

    if cache:
        video, prompt_ids, tensors = _PREPARED.get_or_create(prepared_key(processor, prompt, spec), prepare)
    else:
        video, prompt_ids, tensors = prepare()
    return video, list(prompt_ids), dict(tensors)


def ready_video_prompt(processor: ProcessorMixin, prompt: str, spec: SpecLike) -> Prepared | None:
    """The prompt's prepared video if it is in the cache already (prefetched, or made for an earlier rollout of its
    prompt), as `prepare_video_prompt` returns it; None when it is missing or still being made. Cheap enough for
    the event loop: a ready clip then costs its rollout no trip through a worker thread (whose return waits for the
    loop, which vLLM's input processing of the other rollouts holds: docs/video.md, "The executor")."""
    spec = VideoSpec.parse(spec)
    ready = _PREPARED.ready(prepared_key(processor, prompt, spec))
    if ready is None:
        return None
    video, prompt_ids, tensors = ready
    return video, list(prompt_ids), dict(tensors)


def prepared_key(processor: ProcessorMixin, prompt: str, spec: VideoSpec) -> tuple:
    """The cache key of one prompt's prepared video: what the processor, the prompt and the sampled frames depend on."""
    return (processor_key(processor), prompt, cache_key(spec, Sampling.of(family_of_processor(processor))))


def is_prepared(processor: ProcessorMixin, prompt: str, spec: SpecLike) -> bool:
    """Whether the prompt's video is cached or being prepared in this process."""
    return prepared_key(processor, prompt, VideoSpec.parse(spec)) in _PREPARED


def prefetch_video_prompt(
    processor: ProcessorMixin, prompt: str, spec: SpecLike, *, keep: int, pool: DecodePool | None = None
) -> asyncio.Future | None:
    """Start preparing a later rollout's video (`prepare_video_prompt`) in the running loop's default executor, the
    threads the rollouts prepare theirs in; None when it is cached or on its way already. The cache keeps at least
    `keep` entries from now on (the clips the trainer sends this engine for a step)."""
    spec = VideoSpec.parse(spec)
    if is_prepared(processor, prompt, spec):
        return None
    _PREPARED.reserve(max(keep, 1))
    prepare = functools.partial(prepare_video_prompt, processor, prompt, spec, pool=pool)
    return asyncio.get_running_loop().run_in_executor(None, prepare)


def clear_prepared_cache() -> None:
    _PREPARED.clear()


def rollout_sampling_params(sampling_params, forbidden: frozenset[int], prompt_length: int, max_length: int):
    """A copy of OpenRLHF's sampling parameters (vLLM's `SamplingParams`) with `max_tokens` set and the forbidden
    tokens biased away."""
    params = deepcopy(sampling_params)
    if params.max_tokens is None:
        params.max_tokens = max(1, max_length - prompt_length)
    banned = dict.fromkeys(sorted(forbidden), BANNED_TOKEN_BIAS)
    params.logit_bias = {**(getattr(params, "logit_bias", None) or {}), **banned}
    return params


def first_forbidden(token_ids: list[int], forbidden: frozenset[int]) -> int | None:
    """Position of the first forbidden token in a response, or None."""
    return next((i for i, token in enumerate(token_ids) if token in forbidden), None)


async def generate(llm_engine, prompt_ids: list[int], params, request: VllmVideoRequest):
    """One vLLM request through OpenRLHF's engine actor (its `RolloutRayActor`), with per-request processor options
    where needed; returns vLLM's `RequestOutput`."""
    if request.mm_processor_kwargs is None:
        return await llm_engine.generate(prompt_ids, params, multi_modal_data=request.multi_modal_data)
    # The prompt RolloutRayActor.generate builds, plus the processor options it does not forward.
    from vllm.inputs import TokensPrompt
    from vllm.utils import random_uuid

    prompt = TokensPrompt(prompt_token_ids=prompt_ids, **request.prompt_fields())
    final = None
    async for output in llm_engine.llm.generate(prompt, params, request_id=random_uuid()):
        final = output
    return final


class AgentExecutor(AgentExecutorBase):
    """Single-turn video grounding rollouts scored with the RA-RFT rewards."""

    def __init__(self, reward_options: ScoreOptions | None = None):
        import vllm  # OpenRLHF constructs the executor inside its vLLM engine actor

        # checked against the model family at the first rollout, where the processor tells which family it is
        self.vllm_version = vllm.__version__
        self._reward_options = reward_options
        # $RARFT_DECODE_PROCESSES worker processes (started at the first clip), or None (default): this process
        self.decode_pool = decode_pool()
        self._prefetching: set[asyncio.Future] = set()  # held until done (the loop keeps only weak references)
        self.prefetch_failures = 0

    def prefetch(self, processor: ProcessorMixin, prompt: str, images: Any, keep: int) -> bool:
        """Start preparing a later rollout's video in the background (a `launch.prefetch.prefetch_request`); the
        rollout finds it in the cache, or waits for it if it is still being made. `keep`: how many clips the
        trainer sends this engine for the step, all of which the cache keeps. Returns whether a preparation started
        (not for a clip already cached or on its way). Never raises: a clip that fails here fails again in its
        rollout, which names the file."""
        try:
            future = prefetch_video_prompt(processor, prompt, video_of(images), keep=keep, pool=self.decode_pool)
        except Exception:  # noqa: BLE001 -- a prefetch is only a hint
            self.prefetch_failures += 1
            return False
        if future is None:
            return False
        self._prefetching.add(future)
        future.add_done_callback(self._prefetched)
        return True

    def _prefetched(self, future: asyncio.Future) -> None:
        self._prefetching.discard(future)
        if not future.cancelled() and future.exception() is not None:
            self.prefetch_failures += 1

    async def _prepare(self, processor: ProcessorMixin, prompt: str, spec: VideoSpec) -> Prepared:
        """The rollout's clip decoded and processed in a worker thread (or waited for, where a prefetch or another
        rollout of the prompt is making it), bounded by PREPARE_TIMEOUT_S."""
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(prepare_video_prompt, processor, prompt, spec, pool=self.decode_pool),
                PREPARE_TIMEOUT_S,
            )
        except asyncio.TimeoutError:
            message = f"decoding and preprocessing took over {PREPARE_TIMEOUT_S:g} s"
            raise VideoError(message, source=spec.path) from None

    def reward_options(self) -> ScoreOptions:
        if self._reward_options is None:
            self._reward_options = RewardOptions.from_env().score_options()
        return self._reward_options

    async def execute(self, prompt, label, sampling_params, max_length: int, hf_tokenizer, llm_engine, images=None):
        if sampling_params is None:  # the trainer's prefetch of a later step's clip (launch.prefetch): no rollout
            self.prefetch(hf_tokenizer, prompt, images, keep=max_length)
            return None
        spec, truth = video_of(images), label_of(label)  # the row's fields (rarft_plugin.prompt_row)
        family = family_of_processor(hf_tokenizer)
        family.check_vllm_version(self.vllm_version)
        started = time.perf_counter()
        ready = ready_video_prompt(hf_tokenizer, prompt, spec)  # prefetched: taken here, no thread, no wait
        if ready is None:
            video, prompt_ids, mm_train_inputs = await self._prepare(hf_tokenizer, prompt, spec)
        else:
            video, prompt_ids, mm_train_inputs = ready
        prepared = time.perf_counter()

        forbidden = family.forbidden_response_ids(hf_tokenizer)
        params = rollout_sampling_params(sampling_params, forbidden, len(prompt_ids), max_length)
        if len(prompt_ids) + params.max_tokens > max_length:
            raise ValueError(
                f"video prompt of {len(prompt_ids)} tokens ({spec.path}) plus {params.max_tokens} new tokens exceeds "
                f"--data.max_len {max_length}; raise --data.max_len (docs/video.md says by how much) "
                "or lower --rollout.max_new_tokens"
            )
        request = await generate(
            llm_engine,
            family.vllm_prompt_ids(hf_tokenizer, prompt_ids),  # one placeholder per video: vLLM expands it
            params,
            family.vllm_video_request(video, self.vllm_version),
        )
        generated = time.perf_counter()
        generation = request.outputs[0]
        action_ids = list(generation.token_ids)
        log_probs = (
            _sampled_log_probs(action_ids, generation.logprobs) if sampling_params.logprobs is not None else None
        )
        response = generation.text
        cut = first_forbidden(action_ids, forbidden)
        if cut is not None:
            # the rollout ends at the forbidden token, replaced by the end-of-turn token; its text keeps the
            # token, so the reward reads it as malformed
            tokenizer = getattr(hf_tokenizer, "tokenizer", hf_tokenizer)
            response = tokenizer.decode(action_ids[: cut + 1], skip_special_tokens=False)
            action_ids = action_ids[:cut] + [family.end_of_turn_ids(hf_tokenizer)[0]]
            log_probs = log_probs[: cut + 1] if log_probs is not None else None
        observation = prompt_ids + action_ids

        response = extract_response(response, chat=family.CHAT)
        (result,) = await asyncio.to_thread(score_with_logs, [response], [truth], [prompt], **self.reward_options())
        scored = time.perf_counter()
        total = torch.tensor([result.rewards["total"]], dtype=torch.float32)
        logs = {**{name: result.rewards[name] for name in REWARD_NAMES}, **result.logs}
        logs.update(zip(TIMING_LOGS, (prepared - started, generated - prepared, scored - generated), strict=True))
        logs["rarft/malformed"] = float(cut is not None)
        logs[READY_LOG] = float(ready is not None)
        return {
            "prompt": prompt,
            "label": label,
            "images": images,
            "mm_train_inputs": mm_train_inputs,
            "observation_tokens": observation,
            "action_ranges": [(len(prompt_ids), len(observation))],
            "rollout_log_probs": [0.0] * len(prompt_ids) + log_probs if log_probs is not None else None,
            "truncated": generation.finish_reason == "length" and cut is None,
            "reward": total,
            "scores": torch.tensor([result.score], dtype=torch.float32),
            "extra_logs": {name: torch.tensor([value], dtype=torch.float32) for name, value in logs.items()},
        }


def _sampled_log_probs(action_ids: list[int], logprobs: Any) -> list[float] | None:
    """vLLM's log-prob of each sampled token (0.0 where vLLM gave none), or None without log-probs."""
    if logprobs is None:
        return None
    entries = [step.get(token) for token, step in zip(action_ids, logprobs, strict=True)]  # one step per token
    return [entry.logprob if entry is not None else 0.0 for entry in entries]
