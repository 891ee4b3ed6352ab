"""`rarft-eval compare`: any number of evaluated runs side by side, per dataset, with the paper's rows.

Runs are grouped by the evaluation set they answer (`dataset_key`: the data file's SHA-256, else
the kind of set their levels show), and each group gets its own tables: a hard-irrelevant, a
human-annotated and a simply-shuffled run are never merged into one row or one table. Per group:

1. RA-IoU R@0.3/0.5/0.7, mIoU and F1 re. / irre. / avg. (Tables 1, 2, 8, 12), with the number of
   queries and the share of format-compliant responses, and the explanation scores (Table 3)
   where a run or a paper row has them; with `paper`, the paper's rows below the runs, and for a
   run named like a paper method ("Time-R1 + RA-RFT") its difference from that row;
2. F1 and LLM score per hardness level (Tables 6, 10, 11) where a run or a paper row has them;
3. every headline number of the runs, with each run's difference from the first.

Before the tables: each run's provenance (data file, checkpoint, template, backend, decoding),
its warnings, and the settings that differ between runs of a group (judges, answer reading,
SBERT model and texts, recall convention, template, decoding, query counts): such runs are not
measured alike.

    rarft-eval compare runA/ runB/ [more runs ...] [--name A --name B] [--paper [DATASET|TABLE]] [--all] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rarft_plugin.command_files import CommandFiles
from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import write_atomic
from rarft_plugin.schema import HARD_LEVELS, IRRELEVANCE_LEVELS, JsonValue

from .metrics import Grounding
from .paper import DATASETS, TABLES, PaperRow, find_method, paper_rows
from .record import RunRecord, read_run, record_json
from .report import (
    GROUNDING_COLUMNS,
    LEVEL_COLUMNS,
    RA_IOU_COLUMNS,
    RUN_EXPLANATION_COLUMNS,
    Column,
    PerLevel,
    cells,
    expand,
    explanation_values,
    flatten,
    headers,
    markdown_table,
    num,
    pct,
)

__all__ = [
    "ComparedRun",
    "add_arguments",
    "command_files",
    "compare_markdown",
    "dataset_key",
    "headline",
    "run",
    "run_settings",
]


Formatter = Callable[[float | None], str]


@dataclass(frozen=True)
class ComparedRun:
    name: str
    source: str  # where it was read from
    record: RunRecord


def run_settings(record: RunRecord) -> dict[str, JsonValue]:
    """The settings of a run that change its numbers, by label (a value per run, "mixed" across shards)."""
    judge, count = record.judge, record.metrics.count
    shards = record.inference or ()

    def inference(key: str) -> JsonValue:
        values = {json.dumps(run.get(key), sort_keys=True) for run in shards}
        return json.loads(values.pop()) if len(values) == 1 else ("mixed" if values else None)

    return {
        "relevance judge": judge.get("relevance"),
        "explanation judge": judge.get("explanations"),
        "LLM judge model": judge.get("model"),
        "answer reading": judge.get("answer_reading"),
        "SBERT texts": judge.get("sbert_text"),
        "SBERT model": judge.get("sbert_model"),
        "R@m counts IoU": ">" if record.metrics.strict_recall else ">=",
        "template": record.format.template if record.format is not None else None,
        "queries": count.queries,
        "relevant": count.relevant,
        "irrelevant": count.irrelevant,
        "max new tokens": inference("max_new_tokens"),
        "fps": inference("fps"),
        "total pixels": inference("total_pixels"),
        "decoding": inference("decoding"),
        "backend": inference("backend"),
        "dtype": inference("dtype"),
        "unknown spans": inference("unknown_spans"),
        "spans from": inference("spans_from"),
    }


def dataset_key(record: RunRecord) -> str:
    """What groups runs: the data file's content, else the kind of set the levels show."""
    dataset = record.dataset
    if dataset is None:
        return "kind:unknown"
    return dataset["sha256"] or f"kind:{dataset['kind']}"


