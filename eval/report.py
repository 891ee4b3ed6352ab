"""Writing an evaluation run (comparing runs: `eval.compare`).

Files of a run (`write_run`, `RUN_FILES`): `metrics.json` (raw fractions, `eval.record`), `items.jsonl` (one row
per query), `report.md` (rows laid out like the paper's tables, percentages x100 with one decimal, SBERT
and LLM scores with two), `metrics.csv` (metric, value) and PNG plots (`by_category.png`:
refusal accuracy per semantic category, Fig. 6; `by_difficulty.png`: F1 and refusal accuracy
per hardness level). They are written into a temporary folder beside the run's and moved into place
together once complete (`rarft_plugin.command_files.staged_folder`): a failed or interrupted run
leaves no part of a run behind, and rewrites only a folder holding a run of its own.

Every table reads the typed rows of `eval.metrics` by attribute: a metric renamed there is an error here, never a
"-" in a table. `eval.evaluate.write_report(predictions, out_dir)` evaluates and writes in one call.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rarft_plugin.command_files import staged_folder
from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import write_atomic, write_jsonl_atomic
from rarft_plugin.prompts import OUTPUT_BLOCKS
from rarft_plugin.schema import IRRELEVANCE_LEVELS, JsonValue

from .judge import JudgeCalls
from .metrics import Explanation, ExplanationMean, FormatCompliance, ItemRow, Metrics, format_warnings
from .paper import PaperRow, find_method, paper_rows
from .record import RunRecord, read_run, record_json, row_json

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "DETAIL_TABLES",
    "EXPLANATION_COLUMNS",
    "GROUNDING_COLUMNS",
    "LEVEL_COLUMNS",
    "RA_IOU_COLUMNS",
    "RUN_EXPLANATION_COLUMNS",
    "RUN_FILES",
    "TABLES",
    "Column",
    "PerLevel",
    "Table",
    "category_figure",
    "cells",
    "csv_text",
    "expand",
    "explanation_values",
    "flatten",
    "headers",
    "judge_line",
    "level_figure",
    "markdown",
    "markdown_table",
    "not_a_run_folder",
    "num",
    "pct",
    "plots",
    "run_warnings",
    "table_lines",
    "write_run",
]


def pct(value: float | None) -> str:
    """A fraction as the paper prints it: x100, one decimal; '-' for None."""
    return "-" if value is None else f"{100 * value:.1f}"


def num(value: float | None) -> str:
    """A score as the paper prints SBERT and LLM scores: two decimals; '-' for None."""
    return "-" if value is None else f"{value:.2f}"


def flatten(data: dict[str, JsonValue], prefix: str = "") -> dict[str, JsonValue]:
    """A JSON object (metrics.json) as dotted keys, for the CSV and compare's raw numbers."""
    out: dict[str, JsonValue] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def markdown_table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


# The report's tables, each declared once below (`TABLES`, `DETAIL_TABLES`): its section, its rows, its columns
# (header, value, format), when a run has it and the LLM judges whose work its numbers rest on. `markdown`
# only loops over them; `eval.compare` builds its rows, and its differences to the paper, from the same columns.


@dataclass(frozen=True)
class Column:
    """A column of a table: its header, the value it reads of what a row gives, and how it prints (`pct` for a
    fraction, `num` for a score, `str` for a count); None prints "-"."""

    header: str
    value: Callable[[Any], float | None]
    format: Callable[[Any], str] = pct

    def cell(self, source: Any) -> str:
        value = self.value(source)
        return "-" if value is None else self.format(value)


@dataclass(frozen=True)
class PerLevel:
    """Columns repeated for each hardness level (their headers name it, "{level}"), each reading the
    level's row of a run's metrics (`LevelMetrics`); "-" where the run has no such level."""

    columns: tuple[Column, ...]


def read_through(columns: Iterable[Column], get: Callable[[Any], Any]) -> tuple[Column, ...]:
    """The columns, reading `get(source)` where a row gives `source`; None where that is None."""
    return tuple(
        replace(column, value=lambda source, c=column: None if (got := get(source)) is None else c.value(got))
        for column in columns
    )


def renamed(columns: Iterable[Column], *headers: str) -> tuple[Column, ...]:
    return tuple(replace(column, header=header) for column, header in zip(columns, headers, strict=True))


