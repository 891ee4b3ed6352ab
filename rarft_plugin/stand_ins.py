"""Stand-ins for trying the pipeline without the real videos and checkpoints; none of it gives results.

- `build_tiny_qwen2_5_vl(dir)`, `build_tiny_qwen3_vl(dir)`: a randomly initialised Qwen2.5-VL / Qwen3-VL at
  toy size, with its processor, Qwen's chat template and special tokens, so that every code path
  (processor, video tokens and timestamps, M-RoPE, DeepStack, generate) runs for real;
  from_pretrained-loadable, no hub needed. `TINY_MODELS` has one per model family name
  (`build_tiny_model(dir, family)`).
- `write_test_video(path, seconds=6)`: a clip whose content changes every second, so sampling is checkable.
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
from pathlib import Path

import numpy as np

from rarft_plugin.cli import cpu_deepspeed
from rarft_plugin.io_utils import read_records
from rarft_plugin.video import VIDEO_EXTENSIONS

__all__ = [
    "SAMPLES",
    "SAMPLE_FILES",
    "TINY_MODELS",
    "build_tiny_model",
    "build_tiny_qwen2_5_vl",
    "build_tiny_qwen3_vl",
    "build_tiny_tokenizer",
    "make_assets",
    "stand_in_name",
    "stand_in_seconds",
    "stand_in_videos",
    "video_records",
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
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

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
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**video_pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**video_pixels),
        chat_template=CHAT_TEMPLATE,
    )
    return _save_tiny(directory, Qwen2_5_VLForConditionalGeneration, config, processor, ids, seed)


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
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

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
    size = {"shortest_edge": video_pixels["min_pixels"], "longest_edge": video_pixels["max_pixels"]}
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(patch_size=16, min_pixels=64 * 32 * 32, max_pixels=1024 * 32 * 32),
        tokenizer=tokenizer,
        video_processor=Qwen3VLVideoProcessor(size=size),
        chat_template=QWEN3_CHAT_TEMPLATE,
    )
    return _save_tiny(directory, Qwen3VLForConditionalGeneration, config, processor, ids, seed)


# A tiny stand-in per model family (rarft_plugin.models), by family name.
TINY_MODELS = {"qwen2_5_vl": build_tiny_qwen2_5_vl, "qwen3_vl": build_tiny_qwen3_vl}


def build_tiny_model(directory: str | Path, family: str = "qwen2_5_vl", **options: object) -> Path:
    """The tiny stand-in of `family` (a name of `TINY_MODELS`) saved under `directory`."""
    return TINY_MODELS[family](directory, **options)


def write_test_video(
    path: str | Path,
    *,
    seconds: float = 6.0,
    fps: int = 10,
    size: tuple[int, int] = (112, 84),
    codec: str = "mpeg4",
    faststart: bool = False,
) -> Path:
    """Write a clip whose frames change every second (colour + a moving bar), so sampling is checkable.

    `size` is (width, height). The frame at time t has mean red level 20 * int(t) % 256. Written
    with PyAV, or with OpenCV where PyAV is not installed (GPU images often ship only OpenCV).
    `faststart` puts the index first (as web-ready files do): a truncated copy still opens.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [_test_frame(index, fps, size) for index in range(round(seconds * fps))]
    try:
        import av
    except ImportError:
        return _write_with_opencv(path, frames, fps, size)
    with av.open(str(path), mode="w", options={"movflags": "faststart"} if faststart else {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _test_frame(index: int, fps: int, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[..., 0] = (20 * (index // fps)) % 256
    image[..., 1] = (index * 7) % 256
    bar = (index * 4) % width
    image[:, bar : bar + 6, 2] = 255
    return image


def _write_with_opencv(path: Path, frames: list[np.ndarray], fps: int, size: tuple[int, int]) -> Path:
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
