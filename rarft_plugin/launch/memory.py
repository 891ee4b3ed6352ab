"""Memory a rarft training run needs, **estimated** from the model's architecture and the run's OpenRLHF flags.

    python -m rarft_plugin.launch.memory --size 7b --gpu-memory 80 -- --actor.num_gpus_per_node 8 ...
    python -m rarft_plugin.launch.memory --model DIR -- $(the recipe's flags)

`estimate(architecture, setup)` is the one estimator; the recipes' `--help` prints it for their own flags
(`recipes/common.sh`). Every number is arithmetic on the assumptions below, not a measurement; `docs/gpu.md`
("Paper scale") compares it with what a GPU run measured, and `MEASURED` holds those figures (printed after the
estimates with `--recipe`: the recipes' `--help`).

Assumptions (OpenRLHF 0.11.2's hybrid engine: actor, reference and one vLLM engine per GPU, colocated):
- Parameters are counted from the architecture (`parameter_counts`: the published Qwen2.5-VL configs give
  8.29 B for the 7B, 3.75 B for the 3B). With `--actor.freeze_visual_encoder` the vision tower and its merger
  are frozen (OpenRLHF freezes every non-language parameter) and hold only bf16 weights.
- Actor under ZeRO-3, DeepSpeed's own rule (`estimate_zero3_model_states_mem_needs`): 18 bytes per trainable
  parameter spread over the GPUs (bf16 weights 2 + fp32 master weights, gradients, Adam m and v 16), 2 per
  frozen one. `--ds.adam_offload` moves the 16 to the host (pinned), DeepSpeed's 1.5 buffer factor left out.
- `--ds.enable_sleep`: while vLLM generates, OpenRLHF offloads the actor's fp32 states and gradients to the
  host (its bf16 weights stay on the GPU); nothing to offload with `--ds.adam_offload`.
- Reference model: bf16 weights (ZeRO-3, spread over the GPUs), on the host with `--ref.offload`.
- vLLM takes `--vllm.gpu_memory_utilization` of the GPU while awake, its weights and KV cache inside it; the
  rollouts of a step run at once when the KV cache holds them all (2 × layers × KV heads × head dim × 2 bytes
  a token, `max_len` tokens a rollout), else vLLM queues them (slower, not an error). Asleep
  (`--vllm.enable_sleep`, level 1) it keeps ~1 GB on the GPU and its bf16 weights on the host.
- Training activations for one micro-batch of `max_len` tokens with gradient checkpointing: the layer
  inputs (layers × tokens × hidden × 2 bytes), one layer recomputed (tokens × (6 hidden + 3 intermediate) ×
  2 bytes), the logits in fp32 three times (logits, log-softmax, gradient: tokens × vocab × 12 bytes), and
  ZeRO-3's gather of the largest parameter (4 bytes × the embedding). Without checkpointing every layer's
  working set is kept.
- A step's experiences carry the video's pixel values in fp32 (4 patches of 2 × 14 × 14 × 3 values per video
  token), held twice on the host (the trainer's driver and the actor's replay buffer).
- Each GPU process (actor, reference, vLLM) has a CUDA context (~0.8 GB) and ~4 GB of host memory; the
  driver, trainer and Ray ~6 GB; each vLLM engine's clip caches (`rarft_plugin.video`, the executor) 1.3 GB
  and its decoding processes ($RARFT_DECODE_PROCESSES, default none: `DecodePool`) 0.55 GB each (measured on a
  CPU after a 480p clip); where an engine gets more than 8 clips a step, the prepared ones beyond 8 (the trainer's
  prefetch keeps a step's: ~90 MB each); a step's clips decode at once, ~0.13 GB each while they do
  (`DECODING_CLIP`, measured).
- Each GPU phase adds what GPU runs measured above the parts modelled here (`UNACCOUNTED`: 5 GB in generation
  and make_experience, none at ppo_train's peak).

Qwen2.5-VL only: the parameter count follows its layout (biased q/k/v, gated vision MLP, one merger); another
family's config is refused rather than estimated wrong.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Architecture",
    "Estimate",
    "MEASURED",
    "Measured",
    "Setup",
    "architecture_of",
    "estimate",
    "fit_flags",
    "format_estimate",
    "format_measured",
    "main",
    "parameter_counts",
    "setup_from_flags",
]

GB = 1e9
CUDA_CONTEXT = 0.8 * GB
PROCESS_HOST = 4 * GB
DRIVER_HOST = 6 * GB
CLIP_CACHES = 1.3 * GB  # the executor's frame and prompt caches
# The executor keeps PREPARED_KEPT prepared prompts (rarft_plugin.openrlhf_agent.PREPARED_CACHE_SIZE), more when
# the trainer's prefetch sends an engine more clips a step (it keeps them all); ~90 MB each at the paper's pixel
# budget (frames and float32 pixel values).
PREPARED_KEPT = 8
PREPARED_ENTRY = 0.09 * GB
DECODE_PROCESS_HOST = 0.55 * GB  # one DecodePool process after a 480p clip
# A clip while it decodes (PyAV, resized a chunk at a time) with its sampled frames: 16 paper clips (12 Charades-like,
# 4 ActivityNet-like) decoding at once took 2.13 GB above their process's start (bench/video_pipeline.py --memory,
# 2026-12-06; 7.45 GB before the chunks). An engine decodes a step's clips at once, while the step before trains
# when the prefetch prepares them, where the host holds the most.
DECODING_CLIP = 0.13 * GB
VLLM_ASLEEP = 1.0 * GB
# What nvidia-smi showed above the modelled parts, per phase, in the 3B's runs on an H100 (2026-12-06): generation
# 4.9 and 4.5 GB, make_experience 4.6 GB (9.2 with --ref.offload: ZeRO-3's fetch buffers); ppo_train 5.6 GB before
# Adam's first update, then nothing at the peak (71.1 GB measured, 71.0 modelled): Adam's states take the blocks
# the allocator had cached. PyTorch's cache, cuBLAS and NCCL workspaces, the contexts beyond the estimate's.
UNACCOUNTED = {"generation": 5.0 * GB, "make_experience": 5.0 * GB, "ppo_train": 0.0}
PIXEL_BYTES_PER_VIDEO_TOKEN = 4 * 2 * 14 * 14 * 3 * 4  # 4 patches x (2 frames x 14 x 14 x 3) values x fp32
DEFAULT_VIDEO_TOKENS = 3584  # the paper's pixel budget, 3584·28·28, is at most this many video tokens


@dataclass(frozen=True)
class Architecture:
    """What the estimate needs of a Qwen2.5-VL-style model."""

    language_parameters: int  # embeddings, decoder layers, lm_head
    vision_parameters: int  # vision tower and merger
    layers: int
    hidden: int
    intermediate: int
    kv_heads: int
    head_dim: int
    vocab: int

    @property
    def parameters(self) -> int:
        return self.language_parameters + self.vision_parameters

    @property
    def kv_bytes_per_token(self) -> int:
        return 2 * self.layers * self.kv_heads * self.head_dim * 2  # K and V, bf16


def parameter_counts(config: dict) -> tuple[int, int]:
    """(language, vision) parameter counts of a Qwen2.5-VL config (transformers' layout: text_config, vision_config).

    >>> from rarft_plugin.models.qwen2_5_vl import PUBLISHED_CONFIGS
    >>> [sum(parameter_counts(PUBLISHED_CONFIGS[size])) for size in ("7b", "3b")]
    [8292166656, 3754622976]
    """
    text, vision = config["text_config"], config["vision_config"]
    hidden, inter, vocab = text["hidden_size"], text["intermediate_size"], text["vocab_size"]
    kv = text["num_key_value_heads"] * hidden // text["num_attention_heads"]
    attention = (hidden * hidden + hidden) + 2 * (hidden * kv + kv) + hidden * hidden  # q, k, v with biases; o
    layer = attention + 3 * hidden * inter + 2 * hidden  # gate/up/down, two RMSNorms
    tied = config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))
    language = vocab * hidden * (1 if tied else 2) + text["num_hidden_layers"] * layer + hidden
    width, v_inter = vision["hidden_size"], vision["intermediate_size"]
    patch = vision.get("in_channels", 3) * vision["temporal_patch_size"] * vision["patch_size"] ** 2 * width
    block = 2 * width + (3 * width * width + 3 * width) + (width * width + width)  # norms, qkv, proj
    block += 2 * (width * v_inter + v_inter) + (v_inter * width + width)  # gate/up/down with biases
    merged = width * vision["spatial_merge_size"] ** 2
    merger = width + (merged * merged + merged) + (merged * vision["out_hidden_size"] + vision["out_hidden_size"])
    return language, patch + vision["depth"] * block + merger


def architecture_of(config: dict) -> Architecture:
    """The `Architecture` of a Qwen2.5-VL config dict (a config.json's content, or `PUBLISHED_CONFIGS[size]`)."""
    text = config["text_config"]
    language, vision = parameter_counts(config)
    return Architecture(
        language_parameters=language,
        vision_parameters=vision,
        layers=text["num_hidden_layers"],
        hidden=text["hidden_size"],
        intermediate=text["intermediate_size"],
        kv_heads=text["num_key_value_heads"],
        head_dim=text["hidden_size"] // text["num_attention_heads"],
        vocab=text["vocab_size"],
    )


@dataclass(frozen=True)
class Setup:
    """The run's settings that move memory (OpenRLHF flag in brackets)."""

    gpus: int = 8  # --actor.num_gpus_per_node (one node; actor, reference and engines on every GPU)
    gpu_memory: float = 80 * GB  # bytes per GPU (not a flag: the machine's)
    vllm_fraction: float = 0.5  # --vllm.gpu_memory_utilization
    adam_offload: bool = False  # --ds.adam_offload
    ref_offload: bool = False  # --ref.offload
    ds_sleep: bool = True  # --ds.enable_sleep
    vllm_sleep: bool = True  # --vllm.enable_sleep
    freeze_vision: bool = True  # --actor.freeze_visual_encoder
    checkpointing: bool = True  # --actor.gradient_checkpointing_enable
    reference: bool = True  # a reference model (--algo.kl.init_coef > 0)
    max_len: int = 4608  # --data.max_len
    rollouts: int = 128  # --rollout.batch_size x --rollout.n_samples_per_prompt, a step
    prompts: int = 16  # --rollout.batch_size: distinct clips a step, prefetched over the engines
    micro_batch: int = 1  # --train.micro_batch_size
    video_tokens: int = DEFAULT_VIDEO_TOKENS  # per prompt (the pixel budget's)
    decode_processes: int = 0  # per engine ($RARFT_DECODE_PROCESSES, not a flag)


@dataclass(frozen=True)
class Estimate:
    """Bytes per GPU in each phase and on the host (the whole node), each with its parts."""

    gpu: dict[str, dict[str, float]]  # phase -> part -> bytes
    host: dict[str, float]
    kv_cache_needed: float  # bytes for every rollout of a step at once (per engine)
    kv_cache_available: float
    notes: list[str] = field(default_factory=list)

    def gpu_peak(self) -> tuple[str, float]:
        phase = max(self.gpu, key=lambda name: sum(self.gpu[name].values()))
        return phase, sum(self.gpu[phase].values())

    def host_total(self) -> float:
        return sum(self.host.values())


def estimate(model: Architecture, setup: Setup) -> Estimate:
    """GPU memory per phase (generation, make_experience, ppo_train) and host memory of one run (assumptions above)."""
    n = setup.gpus
    trainable = model.language_parameters + (0 if setup.freeze_vision else model.vision_parameters)
    frozen = model.parameters - trainable
    weights = 2 * model.parameters / n  # the actor's bf16 weights (ZeRO-3 partitions)
    states = 16 * trainable / n  # fp32 master weights, gradients, Adam m and v
    reference = 0.0 if setup.ref_offload or not setup.reference else 2 * model.parameters / n
    vllm_awake = setup.vllm_fraction * setup.gpu_memory
    contexts = (3 if setup.reference else 2) * CUDA_CONTEXT
    tokens = setup.micro_batch * setup.max_len
    if setup.checkpointing:
        layer_inputs = model.layers * tokens * model.hidden * 2
        working = tokens * (6 * model.hidden + 3 * model.intermediate) * 2
    else:
        layer_inputs, working = 0.0, model.layers * tokens * (6 * model.hidden + 3 * model.intermediate) * 2
    activations = {
        "activations (layer inputs, one layer's working set)": layer_inputs + working,
        "logits in fp32 (x3)": tokens * model.vocab * 12,
        "ZeRO-3 gather of the largest parameter": 4 * model.vocab * model.hidden,
    }
    states_on_gpu = 0.0 if setup.adam_offload else states
    asleep = VLLM_ASLEEP if setup.vllm_sleep else vllm_awake
    base = {"actor bf16 weights": weights, "reference bf16 weights": reference, "CUDA contexts": contexts}
    gpu = {
        "generation": {
            **base,
            "vLLM (weights + KV cache)": vllm_awake,
            "actor fp32 states + gradients": 0.0 if setup.ds_sleep else states_on_gpu,
        },
        "make_experience": {
            **base,
            "vLLM asleep" if setup.vllm_sleep else "vLLM (weights + KV cache)": asleep,
            "actor fp32 states + gradients": 0.0 if setup.ds_sleep else states_on_gpu,
            "forward (logits in fp32 x2)": tokens * model.vocab * 8,
        },
        "ppo_train": {
            **base,
            "vLLM asleep" if setup.vllm_sleep else "vLLM (weights + KV cache)": asleep,
            "actor fp32 states + gradients": states_on_gpu,
            **activations,
        },
    }
    for phase, parts in gpu.items():
        if UNACCOUNTED[phase]:
            parts["unaccounted (measured: allocator cache, workspaces)"] = UNACCOUNTED[phase]
    host = {
        "Adam states on the host (--ds.adam_offload)": 16 * trainable if setup.adam_offload else 0.0,
        "actor states parked while vLLM generates (--ds.enable_sleep)": (
            16 * trainable if setup.ds_sleep and not setup.adam_offload else 0.0
        ),
        "vLLM weights parked while training (--vllm.enable_sleep), every engine": (
            2 * model.parameters * n if setup.vllm_sleep else 0.0
        ),
        "reference weights (--ref.offload)": 2 * model.parameters if setup.ref_offload and setup.reference else 0.0,
        "experiences with fp32 pixel values (driver + replay buffer)": (
            2 * setup.rollouts * setup.video_tokens * PIXEL_BYTES_PER_VIDEO_TOKEN
        ),
        "processes (Ray workers, driver)": (3 if setup.reference else 2) * n * PROCESS_HOST + DRIVER_HOST,
        "clip caches and decoding processes, every engine": n
        * (CLIP_CACHES + setup.decode_processes * DECODE_PROCESS_HOST),
        "a step's clips decoding at once, every engine": n * math.ceil(setup.prompts / n) * DECODING_CLIP,
        "prepared clips beyond the cache's 8, every engine (the prefetch keeps a step's)": n
        * max(0, math.ceil(setup.prompts / n) - PREPARED_KEPT)
        * PREPARED_ENTRY,
    }
    kv_needed = setup.rollouts / n * setup.max_len * model.kv_bytes_per_token
    kv_available = max(0.0, vllm_awake - 2 * model.parameters - 2 * GB)  # weights and ~2 GB of activations
    notes = []
    if kv_available < kv_needed:
        notes.append(
            f"vLLM's KV cache ({kv_available / GB:.0f} GB) holds {kv_available / kv_needed:.0%} of a step's "
            f"{setup.rollouts // n} rollouts per engine at {setup.max_len} tokens: the rest queue (slower, not an "
            "error)"
        )
    if frozen:
        notes.append(f"{frozen / 1e9:.2f} B frozen parameters (vision tower + merger) hold bf16 weights only")
    return Estimate(gpu=gpu, host=host, kv_cache_needed=kv_needed, kv_cache_available=kv_available, notes=notes)


def format_estimate(model: Architecture, setup: Setup, result: Estimate) -> str:
    """The estimate as the recipes' --help shows it: peak per GPU and host, with the parts of each (largest first)."""
    phase, peak = result.gpu_peak()
    fits = "fits" if peak <= HEADROOM * setup.gpu_memory else "DOES NOT FIT"
    others = ", ".join(f"{name} {sum(parts.values()) / GB:.0f}" for name, parts in result.gpu.items() if name != phase)

    def parts(values: dict[str, float]) -> str:
        return ", ".join(f"{k} {v / GB:.1f}" for k, v in sorted(values.items(), key=lambda kv: -kv[1]) if v)

    lines = [
        f"{setup.gpus} GPU(s) of {setup.gpu_memory / GB:.0f} GB, {model.parameters / 1e9:.2f} B parameters: GPU peak "
        f"{peak / GB:.0f} GB in {phase} ({others}): {fits} in {HEADROOM:.0%}; host {result.host_total() / GB:.0f} GB",
        f"  GPU in {phase}: {parts(result.gpu[phase])}",
        f"  host: {parts(result.host)}",
        *(f"  note: {note}" for note in result.notes),
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class Measured:
    """Peak memory a GPU run measured (nvidia-smi and the host's MemTotal - MemAvailable, every second), in GB;
    a phase in `partial` was cut off, its figure a lower bound. The estimates' check: docs/gpu.md, "Paper scale"."""

    size: str  # the published architecture, random weights
    run: str  # card, layout and settings
    gpu: dict[str, float]  # generation, make_experience, ppo_train
    host: float
    partial: tuple[str, ...] = ()


MEASURED = (
    Measured(
        size="3b",
        run="one H100 80GB, recipes/time_r1.sh with RARFT_NUM_GPUS=1 (nothing added), sdpa, 16 prompts x 8, "
        "200 new tokens, 2026-12-06: the first step, cut off in ppo_train before Adam's first update",
        gpu={"generation": 65.3, "make_experience": 28.6, "ppo_train": 59.9},
        host=53.7,
        partial=("ppo_train",),
    ),
    Measured(
        size="3b",
        run="one H100 80GB, recipes/time_r1.sh with RARFT_NUM_GPUS=1 (--ref.offload added), sdpa, 4 prompts x 8, "
        "200 new tokens, 2026-12-06: 4 steps",
        gpu={"generation": 57.4, "make_experience": 25.7, "ppo_train": 71.1},
        host=97.2,
    ),
    Measured(
        size="3b",
        run="one H100 80GB, recipes/time_r1.sh with RARFT_NUM_GPUS=1 (nothing added), sdpa, 16 prompts x 2, "
        "200 new tokens, 2026-12-06: 4 steps (ppo_train filled 97.5 % of the card: the allocator keeps what it got)",
        gpu={"generation": 65.7, "make_experience": 34.9, "ppo_train": 83.7},
        host=91.1,
    ),
    Measured(
        size="3b",
        run="one H100 80GB, the same with the prefetch of the next step's clips (on by default), 2026-12-06: 4 steps",
        gpu={"generation": 65.4, "make_experience": 33.0, "ppo_train": 83.7},
        host=96.3,
    ),
    Measured(
        size="3b",
        run="one H100 80GB, the same at the random model's natural length (800 new tokens: 4608 - the longest "
        "prompt, every rollout to the limit), prefetched clips taken in the event loop, 2026-12-06: 2 steps",
        gpu={"generation": 65.7, "make_experience": 34.6, "ppo_train": 82.1},
        host=89.7,
    ),
)


def format_measured(size: str) -> str:
    """What GPU runs measured, one line each (every size: a smaller one bounds a larger one), saying so where
    none ran at `size`."""
    lines = [] if any(m.size == size for m in MEASURED) else [f"measured: nothing at {size} yet"]
    for m in MEASURED:
        phases = ", ".join(f"{k} {'>= ' if k in m.partial else ''}{v:.0f}" for k, v in m.gpu.items())
        lines.append(f"measured, {m.size} ({m.run}): GPU {phases} GB; host {m.host:.0f} GB")
    return "\n".join(lines)


ESTIMATED_MODEL_TYPE = "qwen2_5_vl"  # the layout parameter_counts follows
FIT_FIELDS = {"--ds.adam_offload": "adam_offload", "--ref.offload": "ref_offload"}
HEADROOM = 0.95  # a GPU's memory an estimate may fill (fragmentation, NCCL and allocator buffers take the rest)


def fit_flags(model: Architecture, setup: Setup) -> tuple[list[str], Setup]:
    """The cheapest flags that make `setup` fit its GPUs by the estimate, with the setup they give: nothing, else
    `--ref.offload` (the reference's bf16 weights to the host, streamed in for its forward), else
    `--ds.adam_offload` (the actor's fp32 states to the host, Adam on the CPU every step), else both (also when
    even both do not fit: the closest). The vLLM fraction is left alone: a smaller KV cache only queues rollouts."""
    choices = ((), ("--ref.offload",), ("--ds.adam_offload",), ("--ds.adam_offload", "--ref.offload"))
    for flags in choices:
        tried = dataclasses.replace(setup, **{FIT_FIELDS[flag]: True for flag in flags})
        if estimate(model, tried).gpu_peak()[1] <= HEADROOM * setup.gpu_memory:
            break
    added = [flag for flag in flags if not getattr(setup, FIT_FIELDS[flag])]
    return added, tried


def setup_from_flags(argv: Sequence[str], gpu_memory: float = 80 * GB) -> Setup:
    """The `Setup` an OpenRLHF command line describes (the last value of a flag wins, as in argparse)."""
    from rarft_plugin.launch.wiring import flag_values, last_value

    present = {name for name, *_ in flag_values(argv)}

    def number(flag: str, default: float, kind=int):
        value = last_value(argv, flag)
        return default if value is None else kind(value)

    defaults = Setup()
    return Setup(
        gpus=number("--actor.num_gpus_per_node", 8),
        gpu_memory=gpu_memory,
        vllm_fraction=number("--vllm.gpu_memory_utilization", 0.9, float),  # vLLM's own default
        adam_offload="--ds.adam_offload" in present,
        ref_offload="--ref.offload" in present,
        ds_sleep="--ds.enable_sleep" in present,
        vllm_sleep="--vllm.enable_sleep" in present,
        freeze_vision="--actor.freeze_visual_encoder" in present,
        checkpointing="--actor.gradient_checkpointing_enable" in present,
        reference=number("--algo.kl.init_coef", 0.0, float) > 0,
        max_len=number("--data.max_len", 2048),
        rollouts=number("--rollout.batch_size", 1024) * number("--rollout.n_samples_per_prompt", 1),
        prompts=number("--rollout.batch_size", 1024),
        micro_batch=number("--train.micro_batch_size", 1),
        video_tokens=defaults.video_tokens,
    )


def main(argv: Sequence[str] | None = None) -> int:
    from rarft_plugin.models.qwen2_5_vl import PUBLISHED_CONFIGS
    from rarft_plugin.video import decode_processes

    parser = argparse.ArgumentParser(
        prog="python -m rarft_plugin.launch.memory",
        description="Estimate the GPU and host memory of a rarft training run from the model and its OpenRLHF flags "
        "(after --).",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--size", choices=sorted(PUBLISHED_CONFIGS), help="a published Qwen2.5-VL architecture")
    which.add_argument("--model", type=Path, help="a Qwen2.5-VL model directory (its config.json)")
    parser.add_argument("--gpu-memory", type=float, default=80.0, help="GB per GPU (default 80)")
    parser.add_argument("--gpus", type=int, default=None, help="override --actor.num_gpus_per_node")
    parser.add_argument(
        "--recipe",
        action="store_true",
        help="what a recipe's --help shows: its GPUs at 80 GB, then one GPU of 141 GB and of 80 GB with the flags "
        "one GPU adds (fit_flags)",
    )
    parser.add_argument(
        "--fit",
        action="store_true",
        help="print only the flags that make the run fit its GPUs by the estimate (fit_flags), one per line",
    )
    parser.add_argument("flags", nargs=argparse.REMAINDER, help="-- then the train_ppo_ray / recipe flags")
    args = parser.parse_args(argv)
    flags = args.flags[1:] if args.flags[:1] == ["--"] else args.flags
    if args.model:
        try:
            config = json.loads((args.model / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            print(f"{args.model}/config.json: cannot read it ({error})", file=sys.stderr)
            return 2
        kind = config.get("model_type") if isinstance(config, dict) else None
        if kind != ESTIMATED_MODEL_TYPE:
            print(f"{args.model}: no estimate for model_type {kind!r} (Qwen2.5-VL only)", file=sys.stderr)
            return 2
    else:
        config = PUBLISHED_CONFIGS[args.size]
    try:
        setup = setup_from_flags(flags, args.gpu_memory * GB)
        setup = dataclasses.replace(setup, gpus=args.gpus or setup.gpus, decode_processes=decode_processes())
    except ValueError as error:
        print(f"cannot estimate: {error}", file=sys.stderr)
        return 2
    try:
        model = architecture_of(config)
    except (KeyError, TypeError, ZeroDivisionError) as error:
        print(f"cannot estimate: the config is not a Qwen2.5-VL one (no {error})", file=sys.stderr)
        return 2
    if args.fit:
        print("\n".join(fit_flags(model, setup)[0]))
        return 0
    if not args.recipe:
        print(format_estimate(model, setup, estimate(model, setup)))
        return 0
    shown = [dataclasses.replace(setup, gpu_memory=80 * GB)] if setup.gpus > 1 else []
    shown += [dataclasses.replace(setup, gpus=1, gpu_memory=size * GB) for size in (141, 80)]
    for each in shown:
        if each.gpus == 1:
            added, each = fit_flags(model, each)
            print(f"- one GPU of {each.gpu_memory / GB:.0f} GB (RARFT_NUM_GPUS=1 adds {' '.join(added) or 'nothing'}):")
        else:
            print(f"- {each.gpus} GPUs of {each.gpu_memory / GB:.0f} GB:")
        print("  " + format_estimate(model, each, estimate(model, each)).replace("\n", "\n  "))
    print(format_measured(args.size or "this model"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
