"""Pieces of the one-GPU training run (`scripts/gpu_smoke.sh`, `bench/gpu_learning_curve.sh`).

    python scripts/gpu_run.py assets --out DIR [--items 16] [--family qwen3_vl]  # model, videos, prompts, eval file
    python scripts/gpu_run.py warmstart --assets DIR --out MODEL   # short supervised pass on the format
    python scripts/gpu_run.py probe --model MODEL --assets DIR --out JSON  # sampled rewards per prompt
    python scripts/gpu_run.py reference-grpo --model MODEL --assets DIR --out JSON [--device cpu]
    python scripts/gpu_run.py curve --log train.log --out DIR [--warmstart W.json --before B.json --after A.json]

`assets` takes the first items of the shipped HI-Charades file, writes a generated clip as long as each
record's video, the tiny random model of `--family` (`rarft_plugin.stand_ins`; default Qwen2.5-VL) and the
OpenRLHF prompt JSONL (`rarft-prep to-openrlhf`, template ra_rft), twice: `train.jsonl` and `eval.jsonl` (the
same queries: a tiny model does not generalise, so the in-loop evaluation shows the training queries sampled
at the evaluation temperature). `warmstart` teaches that random model three behaviours for every query by
teacher forcing (`target_responses`: ground, refuse, a bare segment), so GRPO groups
differ (a random model's rewards are constant within a group: nothing to learn from) and GRPO has the
RA-RFT decision to learn: ground a relevant query, refuse an irrelevant one, keep the format.
`probe` samples a model the way rollouts do (reference video positions, temperature 1, special tokens
kept out) and scores every sample with the RA-RFT rewards: before and after training on the same prompts.
`reference-grpo` is GRPO in plain PyTorch with the learning-curve settings, to try a setting on a CPU.
`curve` reads OpenRLHF's per-step log lines (and, for a run with `--eval.dataset`, its evaluation lines with
rarft's in-loop RA-IoU / F1: `rarft_plugin.trainer_logs`) and writes the learning curve, the before/after
comparison and the step-time shares.
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
from rarft_plugin.rewards import REWARD_NAMES  # noqa: E402
from rarft_plugin.schema import Label, parse_label  # noqa: E402

HI_CHARADES = REPO / "eval" / "benchmarks" / "hi_vtg_charades.json"


def assets(args: argparse.Namespace) -> int:
    from rarft_plugin.stand_ins import build_tiny_model, write_test_video
    from rarft_prep.cli import main as prep

    out = args.out
    items = json.loads(args.data.read_text())[: args.items]
    write_atomic(out / "data.json", json.dumps(items, ensure_ascii=False, indent=1))
    for item in items:
        clip = out / "videos" / Path(item["video"]).name
        if not clip.exists():
            write_test_video(clip, seconds=item["duration"], fps=4, size=(112, 84))
    build_tiny_model(out / "model", args.family)
    for name in ("train.jsonl", "eval.jsonl"):
        done = prep(
            ["to-openrlhf", str(out / "data.json"), str(out / name), "--video-root", str(out / "videos")]
            + ["--template", "ra_rft"]
        )
        if done:
            return done
    return 0


def target_responses(label: Label) -> dict[str, str]:
    """The three behaviours the warm start teaches for every query, in equal measure, so that GRPO has choices
    to weigh: `ground` (a segment in the RA-RFT format, eq. 4), `refuse` (a short explanation and no segment, in
    format) and `plain` (the segment without the template: malformed, earns nothing). Which one pays depends on the
    query (ground a relevant one, refuse an irrelevant one) — the decision RA-RFT trains — and on the format.

    Why choices rather than one response taught halfway: a model taught one response until some of its samples
    are in format spreads its uncertainty over every token, and GRPO's updates on a 2-layer model then mostly
    carry sampling noise (30 steps lowered the format rate, docs/gpu-log.md). These responses are short and mostly
    shared across queries, so more of a group's differences sit where the reward does (the first tokens)."""
    segment = label.answer_time or f"0.0 to {label.duration or 1.0:.1f}"  # irrelevant queries may lack one
    return {
        "ground": f"<think>Seen.</think> <answer>{segment}</answer> <correct></correct>",
        "refuse": "<think>Unseen.</think> <answer>No match.</answer> <correct></correct>",
        "plain": segment,
    }


