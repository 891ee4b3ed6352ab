"""Test fixtures that need no hub: a tiny random Qwen2.5-VL with its processor, and synthetic videos.

Used by the CPU test suite, the GPU tests, the benchmarks and the demo. Nothing here is a
model anyone should train; it has Qwen2.5-VL's architecture, chat template and special tokens
at toy size so that every code path (processor, video tokens, mRoPE, generate) runs for real.

    path = build_tiny_qwen2_5_vl("/tmp/tiny")       # from_pretrained-loadable directory
    write_test_video("/tmp/clip.mp4", seconds=6)    # H.264/MPEG-4 clip with per-second content
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen2.5-VL's chat template, reduced to what the project uses (text, image, video items).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

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
        vocab_size=512, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
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


def build_tiny_qwen2_5_vl(directory: str | Path, *, seed: int = 0, video_pixels: dict | None = None) -> Path:
    """Save a randomly initialised toy Qwen2.5-VL, its processor and tokenizer under `directory`.

    `video_pixels` ({"min_pixels", "max_pixels"}) sets the processors' resize bounds; default:
    Qwen2.5-VL-7B-Instruct's.
    """
    video_pixels = QWEN2_5_VL_PIXELS if video_pixels is None else video_pixels
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    directory = Path(directory)
    tokenizer = build_tiny_tokenizer()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    hidden = 64
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": hidden,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": hidden,
            "fullatt_block_indexes": [1],
            "window_size": 112,
            "tokens_per_second": 2,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**video_pixels),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**video_pixels),
        chat_template=CHAT_TEMPLATE,
    )
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


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


def install_import_stand_ins() -> list[str]:
    """Register stand-in `vllm` and `flash_attn` modules where the real ones are not installed.

    OpenRLHF imports both at module load (the vLLM engine module, the ring-attention utilities
    behind `openrlhf.models`), and neither installs on a CPU machine. The stand-ins carry only
    what those imports name; `flash_attn.bert_padding` gets working pure-torch versions (used only
    when samples are packed). Returns the names registered. Tests only: never in production code.
    """
    import importlib.machinery
    import importlib.util
    import sys
    import types

    registered = []

    def module(name: str, **attributes) -> None:
        stand_in = types.ModuleType(name)
        stand_in.__spec__ = importlib.machinery.ModuleSpec(name, loader=None)
        stand_in.__dict__.update(attributes)
        stand_in.__rarft_stand_in__ = True
        sys.modules[name] = stand_in
        registered.append(name)

    if importlib.util.find_spec("vllm") is None and "vllm" not in sys.modules:
        import uuid

        module("vllm", __version__="0.31.0", AsyncEngineArgs=dict, AsyncLLMEngine=object, SamplingParams=dict)
        module("vllm.inputs", TokensPrompt=dict)
        module("vllm.utils", random_uuid=lambda: uuid.uuid4().hex)
    if importlib.util.find_spec("flash_attn") is None and "flash_attn" not in sys.modules:
        import torch
        from einops import rearrange

        def index_first_axis(tensor, indices):
            return tensor.reshape(-1, *tensor.shape[2:])[indices] if tensor.dim() > 2 else tensor.reshape(-1)[indices]

        def unpad_input(hidden_states, attention_mask, *args):
            seqlens = attention_mask.sum(dim=-1, dtype=torch.int32)
            indices = torch.nonzero(attention_mask.flatten(), as_tuple=False).flatten()
            cu = torch.nn.functional.pad(torch.cumsum(seqlens, dim=0, dtype=torch.int32), (1, 0))
            flat = hidden_states.reshape(-1, *hidden_states.shape[2:])
            return flat[indices], indices, cu, int(seqlens.max()), seqlens

        def pad_input(hidden_states, indices, batch, seqlen):
            out = torch.zeros(batch * seqlen, *hidden_states.shape[1:], dtype=hidden_states.dtype,
                              device=hidden_states.device)
            out[indices] = hidden_states
            return out.reshape(batch, seqlen, *hidden_states.shape[1:])

        def all_gather(tensor, group=None):
            return tensor

        module("flash_attn")
        module("flash_attn.bert_padding", index_first_axis=index_first_axis, pad_input=pad_input,
               unpad_input=unpad_input, rearrange=rearrange)
        module("flash_attn.utils")
        module("flash_attn.utils.distributed", all_gather=all_gather)
    return registered