def expand(columns: Iterable[Column | PerLevel], levels: Sequence[str]) -> list[Column]:
    """The columns of a table for these hardness levels (`PerLevel` once per level)."""
    out = []
    for column in columns:
        if isinstance(column, Column):
            out.append(column)
            continue
        for level in levels:
            level_columns = read_through(column.columns, lambda metrics, level=level: metrics.by_difficulty.get(level))
            out += [replace(each, header=each.header.format(level=level.capitalize())) for each in level_columns]
    return out


def cells(columns: Iterable[Column], source: Any) -> list[str]:
    return [column.cell(source) for column in columns]


def headers(columns: Iterable[Column]) -> list[str]:
    return [column.header for column in columns]


def explanation_values(explanation: Explanation, *, refused: bool = False) -> list[float | None]:
    """RT-IoU, SBERT and LLM score means: over every eligible query (`all`), or the refused ones only."""

    def mean(of: ExplanationMean | None) -> float | None:
        return None if of is None else of.refused if refused else of.all

    return [mean(explanation.rt_iou), mean(explanation.sbert), mean(explanation.llm_score)]


GROUNDING_COLUMNS = (  # of a `Grounding`
    Column("R@0.3", lambda g: g.r_at_0_3),
    Column("R@0.5", lambda g: g.r_at_0_5),
    Column("R@0.7", lambda g: g.r_at_0_7),
    Column("mIoU", lambda g: g.miou),
)
RA_IOU_COLUMNS = (  # of a run's `Metrics` (Tables 1, 2, 8, 12)
    *read_through(GROUNDING_COLUMNS, lambda metrics: metrics.ra_iou),
    Column("re.", lambda metrics: metrics.relevance.f1_rel),
    Column("irre.", lambda metrics: metrics.relevance.f1_irrel),
    Column("avg.", lambda metrics: metrics.relevance.f1_avg),
)
EXPLANATION_COLUMNS = (  # of `explanation_values` (Tables 3, 9)
    Column("RT-IoU", lambda values: values[0]),
    Column("SBert score", lambda values: values[1], num),
    Column("LLM score", lambda values: values[2], num),
)
RUN_EXPLANATION_COLUMNS = read_through(EXPLANATION_COLUMNS, lambda of: explanation_values(of.explanation))
LEVEL_COLUMNS = (  # of a level's `LevelMetrics` (Tables 5, 6, 10, 11)
    Column("{level} F1", lambda row: row.f1),
    Column("{level} LLM sc.", lambda row: explanation_values(row.explanation)[2], num),
)


def levels_of(metrics: Metrics) -> list[str]:
    """The hardness levels a run has, in the paper's order."""
    return [level for level in IRRELEVANCE_LEVELS if level in metrics.by_difficulty]


def _explained(metrics: Metrics) -> bool:
    return bool(metrics.explained) and metrics.count.explanation_eligible > 0


def _run_row(metrics: Metrics, name: str) -> list[tuple[str, Any]]:
    return [(name, metrics)]


@dataclass(frozen=True)
class Table:
    """A table of the report (module comment above)."""

    heading: str | None  # its section ("## ..."); None: under the one before
    columns: tuple[Column | PerLevel, ...]  # after the first, the rows' labels
    label: str = "Method"  # the first column's header
    rows: Callable[[Metrics, str], list[tuple[str, Any]]] = _run_row  # (label, what the columns read)
    shown: Callable[[Metrics], bool] = lambda metrics: True  # whether a run has it
    intro: str | None = None  # a paragraph before it
    judges: tuple[tuple[str, ...], ...] = ()  # the LLM judges (JUDGES names) whose work it shows, a line each group


