"""Pieces of the paper-scale run (`bench/gpu_scale.sh`; on several GPUs, `bench/gpu_multi.sh` through `gpu_multi.py`).

    python scripts/gpu_scale.py assets --out DIR --size 7b|3b [--device cuda] [--no-model]
    python scripts/gpu_scale.py measure --dir DIR [--field KEY=VALUE ...] -- COMMAND ...
    python scripts/gpu_scale.py report --run DIR [--run DIR ...] --out DIR [--assets DIR]

`assets` builds what the run needs, each piece reused when present: a random Qwen2.5-VL of the published size
(`rarft_plugin.stand_ins.build_paper_qwen2_5_vl`, with the real Qwen2.5 vocabulary), 64 paper-size stand-in
clips (48 Charades-like, 30 s 480p, and 16 ActivityNet-like, 150 s 720p, H.264, each with its own content) and
64 prompts, one per clip, so that a step of 16 prompts decodes 16 distinct clips and 4 steps are one epoch
(HI-Charades queries; an ActivityNet-like clip's segment is stretched to its length). It counts every prompt's
tokens without decoding (`rarft_plugin.launch.checks`) and checks the count against the real processor on
decoded frames, one clip of each kind (`lengths.json`).

`measure` runs a command (a recipe) with its output appended to DIR/train.log (or `--log`) and shown, while a
thread appends the GPU memory in use (nvidia-smi, every GPU) and the host's (MemTotal - MemAvailable) to
DIR/memory.csv every `--interval` seconds, with local time stamps like OpenRLHF's log lines; then it writes
DIR/run.json (the fields given, the exit code, the wall time, the flags the recipe added for memory) and exits with
the command's code.

`report` reads each run's train.log (OpenRLHF's per-step lines: `gpu_run.py`'s `step_logs`), memory.csv and
run.json, and writes `scale.md` / `scale.json`: per run the step time per phase (steps 2 on), tokens, generation
tokens/s, truncated share, rarft's share, peak GPU memory per phase (summed over the GPUs, and of the fullest GPU) and
peak host memory; then the forecast of the paper's run (`forecast`, every assumption in `ASSUMPTIONS`). Runs that
all ended inside their first step (a lease ran out) get the phases they went through, from the log's time stamps,
and no forecast (`cut_off_step`).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from gpu_run import step_logs, step_shares  # noqa: E402

from rarft_plugin.io_utils import write_atomic  # noqa: E402
from rarft_plugin.launch.memory import architecture_of  # noqa: E402
from rarft_plugin.launch.prefetch import SWITCH  # noqa: E402
from rarft_plugin.models.qwen2_5_vl import PUBLISHED_CONFIGS  # noqa: E402

READY_LOG = "rarft/video_ready"  # rarft_plugin.openrlhf_agent.READY_LOG (importing it here would import OpenRLHF)

HI_CHARADES = REPO / "eval" / "benchmarks" / "hi_vtg_charades.json"
KINDS = (("charades", 48), ("activitynet", 16))  # clips (= prompts) of each kind
PHASES = ("generation", "make_experience", "ppo_train", "broadcast")


# ---------------------------------------------------------------- assets


def scale_items(items: list[dict], kinds=KINDS) -> list[tuple[str, dict]]:
    """(clip kind, item) for every (item, query) of `items`, in order, one query per item and one clip per query:
    the first clips of each kind in `kinds` order. A Charades-like item keeps its duration; an ActivityNet-like one
    gets the kind's length with its span stretched to it (the queries are Charades'; the clip is what costs). Items
    whose span does not fit their video are skipped."""
    from rarft_plugin.schema import span_problem
    from rarft_plugin.stand_ins import CLIP_KINDS

    # Charades-STA spans may end after the video (163 of HI-Charades' 1,097 items): rarft-prep refuses those
    pairs = [
        (item, query)
        for item in items
        if not span_problem(tuple(item["timestamp"]), item["duration"])
        for query in item["GRPO"]
    ]
    needed = sum(count for _, count in kinds)
    if len(pairs) < needed:
        raise ValueError(f"{needed} queries needed, the items hold {len(pairs)}")
    out, index = [], 0
    for kind, count in kinds:
        for number in range(count):
            item, query = pairs[index]
            index += 1
            new = {**item, "GRPO": [query], "video": f"{kind}_{number:03d}.mp4"}
            if kind != "charades":
                stretch = CLIP_KINDS[kind].seconds / item["duration"]
                new["duration"] = CLIP_KINDS[kind].seconds
                new["timestamp"] = [min(round(t * stretch, 1), new["duration"]) for t in item["timestamp"]]
            out.append((kind, new))
    return interleave(out, kinds)


def interleave(chosen: list[tuple[str, dict]], kinds) -> list[tuple[str, dict]]:
    """`chosen` reordered so that every prefix holds the kinds in their proportions (--data.max_samples keeps the
    first rows: a shorter run must still decode both kinds), each kind in its own order.

    >>> [k for k, _ in interleave([("a", 1), ("a", 2), ("a", 3), ("b", 4)], (("a", 3), ("b", 1)))]
    ['a', 'a', 'b', 'a']
    """
    counts = dict(kinds)
    total = sum(counts.values())
    queues = {kind: [pair for pair in chosen if pair[0] == kind] for kind in counts}
    taken = dict.fromkeys(counts, 0)
    out = []
    for position in range(1, total + 1):
        # the kind furthest behind its share of the first `position` rows
        kind = max((k for k in counts if taken[k] < counts[k]), key=lambda k: counts[k] * position / total - taken[k])
        out.append(queues[kind][taken[kind]])
        taken[kind] += 1
    return out


def assets(args: argparse.Namespace) -> int:
    from rarft_plugin.stand_ins import build_paper_qwen2_5_vl, paper_processor, write_paper_clips
    from rarft_prep.cli import main as prep

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    model = out / f"model_{args.size}"
    started = time.perf_counter()
    if not (model / "preprocessor_config.json").is_file():
        paper_processor(args.size).save_pretrained(model)
    if not args.no_model and not (model / "built.json").is_file():
        build_paper_qwen2_5_vl(model, args.size, device=args.device)
        write_atomic(model / "built.json", json.dumps({"size": args.size, "seconds": time.perf_counter() - started}))
        print(f"model: random Qwen2.5-VL {args.size} -> {model} ({time.perf_counter() - started:.0f} s)", flush=True)
    kinds = (("charades", args.charades), ("activitynet", args.activitynet))
    chosen = scale_items(json.loads(args.data.read_text()), kinds)
    started = time.perf_counter()
    for kind, count in kinds:
        seconds = [float(math.ceil(item["duration"])) for k, item in chosen if k == kind]
        write_paper_clips(out / "videos", kind, count, seconds=seconds)
    print(f"clips: {len(chosen)} in {out / 'videos'} ({time.perf_counter() - started:.0f} s)", flush=True)
    prompts = out / "train.jsonl"
    if not prompts.is_file() or len(prompts.read_text().splitlines()) != len(chosen):  # new counts: new prompts
        (out / "lengths.json").unlink(missing_ok=True)
        write_atomic(out / "data.json", json.dumps([item for _, item in chosen], ensure_ascii=False, indent=1))
        code = prep(["to-openrlhf", str(out / "data.json"), str(out / "train.jsonl"), "--video-root",
                     str(out / "videos"), "--template", "ra_rft"])  # fmt: skip
        if code:
            return code
    if not (out / "lengths.json").is_file():
        write_atomic(out / "lengths.json", json.dumps(prompt_lengths(model, out / "train.jsonl"), indent=1))
    print((out / "lengths.json").read_text())
    return 0


def prompt_lengths(model: Path, prompts: Path) -> dict:
    """Every prompt's tokens (text + video, counted without decoding, as rarft-train's pre-flight counts them) per
    clip kind, and the count checked against the processor on decoded frames for the first clip of each kind."""
    from rarft_plugin.launch.checks import length_limit
    from rarft_plugin.prompt_row import parse_row
    from rarft_plugin.video import probe_clips, sample_frames

    limit = length_limit(["--actor.model_name_or_path", str(model)])
    processor, family = limit.processor, limit.family
    rows = [json.loads(line) for line in prompts.read_text().splitlines() if line.strip()]
    specs = [parse_row(row).video for row in rows]
    infos, failed = probe_clips(specs, family=family)
    if failed:
        raise SystemExit(f"clips that do not open: {failed}")
    kinds: dict[str, dict] = {}
    for row, spec in zip(rows, specs, strict=True):
        kind = Path(spec.path).name.split("_")[0]
        info, text = infos[spec], limit.text_tokens(row["input"])
        video = limit.video_tokens(info)
        entry = kinds.setdefault(kind, {"prompts": 0, "video_tokens": [], "text_tokens": [], "frames": set()})
        entry["prompts"] += 1
        entry["video_tokens"].append(video)
        entry["text_tokens"].append(text)
        entry["frames"].add(f"{info.frames} x {info.height}x{info.width}")
        if "checked" not in entry:  # the real processor on the decoded frames
            prompt = processor.apply_chat_template(row["input"], tokenize=False, add_generation_prompt=True)
            ids, _ = family.process_video_prompt(processor, prompt, sample_frames(spec, family=family, cache=False))
            entry["checked"] = {"clip": Path(spec.path).name, "counted": video + text, "processor": len(ids)}
    summary = {}
    for kind, entry in kinds.items():
        totals = [v + t for v, t in zip(entry["video_tokens"], entry["text_tokens"], strict=True)]
        summary[kind] = {
            "prompts": entry["prompts"],
            "sampled frames": sorted(entry["frames"]),
            "video tokens": _spread(entry["video_tokens"]),
            "text tokens": _spread(entry["text_tokens"]),
            "prompt tokens": _spread(totals),
            "checked against the processor": entry["checked"],
        }
    longest = max(s["prompt tokens"]["max"] for s in summary.values())
    return {"kinds": summary, "max_prompt_tokens": longest, "max_len": 4608, "room_left": 4608 - longest}


def _spread(values: list[int]) -> dict[str, float]:
    return {"min": min(values), "mean": round(sum(values) / len(values), 1), "max": max(values)}


# ---------------------------------------------------------------- memory sampler


def read_host_used_mib() -> float:
    fields = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])  # kB
    return (fields["MemTotal"] - fields["MemAvailable"]) / 1024


def read_gpu_used_mib() -> list[float]:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [float(value) for value in out.split()]


def sample_memory(out: Path, interval: float, stop: threading.Event) -> None:
    """Append a row of the memory in use to `out` every `interval` seconds until `stop` is set."""
    new = not out.exists()
    with open(out, "a", newline="", buffering=1) as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(["epoch", "local", "host_used_mib", "gpu_used_mib"])
        while True:
            now = time.time()
            gpus = read_gpu_used_mib()
            local = datetime.fromtimestamp(now).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
            writer.writerow([f"{now:.3f}", local, f"{read_host_used_mib():.0f}", ";".join(f"{g:.0f}" for g in gpus)])
            if stop.wait(max(0.0, interval - (time.time() - now))):
                return


def measure(args: argparse.Namespace) -> int:
    command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    args.dir.mkdir(parents=True, exist_ok=True)
    log_path = args.log or args.dir / "train.log"
    stop = threading.Event()
    sampler = threading.Thread(target=sample_memory, args=(args.dir / "memory.csv", args.interval, stop), daemon=True)
    sampler.start()
    begin = time.time()
    try:
        with open(log_path, "a", encoding="utf-8", errors="replace") as log:
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1
            )
            for line in process.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                log.write(line)
                log.flush()
            code = process.wait()
    finally:
        stop.set()
        sampler.join()
    text = log_path.read_text(errors="replace")
    info = {**dict(args.field), "added_flags": added_flags(text), "exit_code": code}
    info.update(wall_s=round(time.time() - begin), complete=code == 0)
    write_atomic(args.dir / "run.json", json.dumps(info))
    return code


# ---------------------------------------------------------------- report

_STAMP = r"(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)"  # OpenRLHF's and vLLM's log time stamps: month-day time
_LOG_TIME = re.compile(_STAMP + r"\s+\S+\.py:\d+\]\s+(?:\S*\s*Global step (\d+):|Sample: )")


def log_times(text: str, year: int) -> dict[int, dict[str, datetime]]:
    """Local times OpenRLHF's trainer logged for each step: "end" (its "Global step" line, after the last phase) and,
    where logged, "sample" (its "Sample:" line, right after make_experience). The last line of a step wins, as in
    `step_logs`; the time stamps have one-second resolution."""
    times: dict[int, dict[str, datetime]] = {}
    sample = None
    for line in text.splitlines():
        match = _LOG_TIME.search(line)
        if not match:
            continue
        month, day, hour, minute, second = map(int, match.groups()[:5])
        when = datetime(year, month, day, hour, minute, second)
        if match.group(6) is None:
            sample = when
            continue
        times[int(match.group(6))] = {"end": when, **({"sample": sample} if sample else {})}
        sample = None
    return times


MARGIN_S = 1.5  # cut from each end of a phase's window: 1-s time stamps, untimed hand-overs between phases


def phase_windows(status: dict, times: dict[str, datetime]) -> dict[str, tuple[float, float]]:
    """Each phase's (start, end) in seconds of naive local time, laid back to back in OpenRLHF's order (generation,
    make_experience | hand-over to the actor | ppo_train, broadcast): ppo_train and broadcast end at the step's
    line, generation and make_experience at its "Sample:" line (else right before ppo_train). Each window loses
    `MARGIN_S` at both ends; a phase too short for that gets none."""

    def lay_back(phases: tuple[str, ...], anchor: datetime) -> dict[str, tuple[float, float]]:
        cursor, laid = anchor.timestamp() + 0.5, {}  # the middle of the logged second
        for phase in reversed(phases):
            start = cursor - status.get(f"timing/{phase}", 0.0)
            laid[phase] = (start, cursor)
            cursor = start
        return laid

    late = lay_back(PHASES[2:], times["end"])
    if "sample" in times:
        early = lay_back(PHASES[:2], times["sample"])
    else:
        early = lay_back(PHASES[:2], datetime.fromtimestamp(late[PHASES[2]][0] - 0.5))
    windows = {}
    for phase, (start, stop) in {**early, **late}.items():
        if stop - start > 2 * MARGIN_S + 1:
            windows[phase] = (start + MARGIN_S, stop - MARGIN_S)
    return windows


# what a step logs before its "Global step" line, in order: vLLM wakes (generation starts), vLLM sleeps again
# (generation ends), the trainer's "Sample:" line (make_experience ends)
_CUT_OFF_MARKS = (
    ("wake", re.compile(_STAMP + r" \[\S+\.py:\d+\] It took [\d.]+ seconds to wake up")),
    ("sleep", re.compile(_STAMP + r" \[\S+\.py:\d+\] CuMemAllocator: sleep freed")),
    ("sample", re.compile(_STAMP + r"\s+\S+\.py:\d+\]\s+Sample: ")),
)


def cut_off_step(text: str, samples: list[Sample]) -> dict | None:
    """The first step of a run that ended before it logged one (a lease ran out, a crash): each phase's seconds
    from the log's time stamps (`_CUT_OFF_MARKS`), the phase it was in when it ended (its seconds up to the last
    memory sample: a lower bound), and the peak GPU memory (GiB, summed) inside each phase. None without a wake-up."""
    if not samples:
        return None
    year, marks, pending = samples[0].when.year, {}, list(_CUT_OFF_MARKS)
    for line in text.splitlines():
        if not pending:
            break
        name, pattern = pending[0]
        found = pattern.search(line)
        if found:  # the middle of the logged second
            month, day, hour, minute, second = map(int, found.groups())
            marks[name] = datetime(year, month, day, hour, minute, second).timestamp() + 0.5
            pending.pop(0)
    if "wake" not in marks:
        return None
    bounds = [marks.get("wake"), marks.get("sleep"), marks.get("sample")]
    end = samples[-1].when.timestamp()
    phases, peaks, cut = {}, {}, None
    for phase, start, stop in zip(PHASES[:3], bounds, [*bounds[1:], None], strict=True):
        if start is None:
            break
        if stop is None:
            stop, cut = end, phase
        phases[phase] = stop - start
        peak = window_peak_gib(samples, start + MARGIN_S, stop - MARGIN_S)
        if peak is not None:
            peaks[phase] = peak
    return {"phases_s": phases, "cut_off_in": cut, "gpu_peak_by_phase_gib": peaks}


@dataclass(frozen=True)
class Sample:
    when: datetime
    host_mib: float
    gpus_mib: tuple[float, ...]  # each GPU's

    @property
    def gpu_mib(self) -> float:
        """Summed over the GPUs."""
        return sum(self.gpus_mib)

    @property
    def fullest_gpu_mib(self) -> float:
        """The GPU with the most in use (several GPUs: what each must hold)."""
        return max(self.gpus_mib, default=0.0)


def read_memory(path: Path) -> list[Sample]:
    samples = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                when = datetime.strptime(row["local"], "%Y-%m-%d %H:%M:%S.%f")
                gpus = tuple(float(v) for v in row["gpu_used_mib"].split(";") if v)
                samples.append(Sample(when, float(row["host_used_mib"]), gpus))
            except (KeyError, ValueError, TypeError):  # a line cut off when the sampler was killed
                continue
    return samples


def memory_by_phase(
    logs: list[dict], times: dict[int, dict[str, datetime]], samples: list[Sample], *, fullest: bool = False
) -> dict[str, float]:
    """Peak GPU memory (GiB, summed over the GPUs; `fullest`: of the fullest GPU) seen inside each phase's windows
    over the steps."""
    peaks: dict[str, float] = {}
    for status in logs:
        if status["step"] not in times:
            continue
        for phase, (start, stop) in phase_windows(status, times[status["step"]]).items():
            peak = window_peak_gib(samples, start, stop, fullest=fullest)
            if peak is not None:
                peaks[phase] = max(peaks.get(phase, 0.0), peak)
    return peaks


def window_peak_gib(samples: list[Sample], start: float, stop: float, *, fullest: bool = False) -> float | None:
    """Peak GPU memory (GiB, summed over the GPUs; `fullest`: of the fullest GPU) of the samples in [start, stop]
    (epoch seconds), or None where none was taken (a sample without GPUs read gives no figure)."""
    inside = [
        s.fullest_gpu_mib if fullest else s.gpu_mib
        for s in samples
        if s.gpus_mib and start <= s.when.timestamp() <= stop
    ]
    return max(inside) / 1024 if inside else None


def run_summary(run: Path) -> dict:
    """One run's figures from its train.log, memory.csv and run.json (written by bench/gpu_scale.sh)."""
    info = json.loads((run / "run.json").read_text()) if (run / "run.json").is_file() else {}
    text = (run / "train.log").read_text(errors="replace") if (run / "train.log").is_file() else ""
    logs = step_logs(text)
    summary: dict = {"run": run.name, **info, "steps": len(logs)}
    samples = read_memory(run / "memory.csv") if (run / "memory.csv").is_file() else []
    if samples:
        baseline = samples[0].host_mib
        summary["host_peak_gib"] = max(s.host_mib for s in samples) / 1024
        summary["host_peak_over_start_gib"] = (max(s.host_mib for s in samples) - baseline) / 1024
        summary["gpu_peak_gib"] = max(s.gpu_mib for s in samples) / 1024
        summary["gpu_peak_per_gpu_gib"] = max(s.fullest_gpu_mib for s in samples) / 1024
    if not logs:
        cut = cut_off_step(text, samples)
        if cut:
            summary["cut_off_step"] = cut
        return summary
    kl = [abs(s["vllm_kl"]) for s in logs if "vllm_kl" in s]  # rollout vs training log-probs (is_correction_level)
    if kl:
        summary["vllm_kl_max"] = max(kl)
    steady = logs[1:] or logs  # the first step carries start-up costs (CUDA graphs, first decodes)
    mean = lambda key: sum(s.get(key, 0.0) for s in steady) / len(steady)  # noqa: E731
    response = mean("response_length")
    rollouts = mean("rollout/num_samples")
    summary.update(
        first_step_s=logs[0]["timing/step_total"],
        steady_steps=len(steady),
        phases_s={phase: mean(f"timing/{phase}") for phase in PHASES},
        step_s=mean("timing/step_total"),
        prompt_tokens=mean("total_length") - response,
        response_tokens=response,
        rollouts=rollouts,
        generation_tokens_per_s=rollouts * response / mean("timing/generation"),
        truncated=mean("rollout/truncated_rate"),
        per_rollout_s={key: mean(f"rarft/{key}_s") for key in ("video_prep", "generate", "reward")},
        rarft_share=sum(step_shares(s)["rarft"] for s in steady) / len(steady),
        # the seconds of the generation phase its rollouts spent waiting for their clips (rarft's video prep)
        video_on_critical_path_s=sum(step_shares(s)["rarft_video_prep"] * s["timing/step_total"] for s in steady)
        / len(steady),
        rarft_share_range=[min(step_shares(s)["rarft"] for s in steady), max(step_shares(s)["rarft"] for s in steady)],
        # the share of rollouts that found their clip prepared (the prefetch kept up); None before it was logged
        clips_ready=mean(READY_LOG) if all(READY_LOG in s for s in steady) else None,
    )
    if samples:
        times = log_times(text, samples[0].when.year)
        summary["gpu_peak_by_phase_gib"] = memory_by_phase(logs, times, samples)
        summary["gpu_peak_per_gpu_by_phase_gib"] = memory_by_phase(logs, times, samples, fullest=True)
    return summary


