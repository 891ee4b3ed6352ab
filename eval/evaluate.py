"""`rarft-eval evaluate`: every metric of the paper for a prediction set, and its report.

    rarft-eval evaluate preds.jsonl [more shards ...] --out run/ [--data FILE] [--judge llm]
                        [--llm-explanations --base-url URL --model NAME] [--no-sbert] [--template NAME]

`evaluate` takes each prediction once through the run: its response is read (`eval.reading.read`), judged
(the rule judge on the reading, or an LLM shown its answer text), its explanation scored where it refused an
irrelevant query with a reference (LLM judges, SBERT), and the metrics (`eval.metrics.compute_metrics`) and
the format compliance are counted from the readings and judgements into a `RunRecord` and its per-query
rows. The command (`run`) joins the predictions with their data file and what `infer` recorded beside them,
evaluates, and writes the run folder (`eval.report.write_run`); `write_report` is the one-call version
from Python.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from rarft_plugin.arguments import add_endpoint_arguments
from rarft_plugin.cli import retire
from rarft_plugin.command_files import CommandFiles, Output
from rarft_plugin.dataset import load_examples
from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import file_sha256, read_json
from rarft_plugin.journal import not_a_journal
from rarft_plugin.llm_client import ChatClient
from rarft_plugin.models import default_family
from rarft_plugin.prompts import TEMPLATES
from rarft_plugin.schema import JsonValue
from rarft_plugin.similarity import Similarity, get_similarity

from .arguments import add_data_arguments, data_options
from .judge import JudgeUnavailable, LlmJudge, unusable_judges
from .metrics import (
    ItemRow,
    Judgement,
    compute_metrics,
    dataset_kind,
    explanation_scored,
    format_compliance,
    rule_judgement,
)
from .paper import DATASETS, SHIPPED_DATASETS
from .predictions import Prediction, coerce_predictions, join_data, load_predictions, meta_path
from .provenance import EVALUATION_PACKAGES, now, package_versions
from .reading import ANSWER_READING, SBERT_TEXT, Reading, read
from .record import DataCheck, DatasetRecord, InferenceRecord, JudgeSettings, RunRecord
from .report import RUN_FILES, not_a_run_folder, run_warnings, write_run

__all__ = [
    "JUDGE_CACHE",
    "RETIRED_OPTIONS",
    "add_arguments",
    "command_files",
    "evaluate",
    "judge_settings",
    "run",
    "sbert_scores",
    "write_report",
]

JUDGE_CACHE = "judge_cache.jsonl"  # the LLM judge's replies, kept in the run folder unless --cache says otherwise
# 0.1.0's compatibility readings, retired: each option is a one-line usage error naming what replaced it.
RETIRED_OPTIONS = {
    "--answer-reading": "every response is read as the released evaluation reads it (the former default, "
    "`released`: think blocks removed, the first <answer> block); drop the option",
    "--sbert-text": "the SBERT score compares the released texts (the former default, `released`: the response "
    "minus its correction vs the reference without tags); drop the option",
}


def sbert_scores(
    predictions: Sequence[Prediction],
    readings: Sequence[Reading],
    judgements: Sequence[Judgement],
    similarity: Similarity,
) -> list[float | None]:
    """SBERT cosine of the reading's texts (`Reading.sbert_texts`) for the explanations that are scored
    (`explanation_scored`); None elsewhere. An empty text scores 0 (there is nothing to compare)."""
    targets = [i for i, (p, j) in enumerate(zip(predictions, judgements, strict=True)) if explanation_scored(p, j)]
    compared = [i for i in targets if all(text.strip() for text in readings[i].sbert_texts)]
    values = similarity.cosine_pairs([readings[i].sbert_texts for i in compared]) if compared else []
    out: list[float | None] = [None] * len(predictions)
    for i in targets:
        out[i] = 0.0
    for i, value in zip(compared, values, strict=True):
        out[i] = value
    return out


def judge_settings(
    judge: LlmJudge | None, *, relevance_by_llm: bool, llm_explanations: bool, similarity: Similarity | None
) -> JudgeSettings:
    """How a run was judged (metrics.json `judge`), with the LLM judge's endpoint, calls and usage."""
    settings: JudgeSettings = {
        "relevance": "llm" if relevance_by_llm else "rule",
        "explanations": "llm" if llm_explanations else None,
        "answer_reading": ANSWER_READING,
        "sbert_text": SBERT_TEXT if similarity is not None else None,
        "sbert_model": similarity.model_path if similarity is not None else None,
    }
    if judge is not None:
        usage = judge.client.usage
        settings.update(
            {
                "model": judge.client.model,
                "base_url": judge.client.base_url,
                "unreadable": judge.report.unreadable,
                "failed": judge.report.failed,
                "calls": judge.report.calls(),
                "unknown_categories": judge.report.unknown_categories,
                "usage": {
                    "requests": usage.requests,
                    "cached": usage.cached,
                    "retries": usage.retries,
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                },
            }
        )
    return settings