def dataset_title(record: RunRecord) -> str:
    dataset = record.dataset
    file = dataset["file"] if dataset else None
    kind = dataset["kind"] if dataset else "unknown"
    where = f"{file.rsplit('/', 1)[-1]}, SHA-256 {str(dataset['sha256'])[:12]}" if file else "data file not recorded"
    name = (dataset["paper"] if dataset else None) or (f"{kind} queries" if not file else "data file")
    return f"{name} ({where})"


def provenance_line(run: ComparedRun) -> str:
    record, settings = run.record, run_settings(run.record)
    shards = record.inference or ()
    parts = [f"{record.metrics.count.queries} queries"]
    checkpoints = sorted(
        {f"{s.get('model')} (fingerprint {s.get('model_fingerprint') or 'not recorded'})" for s in shards}
    )
    parts.append("checkpoint " + ", ".join(checkpoints) if checkpoints else "inference not recorded")
    compliance = record.format
    if compliance is not None:
        parts.append(
            f"template {compliance.template} ({compliance.template_source}), "
            f"{pct(compliance.compliant_share)} % format-compliant"
        )
    if settings["backend"]:
        parts.append(
            f"{settings['backend']} {settings['dtype']}, {settings['decoding']}, "
            f"{settings['max new tokens']} new tokens"
        )
    parts.append(f"relevance by {settings['relevance judge']}")
    return f"- **{run.name}** (`{run.source}`): " + "; ".join(parts) + "."


def differing_settings(runs: list[ComparedRun]) -> list[str]:
    settings = [run_settings(run.record) for run in runs]
    return [
        f"{label}: " + ", ".join(f"{run.name}={each[label]}" for run, each in zip(runs, settings, strict=True))
        for label in settings[0]
        if len({json.dumps(each[label], sort_keys=True) for each in settings}) > 1
    ]


def paper_pct(value: float | None) -> str:
    """A published percentage as printed (31.91 keeps its second decimal)."""
    if value is None:
        return "-"
    return f"{value:.1f}" if round(value, 1) == value else f"{value:.2f}"


def paper_num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def paper_cells(columns: Sequence[Column], values: Sequence[float | None]) -> list[str]:
    """Published values under our columns: a percentage as printed (`paper_pct`), a score with two decimals."""
    return [
        (paper_pct if column.format is pct else paper_num)(value) for column, value in zip(columns, values, strict=True)
    ]


def paper_ra_values(row: PaperRow, explanations: bool) -> list[float | None]:
    """A published row's values under `ra_table`'s columns."""
    return [*row.ra, *((row.explanation or (None, None, None)) if explanations else ())]


def _points(fmt: Formatter) -> tuple[int, int]:
    """(scale, digits) of a difference of two values printed with `fmt`: points for a percentage."""
    return (100, 1) if fmt is pct else (1, 2)


def _minus(ours: float | None, published: float | None, fmt: Formatter) -> str:
    """Our value minus the paper's as printed (a percentage already x100 there)."""
    scale, digits = _points(fmt)
    return "-" if ours is None or published is None else f"{scale * ours - published:+.{digits}f}"


def ra_table(runs: list[ComparedRun], paper: list[PaperRow]) -> list[str]:
    """Table 1/2/3-style rows: runs, then the paper's rows, then each run minus its paper row."""
    published = [row for row in paper if row.ra is not None and any(value is not None for value in row.ra)]
    explanations = any(run.record.metrics.explained for run in runs) or any(r.explanation for r in published)
    columns = (*RA_IOU_COLUMNS, *(RUN_EXPLANATION_COLUMNS if explanations else ()))
    header = ["Method", "n", "format %", *headers(columns)]
    rows = []
    for run in runs:
        metrics, compliance = run.record.metrics, run.record.format
        rows.append(
            [
                run.name,
                str(metrics.count.queries),
                pct(compliance.compliant_share if compliance else None),
                *cells(columns, metrics),
            ]
        )
    for row in published:
        rows.append([row.label, "-", "-", *paper_cells(columns, paper_ra_values(row, explanations))])
    for run in runs:
        match = find_method(published, run.name)
        if match is None:
            continue
        differences = [
            _minus(column.value(run.record.metrics), value, column.format)
            for column, value in zip(columns, paper_ra_values(match, explanations), strict=True)
        ]
        rows.append([f"{run.name} - {match.label}", "", "", *differences])
    return markdown_table(header, rows)