class Policy:
    """The tiny model on one device with the assets' prompts, sampled the way rollouts sample it: the reference
    video positions (those vLLM uses), temperature 1, no top-k / top-p, special tokens kept out, a response
    ending at the end-of-turn token."""

    def __init__(self, model_dir: Path, assets: Path, device: str):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from rarft_plugin.models import family_of_model
        from rarft_plugin.models.qwen_vl import VIDEO
        from rarft_plugin.models.window_attention import use_grouped_window_attention
        from rarft_plugin.video import sample_frames

        family = family_of_model(assets / "model")
        family.use_reference_video_positions()  # train and sample on the positions vLLM rollouts use
        use_grouped_window_attention()  # as rarft-train's workers attend the vision windows
        self.torch, self.family, self.device, self.video_type = torch, family, device, VIDEO
        self.processor = AutoProcessor.from_pretrained(assets / "model")
        self.tokenizer = self.processor.tokenizer
        self.model = AutoModelForImageTextToText.from_pretrained(model_dir).to(device)
        self.end_ids = list(family.end_of_turn_ids(self.processor))
        self.forbidden = sorted(family.forbidden_response_ids(self.processor))
        self.examples = []  # (prompt ids, processor tensors on the device, label)
        for line in (assets / "train.jsonl").read_text().splitlines():
            row = json.loads(line)
            prompt = self.processor.apply_chat_template(row["input"], tokenize=False, add_generation_prompt=True)
            ids, tensors = family.process_video_prompt(
                self.processor, prompt, sample_frames(row["video"], family=family)
            )
            tensors = {k: v.to(device) for k, v in tensors.items() if k != "image_grid_thw"}
            self.examples.append((ids, tensors, parse_label(row["label"])))

    def inputs(self, prompt_ids: list[int], tensors: dict, response_ids: list[int]) -> dict:
        ids = self.torch.tensor([prompt_ids + response_ids], device=self.device)
        types = (ids == self.processor.video_token_id).long() * self.video_type  # as the processor marks them
        return {"input_ids": ids, "attention_mask": self.torch.ones_like(ids), "mm_token_type_ids": types, **tensors}

    def sample(self, index: int, samples: int, max_new_tokens: int) -> list[tuple[list[int], str]]:
        """`samples` responses to prompt `index`: (token ids up to the end-of-turn token included, the text as the
        reward reads it, `extract_response`)."""
        from rarft_plugin.parsing import extract_response

        prompt_ids, tensors, _ = self.examples[index]
        with self.torch.no_grad():
            out = self.model.generate(
                **self.inputs(prompt_ids, tensors, []),
                max_new_tokens=max_new_tokens,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                num_return_sequences=samples,
                suppress_tokens=self.forbidden,
                eos_token_id=self.end_ids,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        responses = []
        for row in out[:, len(prompt_ids) :].tolist():
            ids = row[: next((i + 1 for i, token in enumerate(row) if token in self.end_ids), len(row))]
            responses.append((ids, extract_response(self.tokenizer.decode(ids), chat=self.family.CHAT)))
        return responses

    def response_log_probs(self, model, index: int, response_ids: list[int]):
        """Log-probs of `response_ids` after prompt `index` under `model` (teacher forcing), one per token."""
        prompt_ids, tensors, _ = self.examples[index]
        logits = model(**self.inputs(prompt_ids, tensors, response_ids)).logits[0, len(prompt_ids) - 1 : -1].float()
        targets = self.torch.tensor(response_ids, device=self.device)[:, None]
        return self.torch.log_softmax(logits, -1).gather(1, targets)[:, 0]


SHOWN = 6  # sampled texts kept per prompt in a probe's JSON: what the numbers count


def right_behaviour(label: Label) -> str:
    """The taught behaviour that earns the most for `label` (`target_responses`)."""
    return "ground" if label.relevant else "refuse"


def probe_policy(policy: Policy, samples: int, max_new_tokens: int, prompts: int | None = None) -> dict:
    """Mean RA-RFT rewards (paper variant, eq. 3-7) of `samples` sampled responses per prompt, per prompt and
    overall, with the standard error across prompts; plus the shares of samples that are one of the taught
    responses word for word (`taught`) and the one that earns most (`right`)."""
    from rarft_plugin.rewards import score_many

    was_training = policy.model.training
    policy.model.eval()
    per_prompt, shown = [], []
    for index in range(min(prompts or len(policy.examples), len(policy.examples))):
        label = policy.examples[index][2]
        texts = [text.strip() for _, text in policy.sample(index, samples, max_new_tokens)]
        shown.append(texts[:SHOWN])
        rewards = score_many(texts, [label] * samples)
        taught = target_responses(label)
        per_prompt.append(
            {
                **{name: sum(r[name] for r in rewards) / samples for name in (*REWARD_NAMES, "total")},
                "taught": sum(text in taught.values() for text in texts) / samples,
                "right": sum(text == taught[right_behaviour(label)] for text in texts) / samples,
            }
        )
    policy.model.train(was_training)
    return {
        "samples_per_prompt": samples,
        "prompts": len(per_prompt),
        **summarise(per_prompt),
        "per_prompt": per_prompt,
        "texts": shown,
    }


def summarise(per_prompt: list[dict]) -> dict[str, dict[str, float]]:
    """{reward: {"mean", "se"}} over prompts (the standard error of the mean of per-prompt means)."""
    out = {}
    for name in per_prompt[0]:
        values = [p[name] for p in per_prompt]
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1)
        out[name] = {"mean": mean, "se": (var / len(values)) ** 0.5}
    return out


