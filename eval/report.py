"""Writing an evaluation run: metrics.json, items.jsonl, report.md (laid out like the paper's
tables), metrics.csv and PNG plots (per-category refusal accuracy, difficulty breakdown)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from rarft_plugin.io_utils import write_atomic, write_jsonl_atomic

from eval.metrics import LEVELS, THRESHOLDS


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def flatten(metrics: dict, prefix: str = "") -> dict[str, Any]:
    """Nested metrics as dotted keys (for CSV and compare)."""
    out = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def markdown(metrics: dict, title: str) -> str:
    ra, rel, vtg, exp = metrics["ra_iou"], metrics["relevance"], metrics["vtg_iou"], metrics["explanation"]
    count = metrics["count"]
    lines = [
        f"# {title}",
        "",
        f"{count['queries']} queries ({count['relevant']} relevant, {count['irrelevant']} irrelevant); "
        f"relevance judged by: {metrics['judge']['relevance']}; R@m counts RA-IoU "
        f"{'>' if metrics['strict_recall'] else '>='} m. Percentages, as in the paper.",
        "",
        "## RA-IoU and F1 (Tables 1, 2, 3)",
        "",
        "| R@0.3 | R@0.5 | R@0.7 | mIoU | F1 re. | F1 irre. | F1 avg. | Acc. |",
        "|---|---|---|---|---|---|---|---|",
        "| " + " | ".join([*(pct(ra[f"R@{t}"]) for t in THRESHOLDS), pct(ra["mIoU"]), pct(rel["f1_rel"]),
                          pct(rel["f1_irrel"]), pct(rel["f1_avg"]), pct(rel["accuracy"])]) + " |",
        "",
        "## Explanation quality on irrelevant queries (Tables 3, 9)",
        "",
        "| | RT-IoU | SBert score | LLM score |",
        "|---|---|---|---|",
        f"| all irrelevant (wrong answers count 0) | {pct(exp['rt_iou']['all'])} | {num(exp['sbert']['all'])} | "
        f"{num(exp['llm_score']['all'])} |",
        f"| correctly refused only | {pct(exp['rt_iou']['refused'])} | {num(exp['sbert']['refused'])} | "
        f"{num(exp['llm_score']['refused'])} |",
        "",
        "## By hardness level (Tables 5, 6, 10, 11)",
        "",
        "| level | queries | F1 avg. | refusal acc. | mIoU | LLM score |",
        "|---|---|---|---|---|---|",
    ]
    for level in LEVELS:
        row = metrics["by_difficulty"].get(level)
        if row:
            lines.append(f"| {level} | {row['queries']} | {pct(row['f1_avg'])} | {pct(row['refusal_accuracy'])} | "
                         f"{pct(row['mIoU'])} | {num(row['llm_score'])} |")
    original = metrics["by_difficulty"].get("original")
    if original:
        lines.append(f"| original (relevant) | {original['queries']} | - | answered {pct(original['answer_rate'])} | "
                     f"{pct(original['mIoU'])} | - |")
    lines += [
        "",
        "## Grounding on relevant queries (Table 7)",
        "",
        "| R@0.3 | R@0.5 | R@0.7 | mIoU |",
        "|---|---|---|---|",
        "| " + " | ".join([*(pct(vtg[f"R@{t}"]) for t in THRESHOLDS), pct(vtg["mIoU"])]) + " |",
        "",
        "## Refusal accuracy by semantic category (Fig. 6)",
        "",
        "| category | irrelevant queries | refusal acc. |",
        "|---|---|---|",
    ]
    for category, row in metrics["by_category"].items():
        lines.append(f"| {category} | {row['n']} | {pct(row['refusal_accuracy'])} |")
    return "\n".join(lines) + "\n"


def csv_text(metrics: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["metric", "value"])
    for key, value in flatten(metrics).items():
        writer.writerow([key, value])
    return buffer.getvalue()


def plots(metrics: dict, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    categories = metrics["by_category"]
    if categories:
        fig, ax = plt.subplots(figsize=(8, 4))
        names = list(categories)
        ax.barh([n.split("/")[1] for n in names], [100 * categories[n]["refusal_accuracy"] for n in names])
        ax.set_xlabel("refusal accuracy (%)")
        ax.set_xlim(0, 100)
        ax.set_title("Refusal accuracy by semantic category")
        fig.tight_layout()
        written.append(_save(fig, out_dir / "by_category.png"))
        plt.close(fig)
    levels = [level for level in LEVELS if level in metrics["by_difficulty"]]
    if levels:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.bar(levels, [100 * metrics["by_difficulty"][level]["f1_avg"] for level in levels])
        ax.set_ylabel("F1 avg. (%)")
        ax.set_ylim(0, 100)
        ax.set_title("F1 by hardness level")
        fig.tight_layout()
        written.append(_save(fig, out_dir / "by_difficulty.png"))
        plt.close(fig)
    return written


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    tmp = path.with_suffix(".png.tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)
    return path


def write_report(metrics: dict, items: list[dict], out_dir: str | Path, *, title: str = "rarft evaluation") -> Path:
    """Write every report file of a run into `out_dir`; returns the Markdown report's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    write_jsonl_atomic(out_dir / "items.jsonl", items)
    write_atomic(out_dir / "metrics.csv", csv_text(metrics))
    plots(metrics, out_dir)
    report = out_dir / "report.md"
    write_atomic(report, markdown(metrics, title))
    return report


def compare_markdown(a: dict, b: dict, name_a: str, name_b: str) -> str:
    """Two runs side by side with deltas (numbers present in both)."""
    flat_a, flat_b = flatten(a), flatten(b)
    lines = [f"| metric | {name_a} | {name_b} | delta |", "|---|---|---|---|"]
    for key in flat_a:
        va, vb = flat_a[key], flat_b.get(key)
        if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and not isinstance(va, bool):
            lines.append(f"| {key} | {va:.4g} | {vb:.4g} | {vb - va:+.4g} |")
    return "\n".join(lines) + "\n"
