"""Writing an evaluation run (comparing runs: `eval.compare`).

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
from typing import Any, Iterable

from rarft_plugin.io_utils import write_atomic, write_jsonl_atomic

from rarft_plugin.prompts import OUTPUT_BLOCKS
from rarft_plugin.schema import IRRELEVANCE_LEVELS

from eval.judge import JudgeCalls
from eval.metrics import THRESHOLDS, FormatCompliance, format_warnings
from eval.paper import PaperRow, find_method, paper_rows
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


def markdown_table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
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


JUDGE_NAMES = {"relevance": "relevance", "rt-iou": "RT-IoU", "llm-score": "LLM score"}


def judge_line(kind: str, calls: JudgeCalls) -> str:
    """How much of one LLM judge's work succeeded, for the report's header and tables.

    >>> judge_line("relevance", {"asked": 200, "judged": 180, "failed": 15, "unreadable": 5, "last_error": None})
    'relevance: 180 of 200 queries judged by the LLM, 20 fell back to the core parser (15 failed, 5 unreadable)'
    """
    missing = calls["asked"] - calls["judged"]
    text = f"{JUDGE_NAMES[kind]}: {calls['judged']} of {calls['asked']} queries judged by the LLM"
    if missing:
        what = "fell back to the core parser" if kind == "relevance" else "unmeasured (left out of the means)"
        text += f", {missing} {what} ({calls['failed']} failed, {calls['unreadable']} unreadable)"
    return text


def run_warnings(metrics: dict) -> list[str]:
    """What a reader must know before trusting the numbers: the responses' shape (`format_warnings`),
    judge calls that gave no verdict, predictions made from another version of the data file."""
    out = format_warnings(metrics["format"]) if metrics.get("format") else []
    calls = metrics.get("judge", {}).get("calls", {})
    out += [judge_line(kind, c) for kind, c in calls.items() if c["judged"] < c["asked"]]
    data_sha = (metrics.get("dataset") or {}).get("sha256")
    made_from = {run.get("data_sha256") for run in metrics.get("inference", [])} - {None}
    if data_sha and made_from and made_from != {data_sha}:
        out.append(f"the predictions were made from a data file with other content (SHA-256 "
                   f"{', '.join(sorted(h[:12] for h in made_from))}) than the one scored against ({data_sha[:12]})")
    return out


def format_line(compliance: FormatCompliance) -> str:
    total = compliance["queries"]
    source = {"recorded": "recorded by infer", "given": "--template", "assumed": "not recorded: assumed"}
    truncated = {"recorded": "as recorded by infer", "text": "ending inside an unclosed block",
                 "mixed": "recorded, else an unclosed block"}
    return (f"Format: {pct(share(compliance['compliant'], total))} % of {total} responses follow the "
            f"{compliance['template']} output format ({', '.join(OUTPUT_BLOCKS[compliance['template']])} blocks; template "
            f"{source[compliance['template_source']]}); {pct(share(compliance['empty'], total))} % empty, "
            f"{pct(share(compliance['truncated'], total))} % cut off by the generation limit "
            f"({truncated[compliance['truncated_source']]}).")


def share(count: int, total: int) -> float | None:
    return count / total if total else None


def markdown(metrics: dict, *, title: str, name: str) -> str:
    """The report: warnings, how it was measured, one row per paper table that applies, then the details."""
    count, judge = metrics["count"], metrics["judge"]
    calls = judge.get("calls", {})
    levels = [level for level in IRRELEVANCE_LEVELS if level in metrics["by_difficulty"]]
    has_explanations = bool(metrics["explained"]) and count["explanation_eligible"] > 0
    warnings = metrics.get("warnings", run_warnings(metrics))
    lines = [f"# {title}", ""]
    if warnings:
        lines += ["**Warnings (read these before the numbers):**", "", *(f"- {warning}." for warning in warnings), ""]
    if metrics.get("format"):
        lines += [format_line(metrics["format"]), ""]
    if calls:
        lines += [f"LLM judge {judge.get('model')} at {judge.get('base_url')}: "
                  + "; ".join(judge_line(kind, c) for kind, c in calls.items()) + ".", ""]
    lines += [
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
    relevance_note = [judge_line("relevance", calls["relevance"]) + ".", ""] if "relevance" in calls else []
    explanation_note = ["; ".join(judge_line(kind, calls[kind]) for kind in ("rt-iou", "llm-score") if kind in calls)
                        + ".", ""] if {"rt-iou", "llm-score"} & set(calls) else []
    if count["relevant"] and count["irrelevant"]:
        lines += ["## RA-IoU and F1 (Tables 1, 2, 8, 12)", "", *markdown_table(["Method", *RA_IOU_HEADER],
                                                                      [[name, *ra_iou_cells(metrics)]]), "",
                  *relevance_note]
    if has_explanations:
        lines += ["## With explanation quality (Table 3)", "",
                  *markdown_table(["Method", *RA_IOU_HEADER, *EXPLANATION_HEADER],
                          [[name, *ra_iou_cells(metrics), *explanation_cells(metrics)]]), "",
                  *relevance_note, *explanation_note,
                  "## Ablation layout (Table 4)", "",
                  *markdown_table(["Method", "F1", "R@.5", "mIoU", "RT-IoU", "SBert.", "LLM."],
                          [[name, pct(metrics["relevance"]["f1_avg"]), pct(metrics["ra_iou"]["R@0.5"]),
                            pct(metrics["ra_iou"]["mIoU"]), *explanation_cells(metrics)]]), "",
                  "## Refusal explanation quality (Table 9)", "",
                  "`all`: every irrelevant query with a reference answer, wrongly answered ones count 0 (released "
                  "convention); `refused`: the correctly refused ones only.", "",
                  *markdown_table(["Method", *EXPLANATION_HEADER],
                          [[f"{name} (all)", *explanation_cells(metrics)],
                           [f"{name} (refused)", *explanation_cells(metrics, "refused")]]),
                  "", *explanation_note]
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
                  *markdown_table(header, [[name, *cells]]), "", *relevance_note,
                  *([judge_line("llm-score", calls["llm-score"]) + ".", ""] if "llm-score" in calls else [])]
    if count["relevant"]:
        vtg = metrics["vtg_iou"]
        lines += ["## Grounding on relevant queries (Table 7)", "",
                  *markdown_table(["Method", "R@0.3", "R@0.5", "R@0.7", "mIoU"],
                          [[name, *(pct(vtg[f"R@{t}"]) for t in THRESHOLDS), pct(vtg["mIoU"])]]), ""]
    if metrics["by_category"]:
        lines += ["## Refusal accuracy by semantic category (Fig. 6)", "",
                  *markdown_table(["Category", "irrelevant queries", "refusal acc."],
                          [[category, str(row["n"]), pct(row["refusal_accuracy"])]
                           for category, row in metrics["by_category"].items()]), ""]
    lines += details(metrics, levels)
    return "\n".join(lines).rstrip() + "\n"


def details(metrics: dict, levels: list[str]) -> list[str]:
    """Everything else: per-class precision / recall, per-level detail, explanation counts, data, judge."""
    rel, judge = metrics["relevance"], metrics["judge"]
    lines = ["## Details", "",
             *markdown_table(["class", "precision", "recall", "F1"],
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
        lines += markdown_table(["level", "irrelevant", "refusal acc.", "F1", *EXPLANATION_HEADER, "1:1 queries",
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


def paper_level_row(metrics: dict, name: str) -> PaperRow | None:
    """The paper's per-level row (Tables 6, 10, 11) of this run's dataset and method (its name), if any."""
    dataset = (metrics.get("dataset") or {}).get("paper")
    if not dataset:
        return None
    return find_method([row for row in paper_rows(dataset) if row.levels is not None], name)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def category_figure(metrics: dict, name: str):
    """Refusal accuracy per semantic category (Fig. 6): titled with the run's name, a full category path
    and the number of queries on each bar. None when the run has no categories."""
    categories = metrics["by_category"]
    if not categories:
        return None
    fig, ax = _pyplot().subplots(figsize=(9, 4.5))
    names = list(categories)[::-1]
    ax.barh(names, [100 * categories[n]["refusal_accuracy"] for n in names])
    for y, n in enumerate(names):
        ax.text(1, y, f"n={categories[n]['n']}", va="center", fontsize=8, color="white")
    ax.set_xlabel("refusal accuracy (%)")
    ax.set_xlim(0, 100)
    ax.set_title(f"{name}: refusal accuracy by semantic category")
    fig.tight_layout()
    return fig


def level_figure(metrics: dict, name: str):
    """F1 (released) and refusal accuracy per hardness level: titled with the run's name, each level
    with its number of irrelevant queries, no bar for what was not measured, and the paper's F1
    where the run's dataset and name match a row of Tables 6, 10, 11. None without levels."""
    levels = [level for level in IRRELEVANCE_LEVELS if level in metrics["by_difficulty"]]
    if not levels:
        return None
    by_level = metrics["by_difficulty"]
    fig, ax = _pyplot().subplots(figsize=(6.5, 4))
    for offset, label, values in ((-0.2, "F1", [by_level[level]["f1"] for level in levels]),
                                  (0.2, "refusal acc.", [by_level[level]["refusal_accuracy"] for level in levels])):
        xs = [x + offset for x, value in enumerate(values) if value is not None]
        ax.bar(xs, [100 * value for value in values if value is not None], width=0.4, label=label)
    paper = paper_level_row(metrics, name)
    if paper is not None:
        published = {"strong": paper.levels.strong_f1, "moderate": paper.levels.moderate_f1,
                     "weak": paper.levels.weak_f1}
        points = [(x - 0.2, published[level]) for x, level in enumerate(levels) if published.get(level) is not None]
        ax.scatter([x for x, _ in points], [y for _, y in points], marker="D", color="black", zorder=3,
                   label=f"F1, paper {paper.table}: {paper.method}")
    ax.set_xticks(range(len(levels)), [f"{level}\nn={by_level[level]['irrelevant']}" for level in levels])
    ax.set_ylabel("%")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"{name}: by hardness level")
    fig.tight_layout()
    return fig


def plots(metrics: dict, out_dir: Path, name: str = "model") -> list[Path]:
    """by_category.png and by_difficulty.png, where the run has what they show."""
    written = []
    for file, figure in (("by_category.png", category_figure), ("by_difficulty.png", level_figure)):
        fig = figure(metrics, name)
        if fig is not None:
            written.append(_save(fig, out_dir / file))
            _pyplot().close(fig)
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
    plots(metrics, out_dir, name)
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
    metrics["name"] = name
    metrics["warnings"] = run_warnings(metrics)
    write_run(metrics, items, out_dir, title=title, name=name)
    return metrics
