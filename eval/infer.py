"""`rarft-eval infer`: run a saved checkpoint over an evaluation file, one prediction per query.

Backends: vLLM when installed (`--backend vllm`, batched, video input through
`multi_modal_data`), else transformers `generate`, batched with left padding. `--shard i/n`
takes every n-th query starting at i (one process per GPU); the output is appended batch by
batch (fsynced), so a killed run resumes where it stopped, and is rewritten atomically in query
order once complete.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from rarft_plugin.dataset import Example, load_examples, resolve_videos
from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import read_jsonl, write_jsonl_atomic
from rarft_plugin.prompts import TEMPLATES, build_messages
from rarft_plugin.video import VideoSpec, sample_frames

from eval.predictions import parse_prediction, prediction_from_example


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shard must look like 0/4, got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"shard index must be in [0, {count}), got {text!r}")
    return index, count


class HFBackend:
    """transformers `generate`, greedy, batched with left padding."""

    def __init__(self, model_path: str, *, device: str, dtype: str):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.processor = AutoProcessor.from_pretrained(model_path)
        torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
        self.model = AutoModelForImageTextToText.from_pretrained(model_path, dtype=torch_dtype).to(device).eval()
        self.device = device

    def prompt(self, messages: list[dict]) -> str:
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(self, prompts: Sequence[str], videos: Sequence, max_new_tokens: int) -> list[str]:
        import torch
        from transformers.video_utils import VideoMetadata

        metadata = [VideoMetadata(total_num_frames=len(v.frames), fps=v.fps, width=v.frames.shape[2],
                                  height=v.frames.shape[1]) for v in videos]
        inputs = self.processor(text=list(prompts), videos=[v.frames for v in videos], video_metadata=metadata,
                                do_resize=False, do_sample_frames=False, padding=True, padding_side="left",
                                return_tensors="pt").to(self.device)
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new_tokens = out[:, inputs["input_ids"].shape[1]:]
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True)


class VLLMBackend:
    """vLLM offline inference with video input (needs a GPU and the `vllm` package)."""

    def __init__(self, model_path: str, *, tensor_parallel_size: int = 1):
        from transformers import AutoProcessor
        from vllm import LLM

        self.processor = AutoProcessor.from_pretrained(model_path)
        self.llm = LLM(model=model_path, limit_mm_per_prompt={"video": 1}, dtype="bfloat16",
                       tensor_parallel_size=tensor_parallel_size)

    def prompt(self, messages: list[dict]) -> str:
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(self, prompts: Sequence[str], videos: Sequence, max_new_tokens: int) -> list[str]:
        from vllm import SamplingParams

        requests = [{"prompt": p, "multi_modal_data": {"video": v.frames}} for p, v in zip(prompts, videos)]
        outputs = self.llm.generate(requests, SamplingParams(temperature=0.0, max_tokens=max_new_tokens))
        return [o.outputs[0].text for o in outputs]


def make_backend(name: str, model_path: str, *, device: str, dtype: str):
    if name in ("auto", "vllm"):
        try:
            import vllm  # noqa: F401
        except ImportError:
            if name == "vllm":
                raise
        else:
            return VLLMBackend(model_path)
    return HFBackend(model_path, device=device, dtype=dtype)


def done_ids(path: Path) -> dict[str, dict]:
    """Predictions already in a partial output (validated), by id."""
    if not path.exists():
        return {}
    rows = {}
    for number, row in read_jsonl(path):
        try:
            rows[parse_prediction(row).id] = row
        except DataError as error:
            raise error.located(source=str(path), record=f"line {number}") from None
    return rows


def run_inference(
    examples: Sequence[Example], videos: dict[str, Path], backend, out: Path, *, template: str, batch_size: int,
    max_new_tokens: int,
) -> int:
    """Predict every example not yet in `out`; returns how many were predicted now."""
    finished = done_ids(out)
    todo = [e for e in examples if e.key not in finished]
    with open(out, "a", encoding="utf-8") as handle, tqdm(total=len(examples), initial=len(examples) - len(todo),
                                                          desc="infer", unit="query") as progress:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            prompts = [backend.prompt(build_messages(template, e.label.query, purpose="eval")) for e in batch]
            clips = [sample_frames(VideoSpec(str(videos[e.item.video]), e.item.video_start, e.item.video_end))
                     for e in batch]
            for example, text in zip(batch, backend.generate(prompts, clips, max_new_tokens)):
                handle.write(json.dumps(prediction_from_example(example, text).to_json(), ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
            progress.update(len(batch))
    rows = done_ids(out)
    write_jsonl_atomic(out, [rows[e.key] for e in examples])  # complete: rewrite in query order
    return len(todo)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="checkpoint directory (HF format, as OpenRLHF saves it)")
    parser.add_argument("--data", type=Path, required=True, help="evaluation file in the released schema")
    parser.add_argument("--out", type=Path, required=True, help="predictions JSONL (resumed if present)")
    parser.add_argument("--video-root", type=Path, default=None)
    parser.add_argument("--template", choices=sorted(TEMPLATES), default="ra_rft")
    parser.add_argument("--backend", choices=("auto", "vllm", "hf"), default="auto")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--shard", type=parse_shard, default=(0, 1), help="i/n: this process's share")
    parser.add_argument("--device", default=None, help="transformers backend device (default: cuda if available)")
    parser.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), default=None)


def run(args: argparse.Namespace) -> int:
    import torch

    examples, report = load_examples(args.data)
    videos = resolve_videos(examples, video_root=args.video_root, source=args.data)
    index, count = args.shard
    examples = examples[index::count]
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = args.dtype or ("bf16" if device.startswith("cuda") else "fp32")
    backend = make_backend(args.backend, args.model, device=device, dtype=dtype)
    predicted = run_inference(examples, videos, backend, args.out, template=args.template,
                              batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
    print(report.summary())
    print(f"{predicted} predicted now, {len(examples)} in shard {index}/{count} -> {args.out}")
    return 0