def evaluate(
    predictions: Sequence[Prediction],
    *,
    judge: LlmJudge | None = None,
    relevance_by_llm: bool = False,
    llm_explanations: bool = False,
    similarity: Similarity | None = None,
    strict: bool = False,
    template: str = "ra_rft",
    template_source: str = "assumed",
) -> tuple[RunRecord, list[ItemRow]]:
    """The run's record (metrics, format compliance, how it was judged) and its per-query rows.

    Relevance: the core parser (default) or `judge` (`relevance_by_llm`). RT-IoU and the LLM
    score need `judge` and `llm_explanations`; the SBERT score needs `similarity`. Format compliance
    is checked against `template`'s output blocks (`template_source`: "recorded", "given" or "assumed").
    """
    if (relevance_by_llm or llm_explanations) and judge is None:
        raise ValueError("LLM judging needs an LlmJudge (an endpoint: --base-url, --judge-model)")
    chat = default_family().CHAT  # the end-of-turn markers a response may end with
    readings = [read(p, template, sbert=similarity is not None, chat=chat) for p in predictions]
    if relevance_by_llm:
        judgements = judge.relevance(predictions, readings)
    else:
        judgements = [rule_judgement(r) for r in readings]
    explained = set()
    if llm_explanations:
        judgements = judge.explanations(predictions, readings, judgements)
        explained |= {"rt_iou", "llm_score"}
    scores = None
    if similarity is not None:
        scores = sbert_scores(predictions, readings, judgements, similarity)
        explained.add("sbert")
    metrics, items = compute_metrics(predictions, judgements, sbert_scores=scores, explained=explained, strict=strict)
    settings = judge_settings(
        judge, relevance_by_llm=relevance_by_llm, llm_explanations=llm_explanations, similarity=similarity
    )
    compliance = format_compliance(readings, template, template_source)
    return RunRecord(metrics=metrics, judge=settings, format=compliance), items


def write_report(
    predictions: str | Path | Iterable[Prediction | dict[str, JsonValue]],
    out_dir: str | Path,
    *,
    title: str = "rarft evaluation",
    name: str = "model",
    sbert: bool = True,
    sbert_model: str | None = None,
    strict: bool = False,
) -> RunRecord:
    """Evaluate predictions (a file, `Prediction`s or prediction dicts) with the rule-based judge and the
    SBERT score, write the full report into `out_dir` and return the run's record.

    >>> record = write_report("preds.jsonl", "runs/eval")  # doctest: +SKIP
    >>> record.metrics.relevance.f1_avg  # doctest: +SKIP
    0.712
    """
    similarity = get_similarity(sbert_model) if sbert else None
    record, items = evaluate(coerce_predictions(predictions), similarity=similarity, strict=strict)
    record = replace(record, name=name)
    record = replace(record, warnings=tuple(run_warnings(record)))
    write_run(record, items, out_dir, title=title, name=name)
    return record


