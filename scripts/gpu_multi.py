"""Pieces of the runs on several GPUs of one host (`bench/gpu_multi.sh`, `tests/gpu/test_multi_gpu.py`).

    python scripts/gpu_multi.py layouts --gpus N                  # the layouts that fit N GPUs, one a line
    python scripts/gpu_multi.py report --run DIR [--run DIR ...] --out DIR

`LAYOUTS` are the placements the recipes offer (recipes/common.sh: `RARFT_NUM_GPUS`, `RARFT_VLLM_GPUS`,
`RARFT_VLLM_TP`) that a multi-GPU run tries: OpenRLHF's hybrid engine (actor, reference and vLLM engines on every
GPU, the recipes' default) and vLLM engines on GPUs of their own, each with engines of one GPU and of two
(`--vllm.tensor_parallel_size 2`). `layouts` prints `NAME VAR=VALUE ...` for the shell.

`report` reads each run folder as `scripts/gpu_scale.py measure` leaves it (train.log, memory.csv, run.json with
the run's `gpus`, `layout` and `size`; `gpu_scale.run_summary`) and writes `multi.md` / `multi.json`: per run the
layout, whether it completed (else the last error line of its log), the step time per phase (steps 2 on), the
step time against the one-GPU run of the same model in the same table, the largest `vllm_kl` of its steps, the peak
memory of the fullest GPU per phase, and the host's peak.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from gpu_scale import PHASES, run_summary  # noqa: E402

from rarft_plugin.io_utils import write_atomic  # noqa: E402


@dataclass(frozen=True)
class Layout:
    """A placement of the recipes, as the share of the GPUs that run vLLM alone and the GPUs per engine."""

    name: str
    vllm_share: float  # 0: the hybrid engine (vLLM shares every GPU with the actor and the reference)
    tp: int  # --vllm.tensor_parallel_size
    what: str

    def env(self, gpus: int) -> dict[str, str] | None:
        """The recipe's variables for this layout on `gpus` GPUs; None where it does not fit them."""
        vllm = int(gpus * self.vllm_share)
        if self.vllm_share and not 0 < vllm < gpus:
            return None
        if (vllm or gpus) % self.tp:
            return None
        return {"RARFT_NUM_GPUS": str(gpus), "RARFT_VLLM_GPUS": str(vllm), "RARFT_VLLM_TP": str(self.tp)}

    def placement(self, gpus: int) -> str:
        """Where the models go on `gpus` GPUs, in words."""
        env = self.env(gpus)
        if env is None:
            return "does not fit"
        vllm = int(env["RARFT_VLLM_GPUS"])
        engines = f"{(vllm or gpus) // self.tp} engine(s) x TP {self.tp}"
        if not vllm:
            return f"actor + reference + {engines} on {gpus} GPU(s)"
        return f"actor + reference on {gpus - vllm}, {engines} on {vllm}"


LAYOUTS = (
    Layout("hybrid", 0.0, 1, "the recipes' default: actor, reference and one vLLM engine on every GPU (sleep mode)"),
    Layout("hybrid_tp2", 0.0, 2, "the hybrid engine with engines of 2 GPUs"),
    Layout("separate", 0.5, 1, "vLLM engines alone on half the GPUs, actor and reference on the others (NCCL sync)"),
    Layout("separate_tp2", 0.5, 2, "separate engines of 2 GPUs"),
)
LAYOUT_NAMES = {layout.name: layout for layout in LAYOUTS}


def fitting(gpus: int) -> list[Layout]:
    """The layouts that fit `gpus` GPUs."""
    return [layout for layout in LAYOUTS if layout.env(gpus) is not None]


def layouts(args: argparse.Namespace) -> int:
    for layout in fitting(args.gpus):
        print(layout.name, *(f"{key}={value}" for key, value in layout.env(args.gpus).items()))
    return 0


# ---------------------------------------------------------------- report


def last_error(log: Path) -> str:
    """The last line of a log that names an error (what a failed run died of), shortened."""
    if not log.is_file():
        return "no train.log"
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    found = [line for line in lines if "Error" in line or "error:" in line or "Traceback" in line]
    return (found[-1] if found else (lines[-1] if lines else "empty train.log"))[:200]


def speedups(runs: list[dict]) -> dict[str, float]:
    """Each run's step time against the one-GPU run of the same model (size, response length) in `runs`."""
    out = {}
    for run in runs:
        base = next(
            (
                other
                for other in runs
                if other.get("gpus") == 1
                and other.get("step_s")
                and (other.get("size"), other.get("max_new_tokens")) == (run.get("size"), run.get("max_new_tokens"))
            ),
            None,
        )
        if base and run.get("step_s"):
            out[run["run"]] = base["step_s"] / run["step_s"]
    return out


def report(args: argparse.Namespace) -> int:
    runs = []
    for path in args.run:
        summary = run_summary(path)
        inside = path.resolve().is_relative_to(args.out.resolve())
        summary["run"] = str(path.resolve().relative_to(args.out.resolve())) if inside else path.name
        if not summary.get("complete"):
            summary["error"] = last_error(path / "train.log")
        runs.append(summary)
    if not runs:
        print("no run folder given", file=sys.stderr)
        return 2
    ratios = speedups(runs)
    lines = [
        "Steps 2 on (the first carries start-up); memory is the fullest GPU's peak inside each phase (`phase_windows`);"
        " `vs 1 GPU`: the one-GPU run's step time over this run's, same model and response length, same table.",
        "",
        "| run | model | layout | placement | result | steps | " + " | ".join(PHASES) + " | step | vs 1 GPU "
        "| vllm_kl (max) | fullest GPU by phase (GiB) | host peak (GiB) |",
        "|---|---|---|---|---|---|" + "---|" * len(PHASES) + "---|---|---|---|---|",
    ]
    for r in runs:
        layout = LAYOUT_NAMES.get(r.get("layout", ""))
        gpus = r.get("gpus", "?")
        placement = layout.placement(gpus) if layout and isinstance(gpus, int) else "?"
        result = "complete" if r.get("complete") else f"failed (exit {r.get('exit_code', '?')}): {r['error']}"
        phases = r.get("phases_s", {})
        peaks = r.get("gpu_peak_per_gpu_by_phase_gib", {})
        kl = r.get("vllm_kl_max")
        lines.append(
            f"| {r['run']} | {r.get('size', '?')} | {r.get('layout', '?')} | {placement} | {result} | {r['steps']} | "
            + " | ".join(f"{phases[p]:.1f} s" if p in phases else "-" for p in PHASES)
            + (f" | {r['step_s']:.1f} s" if "step_s" in r else " | -")
            + (f" | {ratios[r['run']]:.2f}x" if r["run"] in ratios else " | -")
            + (f" | {kl:.2g}" if kl is not None else " | -")
            + " | "
            + (", ".join(f"{p} {peaks[p]:.0f}" for p in PHASES if p in peaks) or "-")
            + f" | {r.get('host_peak_gib', math.nan):.0f} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out / "multi.md", "\n".join(lines) + "\n")
    write_atomic(args.out / "multi.json", json.dumps({"runs": runs, "speedups": ratios}, indent=1))
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("layouts", help="the layouts that fit N GPUs, with the recipe's variables")
    p.add_argument("--gpus", type=int, required=True)
    p = sub.add_parser("report", help="the table of the runs of bench/gpu_multi.sh")
    p.add_argument("--run", type=Path, action="append", required=True, help="a run folder (train.log, run.json)")
    p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    return {"layouts": layouts, "report": report}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
