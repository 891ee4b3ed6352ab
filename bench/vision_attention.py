"""Qwen2.5-VL's vision tower on one paper-size clip, by attention implementation, same run.

The first paper-scale step on an H100 (docs/gpu.md, "Paper scale") spent 0.86 s a rollout in each make_experience
forward of the random 3B with `--ds.attn_implementation sdpa`, several times what its FLOPs need. With sdpa (and
eager) transformers' vision tower attends window by window in a Python loop; with flash_attention_2 in one varlen
call; rarft-train installs `rarft_plugin.models.window_attention` (`sdpa_grouped` here: the windows of one length
in one sdpa call). This times the tower alone (random weights of the published architecture, bf16, no gradient:
the frozen tower as make_experience and ppo_train run it) on one clip's patches, for each implementation installed
here, and gives each against sdpa, with the number of attention windows it loops over.

    python bench/vision_attention.py [--size 3b] [--frames 56 --height 252 --width 364] [--device cuda]
        [--repeats 5] [--out FILE.json]

The defaults are the paper-size Charades-like clip (30 s at 2 FPS within the ~2.8M-pixel budget: 56 frames of
252x364). Needs only torch and transformers (no training stack).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rarft_plugin.io_utils import write_atomic  # noqa: E402
from rarft_plugin.launch.checks import attention_problem  # noqa: E402
from rarft_plugin.models.qwen2_5_vl import PUBLISHED_CONFIGS  # noqa: E402
from rarft_plugin.models.window_attention import restore_window_attention, use_grouped_window_attention  # noqa: E402

# sdpa_grouped: sdpa with rarft's grouped windows (`rarft_plugin.models.window_attention`, what rarft-train installs)
IMPLEMENTATIONS = ("sdpa", "sdpa_grouped", "eager", "flash_attention_2")
GROUPED = "sdpa_grouped"


def transformers_attention(implementation: str) -> str:
    """The attn_implementation transformers is given for one of IMPLEMENTATIONS."""
    return "sdpa" if implementation == GROUPED else implementation


def installed(implementation: str) -> bool:
    """As rarft-train's check decides it: flash_attention_2 needs flash-attn's CUDA extension."""
    return attention_problem(["--ds.attn_implementation", transformers_attention(implementation)]) is None


def windows(grid: tuple[int, int, int], vision: dict) -> int:
    """Attention windows of one clip in a windowed block: per temporal patch, the merged grid cut into squares of
    window_size / patch_size / merge units a side."""
    t, h, w = grid
    side = vision["window_size"] // vision["spatial_merge_size"] // vision["patch_size"]
    merged_h, merged_w = h // vision["spatial_merge_size"], w // vision["spatial_merge_size"]
    return t * -(-merged_h // side) * -(-merged_w // side)


def build_tower(vision: dict, implementation: str, device: str):
    import torch
    from transformers import Qwen2_5_VLConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

    config = Qwen2_5_VLConfig(vision_config=vision).vision_config
    config._attn_implementation = implementation
    torch.manual_seed(0)
    with torch.device(device):  # initialised where it runs: seconds on a GPU for the 0.67 B tower
        tower = Qwen2_5_VisionTransformerPretrainedModel(config)
    return tower.to(dtype=torch.bfloat16 if device == "cuda" else torch.float32).eval()


def time_forward(tower, pixels, grid, device: str, repeats: int) -> tuple[float, object]:
    """Median seconds of a forward after one warm-up, and its output."""
    import torch

    def once():
        with torch.no_grad():
            out = tower(pixels, grid_thw=grid)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    out = once()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        once()
        times.append(time.perf_counter() - started)
    if not isinstance(out, torch.Tensor):  # a model output: the merged tokens the language model receives
        out = out.pooler_output if getattr(out, "pooler_output", None) is not None else out.last_hidden_state
    return sorted(times)[len(times) // 2], out


def measure(args: argparse.Namespace) -> dict:
    import torch

    vision = dict(PUBLISHED_CONFIGS[args.size]["vision_config"], **json.loads(args.vision_overrides))
    patch, temporal = vision["patch_size"], vision["temporal_patch_size"]
    grid = (args.frames // temporal, args.height // patch, args.width // patch)
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    generator = torch.Generator().manual_seed(1)
    values = vision["in_channels"] * temporal * patch * patch
    pixels = torch.randn(grid[0] * grid[1] * grid[2], values, generator=generator).to(args.device, dtype)
    grid_thw = torch.tensor([grid], device=args.device)
    result = {
        "size": args.size,
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
        "clip": {"frames": args.frames, "height": args.height, "width": args.width, "patches": int(pixels.shape[0])},
        "windows_per_windowed_block": windows(grid, vision),
        "windowed_blocks": vision["depth"] - len(vision["fullatt_block_indexes"]),
        "seconds": {},
        "skipped": [],
    }
    reference = None
    for implementation in args.implementations.split(","):
        if not installed(implementation):
            result["skipped"].append(implementation)
            continue
        tower = build_tower(vision, transformers_attention(implementation), args.device)
        if implementation == GROUPED:
            use_grouped_window_attention()
        try:
            seconds, out = time_forward(tower, pixels, grid_thw, args.device, args.repeats)
        finally:
            restore_window_attention()
        result["seconds"][implementation] = seconds
        if reference is None:
            reference = out.float()
        else:  # same weights, same input: the implementations must agree
            result.setdefault("max_difference", {})[implementation] = float((out.float() - reference).abs().max())
        del tower
    base = result["seconds"].get("sdpa")
    result["speed_vs_sdpa"] = {k: base / v for k, v in result["seconds"].items()} if base else {}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(PUBLISHED_CONFIGS), default="3b")
    parser.add_argument("--frames", type=int, default=56)
    parser.add_argument("--height", type=int, default=252)
    parser.add_argument("--width", type=int, default=364)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--implementations", default=",".join(IMPLEMENTATIONS), help="sdpa first: the baseline")
    parser.add_argument("--vision-overrides", default="{}", help="JSON over the vision config (tests: a tiny tower)")
    parser.add_argument("--out", type=Path, default=None, help="also write the result here (JSON)")
    args = parser.parse_args(argv)
    result = measure(args)
    if not result["seconds"]:
        print("vision_attention: no implementation ran", file=sys.stderr)
        return 1
    lines = [
        f"Qwen2.5-VL {args.size} vision tower, one clip ({result['clip']['patches']} patches, "
        f"{result['windows_per_windowed_block']} windows in each of {result['windowed_blocks']} windowed blocks) "
        f"on {result['device']}:"
    ]
    for implementation, seconds in result["seconds"].items():
        lines.append(
            f"  {implementation:18s} {seconds * 1000:9.1f} ms  ({result['speed_vs_sdpa'][implementation]:.2f}x sdpa)"
        )
    if result["skipped"]:
        lines.append(f"  not installed here: {', '.join(result['skipped'])}")
    print("\n".join(lines))
    if args.out:
        write_atomic(args.out, json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