# The command line.


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "predictions",
        type=Path,
        nargs="+",
        help="prediction JSONL file(s), or the released inference's JSON array; several = shards of a run",
    )
    parser.add_argument("--out", type=Path, required=True, help="report directory")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="the evaluation file the predictions answer: reports its data defects, its queries "
        "without a prediction and predictions of no query, and gives rows without ids (the "
        "released inference's output) their items and missing levels (default: the file "
        "`infer` recorded beside the predictions)",
    )
    parser.add_argument(
        "--judge",
        choices=("rule", "llm"),
        default="rule",
        help="who decides whether a response refused: the core parser (default) or an LLM",
    )
    parser.add_argument(
        "--llm-explanations",
        action="store_true",
        help="RT-IoU (Table 15) and LLM score (Table 16) through the LLM endpoint",
    )
    add_endpoint_arguments(  # the LLM judges' endpoint
        parser,
        model_help="judge model name at that endpoint",
        model_dest="judge_model",
        model_aliases=("--judge-model",),
    )
    parser.add_argument("--retry-backoff", type=float, default=1.0, help="first retry wait, seconds (doubles)")
    parser.add_argument("--cache", type=Path, default=None, help="judge cache (default: OUT/judge_cache.jsonl)")
    parser.add_argument(
        "--sbert-model",
        default=None,
        help="SBERT score model (default: packaged all-MiniLM-L6-v2; the released evaluation used all-mpnet-base-v2)",
    )
    parser.add_argument("--no-sbert", action="store_true", help="skip the SBERT score")
    parser.add_argument("--strict-recall", action="store_true", help="R@m counts IoU > m (Time-R1) instead of >=")
    parser.add_argument(
        "--template",
        choices=sorted(TEMPLATES),
        default=None,
        help="the prompt template the predictions answered, whose output format the report checks "
        "(default: the one infer recorded, else ra_rft)",
    )
    parser.add_argument("--title", default=None, help="report title")
    parser.add_argument(
        "--name",
        default=None,
        help="the run's name: the report's table rows, compare's columns, the plots' titles (default: "
        "the prediction file's name); a paper method's name (\"Time-R1 + RA-RFT\") puts the "
        "paper's values on the plots",
    )
    parser.add_argument(
        "--paper-dataset",
        choices=DATASETS,
        default=None,
        help="the paper's dataset these predictions are on, when the data file is not a shipped one "
        "(recognised by content), e.g. HI-TVGBench",
    )
    add_data_arguments(parser)
    for option, replacement in RETIRED_OPTIONS.items():
        retire(parser, option, replacement)


def command_files(args: argparse.Namespace) -> CommandFiles:
    """What evaluate reads (predictions, their infer records, the data files) and writes (the run folder, a
    judge cache given elsewhere)."""
    records = [meta_path(path) for path in args.predictions if meta_path(path).is_file()]
    run_folder = Output(args.out, folder=True, entries=(*RUN_FILES, JUDGE_CACHE), resumes=not_a_run_folder)
    cache = Output(args.cache, resumes=not_a_journal) if args.cache else None
    return CommandFiles.of(
        inputs=[*args.predictions, *records, args.data, *args.spans_from], outputs=[run_folder, cache]
    )


def data_check(
    data: Path, predictions: list[Prediction], **options: str | list[Path]
) -> tuple[list[Prediction], DataCheck]:
    """The predictions joined with their data file (`eval.predictions.join_data`), the file's defects
    (LoadReport) and the queries of it that have no prediction."""
    examples, report = load_examples(data, **options)
    try:
        predictions, joined = join_data(predictions, examples)
    except DataError as error:
        raise DataError(f"{data}: {error.message}") from None
    return predictions, {
        "file": str(data),
        "summary": report.summary(),
        "recovered_spans": len(report.recovered_spans),
        "assumed_spans": len(report.assumed_spans),
        "unknown_spans": report.unknown_spans,
        "spans_beyond_duration": len(report.spans_beyond_duration),
        "unknown_categories": report.unknown_categories,
        "missing_durations": report.missing_durations,
        **joined,
    }


def recorded_runs(paths: list[Path]) -> list[InferenceRecord]:
    """What `infer` recorded beside each prediction file (model, data, template, shard), where it did."""
    runs = []
    for path in paths:
        meta = meta_path(path)
        if meta.exists():
            run_record = read_json(meta)
            if not isinstance(run_record, dict):
                raise DataError("expected the JSON object rarft-eval infer writes", source=str(meta))
            runs.append(run_record)
    return runs