# Published dense BF16 tensor throughput (TFLOPS, without sparsity) and HBM bandwidth (TB/s) of the SXM parts.
DEVICES = {
    "A100": {"tflops": 312.0, "tbps": 2.039, "nvlink_gbps": 300.0},  # A100 SXM4 80GB
    "H100": {"tflops": 989.0, "tbps": 3.35, "nvlink_gbps": 450.0},  # H100 SXM5 80GB
    "H200": {"tflops": 989.0, "tbps": 4.8, "nvlink_gbps": 450.0},
}
PAPER = {
    "prompts": 10_000,  # HI-VTG training set: 2.5K relevant + 7.5K irrelevant queries (paper §3.3)
    "epochs": 3,  # paper §4.3
    "prompts_per_step": 16,
    "samples_per_prompt": 8,
    "gpus": 8,
}
ASSUMPTIONS = [
    "steps = HI-VTG's 10,000 training queries (paper §3.3: 2.5K relevant + 7.5K hard-irrelevant) × 3 epochs / 16 "
    "prompts a step = 1,875 steps of 128 rollouts; the recipes' batch, G and lengths",
    "model: phases measured on the 3B are scaled to the 7B by the ratio of language-model parameters (7.62 B / "
    "3.09 B = 2.47): prefill, forward and backward FLOPs and the bytes a decode step reads grow with them; the "
    "frozen vision tower (0.67 B in both) is left in that ratio",
    "generation, less rarft's video preparation (below), splits into a part per rollout (prefill of the ~4k-token "
    "prompt, vision tower) and a part per generated token (decode), fitted from two runs of the same model with "
    "different response lengths (the random model's natural length and --rollout.max_new_tokens 200); with one run, "
    "all of it is taken as per-rollout; make_experience, ppo_train and broadcast come from the run whose responses "
    "are nearest the recipe's 200 tokens",
    "rarft's video preparation on the rollouts' critical path (the generation phase's share by the step lines' "
    "rarft/video_prep_s against rarft/generate_s and rarft/reward_s) is added per step as measured, neither scaled "
    "by model, device nor rollouts: a step decodes the paper's 16 distinct clips once each for their G rollouts "
    "(a run with fewer distinct clips a step under-counts it), and 8 engines on one node share its cores as one "
    "engine shared the measuring host's; with the trainer's prefetch it runs while the previous step trains, and "
    "with the executor that takes a prepared clip in the engine's event loop (runs that log rarft/video_ready) a "
    "run measures ~0 here: such a run's figure is taken over an earlier run's",
    "8 GPUs: each engine runs 1/8 of the rollouts (the prefill part divides by 8); a decode step reads the "
    "weights once for all sequences in flight, so the decode part scales by the bytes a step reads with 16 "
    "instead of 128 sequences (weights + KV cache of ~4.3k tokens a sequence)",
    "8 GPUs: make_experience and ppo_train divide by 8 (data parallel), plus ZeRO-3's traffic added in full, not "
    "overlapped (an upper bound): per micro-batch of one rollout, forward and backward all-gather the bf16 weights "
    "and the gradients are reduce-scattered (3 × 2 bytes × parameters, 2 × for make_experience's two forwards), "
    "7/8 of it over NVLink at the part's per-direction bandwidth",
    "device: compute-bound parts (prefill, make_experience, ppo_train) scale by dense BF16 TFLOPS, "
    "memory-bound ones (decode, broadcast) by HBM bandwidth: A100 SXM 312 TFLOPS / 2.04 TB/s, H100 SXM 989 / "
    "3.35, H200 989 / 4.8",
    "a run with fewer than 16 prompts a step (SCALE_PROMPTS) is scaled up per rollout: make_experience, "
    "ppo_train and generation's per-rollout part by 128 / its rollouts (one rollout per micro-batch), "
    "broadcast and the per-token decode part as they are",
    "the attention the run used (run.json `attention`): with sdpa, as where flash-attn's CUDA extension is missing, "
    "Qwen2.5-VL's vision tower attends window by window in Python, so the measured forward passes are slower than "
    "with flash_attention_2 and the forecast from them is high",
    "no evaluation during training, checkpoints not counted (the recipes save every 50 steps: 37 saves of "
    "~140 GB of DeepSpeed states and weights for the 7B)",
]
SIZES = {size: architecture_of(config) for size, config in PUBLISHED_CONFIGS.items()}
CONTEXT_TOKENS = 4300  # a rollout's tokens while it decodes: the ~4k-token prompt and part of its response