def level_table(runs: list[ComparedRun], paper: list[PaperRow]) -> list[str]:
    """Tables 6/10/11-style rows: F1 (released definition) and LLM score per hardness level."""
    published = [row for row in paper if row.levels is not None]
    if not published and not any(level in run.record.metrics.by_difficulty for run in runs for level in HARD_LEVELS):
        return []
    columns = expand((PerLevel(LEVEL_COLUMNS),), HARD_LEVELS)
    header = ["Method", *headers(columns)]
    rows = [[run.name, *cells(columns, run.record.metrics)] for run in runs]
    rows += [[row.label, *paper_cells(columns, row.levels)] for row in published]
    return markdown_table(header, rows)


def _grounding_headline(label: str, grounding: Grounding) -> list[tuple[str, float | None, Formatter]]:
    return [(f"{label} {column.header}", column.value(grounding), column.format) for column in GROUNDING_COLUMNS]


def headline(record: RunRecord) -> list[tuple[str, float | None, Formatter]]:
    """(label, value, formatter) of the numbers the paper's tables show, for a run."""
    metrics = record.metrics
    rel = metrics.relevance
    rt_iou, sbert, llm_score = explanation_values(metrics.explanation)
    rows = _grounding_headline("RA-IoU", metrics.ra_iou)
    rows += [
        ("F1 re.", rel.f1_rel, pct),
        ("F1 irre.", rel.f1_irrel, pct),
        ("F1 avg.", rel.f1_avg, pct),
        ("accuracy", rel.accuracy, pct),
        ("RT-IoU", rt_iou, pct),
        ("SBert score", sbert, num),
        ("LLM score", llm_score, num),
    ]
    for level in IRRELEVANCE_LEVELS:
        row = metrics.by_difficulty.get(level)
        if row is not None:
            rows += [
                (f"{level} F1", row.f1, pct),
                (f"{level} LLM score", explanation_values(row.explanation)[2], num),
                (f"{level} F1 avg. 1:1", row.paired.relevance.f1_avg, pct),
            ]
    rows += _grounding_headline("VTG", metrics.vtg_iou)
    rows += [(f"refusal acc. {c}", row.refusal_accuracy, pct) for c, row in metrics.by_category.items()]
    return rows


def _delta(a: float | None, b: float | None, fmt: Formatter) -> str:
    if a is None or b is None:
        return "-"
    scale, digits = _points(fmt)
    return f"{scale * (b - a):+.{digits}f}"


def headline_table(runs: list[ComparedRun]) -> list[str]:
    """Every headline number of each run, and each later run minus the first (points for percentages)."""
    first = runs[0]
    values = [{label: value for label, value, _ in headline(run.record)} for run in runs]
    formats = {label: fmt for run in runs for label, _, fmt in headline(run.record)}  # every run's labels, in order
    rows = []
    for label, fmt in formats.items():
        row = [each.get(label) for each in values]
        if all(value is None for value in row):
            continue
        rows.append([label, *(fmt(value) for value in row), *(_delta(row[0], value, fmt) for value in row[1:])])
    header = ["metric", *(run.name for run in runs), *(f"{run.name} - {first.name}" for run in runs[1:])]
    return markdown_table(header, rows)


def raw_table(runs: list[ComparedRun]) -> list[str]:
    flat = [flatten(record_json(run.record)) for run in runs]
    keys = [
        key for key in dict.fromkeys(k for each in flat for k in each) if any(_number(each.get(key)) for each in flat)
    ]
    return markdown_table(
        ["metric (raw)", *(run.name for run in runs)], [[key, *(_raw(each.get(key)) for each in flat)] for key in keys]
    )


PAPER_NOTE = (
    "Published rows: the authors' numbers (percentages as printed; SBERT as a fraction, LLM score 0-5), "
    "measured with the released evaluation (an LLM judge decides relevance; SBERT all-mpnet-base-v2): a run "
    "evaluated with other settings is not measured identically."
)