def run_template(
    args: argparse.Namespace, runs: list[InferenceRecord], predictions: list[Prediction]
) -> tuple[str, str]:
    """(template, source) whose output format compliance is checked: --template, else the one `infer`
    recorded, else assumed: ra_rft_released for rows without ids (the released inference's output, whose
    model writes <correction>), ra_rft otherwise."""
    if args.template:
        return args.template, "given"
    recorded = {run.get("template") for run in runs}
    if len(recorded) == 1 and recorded <= set(TEMPLATES):
        return recorded.pop(), "recorded"
    return ("ra_rft" if any(p.has_id for p in predictions) else "ra_rft_released"), "assumed"


def dataset_record(data: Path | None, predictions: list[Prediction], paper_dataset: str | None) -> DatasetRecord:
    """Which evaluation set a run answers: its file and SHA-256, the paper's name for it (a shipped
    file, recognised by content, or --paper-dataset) and its kind (from the levels)."""
    sha = file_sha256(data) if data is not None else None
    return {
        "file": str(data) if data is not None else None,
        "sha256": sha,
        "paper": paper_dataset or SHIPPED_DATASETS.get(sha),
        "kind": dataset_kind(predictions),
    }


def make_judge(args: argparse.Namespace) -> LlmJudge:
    """The LLM judge of --judge llm / --llm-explanations, its endpoint checked (fails at once when down)."""
    if not (args.base_url and args.judge_model):
        raise DataError("--judge llm / --llm-explanations need --base-url and --model (the judge model)")
    client = ChatClient(
        base_url=args.base_url,
        model=args.judge_model,
        api_key=args.api_key,
        concurrency=args.concurrency,
        backoff_s=args.retry_backoff,
        cache_path=args.cache or args.out / JUDGE_CACHE,
    )
    try:
        asyncio.run(client.check_endpoint())
    except BaseException:
        client.close()
        raise
    return LlmJudge(client)


def run(args: argparse.Namespace) -> int:
    predictions = load_predictions(args.predictions)
    runs = recorded_runs(args.predictions)
    data, options = args.data, data_options(args)
    if data is None and runs and len({run["data"] for run in runs}) == 1 and Path(str(runs[0]["data"])).is_file():
        data = Path(str(runs[0]["data"]))  # with the span options inference used, unless given here
        if args.unknown_spans == "skip" and not args.spans_from:
            options = {
                "unknown_span": runs[0].get("unknown_spans", "skip"),
                "spans_from": runs[0].get("spans_from", []),
            }
    checked = None
    if data is not None:
        predictions, checked = data_check(data, predictions, **options)

    judge = make_judge(args) if args.judge == "llm" or args.llm_explanations else None
    similarity = None if args.no_sbert else get_similarity(args.sbert_model)
    template, template_source = run_template(args, runs, predictions)
    try:
        record, items = evaluate(
            predictions,
            judge=judge,
            relevance_by_llm=args.judge == "llm",
            llm_explanations=args.llm_explanations,
            similarity=similarity,
            strict=args.strict_recall,
            template=template,
            template_source=template_source,
        )
    finally:
        if judge is not None:
            judge.client.close()
    unusable = unusable_judges(record.judge.get("calls", {}))
    if unusable:
        raise JudgeUnavailable(
            f"the LLM judge gave no usable verdict ({'; '.join(unusable)}); nothing written to "
            f"{args.out}/ (the replies that did arrive are cached: rerun once the endpoint answers)"
        )
    name = args.name or args.predictions[0].stem
    record = replace(
        record,
        name=name,
        dataset=dataset_record(data, predictions, args.paper_dataset),
        predictions=tuple(str(p) for p in args.predictions),
        data=checked,
        inference=tuple(runs) or None,
        produced_by={
            "evaluated_at": now(),
            "packages": package_versions(EVALUATION_PACKAGES),
            "predictions": [{"file": str(p), "sha256": file_sha256(p)} for p in args.predictions],
        },
    )
    record = replace(record, warnings=tuple(run_warnings(record)))
    report = write_run(record, items, args.out, title=args.title or f"rarft evaluation of {name}", name=name)
    print(report.read_text())
    for warning in record.warnings or ():
        print(f"rarft-eval evaluate: warning: {warning}", file=sys.stderr)
    print(f"report written to {args.out}/")
    return 0