def generation_split(runs: list[dict]) -> tuple[float, float]:
    """(seconds per rollout batch that do not depend on the response length, seconds per generated token of a
    rollout) from runs of one model with different response lengths: a line through (response tokens, generation
    time); one run, or equal lengths: all of the time in the first part."""
    points = sorted(
        (r["response_tokens"], r["phases_s"]["generation"] - r.get("video_on_critical_path_s", 0.0))
        for r in runs
        if r.get("phases_s")
    )
    if len(points) < 2 or points[-1][0] - points[0][0] < 1:
        return (points[0][1] if points else 0.0), 0.0
    (l1, t1), (l2, t2) = points[0], points[-1]
    slope = max(0.0, (t2 - t1) / (l2 - l1))
    return max(0.0, t1 - slope * l1), slope


def forecast_reference(runs: list[dict], response_tokens: float) -> dict:
    """The run whose phases stand for the paper's step: the one whose responses are nearest the recipe's length
    (make_experience and ppo_train grow with it; a natural-length run is there for the generation split)."""
    measured = [r for r in runs if r.get("phases_s")]
    return min(measured, key=lambda r: abs(r.get("response_tokens", response_tokens) - response_tokens))


def video_source(runs: list[dict], reference: dict) -> dict:
    """The run whose video preparation on the critical path is forecast: where some runs report `clips_ready`
    (the executor that takes a prefetched clip in the event loop, without waiting for it), the one with the most
    clips ready, as later runs measure the code that ships; otherwise the reference."""
    current = [r for r in runs if r.get("phases_s") and r.get("clips_ready") is not None]
    return max(current, key=lambda r: r["clips_ready"]) if current else reference