TABLES = (
    Table(
        "RA-IoU and F1 (Tables 1, 2, 8, 12)",
        RA_IOU_COLUMNS,
        shown=lambda metrics: bool(metrics.count.relevant and metrics.count.irrelevant),
        judges=(("relevance",),),
    ),
    Table(
        "With explanation quality (Table 3)",
        (*RA_IOU_COLUMNS, *RUN_EXPLANATION_COLUMNS),
        shown=_explained,
        judges=(("relevance",), ("rt-iou", "llm-score")),
    ),
    Table(
        "Ablation layout (Table 4)",
        (
            Column("F1", lambda metrics: metrics.relevance.f1_avg),
            Column("R@.5", lambda metrics: metrics.ra_iou.r_at_0_5),
            Column("mIoU", lambda metrics: metrics.ra_iou.miou),
            *renamed(RUN_EXPLANATION_COLUMNS, "RT-IoU", "SBert.", "LLM."),
        ),
        shown=_explained,
    ),
    Table(
        "Refusal explanation quality (Table 9)",
        EXPLANATION_COLUMNS,
        rows=lambda metrics, name: [
            (f"{name} (all)", explanation_values(metrics.explanation)),
            (f"{name} (refused)", explanation_values(metrics.explanation, refused=True)),
        ],
        shown=_explained,
        intro="`all`: every irrelevant query with a reference answer, wrongly answered ones count 0 (released "
        "convention); `refused`: the correctly refused ones only.",
        judges=(("rt-iou", "llm-score"),),
    ),
    Table(
        "By hardness level (Tables 5, 6, 10, 11)",
        (
            PerLevel(LEVEL_COLUMNS),
            PerLevel((Column("{level} F1 avg. 1:1", lambda row: row.paired.relevance.f1_avg),)),
        ),
        shown=lambda metrics: bool(levels_of(metrics)),
        intro="F1 = the released definition: F1 of the refusal class on the level's own irrelevant queries "
        "(2·acc/(1+acc)). Extra columns, not the paper's: F1 avg. 1:1 = average F1 of the level's "
        "irrelevant queries with the relevant queries of the same items.",
        judges=(("relevance",), ("llm-score",)),
    ),
    Table(
        "Grounding on relevant queries (Table 7)",
        read_through(GROUNDING_COLUMNS, lambda metrics: metrics.vtg_iou),
        shown=lambda metrics: bool(metrics.count.relevant),
    ),
    Table(
        "Refusal accuracy by semantic category (Fig. 6)",
        (
            Column("irrelevant queries", lambda row: row.n, str),
            Column("refusal acc.", lambda row: row.refusal_accuracy),
        ),
        label="Category",
        rows=lambda metrics, name: list(metrics.by_category.items()),
        shown=lambda metrics: bool(metrics.by_category),
    ),
)
# Under "## Details": per class, then per level.
CLASS_TABLE = Table(
    None,
    (
        Column("precision", lambda row: row[0]),
        Column("recall", lambda row: row[1]),
        Column("F1", lambda row: row[2]),
    ),
    label="class",
    rows=lambda metrics, name: [
        (
            "relevant (answered)",
            (metrics.relevance.precision_rel, metrics.relevance.recall_rel, metrics.relevance.f1_rel),
        ),
        (
            "irrelevant (refused)",
            (metrics.relevance.precision_irrel, metrics.relevance.recall_irrel, metrics.relevance.f1_irrel),
        ),
    ],
)
LEVEL_DETAIL_TABLE = Table(
    None,
    (
        Column("irrelevant", lambda row: row.irrelevant, str),
        Column("refusal acc.", lambda row: row.refusal_accuracy),
        Column("F1", lambda row: row.f1),
        *RUN_EXPLANATION_COLUMNS,
        Column("1:1 queries", lambda row: row.paired.queries, str),
        Column("1:1 F1 re.", lambda row: row.paired.relevance.f1_rel),
        Column("1:1 F1 irre.", lambda row: row.paired.relevance.f1_irrel),
        Column("1:1 F1 avg.", lambda row: row.paired.relevance.f1_avg),
        Column("1:1 RA mIoU", lambda row: row.paired.ra_iou.miou),
    ),
    label="level",
    rows=lambda metrics, name: [(level, metrics.by_difficulty[level]) for level in levels_of(metrics)],
    shown=lambda metrics: bool(levels_of(metrics)),
)
DETAIL_TABLES = (CLASS_TABLE, LEVEL_DETAIL_TABLE)


