"""Video decode + preprocess for rollouts: with the per-process frame cache vs without, same run.

Workload: 16 prompts x G=8 rollouts over 60-s synthetic 320x240 clips (one clip per prompt),
each rollout running `sample_frames` + the Qwen2.5-VL processor as the executor does. Also
decord vs PyAV decode rate (frames/s) on the same clips.

    python bench/video_pipeline.py [--prompts 16] [--group 8] [--seconds 60]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rarft_plugin.openrlhf_agent import clear_prepared_cache, prepare_video_prompt  # noqa: E402
from rarft_plugin.testing import build_tiny_qwen2_5_vl, write_test_video  # noqa: E402
from rarft_plugin.video import clear_cache, sample_frames  # noqa: E402


def rollouts(processor, prompt, clips, group, cache):
    """The executor's per-rollout preparation, G times per prompt."""
    clear_cache()
    clear_prepared_cache()
    started = time.perf_counter()
    for clip in clips:
        for _ in range(group):
            prepare_video_prompt(processor, prompt, str(clip), cache=cache)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()

    from transformers import AutoProcessor

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"writing {args.prompts} synthetic {args.seconds:.0f}-s clips ...")
        clips = [write_test_video(tmp / f"clip{i}.mp4", seconds=args.seconds, fps=10, size=(320, 240))
                 for i in range(args.prompts)]
        processor = AutoProcessor.from_pretrained(build_tiny_qwen2_5_vl(tmp / "tiny"))
        prompt = processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "text", "text": "find it"}, {"type": "video", "text": ""}]}],
            tokenize=False, add_generation_prompt=True)

        total = args.prompts * args.group
        uncached = rollouts(processor, prompt, clips, args.group, cache=False)
        cached = rollouts(processor, prompt, clips, args.group, cache=True)
        print(f"{total} rollouts ({args.prompts} prompts x G={args.group}), decode + resize + processor:")
        print(f"  without cache {total / uncached:8.1f} rollouts/s")
        print(f"  with cache    {total / cached:8.1f} rollouts/s")
        print(f"  speed-up: {uncached / cached:.1f}x (goal >= 6x)")

        for backend in ("decord", "pyav"):
            started = time.perf_counter()
            frames = sum(sample_frames(str(c), backend=backend, cache=False).frames.shape[0] for c in clips)
            print(f"  {backend:<7} {frames / (time.perf_counter() - started):8.1f} sampled frames/s (decode + resize)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