def forecast(runs: list[dict], device: str, size: str, target: str, response_tokens: float = 200.0) -> dict:
    """The paper's run (`PAPER`) on 8 x `target` from `runs` (one model `size`, one GPU of `device`), per
    `ASSUMPTIONS`."""
    source, goal = DEVICES[device], DEVICES[target]
    paper = SIZES["7b"]
    model = paper.language_parameters / SIZES[size].language_parameters
    compute, bandwidth = source["tflops"] / goal["tflops"], source["tbps"] / goal["tbps"]
    gpus = PAPER["gpus"]
    rollouts = PAPER["prompts_per_step"] * PAPER["samples_per_prompt"]
    fixed, per_token = generation_split(runs)
    weights = 2 * paper.language_parameters
    kv = paper.kv_bytes_per_token * CONTEXT_TOKENS  # the KV cache a sequence's decode step reads
    decode_batch = (weights + rollouts / gpus * kv) / (weights + rollouts * kv)
    reference = forecast_reference(runs, response_tokens)
    # a run with fewer prompts a step (SCALE_PROMPTS, to fit a lease): what is per rollout scales up to 128
    more = rollouts / (reference.get("rollouts") or rollouts)
    phases = {p: t * (more if p != "broadcast" else 1.0) for p, t in reference["phases_s"].items()}
    fixed *= more

    def comm(passes: int) -> float:
        """ZeRO-3's traffic a step, per GPU: `passes` × the bf16 weights per micro-batch of one rollout, 7/8 of it
        over NVLink."""
        return rollouts / gpus * passes * 2 * paper.parameters * (gpus - 1) / gpus / (goal["nvlink_gbps"] * 1e9)

    video = video_source(runs, reference).get("video_on_critical_path_s", 0.0)
    step = {
        "generation": (
            fixed * model * compute / gpus + per_token * response_tokens * model * bandwidth * decode_batch + video
        ),
        "make_experience": phases["make_experience"] * model * compute / gpus + comm(2),
        "ppo_train": phases["ppo_train"] * model * compute / gpus + comm(3),
        "broadcast": phases["broadcast"] * model * bandwidth,
    }
    steps = math.ceil(PAPER["prompts"] / PAPER["prompts_per_step"]) * PAPER["epochs"]
    total = sum(step.values())
    return {
        "target": f"{gpus} x {target}",
        "step_s": step,
        "step_total_s": total,
        "video_prep_s": video,
        "steps": steps,
        "hours": total * steps / 3600,
        "factors": {
            "model": model,
            "compute": compute,
            "bandwidth": bandwidth,
            "decode_batch": decode_batch,
            "rollouts": more,
        },
        "generation_split": {"per_batch_s": fixed, "per_token_s": per_token},
    }