def table_lines(table: Table, record: RunRecord, name: str) -> list[str]:
    """A table of a run in Markdown: its heading, intro, rows and the lines of the judges it rests on."""
    metrics, calls = record.metrics, record.judge.get("calls", {})
    if not table.shown(metrics):
        return []
    columns = expand(table.columns, levels_of(metrics))
    lines = [f"## {table.heading}", ""] if table.heading else []
    lines += [table.intro, ""] if table.intro else []
    rows = [[label, *cells(columns, source)] for label, source in table.rows(metrics, name)]
    lines += [*markdown_table([table.label, *headers(columns)], rows), ""]
    for kinds in table.judges:
        asked = [kind for kind in kinds if kind in calls]
        lines += ["; ".join(judge_line(kind, calls[kind]) for kind in asked) + ".", ""] if asked else []
    return lines


# How the report states the readings a run recorded (metrics.json `judge`); another value is printed as recorded.
ANSWER_READING_TEXT = {
    "released": "as the released evaluation does (think blocks removed, first <answer> block, else the rest)",
}
SBERT_TEXT_TEXT = {
    "released": "the response minus its correction, think included, vs the reference without tags (released)",
}

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


def run_warnings(record: RunRecord) -> list[str]:
    """What a reader must know before trusting the numbers: the responses' shape (`format_warnings`),
    judge calls that gave no verdict, predictions made from another version of the data file."""
    out = format_warnings(record.format) if record.format is not None else []
    calls = record.judge.get("calls", {})
    out += [judge_line(kind, c) for kind, c in calls.items() if c["judged"] < c["asked"]]
    data_sha = record.dataset["sha256"] if record.dataset else None
    made_from = {run.get("data_sha256") for run in record.inference or ()} - {None}
    if data_sha and made_from and made_from != {data_sha}:
        made = ", ".join(sorted(str(sha)[:12] for sha in made_from))
        out.append(
            f"the predictions were made from a data file with other content (SHA-256 {made}) than the one "
            f"scored against ({data_sha[:12]})"
        )
    return out


def format_line(compliance: FormatCompliance) -> str:
    total = compliance.queries
    source = {"recorded": "recorded by infer", "given": "--template", "assumed": "not recorded: assumed"}
    truncated = {
        "recorded": "as recorded by infer",
        "text": "ending inside an unclosed block",
        "mixed": "recorded, else an unclosed block",
    }
    return (
        f"Format: {pct(compliance.compliant_share)} % of {total} responses follow the "
        f"{compliance.template} output format ({', '.join(OUTPUT_BLOCKS[compliance.template])} blocks; template "
        f"{source[compliance.template_source]}); {pct(share(compliance.empty, total))} % empty, "
        f"{pct(share(compliance.truncated, total))} % cut off by the generation limit "
        f"({truncated[compliance.truncated_source]})"
        + (
            f"; {compliance.end_of_turn} response(s) end with an end-of-turn marker (<|im_end|>), checked without it."
            if compliance.end_of_turn
            else "."
        )
    )


def share(count: int, total: int) -> float | None:
    return count / total if total else None


def preamble(record: RunRecord, title: str) -> list[str]:
    """The title, the warnings, and how the run was measured (format, judges, readings, SBERT model)."""
    metrics, judge = record.metrics, record.judge
    count = metrics.count
    calls = judge.get("calls", {})
    warnings = record.warnings if record.warnings is not None else run_warnings(record)
    lines = [f"# {title}", ""]
    if warnings:
        lines += ["**Warnings (read these before the numbers):**", "", *(f"- {warning}." for warning in warnings), ""]
    if record.format is not None:
        lines += [format_line(record.format), ""]
    if calls:
        lines += [
            f"LLM judge {judge.get('model')} at {judge.get('base_url')}: "
            + "; ".join(judge_line(kind, c) for kind, c in calls.items())
            + ".",
            "",
        ]
    reading = judge.get("answer_reading")
    lines += [
        f"{count.queries} queries ({count.relevant} relevant, {count.irrelevant} irrelevant). "
        f"Relevance judged by {'an LLM' if judge['relevance'] == 'llm' else 'the core parser'}; answers read "
        f"{ANSWER_READING_TEXT.get(str(reading), str(reading))}; R@m counts "
        f"IoU {'>' if metrics.strict_recall else '>='} m. Percentages x100 as in the paper; SBERT and LLM "
        "scores as fractions and 0-5.",
        "",
    ]
    if judge.get("sbert_model"):
        model = str(judge["sbert_model"])
        caveat = (
            ""
            if "all-mpnet-base-v2" in model
            else (
                " (the released evaluation used all-mpnet-base-v2, which is not available offline here: these SBERT "
                "scores are not directly comparable with its numbers)"
            )
        )
        text = judge.get("sbert_text")
        lines += [f"SBERT score: {SBERT_TEXT_TEXT.get(str(text), str(text))}; model {model}{caveat}.", ""]
    return lines


