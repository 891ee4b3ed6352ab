"""Writing an evaluation run and comparing two.

Files of a run (`write_run`): `metrics.json` (raw fractions), `items.jsonl` (one row per query),
`report.md` (rows laid out like the paper's tables, percentages x100 with one decimal, SBERT
and LLM scores with two), `metrics.csv` (metric, value) and PNG plots (`by_category.png`:
refusal accuracy per semantic category, Fig. 6; `by_difficulty.png`: F1 and refusal accuracy
per hardness level).

`write_report(predictions, out_dir)` is the one-call version: rule-based judge, SBERT score on.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Callable, Iterable

from rarft_plugin.io_utils import write_atomic, write_jsonl_atomic

from eval.metrics import LEVELS, THRESHOLDS
from eval.predictions import Prediction, coerce_predictions


def pct(value: float | None) -> str:
    """A fraction as the paper prints it: x100, one decimal; '-' for None."""
    return "-" if value is None else f"{100 * value:.1f}"


def num(value: float | None) -> str:
    """A score as the paper prints SBERT and LLM scores: two decimals; '-' for None."""
    return "-" if value is None else f"{value:.2f}"


def lookup(metrics: dict, path: str) -> Any:
    """metrics["a"]["b"] for "a.b" (None where a key is missing)."""
    value: Any = metrics
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


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


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


ANSWER_READING_TEXT = {
    "released": "as the released evaluation does (think blocks removed, first <answer> block, else the rest)",
    "last_block": "by the last complete <answer> block, else the whole response (rarft's earlier reading)",
}
SBERT_TEXT_TEXT = {
    "released": "the response minus its correction, think included, vs the reference without tags (released)",
    "answer": "the answer text vs the reference's answer block",
}

RA_IOU_HEADER = ["R@0.3", "R@0.5", "R@0.7", "mIoU", "re.", "irre.", "avg."]
EXPLANATION_HEADER = ["RT-IoU", "SBert score", "LLM score"]


def ra_iou_cells(metrics: dict) -> list[str]:
    ra, rel = metrics["ra_iou"], metrics["relevance"]
    return [*(pct(ra[f"R@{t}"]) for t in THRESHOLDS), pct(ra["mIoU"]),
            pct(rel["f1_rel"]), pct(rel["f1_irrel"]), pct(rel["f1_avg"])]


def explanation_cells(metrics: dict, subset: str = "all") -> list[str]:
    exp = metrics["explanation"]
    return [pct(lookup(exp, f"rt_iou.{subset}")), num(lookup(exp, f"sbert.{subset}")),
            num(lookup(exp, f"llm_score.{subset}"))]


def markdown(metrics: dict, *, title: str, name: str) -> str:
    """The report: one row per paper table that applies to this run, then the details."""
    count, judge = metrics["count"], metrics["judge"]
    levels = [level for level in LEVELS if level in metrics["by_difficulty"]]
    has_explanations = bool(metrics["explained"]) and count["explanation_eligible"] > 0
    lines = [
        f"# {title}", "",
        f"{count['queries']} queries ({count['relevant']} relevant, {count['irrelevant']} irrelevant). "
        f"Relevance judged by {'an LLM' if judge['relevance'] == 'llm' else 'the core parser'}; answers read "
        f"{ANSWER_READING_TEXT.get(judge.get('answer_reading'), str(judge.get('answer_reading')))}; R@m counts "
        f"IoU {'>' if metrics['strict_recall'] else '>='} m. Percentages x100 as in the paper; SBERT and LLM "
        "scores as fractions and 0-5.", "",
    ]
    if judge.get("sbert_model"):
        model = str(judge["sbert_model"])
        caveat = "" if "all-mpnet-base-v2" in model else (
            " (the released evaluation used all-mpnet-base-v2, which is not available offline here: these SBERT "
            "scores are not directly comparable with its numbers)")
        lines += [f"SBERT score: {SBERT_TEXT_TEXT.get(judge.get('sbert_text'), str(judge.get('sbert_text')))}; "
                  f"model {model}{caveat}.", ""]
    if count["relevant"] and count["irrelevant"]:
        lines += ["## RA-IoU and F1 (Tables 1, 2, 8, 12)", "", *_table(["Method", *RA_IOU_HEADER],
                                                                      [[name, *ra_iou_cells(metrics)]]), ""]
    if has_explanations:
        lines += ["## With explanation quality (Table 3)", "",
                  *_table(["Method", *RA_IOU_HEADER, *EXPLANATION_HEADER],
                          [[name, *ra_iou_cells(metrics), *explanation_cells(metrics)]]), "",
                  "## Ablation layout (Table 4)", "",
                  *_table(["Method", "F1", "R@.5", "mIoU", "RT-IoU", "SBert.", "LLM."],
                          [[name, pct(metrics["relevance"]["f1_avg"]), pct(metrics["ra_iou"]["R@0.5"]),
                            pct(metrics["ra_iou"]["mIoU"]), *explanation_cells(metrics)]]), "",
                  "## Refusal explanation quality (Table 9)", "",
                  "`all`: every irrelevant query with a reference answer, wrongly answered ones count 0 (released "
                  "convention); `refused`: the correctly refused ones only.", "",
                  *_table(["Method", *EXPLANATION_HEADER],
                          [[f"{name} (all)", *explanation_cells(metrics)],
                           [f"{name} (refused)", *explanation_cells(metrics, "refused")]]),
                  ""]
    if levels:
        header = (["Method"] + [f"{level.capitalize()} {column}" for level in levels for column in ("F1", "LLM sc.")]
                  + [f"{level.capitalize()} F1 avg. 1:1" for level in levels])
        cells = [cell for level in levels for cell in (
            pct(lookup(metrics, f"by_difficulty.{level}.f1")),
            num(lookup(metrics, f"by_difficulty.{level}.explanation.llm_score.all")))]
        cells += [pct(lookup(metrics, f"by_difficulty.{level}.paired.relevance.f1_avg")) for level in levels]
        lines += ["## By hardness level (Tables 5, 6, 10, 11)", "",
                  "F1 = the released definition: F1 of the refusal class on the level's own irrelevant queries "
                  "(2·acc/(1+acc)). Extra columns, not the paper's: F1 avg. 1:1 = average F1 of the level's "
                  "irrelevant queries with the relevant queries of the same items.", "",
                  *_table(header, [[name, *cells]]), ""]
    if count["relevant"]:
        vtg = metrics["vtg_iou"]
        lines += ["## Grounding on relevant queries (Table 7)", "",
                  *_table(["Method", "R@0.3", "R@0.5", "R@0.7", "mIoU"],
                          [[name, *(pct(vtg[f"R@{t}"]) for t in THRESHOLDS), pct(vtg["mIoU"])]]), ""]
    if metrics["by_category"]:
        lines += ["## Refusal accuracy by semantic category (Fig. 6)", "",
                  *_table(["Category", "irrelevant queries", "refusal acc."],
                          [[category, str(row["n"]), pct(row["refusal_accuracy"])]
                           for category, row in metrics["by_category"].items()]), ""]
    lines += details(metrics, levels)
    return "\n".join(lines).rstrip() + "\n"


def details(metrics: dict, levels: list[str]) -> list[str]:
    """Everything else: per-class precision / recall, per-level detail, explanation counts, data, judge."""
    rel, judge = metrics["relevance"], metrics["judge"]
    lines = ["## Details", "",
             *_table(["class", "precision", "recall", "F1"],
                     [["relevant (answered)", pct(rel["precision_rel"]), pct(rel["recall_rel"]), pct(rel["f1_rel"])],
                      ["irrelevant (refused)", pct(rel["precision_irrel"]), pct(rel["recall_irrel"]),
                       pct(rel["f1_irrel"])]]),
             "", f"Accuracy {pct(rel['accuracy'])}.", ""]
    if levels:
        rows = []
        for level in levels:
            row = metrics["by_difficulty"][level]
            paired = row["paired"]
            rows.append([level, str(row["irrelevant"]), pct(row["refusal_accuracy"]), pct(row["f1"]),
                         *explanation_cells(row), str(paired["queries"]), pct(paired["relevance"]["f1_rel"]),
                         pct(paired["relevance"]["f1_irrel"]), pct(paired["relevance"]["f1_avg"]),
                         pct(paired["ra_iou"]["mIoU"])])
        lines += _table(["level", "irrelevant", "refusal acc.", "F1", *EXPLANATION_HEADER, "1:1 queries",
                         "1:1 F1 re.", "1:1 F1 irre.", "1:1 F1 avg.", "1:1 RA mIoU"], rows) + [""]
    original = metrics["by_difficulty"].get("original")
    if original:
        lines += [f"Relevant queries (original): {original['queries']}, answered with a segment "
                  f"{pct(original['answer_rate'])} %.", ""]
    exp = metrics["explanation"]
    measured = [f"{key} n={exp[key]['n']}"
                + (f" ({exp[key]['unmeasured']} unmeasured)" if exp[key]["unmeasured"] else "")
                for key in ("rt_iou", "sbert", "llm_score") if exp[key] is not None]
    lines += [f"Explanation metrics: {', '.join(measured) if measured else 'none computed'}"
              f"{'; SBERT model ' + str(judge['sbert_model']) if judge.get('sbert_model') else ''}"
              f"{'; LLM judge ' + str(judge['model']) if judge.get('model') else ''}.", ""]
    if judge.get("unreadable") or judge.get("failed"):
        lines += [f"Judge replies unreadable: {judge['unreadable']}; requests failed: {judge['failed']}.", ""]
    defects = metrics.get("prediction_defects")
    if defects:
        lines += ["Prediction file defects (rows kept): " + "; ".join(f"{what}: {n}" for what, n in defects.items())
                  + ".", ""]
    data = metrics.get("data")
    if data:
        lines += [f"Data: {data['summary']}", ""]
        if data.get("missing_predictions"):
            lines += [f"**{len(data['missing_predictions'])} quer(ies) of the data file have no prediction** "
                      f"(first: {', '.join(data['missing_predictions'][:5])}).", ""]
        if data.get("unmatched_rows"):
            lines += [f"**{len(data['unmatched_rows'])} prediction(s) match no query of the data file as loaded** "
                      f"(scored as given; first: {', '.join(data['unmatched_rows'][:5])}).", ""]
        if data.get("gt_timestamp_differs"):
            lines += [f"{len(data['gt_timestamp_differs'])} prediction(s) carry a gt_timestamp other than the data "
                      "file's span of their query (scored with the prediction's).", ""]
    return lines


def csv_text(metrics: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["metric", "value"])
    for key, value in flatten(metrics).items():
        if not isinstance(value, list):
            writer.writerow([key, "" if value is None else value])
    return buffer.getvalue()


def plots(metrics: dict, out_dir: Path) -> list[Path]:
    """by_category.png (Fig. 6) and by_difficulty.png, where the run has what they show."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    categories = metrics["by_category"]
    if categories:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        names = list(categories)[::-1]
        ax.barh([n.split("/")[1] for n in names], [100 * categories[n]["refusal_accuracy"] for n in names])
        for y, n in enumerate(names):
            ax.text(1, y, f"n={categories[n]['n']}", va="center", fontsize=8, color="white")
        ax.set_xlabel("refusal accuracy (%)")
        ax.set_xlim(0, 100)
        ax.set_title("Refusal accuracy by semantic category")
        fig.tight_layout()
        written.append(_save(fig, out_dir / "by_category.png"))
        plt.close(fig)
    levels = [level for level in LEVELS if level in metrics["by_difficulty"]]
    if levels:
        fig, ax = plt.subplots(figsize=(6, 4))
        xs = range(len(levels))
        f1 = [100 * (metrics["by_difficulty"][level]["f1"] or 0) for level in levels]
        refusal = [100 * metrics["by_difficulty"][level]["refusal_accuracy"] for level in levels]
        ax.bar([x - 0.2 for x in xs], f1, width=0.4, label="F1")
        ax.bar([x + 0.2 for x in xs], refusal, width=0.4, label="refusal acc.")
        ax.set_xticks(list(xs), levels)
        ax.set_ylabel("%")
        ax.set_ylim(0, 100)
        ax.legend()
        ax.set_title("By hardness level")
        fig.tight_layout()
        written.append(_save(fig, out_dir / "by_difficulty.png"))
        plt.close(fig)
    return written


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    write_atomic(path, buffer.getvalue())
    return path