def report(args: argparse.Namespace) -> int:
    runs = [run_summary(path) for path in args.run]
    if not any(r["steps"] for r in runs):
        if any("cut_off_step" in r for r in runs):
            return report_cut_off(runs, args.out)
        print("no run has a 'Global step' line: nothing to report", file=sys.stderr)
        return 2
    lengths = json.loads((args.assets / "lengths.json").read_text()) if args.assets else None
    measured = [r for r in runs if r["steps"]]
    device = measured[0].get("device", "H100")
    size = measured[0].get("size", "3b")
    # the forecast from the runs decoding as shipped (in the engine's process), where there are such
    same_model = [r for r in measured if r.get("size", size) == size]
    same_model = [r for r in same_model if not r.get("decode_processes")] or same_model
    forecasts = [forecast(same_model, device, size, target) for target in ("A100", "H100")]
    lines = [
        f"Measured on one {device} ({measured[0].get('gpu_name', '?')}), random Qwen2.5-VL {size}; steps 2 on "
        "(the first carries start-up); GPU memory summed over the machine's GPUs, per phase as `phase_windows` lays "
        "the phases out from the log (`phase_windows`; a phase under 4 s gets no window).",
        "",
        "| run | steps | max new tokens | prompt / response tokens | truncated | generation | make_experience "
        "| ppo_train | broadcast | step | first step | gen tokens/s | rarft share (range) | video prep / rollout "
        "| GPU peak by phase (GiB) | host peak (GiB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in measured:
        peaks = r.get("gpu_peak_by_phase_gib", {})
        added = f" (+{r['added_flags']})" if r.get("added_flags") else ""
        added += f" ({r['decode_processes']} decoding processes)" if r.get("decode_processes") else ""
        prefetch = SWITCH.get(str(r.get("prefetch", "")).strip().lower())  # None: a run before it existed
        added += "" if prefetch is None else " (prefetch)" if prefetch else " (no prefetch)"
        lines.append(
            f"| {r['run']}{added} | {r['steps']} | {r.get('max_new_tokens', '?')} | {r['prompt_tokens']:.0f} / "
            f"{r['response_tokens']:.0f} | {r['truncated']:.0%} | "
            + " | ".join(f"{r['phases_s'][p]:.1f} s" for p in PHASES)
            + f" | {r['step_s']:.1f} s | {r['first_step_s']:.1f} s | {r['generation_tokens_per_s']:.0f} | "
            f"{r['rarft_share']:.1%} ({r['rarft_share_range'][0]:.1%}-{r['rarft_share_range'][1]:.1%}) | "
            f"{r['per_rollout_s']['video_prep']:.2f} s"
            + ("" if r.get("clips_ready") is None else f" ({r['clips_ready']:.0%} of clips ready)")
            + " | "
            + ", ".join(f"{p} {peaks[p]:.0f}" for p in PHASES if p in peaks)
            + f" | {r.get('host_peak_gib', float('nan')):.0f} |"
        )
    lines += ["", "Forecast of the paper's run (7B, HI-VTG, 3 epochs, 16 prompts × 8 rollouts a step):", ""]
    lines += [
        "| hardware | generation | of it, rarft's video prep | make_experience | ppo_train | broadcast | step | steps "
        "| total |"
    ]
    lines += ["|---|---|---|---|---|---|---|---|---|"]
    for f in forecasts:
        lines.append(
            f"| {f['target']} | {f['step_s']['generation']:.1f} s | {f['video_prep_s']:.1f} s | "
            + " | ".join(f"{f['step_s'][p]:.1f} s" for p in PHASES[1:])
            + f" | {f['step_total_s']:.1f} s | {f['steps']} | {f['hours']:.1f} h |"
        )
    lines += ["", "Assumptions:", *(f"- {a}" for a in ASSUMPTIONS)]
    if lengths:
        lines += ["", f"Prompt lengths (lengths.json): {json.dumps(lengths['kinds'])}"]
    data = {"runs": runs, "forecasts": forecasts, "lengths": lengths, "assumptions": ASSUMPTIONS}
    return write_report(args.out, lines, data)


def report_cut_off(runs: list[dict], out: Path) -> int:
    """scale.md / scale.json for runs that ended inside their first step: what each phase took until then (no
    forecast: a first step carries start-up, and the phase it was cut off in is a lower bound)."""
    lines = [
        "No run logged a step: each ended inside its first step (the first step carries start-up costs). Phase "
        "times from the log's time stamps (vLLM's wake-up and sleep, the trainer's Sample: line); `>=`: the phase "
        "the run was in when it ended, up to its last memory sample. No forecast.",
        "",
        "| run | attention | prompts a step | "
        + " | ".join(PHASES[:3])
        + " | GPU peak by phase (GiB) | host peak (GiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        cut = r.get("cut_off_step")
        if not cut:
            continue
        times = [
            (">= " if p == cut["cut_off_in"] else "") + f"{cut['phases_s'][p]:.0f} s" if p in cut["phases_s"] else "-"
            for p in PHASES[:3]
        ]
        peaks = ", ".join(f"{p} {v:.1f}" for p, v in cut["gpu_peak_by_phase_gib"].items())
        lines.append(
            f"| {r['run']} | {r.get('attention', '?')} | {r.get('prompts_per_step', 16)} | "
            + " | ".join(times)
            + f" | {peaks} | {r.get('host_peak_gib', float('nan')):.1f} |"
        )
    return write_report(out, lines, {"runs": runs, "forecasts": []})


def write_report(out: Path, lines: list[str], data: dict) -> int:
    """OUT/scale.md (the lines, also printed) and OUT/scale.json (`data`), each written whole."""
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "scale.md", "\n".join(lines) + "\n")
    write_atomic(out / "scale.json", json.dumps(data, indent=1))
    print("\n".join(lines))
    return 0


def added_flags(log: str) -> str:
    """The flags a recipe added for memory, from its notice ("time_r1.sh: one GPU: adding --ds.adam_offload (...)")."""
    found = re.search(r"\S+\.sh: (?:one GPU|\d+ GPUs): adding (.*?) \(estimated", log)
    return found.group(1) if found else ""


def _field(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("assets", help="paper-size random model, 64 stand-in clips, prompts, prompt lengths")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--size", choices=("7b", "3b"), default="7b")
    p.add_argument("--device", default="cuda", help="where the model is initialised (cuda: seconds)")
    p.add_argument("--no-model", action="store_true", help="only the processor (for counting prompt tokens)")
    p.add_argument("--data", type=Path, default=HI_CHARADES, help="released-schema file the queries come from")
    p.add_argument("--charades", type=int, default=dict(KINDS)["charades"], help="Charades-like clips (and prompts)")
    p.add_argument("--activitynet", type=int, default=dict(KINDS)["activitynet"], help="ActivityNet-like clips")
    p = sub.add_parser("measure", help="run a command with its log and memory samples; then its run.json")
    p.add_argument("--dir", type=Path, required=True, help="the run's folder: train.log, memory.csv, run.json")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between memory samples")
    p.add_argument("--log", type=Path, default=None, help="the command's output (default: DIR/train.log)")
    p.add_argument("--field", type=_field, action="append", default=[], help="KEY=VALUE for run.json (JSON if it is)")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="COMMAND", help="-- then the command")
    p = sub.add_parser("report", help="table and forecast from the runs of bench/gpu_scale.sh")
    p.add_argument("--run", type=Path, action="append", required=True, help="a run folder (train.log, memory.csv)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--assets", type=Path, default=None, help="the assets folder (its lengths.json)")
    args = parser.parse_args(argv)
    commands = {"assets": assets, "measure": measure, "report": report}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