def markdown(record: RunRecord, *, title: str, name: str) -> str:
    """The report: warnings, how it was measured, one row per paper table that applies (`TABLES`), then the
    details."""
    lines = preamble(record, title)
    for table in TABLES:
        lines += table_lines(table, record, name)
    lines += details(record, name)
    return "\n".join(lines).rstrip() + "\n"


def details(record: RunRecord, name: str) -> list[str]:
    """Everything else: per-class precision / recall, per-level detail, explanation counts, data, judge."""
    metrics, judge = record.metrics, record.judge
    lines = [
        "## Details",
        "",
        *table_lines(CLASS_TABLE, record, name),
        f"Accuracy {pct(metrics.relevance.accuracy)}.",
        "",
        *table_lines(LEVEL_DETAIL_TABLE, record, name),
    ]
    if metrics.original is not None:
        lines += [
            f"Relevant queries (original): {metrics.original.queries}, answered with a segment "
            f"{pct(metrics.original.answer_rate)} %.",
            "",
        ]
    explanation = metrics.explanation
    measured = [
        f"{key} n={mean.n}" + (f" ({mean.unmeasured} unmeasured)" if mean.unmeasured else "")
        for key, mean in (
            ("rt_iou", explanation.rt_iou),
            ("sbert", explanation.sbert),
            ("llm_score", explanation.llm_score),
        )
        if mean is not None
    ]
    lines += [
        f"Explanation metrics: {', '.join(measured) if measured else 'none computed'}"
        f"{'; SBERT model ' + str(judge['sbert_model']) if judge.get('sbert_model') else ''}"
        f"{'; LLM judge ' + str(judge['model']) if judge.get('model') else ''}.",
        "",
    ]
    if judge.get("unreadable") or judge.get("failed"):
        lines += [f"Judge replies unreadable: {judge.get('unreadable')}; requests failed: {judge.get('failed')}.", ""]
    if metrics.prediction_defects:
        lines += [
            "Prediction file defects (rows kept): "
            + "; ".join(f"{what}: {n}" for what, n in metrics.prediction_defects.items())
            + ".",
            "",
        ]
    data = record.data
    if data:
        lines += [f"Data: {data.get('summary')}", ""]
        missing, unmatched = data.get("missing_predictions"), data.get("unmatched_rows")
        if missing:
            lines += [
                f"**{len(missing)} quer(ies) of the data file have no prediction** (first: {', '.join(missing[:5])}).",
                "",
            ]
        if unmatched:
            lines += [
                f"**{len(unmatched)} prediction(s) match no query of the data file as loaded** "
                f"(scored as given; first: {', '.join(unmatched[:5])}).",
                "",
            ]
        if data.get("gt_timestamp_differs"):
            lines += [
                f"{len(data['gt_timestamp_differs'])} prediction(s) carry a gt_timestamp other than the data "
                "file's span of their query (scored with the prediction's).",
                "",
            ]
    return lines


