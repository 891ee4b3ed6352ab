"""Pieces of the one-GPU training run (`scripts/gpu_smoke.sh`, `bench/gpu_learning_curve.sh`).

    python scripts/gpu_run.py assets --out DIR [--items 16]        # tiny model, stand-in videos, prompts
    python scripts/gpu_run.py warmstart --assets DIR --out MODEL   # short supervised pass on the format
    python scripts/gpu_run.py curve --log train.log --out DIR [--warmstart MODEL/warmstart.json]

`assets` takes the first items of the shipped HI-Charades file, writes a generated clip as long as
each record's video, the tiny random Qwen2.5-VL (`rarft_plugin.stand_ins`) and the OpenRLHF prompt
JSONL (`rarft-prep to-openrlhf`, template ra_rft). `warmstart` teaches that random model the answer
format by teacher forcing until a set share of its samples (temperature 1) is in format, so GRPO
groups differ (a random model's rewards are constant within a group: nothing to learn from).
`curve` reads OpenRLHF's per-step log lines and writes the learning curve and the step-time shares.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rarft_plugin.io_utils import write_atomic  # noqa: E402
from rarft_plugin.schema import Label, parse_label  # noqa: E402

HI_CHARADES = REPO / "eval" / "benchmarks" / "hi_vtg_charades.json"


def assets(args: argparse.Namespace) -> int:
    from data_prep.cli import main as prep
    from rarft_plugin.stand_ins import build_tiny_qwen2_5_vl, write_test_video

    out = args.out
    items = json.loads(args.data.read_text())[: args.items]
    write_atomic(out / "data.json", json.dumps(items, ensure_ascii=False, indent=1))
    for item in items:
        clip = out / "videos" / Path(item["video"]).name
        if not clip.exists():
            write_test_video(clip, seconds=item["duration"], fps=4, size=(112, 84))
    build_tiny_qwen2_5_vl(out / "model")
    return prep(
        [
            "to-openrlhf",
            str(out / "data.json"),
            str(out / "train.jsonl"),
            "--video-root",
            str(out / "videos"),
            "--template",
            "ra_rft",
        ]
    )


def target_response(label: Label) -> str:
    """A short response in the RA-RFT format (eq. 4) that earns every reward for `label`."""
    if label.relevant:
        return f"<think>The event is in the video.</think> <answer>{label.answer_time}</answer> <correct></correct>"
    return (
        "<think>The query does not match the video.</think> <answer>No part of the video matches the query."
        f"</answer> <correct>{label.query_relevant}</correct>"
    )


def warmstart(args: argparse.Namespace) -> int:
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from rarft_plugin.models import qwen2_5_vl as family
    from rarft_plugin.parsing import parse_response
    from rarft_plugin.video import sample_frames

    family.use_reference_video_positions()  # train on the positions vLLM rollouts will use
    torch.manual_seed(args.seed)
    processor = AutoProcessor.from_pretrained(args.assets / "model")
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(args.assets / "model").to(args.device)
    tokenizer = processor.tokenizer
    examples = []
    for line in (args.assets / "train.jsonl").read_text().splitlines():
        row = json.loads(line)
        prompt = processor.apply_chat_template(row["input"], tokenize=False, add_generation_prompt=True)
        prompt_ids, tensors = family.process_video_prompt(processor, prompt, sample_frames(row["video"], family=family))
        end_of_turn = family.CHAT.turn_ends[0]
        target = tokenizer(target_response(parse_label(row["label"])) + end_of_turn, add_special_tokens=False)
        examples.append(
            (
                prompt_ids,
                {k: v.to(args.device) for k, v in tensors.items() if k != "image_grid_thw"},
                target["input_ids"],
            )
        )

    def inputs(prompt_ids, tensors, response_ids):
        ids = torch.tensor([prompt_ids + response_ids], device=args.device)
        types = (ids == processor.video_token_id).long() * family.VIDEO  # token types, as the processor marks them
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "mm_token_type_ids": types, **tensors}

    @torch.no_grad()
    def format_rate() -> float:
        """Share of samples (temperature 1, `--probe-samples` per prompt) that keep the strict format."""
        model.eval()
        hits = total = 0
        for prompt_ids, tensors, _ in examples[: args.probe]:
            out = model.generate(
                **inputs(prompt_ids, tensors, []),
                max_new_tokens=args.max_new_tokens,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                num_return_sequences=args.probe_samples,
            )
            for row in out[:, len(prompt_ids) :]:
                hits += parse_response(tokenizer.decode(row, skip_special_tokens=True).strip()).strict_format
                total += 1
        model.train()
        return hits / total

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    trace = [{"step": 0, "loss": None, "format_rate": format_rate(), "seconds": 0.0}]
    started = time.perf_counter()
    for step in range(1, args.max_steps + 1):
        losses = []
        for index in torch.randperm(len(examples))[: args.batch].tolist():
            prompt_ids, tensors, response_ids = examples[index]
            logits = model(**inputs(prompt_ids, tensors, response_ids)).logits[0, len(prompt_ids) - 1 : -1]
            loss = torch.nn.functional.cross_entropy(logits.float(), torch.tensor(response_ids, device=args.device))
            (loss / args.batch).backward()
            losses.append(loss.item())
        optimizer.step()
        optimizer.zero_grad()
        if step % args.probe_every == 0:
            trace.append(
                {
                    "step": step,
                    "loss": sum(losses) / len(losses),
                    "format_rate": format_rate(),
                    "seconds": time.perf_counter() - started,
                }
            )
            print(json.dumps(trace[-1]), flush=True)
            if trace[-1]["format_rate"] >= args.target_format_rate or trace[-1]["seconds"] > args.max_seconds:
                break
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    processor.save_pretrained(args.out)
    write_atomic(args.out / "warmstart.json", json.dumps({"target": args.target_format_rate, "trace": trace}, indent=1))
    print(
        f"warm start: format rate {trace[0]['format_rate']:.2f} -> {trace[-1]['format_rate']:.2f} "
        f"in {trace[-1]['step']} steps ({trace[-1]['seconds']:.1f} s) -> {args.out}"
    )
    return 0


_STEP_LINE = re.compile(r"Global step (\d+): (\{.*\})\s*$")
CURVE_KEYS = (
    "rollout/reward_mean",
    "reward",
    "format",
    "refuse_iou",
    "explain",
    "correction",
    "rarft/malformed",
    "policy_loss",
    "actor_grad_norm",
)


def step_logs(text: str) -> list[dict]:
    """OpenRLHF's per-step status dicts ("✨ Global step N: {...}" lines), in step order."""
    steps = {}
    for line in text.splitlines():
        match = _STEP_LINE.search(line)
        if match:
            steps[int(match.group(1))] = ast.literal_eval(match.group(2))
    return [{"step": step, **steps[step]} for step in sorted(steps)]