def compare_markdown(runs: list[ComparedRun], *, paper: str | None = None, everything: bool = False) -> str:
    """The comparison (module docstring). `paper`: None, "auto" (each group's own dataset, where known),
    a dataset name ("HI-Charades") or a table ("Table 12") whose rows go beside every group."""
    if not runs:
        raise ValueError("nothing to compare")
    groups: dict[str, list[ComparedRun]] = {}
    for run in runs:
        groups.setdefault(dataset_key(run.record), []).append(run)
    lines = [f"# Comparison of {len(runs)} run(s)", "", *(provenance_line(run) for run in runs), ""]
    warnings = [f"- {run.name}: {warning}." for run in runs for warning in run.record.warnings or ()]
    if warnings:
        lines += ["**Warnings (read these before the numbers):**", "", *warnings, ""]
    if len(groups) > 1:
        lines += [f"{len(groups)} evaluation sets: each has its own tables (their numbers are never merged).", ""]
    for members in groups.values():
        dataset = members[0].record.dataset["paper"] if members[0].record.dataset else None
        selection = dataset if paper == "auto" else paper
        published = paper_rows(selection) if selection else []
        lines += [f"## {dataset_title(members[0].record)}", ""]
        differing = differing_settings(members)
        if differing:
            lines += ["**Settings differ (not measured alike):** " + "; ".join(differing) + ".", ""]
        if paper == "auto" and not dataset:
            lines += [
                (
                    "No paper dataset is known for this data file: name one with `--paper DATASET` "
                    "(or evaluate with `--paper-dataset`)."
                ),
                "",
            ]
        lines += [
            "### RA-IoU and F1" + (f" (paper: {selection})" if published else ""),
            "",
            *ra_table(members, published),
            "",
        ]
        levels = level_table(members, published)
        if levels:
            lines += ["### By hardness level (F1, LLM score)", "", *levels, ""]
        if published:
            lines += [PAPER_NOTE, ""]
        if len(members) > 1:
            lines += ["### Every headline number", "", *headline_table(members), ""]
        if everything:
            lines += ["### Every raw number", "", *raw_table(members), ""]
    return "\n".join(lines).rstrip() + "\n"


def _raw(value: JsonValue) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _number(value: JsonValue) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# The command line.


def paper_selection(text: str) -> str:
    """A --paper value: auto, a dataset of the paper or one of its tables."""
    if text in ("auto", *DATASETS, *TABLES):
        return text
    raise argparse.ArgumentTypeError(
        f"expected auto, a dataset ({', '.join(DATASETS)}) or a table ({', '.join(TABLES)}), got {text!r}"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", type=Path, nargs="+", help="run directories (or their metrics.json)")
    parser.add_argument(
        "--name",
        action="append",
        default=None,
        help="a run's name, once per run in their order (default: the name `evaluate --name` stored)",
    )
    parser.add_argument(
        "--paper",
        type=paper_selection,
        nargs="?",
        const="auto",
        default=None,
        metavar="DATASET|TABLE",
        help="put the paper's published rows beside the runs: those of each run's own dataset "
        "(no value: a shipped file is recognised by content), of a dataset (HI-Charades, "
        'HI-TVGBench, ...) or of a table ("Table 12")',
    )
    parser.add_argument("--all", action="store_true", help="also every raw number of metrics.json")
    parser.add_argument("--out", type=Path, default=None, help="also write the comparison to this Markdown file")


def command_files(args: argparse.Namespace) -> CommandFiles:
    runs = [path / "metrics.json" if path.is_dir() else path for path in args.runs]
    return CommandFiles.of(inputs=runs, outputs=[args.out])


def run(args: argparse.Namespace) -> int:
    if args.name and len(args.name) != len(args.runs):
        raise DataError(f"--name given {len(args.name)} time(s) for {len(args.runs)} run(s): name every run or none")
    runs = []
    for index, path in enumerate(args.runs):
        record = read_run(path)
        name = args.name[index] if args.name else record.name or str(path)
        runs.append(ComparedRun(name, str(path), record))
    names = [each.name for each in runs]
    if len(set(names)) < len(names):
        raise DataError(f"two runs are named alike ({', '.join(names)}): tell them apart with --name (in run order)")
    text = compare_markdown(runs, paper=args.paper, everything=args.all)
    if args.out is not None:
        write_atomic(args.out, text)
    print(text, end="")
    return 0
