"""Batched vs one-by-one `generate` over video prompts with the tiny Qwen2.5-VL, same run.

Measures what batching buys the transformers inference path (the fallback backend of
evaluation when vLLM is absent): N video prompts, greedy decoding of a fixed number of tokens,
one prompt per call vs `--batch` prompts per call (left padding).

    python bench/inference_batching.py [--device cuda] [--prompts 32] [--batch 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rarft_plugin.prompts import build_messages  # noqa: E402
from rarft_plugin.stand_ins import build_tiny_qwen2_5_vl, write_test_video  # noqa: E402
from rarft_plugin.video import sample_frames  # noqa: E402


def generate(model, processor, prompts, videos, device, new_tokens):
    import torch

    inputs = processor(
        text=prompts,
        videos=[v.frames for v in videos],
        do_resize=False,
        do_sample_frames=False,
        padding=True,
        padding_side="left",
        return_tensors="pt",
    ).to(device)
    with torch.no_grad():
        return model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        directory = build_tiny_qwen2_5_vl(tmp / "tiny")
        processor = AutoProcessor.from_pretrained(directory)
        dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
        model = AutoModelForImageTextToText.from_pretrained(directory, dtype=dtype).to(args.device).eval()
        clips = [write_test_video(tmp / f"c{i}.mp4", seconds=4 + i % 4, size=(112, 84)) for i in range(args.prompts)]
        videos = [sample_frames(str(c)) for c in clips]
        prompts = [
            processor.apply_chat_template(
                build_messages("ra_rft", f"event {i}", purpose="eval"), tokenize=False, add_generation_prompt=True
            )
            for i in range(args.prompts)
        ]
        generate(model, processor, prompts[:2], videos[:2], args.device, 4)  # warm-up

        def timed(batch):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            started = time.perf_counter()
            for i in range(0, args.prompts, batch):
                generate(model, processor, prompts[i : i + batch], videos[i : i + batch], args.device, args.new_tokens)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            return time.perf_counter() - started

        single, batched = timed(1), timed(args.batch)
        print(f"{args.prompts} video prompts, {args.new_tokens} new tokens each, device={args.device}")
        print(f"  one by one      {args.prompts / single:8.2f} prompts/s")
        print(f"  batch of {args.batch:<5} {args.prompts / batched:8.2f} prompts/s")
        print(f"  speed-up: {single / batched:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