def paired_change(before: dict, after: dict) -> dict[str, dict[str, float]]:
    """After minus before on the same prompts: {reward: {"mean", "se"}} of the per-prompt differences."""
    pairs = zip(before["per_prompt"], after["per_prompt"], strict=True)
    return summarise([{name: a[name] - b[name] for name in b} for b, a in pairs])


def probe(args: argparse.Namespace) -> int:
    import torch

    torch.manual_seed(args.seed)
    result = probe_policy(Policy(args.model, args.assets, args.device), args.samples, args.max_new_tokens)
    result["model"] = str(args.model)
    write_atomic(args.out, json.dumps(result, indent=1))
    print(
        f"{args.model}: reward {result['total']['mean']:.3f} ± {result['total']['se']:.3f}, "
        f"format {result['format']['mean']:.3f} ± {result['format']['se']:.3f} "
        f"({result['prompts']} prompts × {args.samples} samples) -> {args.out}"
    )
    return 0


def lr_factor(step: int, steps: int, warmup_steps: int = 0) -> float:
    """OpenRLHF's linear schedule as a multiple of the lr at `step` (0-based): warm-up, then decay to 0.1x
    (min_lr_ratio) at `steps`, held there after."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return 1 - 0.9 * min(1.0, (step - warmup_steps) / max(1, steps - warmup_steps))


def warmstart(args: argparse.Namespace) -> int:
    import random

    import torch

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    policy = Policy(args.init or args.assets / "model", args.assets, args.device)
    model, tokenizer = policy.model, policy.tokenizer
    end_of_turn = policy.family.CHAT.turn_ends[0]
    targets = [
        [
            tokenizer(text + end_of_turn, add_special_tokens=False)["input_ids"]
            for text in target_responses(label).values()
        ]
        for _, _, label in policy.examples
    ]
    pairs = [(index, choice) for index, choices in enumerate(targets) for choice in choices]

    def measure() -> dict:
        """Format rate and share of word-for-word taught samples (`--probe-samples` per prompt, `--probe` prompts)."""
        result = probe_policy(policy, args.probe_samples, args.max_new_tokens, args.probe)
        return {name: result[name]["mean"] for name in ("format", "taught", "right", "total")}

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    # decay over --max-steps: at a constant 1e-3 the taught share swung between 0.2 and 0.7
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: lr_factor(k, args.max_steps))
    model.train()
    trace = [{"step": 0, "loss": None, **measure(), "seconds": 0.0}]
    started = time.perf_counter()
    for step in range(1, args.max_steps + 1):
        losses = []
        for index, choice in rng.sample(pairs, min(args.batch, len(pairs))):
            loss = -policy.response_log_probs(model, index, choice).mean()  # cross-entropy, teacher forcing
            (loss / args.batch).backward()
            losses.append(loss.item())
        optimizer.step()
        optimizer.zero_grad()
        schedule.step()
        if step % args.probe_every == 0:
            trace.append(
                {"step": step, "loss": sum(losses) / len(losses), **measure(), "seconds": time.perf_counter() - started}
            )
            print(json.dumps(trace[-1]), flush=True)
            if trace[-1]["taught"] >= args.target_taught or trace[-1]["seconds"] > args.max_seconds:
                break
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    policy.processor.save_pretrained(args.out)
    write_atomic(
        args.out / "warmstart.json", json.dumps({"target_taught": args.target_taught, "trace": trace}, indent=1)
    )
    print(
        f"warm start: taught share {trace[0]['taught']:.2f} -> {trace[-1]['taught']:.2f}, format rate "
        f"{trace[0]['format']:.2f} -> {trace[-1]['format']:.2f} in {trace[-1]['step']} steps "
        f"({trace[-1]['seconds']:.1f} s) -> {args.out}"
    )
    return 0


def reference_grpo(args: argparse.Namespace) -> int:
    """GRPO in plain PyTorch on one device, as train_ppo_ray computes it with the learning-curve flags (group-
    normalised advantages, one on-policy PPO pass, k3 KL to the start model as a loss term, `--loss-agg-mode`,
    Adam with linear decay to 0.1x, gradient clip 1), without Ray, vLLM or DeepSpeed: whether a setting can
    learn at all is found here, on a CPU, before device time is spent on it."""
    import random

    import torch
    from transformers import AutoModelForImageTextToText

    from rarft_plugin.rewards import score_many

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    policy = Policy(args.model, args.assets, args.device)
    reference = AutoModelForImageTextToText.from_pretrained(args.model).to(args.device).eval()
    optimizer = torch.optim.Adam(policy.model.parameters(), lr=args.lr, eps=args.adam_eps)

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: lr_factor(k, args.steps, args.warmup_steps))
    before = probe_policy(policy, args.probe_samples, args.max_new_tokens) if args.probe_samples else None
    queue: list[int] = []
    trace = []
    for step in range(1, args.steps + 1):
        if len(queue) < args.prompts:  # episodes: every prompt once, in a fresh order
            queue += rng.sample(range(len(policy.examples)), len(policy.examples))
        batch, queue = queue[: args.prompts], queue[args.prompts :]
        policy.model.eval()
        rollouts = []
        for index in batch:
            responses = policy.sample(index, args.n, args.max_new_tokens)
            rewards = score_many([text for _, text in responses], [policy.examples[index][2]] * args.n)
            totals = torch.tensor([r["total"] for r in rewards])
            advantages = ((totals - totals.mean()) / (totals.std() + 1e-9)).tolist()
            rollouts += [(index, ids, a, r) for (ids, _), a, r in zip(responses, advantages, rewards, strict=True)]
        policy.model.train()
        tokens = sum(len(ids) for _, ids, _, _ in rollouts)
        for index, ids, advantage, _ in rollouts:
            log_probs = policy.response_log_probs(policy.model, index, ids)
            with torch.no_grad():
                log_ratio_ref = policy.response_log_probs(reference, index, ids) - log_probs
            ratio = torch.exp(log_probs - log_probs.detach())  # 1, with PPO's gradient (one pass: never clipped)
            per_token = -ratio * advantage + args.kl * (torch.exp(log_ratio_ref) - log_ratio_ref - 1)  # k3
            loss = per_token.sum() / tokens if args.loss_agg_mode == "token-mean" else per_token.mean() / len(rollouts)
            loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        schedule.step()
        row = {name: sum(r[name] for *_, r in rollouts) / len(rollouts) for name in ("total", *REWARD_NAMES)}
        trace.append({"step": step, **row, "response_length": tokens / len(rollouts)})
        print(json.dumps(trace[-1]), flush=True)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    result = {"settings": settings, "trace": trace}
    if before:  # sampled before and after on every prompt, as the GPU benchmark does
        after = probe_policy(policy, args.probe_samples, args.max_new_tokens)
        result.update(before=before, after=after, change=paired_change(before, after))
        print(json.dumps({name: round(c["mean"], 3) for name, c in result["change"].items()}), flush=True)
    write_atomic(args.out, json.dumps(result, indent=1))
    return 0


_STEP_LINE = re.compile(r"Global step (\d+): (\{.*\})\s*$")
# OpenRLHF's PPOTrainer.evaluate: "✨ Evaluation completed in 0:00:05, global_step 4, eval_metrics: {...}"
_EVAL_LINE = re.compile(r"Evaluation completed in \S+, global_step (\d+), eval_metrics: (\{.*\})\s*$")
CURVE_KEYS = (
    "rollout/reward_mean",
    "reward",
    *REWARD_NAMES,  # each reward of the table, as the reward entry logs it
    "rarft/malformed",
    "policy_loss",
    "actor_grad_norm",
    "kl",
    # rollout (vLLM) minus training log-probs of the sampled tokens; logged with --algo.advantage.is_correction_level
    "vllm_kl",
    # rarft-train's step logs (rarft_plugin.trainer_logs): groups that teach nothing, the task score's mean
    "rarft/zero_variance_groups",
    "score",
)
# rarft-train's in-loop evaluation (rarft_plugin.trainer_logs.eval_logs), plotted beside the rewards
EVAL_KEYS = ("rarft/ra_iou/mIoU", "rarft/ra_iou/R0.5", "rarft/f1/average", "rarft/format_compliance")
PROBED = ("total", *REWARD_NAMES, "taught", "right")


def step_logs(text: str, pattern: re.Pattern = _STEP_LINE) -> list[dict]:
    """OpenRLHF's per-step status dicts ("✨ Global step N: {...}" lines; `pattern` _EVAL_LINE: its evaluation
    lines), in step order, the last line of each step."""
    steps = {}
    for line in text.splitlines():
        match = pattern.search(line)
        if match:
            try:
                steps[int(match.group(1))] = ast.literal_eval(match.group(2))
            except (ValueError, SyntaxError):  # a line cut off when the run was killed, or not a dict literal
                continue
    return [{"step": step, **steps[step]} for step in sorted(steps)]


def eval_logs(text: str) -> list[dict]:
    """The evaluation dicts of a run with --eval.dataset ("✨ Evaluation completed ..." lines), in step order."""
    return step_logs(text, _EVAL_LINE)


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
    text = args.log.read_text(errors="replace")
    logs = step_logs(text)
    if not logs:
        print(f"{args.log}: no 'Global step' lines", file=sys.stderr)
        return 2
    rows = [
        {
            "step": s["step"],
            **{k: s.get(k) for k in CURVE_KEYS},
            "monitors": {k: v for k, v in s.items() if k.startswith("rarft/monitor/")},
            "shares": step_shares(s),
            "step_s": s["timing/step_total"],
        }
        for s in logs
    ]
    evals = [{"step": e["step"], **{k: e.get(k) for k in EVAL_KEYS}} for e in eval_logs(text)]
    warm = json.loads(args.warmstart.read_text()) if args.warmstart else None
    before, after = (json.loads(p.read_text()) if p else None for p in (args.before, args.after))
    change = paired_change(before, after) if before and after else None
    write_atomic(
        args.out / "curve.json",
        json.dumps(
            {"steps": rows, "evals": evals, "warmstart": warm, "before": before, "after": after, "change": change},
            indent=1,
        ),
    )
    lines = []
    if change:
        lines += [
            f"Sampled after vs before GRPO ({before['prompts']} prompts × {before['samples_per_prompt']} samples, "
            "same prompts; change = mean of per-prompt differences ± its standard error):",
            "",
            "| reward | before | after | change |",
            "|---|---|---|---|",
            *(
                f"| {name} | {before[name]['mean']:.3f} ± {before[name]['se']:.3f} | "
                f"{after[name]['mean']:.3f} ± {after[name]['se']:.3f} | "
                f"{change[name]['mean']:+.3f} ± {change[name]['se']:.3f} |"
                for name in PROBED
                if name in before
            ),
            "",
        ]
    columns = ("reward mean", *REWARD_NAMES, "vllm_kl", "step s", "rarft share")
    lines += ["| step | " + " | ".join(columns) + " |", "|---" * (1 + len(columns)) + "|"]
    for r in rows:
        cells = (
            _cell(r["rollout/reward_mean"], ".3f"),
            *(_cell(r[name], ".3f") for name in REWARD_NAMES),  # a log without a reward: blank
            _cell(r["vllm_kl"], ".4f"),
            _cell(r["step_s"], ".1f"),
            _cell(r["shares"]["rarft"], ".1%"),
        )
        lines.append(f"| {r['step']} | " + " | ".join(cells) + " |")
    if evals:
        lines += [
            "",
            "In-loop evaluation (rarft-train with --eval.dataset; rule reading, rarft_plugin.trainer_logs):",
            "",
            "| step | RA-IoU mIoU | RA-IoU R@0.5 | F1 average | format compliance |",
            "|---|---|---|---|---|",
            *("| " + " | ".join([str(e["step"]), *(_cell(e[k], ".3f") for k in EVAL_KEYS)]) + " |" for e in evals),
        ]
    write_atomic(args.out / "curve.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    _plot(rows, evals, before, after, args.out / "curve.png", args.title)
    return 0


def _cell(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def moving_mean(values: list[float], window: int) -> list[float]:
    """Trailing mean over up to `window` values (per-step rollout means are noisy: 4 prompts a step)."""
    windows = (values[max(0, i - window + 1) : i + 1] for i in range(len(values)))
    return [sum(w) / len(w) for w in windows]


def _plot(rows: list[dict], evals: list[dict], before: dict | None, after: dict | None, path: Path, title: str) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    panels = 2 if before and after else 1
    fig, axes = plt.subplots(1, panels, figsize=(7 + 4 * (panels - 1), 4), squeeze=False, width_ratios=[7, 4][:panels])
    ax = axes[0][0]
    for key, label, marker in (
        ("rollout/reward_mean", "total reward (eq. 3)", "o"),
        ("format", "format reward (eq. 4)", "s"),
        ("refuse_iou", "refuse-IoU (eq. 5)", "^"),
    ):
        values = [r[key] for r in rows]
        (line,) = ax.plot(steps, values, marker=marker, linestyle="none", alpha=0.35)
        ax.plot(steps, moving_mean(values, 6), color=line.get_color(), label=f"{label}, mean of last 6 steps")
    for key, label, marker in (
        ("rarft/ra_iou/mIoU", "in-loop eval: RA-IoU mIoU", "D"),
        ("rarft/f1/average", "in-loop eval: refusal F1 (average)", "v"),
    ):
        points = [(e["step"], e[key]) for e in evals if e.get(key) is not None]
        if points:
            ax.plot(*zip(*points, strict=True), marker=marker, linestyle="--", label=label)
    ax.set_xlabel("GRPO step (train_ppo_ray); dots: the mean of each step's rollouts")
    ax.set_ylabel("mean over rollouts")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    if panels == 2:
        ax = axes[0][1]
        names = [
            n for n in ("total", "format", "refuse_iou", "right") if n in before
        ]  # `right`: since the choice warm start
        x = range(len(names))
        for offset, (probe, label) in zip((-0.2, 0.2), ((before, "before GRPO"), (after, "after GRPO")), strict=True):
            ax.bar(
                [i + offset for i in x],
                [probe[n]["mean"] for n in names],
                0.4,
                yerr=[probe[n]["se"] for n in names],
                capsize=3,
                label=label,
            )
        ax.set_xticks(list(x), [{"right": "right behaviour"}.get(n, n) for n in names])
        ax.set_title(f"sampled, {before['prompts']} prompts × {before['samples_per_prompt']}", fontsize=10)
        ax.legend(fontsize=7)
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
    p.add_argument("--family", default="qwen2_5_vl", help="model family of the tiny model (stand_ins.TINY_MODELS)")
    p = sub.add_parser("warmstart", help="short supervised pass on three behaviours (`target_responses`)")
    p.add_argument("--assets", type=Path, required=True, help="folder written by `assets`")
    p.add_argument("--out", type=Path, required=True, help="warm-started model directory")
    p.add_argument("--init", type=Path, default=None, help="model to start from (default: the assets' random one)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=24, help="(query, behaviour) pairs a step: 24 = all of 8 queries")
    p.add_argument("--max-steps", type=int, default=600, help="also the length of the linear lr decay")
    p.add_argument("--max-seconds", type=float, default=900.0, help="stop probing for the target after this")
    p.add_argument("--probe", type=int, default=8, help="prompts sampled to measure the format rate")
    p.add_argument("--probe-samples", type=int, default=4, help="samples per probed prompt")
    p.add_argument("--probe-every", type=int, default=40)
    p.add_argument(
        "--target-taught", type=float, default=0.9, help="stop once this share of samples is taught verbatim"
    )
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("probe", help="mean rewards of sampled responses per prompt (before / after training)")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--assets", type=Path, required=True, help="folder written by `assets`")
    p.add_argument("--out", type=Path, required=True, help="JSON file")
    p.add_argument("--samples", type=int, default=16, help="samples per prompt")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--device", default="cuda")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("reference-grpo", help="GRPO in plain PyTorch (no Ray / vLLM / DeepSpeed), cpu or cuda")
    p.add_argument("--model", type=Path, required=True, help="start model (a warm start)")
    p.add_argument("--assets", type=Path, required=True, help="folder written by `assets`")
    p.add_argument("--out", type=Path, required=True, help="JSON file: settings and per-step means")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--prompts", type=int, default=4, help="prompts per step (--rollout.batch_size)")
    p.add_argument("--n", type=int, default=8, help="samples per prompt (--rollout.n_samples_per_prompt)")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--kl", type=float, default=0.01, help="--algo.kl.init_coef")
    p.add_argument("--warmup-steps", type=int, default=0, help="--actor.lr_warmup_ratio × steps")
    p.add_argument("--adam-eps", type=float, default=1e-8, help="--actor.adam.eps")
    p.add_argument("--loss-agg-mode", choices=("token-mean", "seq-mean-token-mean"), default="token-mean")
    p.add_argument("--probe-samples", type=int, default=0, help="sample every prompt this often before and after")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--device", default="cuda")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("curve", help="learning curve and step-time shares from a train_ppo_ray log")
    p.add_argument("--log", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--warmstart", type=Path, default=None, help="warmstart.json of the starting model")
    p.add_argument("--before", type=Path, default=None, help="`probe` JSON of the starting model")
    p.add_argument("--after", type=Path, default=None, help="`probe` JSON of the trained model")
    p.add_argument("--title", default="RA-RFT GRPO through train_ppo_ray, tiny model")
    args = parser.parse_args(argv)
    return {
        "assets": assets,
        "warmstart": warmstart,
        "probe": probe,
        "reference-grpo": reference_grpo,
        "curve": curve,
    }[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