def csv_text(record: RunRecord) -> str:
    """metrics.csv: every number of metrics.json, by dotted key."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["metric", "value"])
    for key, value in flatten(record_json(record)).items():
        if not isinstance(value, list):
            writer.writerow([key, "" if value is None else value])
    return buffer.getvalue()


def paper_level_row(record: RunRecord, name: str) -> PaperRow | None:
    """The paper's per-level row (Tables 6, 10, 11) of this run's dataset and method (its name), if any."""
    dataset = record.dataset["paper"] if record.dataset else None
    if not dataset:
        return None
    return find_method([row for row in paper_rows(dataset) if row.levels is not None], name)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def category_figure(record: RunRecord, name: str) -> Figure | None:
    """Refusal accuracy per semantic category (Fig. 6): titled with the run's name, a full category path
    and the number of queries on each bar. None when the run has no categories."""
    categories = record.metrics.by_category
    if not categories:
        return None
    fig, ax = _pyplot().subplots(figsize=(9, 4.5))
    names = list(categories)[::-1]
    ax.barh(names, [100 * categories[n].refusal_accuracy for n in names])
    for y, n in enumerate(names):
        ax.text(1, y, f"n={categories[n].n}", va="center", fontsize=8, color="white")
    ax.set_xlabel("refusal accuracy (%)")
    ax.set_xlim(0, 100)
    ax.set_title(f"{name}: refusal accuracy by semantic category")
    fig.tight_layout()
    return fig


def level_figure(record: RunRecord, name: str) -> Figure | None:
    """F1 (released) and refusal accuracy per hardness level: titled with the run's name, each level
    with its number of irrelevant queries, no bar for what was not measured, and the paper's F1
    where the run's dataset and name match a row of Tables 6, 10, 11. None without levels."""
    by_level = record.metrics.by_difficulty
    levels = [level for level in IRRELEVANCE_LEVELS if level in by_level]
    if not levels:
        return None
    fig, ax = _pyplot().subplots(figsize=(6.5, 4))
    for offset, label, values in (
        (-0.2, "F1", [by_level[level].f1 for level in levels]),
        (0.2, "refusal acc.", [by_level[level].refusal_accuracy for level in levels]),
    ):
        xs = [x + offset for x, value in enumerate(values) if value is not None]
        ax.bar(xs, [100 * value for value in values if value is not None], width=0.4, label=label)
    paper = paper_level_row(record, name)
    if paper is not None:
        published = {
            "strong": paper.levels.strong_f1,
            "moderate": paper.levels.moderate_f1,
            "weak": paper.levels.weak_f1,
        }
        points = [(x - 0.2, published[level]) for x, level in enumerate(levels) if published.get(level) is not None]
        ax.scatter(
            [x for x, _ in points],
            [y for _, y in points],
            marker="D",
            color="black",
            zorder=3,
            label=f"F1, paper {paper.table}: {paper.method}",
        )
    ax.set_xticks(range(len(levels)), [f"{level}\nn={by_level[level].irrelevant}" for level in levels])
    ax.set_ylabel("%")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"{name}: by hardness level")
    fig.tight_layout()
    return fig


def plots(record: RunRecord, out_dir: Path, name: str = "model") -> list[Path]:
    """by_category.png and by_difficulty.png, where the run has what they show."""
    written = []
    for file, figure in (("by_category.png", category_figure), ("by_difficulty.png", level_figure)):
        fig = figure(record, name)
        if fig is not None:
            written.append(_save(fig, out_dir / file))
            _pyplot().close(fig)
    return written


def _save(fig: Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    write_atomic(path, buffer.getvalue())
    return path


# The files of a run, metrics.json last: it is what compare and report read, so it appears once the rest is there.
RUN_FILES = ("items.jsonl", "metrics.csv", "report.md", "by_category.png", "by_difficulty.png", "metrics.json")


def not_a_run_folder(out: Path) -> str | None:
    """Why an existing `--out` folder may not receive a run, or None: a folder holding files of a run's
    names must hold a run (its metrics.json readable as one); other files are never touched."""
    present = [name for name in RUN_FILES if (out / name).exists()]
    if not present:
        return None
    try:
        read_run(out)
    except DataError:
        return (
            f"holds {', '.join(present)} but no run of rarft-eval evaluate (its metrics.json): "
            "not overwritten; choose another --out"
        )
    return None


def write_run(
    record: RunRecord,
    items: list[ItemRow],
    out_dir: str | Path,
    *,
    title: str = "rarft evaluation",
    name: str = "model",
) -> Path:
    """Write every file of an evaluated run into `out_dir`, all at once when complete (module docstring);
    returns the Markdown report's path."""
    out_dir = Path(out_dir)
    with staged_folder(out_dir, RUN_FILES, last="metrics.json") as staging:
        write_atomic(staging / "metrics.json", json.dumps(record_json(record), indent=2) + "\n")
        write_jsonl_atomic(staging / "items.jsonl", [row_json(item) for item in items])
        write_atomic(staging / "metrics.csv", csv_text(record))
        plots(record, staging, name)
        write_atomic(staging / "report.md", markdown(record, title=title, name=name))
    return out_dir / "report.md"