def write_run(metrics: dict, items: list[dict], out_dir: str | Path, *, title: str = "rarft evaluation",
              name: str = "model") -> Path:
    """Write every file of a scored run into `out_dir`; returns the Markdown report's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    write_jsonl_atomic(out_dir / "items.jsonl", items)
    write_atomic(out_dir / "metrics.csv", csv_text(metrics))
    plots(metrics, out_dir)
    report = out_dir / "report.md"
    write_atomic(report, markdown(metrics, title=title, name=name))
    return report


def write_report(
    predictions: str | Path | Iterable[Prediction | dict],
    out_dir: str | Path,
    *,
    title: str = "rarft evaluation",
    name: str = "model",
    sbert: bool = True,
    sbert_model: str | None = None,
    strict: bool = False,
) -> dict:
    """Score predictions (a file, `Prediction`s or prediction dicts) with the rule-based judge and the
    SBERT score, write the full report into `out_dir` and return the metrics.

    >>> metrics = write_report("preds.jsonl", "runs/eval")  # doctest: +SKIP
    >>> metrics["relevance"]["f1_avg"]  # doctest: +SKIP
    0.712
    """
    from eval.score import evaluate

    similarity = None
    if sbert:
        from rarft_plugin.similarity import get_similarity

        similarity = get_similarity(sbert_model)
    metrics, items = evaluate(coerce_predictions(predictions), similarity=similarity, strict=strict)
    write_run(metrics, items, out_dir, title=title, name=name)
    return metrics


# (label, dotted key, formatter) of the numbers the paper's tables show
def headline(metrics: dict) -> list[tuple[str, str, Callable[[float | None], str]]]:
    rows = [(f"RA-IoU R@{t}", f"ra_iou.R@{t}", pct) for t in THRESHOLDS]
    rows += [("RA-IoU mIoU", "ra_iou.mIoU", pct), ("F1 re.", "relevance.f1_rel", pct),
             ("F1 irre.", "relevance.f1_irrel", pct), ("F1 avg.", "relevance.f1_avg", pct),
             ("accuracy", "relevance.accuracy", pct),
             ("RT-IoU", "explanation.rt_iou.all", pct), ("SBert score", "explanation.sbert.all", num),
             ("LLM score", "explanation.llm_score.all", num)]
    for level in LEVELS:
        if level in metrics.get("by_difficulty", {}):
            rows += [(f"{level} F1", f"by_difficulty.{level}.f1", pct),
                     (f"{level} LLM score", f"by_difficulty.{level}.explanation.llm_score.all", num),
                     (f"{level} F1 avg. 1:1", f"by_difficulty.{level}.paired.relevance.f1_avg", pct)]
    rows += [(f"VTG R@{t}", f"vtg_iou.R@{t}", pct) for t in THRESHOLDS] + [("VTG mIoU", "vtg_iou.mIoU", pct)]
    rows += [(f"refusal acc. {c}", f"by_category.{c}.refusal_accuracy", pct) for c in metrics.get("by_category", {})]
    return rows


def _delta(a: float | None, b: float | None, fmt: Callable[[float | None], str]) -> str:
    if a is None or b is None:
        return "-"
    scale = 100 if fmt is pct else 1
    digits = 1 if fmt is pct else 2
    return f"{scale * (b - a):+.{digits}f}"


COMPARED_SETTINGS = ("judge.relevance", "judge.explanations", "judge.answer_reading", "judge.sbert_text",
                     "judge.sbert_model", "judge.model", "strict_recall", "count.queries", "count.relevant",
                     "count.irrelevant")


def compare_markdown(a: dict, b: dict, name_a: str, name_b: str, *, everything: bool = False) -> str:
    """Two runs side by side with deltas (B - A; points for percentages), paper numbers first.

    Settings that differ between the runs (judge, SBERT model, recall convention, query counts)
    are listed first: such runs are not directly comparable.
    """
    lines = []
    differing = [key for key in COMPARED_SETTINGS if lookup(a, key) != lookup(b, key)]
    if differing:
        lines += ["**Not comparable as is:** " + "; ".join(f"{key}: {lookup(a, key)} vs {lookup(b, key)}"
                                                            for key in differing), ""]
    rows, seen = [], set()
    for label, key, fmt in headline(a) + headline(b):
        if key in seen:
            continue
        seen.add(key)
        va, vb = lookup(a, key), lookup(b, key)
        if va is None and vb is None:
            continue
        rows.append([label, fmt(va), fmt(vb), _delta(va, vb, fmt)])
    lines += _table(["metric", name_a, name_b, "delta"], rows)
    if everything:
        flat_a, flat_b = flatten(a), flatten(b)
        numeric = [key for key in dict.fromkeys([*flat_a, *flat_b])
                   if _number(flat_a.get(key)) or _number(flat_b.get(key))]
        lines += ["", *_table(["metric (raw)", name_a, name_b, "delta"],
                              [[key, _raw(flat_a.get(key)), _raw(flat_b.get(key)),
                                f"{flat_b[key] - flat_a[key]:+.4g}" if _both_numbers(flat_a.get(key), flat_b.get(key))
                                else "-"] for key in numeric])]
    return "\n".join(lines) + "\n"


def _raw(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _both_numbers(a: Any, b: Any) -> bool:
    return _number(a) and _number(b)