def step_shares(status: dict) -> dict[str, float]:
    """Shares of one step's wall time: rarft's code (video prep + reward scoring on each rollout's critical
    path, as a share of the generation phase), vLLM generation, and OpenRLHF's training phases."""
    total = status["timing/step_total"]
    rollout = status["rarft/video_prep_s"] + status["rarft/generate_s"] + status["rarft/reward_s"]
    in_generation = status["timing/generation"] / total
    return {
        "rarft": in_generation * (status["rarft/video_prep_s"] + status["rarft/reward_s"]) / rollout,
        "rarft_video_prep": in_generation * status["rarft/video_prep_s"] / rollout,
        "rarft_reward": in_generation * status["rarft/reward_s"] / rollout,
        "generation": in_generation,
        **{name: status[f"timing/{name}"] / total for name in ("make_experience", "ppo_train", "broadcast")},
    }


def curve(args: argparse.Namespace) -> int:
    logs = step_logs(args.log.read_text(errors="replace"))
    if not logs:
        print(f"{args.log}: no 'Global step' lines", file=sys.stderr)
        return 2
    rows = [
        {
            "step": s["step"],
            **{k: s.get(k) for k in CURVE_KEYS},
            "shares": step_shares(s),
            "step_s": s["timing/step_total"],
        }
        for s in logs
    ]
    warm = json.loads(args.warmstart.read_text()) if args.warmstart else None
    write_atomic(args.out / "curve.json", json.dumps({"steps": rows, "warmstart": warm}, indent=1))
    lines = [
        "| step | reward mean | format | refuse-IoU | explain | correction | step s | rarft share |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['step']} | {r['rollout/reward_mean']:.3f} | {r['format']:.3f} | {r['refuse_iou']:.3f} | "
            f"{r['explain']:.3f} | {r['correction']:.3f} | {r['step_s']:.1f} | {r['shares']['rarft']:.1%} |"
        )
    write_atomic(args.out / "curve.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    _plot(rows, warm, args.out / "curve.png", args.title)
    return 0


def _plot(rows: list[dict], warm: dict | None, path: Path, title: str) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [r["rollout/reward_mean"] for r in rows], marker="o", label="mean total reward (eq. 3)")
    ax.plot(steps, [r["format"] for r in rows], marker="s", label="format reward (eq. 4)")
    ax.plot(steps, [r["refuse_iou"] for r in rows], marker="^", label="refuse-IoU (eq. 5)")
    ax.axhline(rows[0]["rollout/reward_mean"], color="grey", linestyle=":", label="start: step 1 rollouts")
    if warm:
        ax.axhline(
            warm["trace"][0]["format_rate"],
            color="black",
            linestyle="--",
            label="format rate of the untrained (random) model",
        )
    ax.set_xlabel("GRPO step (train_ppo_ray)")
    ax.set_ylabel("mean over the step's rollouts")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    write_atomic(path, buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("assets", help="tiny model, stand-in videos and prompt JSONL")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data", type=Path, default=HI_CHARADES, help="released-schema file (default: HI-Charades)")
    p.add_argument("--items", type=int, default=16, help="first N items of --data")
    p = sub.add_parser("warmstart", help="short supervised pass on the answer format")
    p.add_argument("--assets", type=Path, required=True, help="folder written by `assets`")
    p.add_argument("--out", type=Path, required=True, help="warm-started model directory")
    p.add_argument("--device", default="cuda")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--max-steps", type=int, default=300)
    p.add_argument("--max-seconds", type=float, default=150.0, help="stop probing for the target after this")
    p.add_argument("--probe", type=int, default=8, help="prompts sampled to measure the format rate")
    p.add_argument("--probe-samples", type=int, default=4, help="samples per probed prompt")
    p.add_argument("--probe-every", type=int, default=20)
    p.add_argument("--target-format-rate", type=float, default=0.3)
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("curve", help="learning curve and step-time shares from a train_ppo_ray log")
    p.add_argument("--log", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--warmstart", type=Path, default=None, help="warmstart.json of the starting model")
    p.add_argument("--title", default="RA-RFT GRPO, tiny Qwen2.5-VL, one H100")
    args = parser.parse_args(argv)
    return {"assets": assets, "warmstart": warmstart, "curve": curve}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
