"""`rarft-eval`: inference on a checkpoint, evaluating its predictions, comparing runs.

    rarft-eval infer --model CKPT --data hi_vtg_charades.json --video-root VIDEOS --out preds.jsonl
    rarft-eval evaluate preds.jsonl [more shards ...] --out run/ [--judge llm] [--llm-explanations]
                        [--base-url URL --model NAME] [--answer-reading released|last_block]
                        [--sbert-text released|answer]
    rarft-eval compare runA/ runB/ [more runs ...] [--paper [DATASET|TABLE]]

`score` is the former name of `evaluate` and still runs it, after one deprecation line: in rarft a score is what
a reward gives (`rarft-score`); `evaluate` computes every metric of the paper.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from eval.evaluate import SBERT_TEXTS
from eval.judge import LlmJudge
from eval.paper import DATASETS
from eval.predictions import Prediction
from eval.record import DataCheck, DatasetRecord, InferenceRecord
from rarft_plugin.cli import ArgumentParser, command_line, entry_point
from rarft_plugin.command_files import CommandFiles, Output, claim
from rarft_plugin.dataset import UNKNOWN_SPAN_CHOICES
from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import read_json
from rarft_plugin.parsing import ANSWER_READINGS
from rarft_plugin.prompts import TEMPLATES

__all__ = ["add_data_arguments", "data_options", "main"]

JUDGE_CACHE = "judge_cache.jsonl"  # the LLM judge's replies, kept in the run folder unless --cache says otherwise
# Former names of commands, still accepted: `evaluate` was `score` until "score" came to mean a reward's value only.
DEPRECATED_COMMANDS = {"score": "evaluate"}


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """How the evaluation file's relevant queries without their own span are handled (infer and evaluate)."""
    parser.add_argument(
        "--spans-from",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="another released file whose items give the span of a relevant query the evaluation "
        "file lacks (same video and query; repeatable), e.g. hi_vtg_charades.json for "
        "ss_vtg_charades.json",
    )
    parser.add_argument(
        "--unknown-spans",
        choices=UNKNOWN_SPAN_CHOICES,
        default="skip",
        help="a relevant query whose span is in no file: leave it out (skip, default), stop (error), "
        "or give every relevant query its item's timestamp as the released inference does "
        "(item, for exact reproduction; no recovery then)",
    )


def data_options(args: argparse.Namespace) -> dict[str, str | list[Path]]:
    """`load_examples` keyword arguments from the data arguments."""
    if args.unknown_spans == "item" and args.spans_from:
        raise DataError(
            "--spans-from and --unknown-spans item exclude each other: the released inference gives every "
            "relevant query its item's timestamp, recovering nothing"
        )
    return {"unknown_span": args.unknown_spans, "spans_from": list(args.spans_from)}


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint for the LLM judges")
    parser.add_argument(
        "--model", "--judge-model", dest="judge_model", default=None, help="judge model name at that endpoint"
    )
    parser.add_argument("--api-key", default=None, help="default: $OPENAI_API_KEY")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="judge requests in flight at once (default: 16 for a remote endpoint; for a local one, as many "
        "as it serves at once (llama.cpp's /props), else 1)",
    )
    parser.add_argument("--retry-backoff", type=float, default=1.0, help="first retry wait, seconds (doubles)")
    parser.add_argument("--cache", type=Path, default=None, help="judge cache (default: OUT/judge_cache.jsonl)")
    parser.add_argument(
        "--sbert-model",
        default=None,
        help="SBERT score model (default: packaged all-MiniLM-L6-v2; the released evaluation used all-mpnet-base-v2)",
    )
    parser.add_argument("--no-sbert", action="store_true", help="skip the SBERT score")
    parser.add_argument(
        "--answer-reading",
        choices=ANSWER_READINGS,
        default="released",
        help="how a response's answer is read by every judge: released (default: think blocks "
        "removed, first <answer> block, else the rest of the text) or last_block (last "
        "<answer> block, else the whole response)",
    )
    parser.add_argument(
        "--sbert-text",
        choices=SBERT_TEXTS,
        default="released",
        help="SBERT score texts: released (default: the response minus its correction, think "
        "included, vs the reference without tags) or answer (the answer text vs the "
        "reference's answer block)",
    )
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


def data_check(
    data: Path, predictions: list[Prediction], **options: str | list[Path]
) -> tuple[list[Prediction], DataCheck]:
    """The predictions joined with their data file (`eval.predictions.join_data`), the file's defects
    (LoadReport) and the queries of it that have no prediction."""
    from eval.predictions import join_data
    from rarft_plugin.dataset import load_examples

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
    from eval.infer import meta_path

    runs = []
    for path in paths:
        meta = meta_path(path)
        if meta.exists():
            run = read_json(meta)
            if not isinstance(run, dict):
                raise DataError("expected the JSON object rarft-eval infer writes", source=str(meta))
            runs.append(run)
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
    from eval.metrics import dataset_kind
    from eval.paper import SHIPPED_DATASETS
    from rarft_plugin.io_utils import file_sha256

    sha = file_sha256(data) if data is not None else None
    return {
        "file": str(data) if data is not None else None,
        "sha256": sha,
        "paper": paper_dataset or SHIPPED_DATASETS.get(sha),
        "kind": dataset_kind(predictions),
    }


def make_judge(args: argparse.Namespace) -> LlmJudge:
    """The LLM judge of --judge llm / --llm-explanations, its endpoint checked (fails at once when down)."""
    import asyncio

    from rarft_plugin.llm_client import ChatClient

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


def evaluate_files(args: argparse.Namespace) -> CommandFiles:
    """What evaluate reads (predictions, their infer records, the data files) and writes (the run folder, a
    judge cache given elsewhere)."""
    from eval.infer import meta_path
    from eval.report import RUN_FILES, not_a_run_folder
    from rarft_plugin.journal import not_a_journal

    records = [meta_path(path) for path in args.predictions if meta_path(path).is_file()]
    run = Output(args.out, folder=True, entries=(*RUN_FILES, JUDGE_CACHE), resumes=not_a_run_folder)
    cache = Output(args.cache, resumes=not_a_journal) if args.cache else None
    return CommandFiles.of(inputs=[*args.predictions, *records, args.data, *args.spans_from], outputs=[run, cache])


def evaluate_command(args: argparse.Namespace) -> int:
    from eval.evaluate import evaluate
    from eval.judge import JudgeUnavailable, unusable_judges
    from eval.predictions import load_predictions
    from eval.provenance import EVALUATION_PACKAGES, now, package_versions
    from eval.report import run_warnings, write_run
    from rarft_plugin.io_utils import file_sha256

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
    similarity = None
    if not args.no_sbert:
        from rarft_plugin.similarity import get_similarity

        similarity = get_similarity(args.sbert_model)
    template, template_source = run_template(args, runs, predictions)
    try:
        record, items = evaluate(
            predictions,
            judge=judge,
            relevance_by_llm=args.judge == "llm",
            llm_explanations=args.llm_explanations,
            similarity=similarity,
            strict=args.strict_recall,
            reading=args.answer_reading,
            sbert_text=args.sbert_text,
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


def paper_selection(text: str) -> str:
    """A --paper value: auto, a dataset of the paper or one of its tables."""
    from eval.paper import TABLES

    if text in ("auto", *DATASETS, *TABLES):
        return text
    raise argparse.ArgumentTypeError(
        f"expected auto, a dataset ({', '.join(DATASETS)}) or a table ({', '.join(TABLES)}), got {text!r}"
    )


def compare_files(args: argparse.Namespace) -> CommandFiles:
    runs = [path / "metrics.json" if path.is_dir() else path for path in args.runs]
    return CommandFiles.of(inputs=runs, outputs=[args.out])


def compare_command(args: argparse.Namespace) -> int:
    from eval.compare import ComparedRun, compare_markdown
    from eval.record import read_run

    if args.name and len(args.name) != len(args.runs):
        raise DataError(f"--name given {len(args.name)} time(s) for {len(args.runs)} run(s): name every run or none")
    runs = []
    for index, path in enumerate(args.runs):
        record = read_run(path)
        name = args.name[index] if args.name else record.name or str(path)
        runs.append(ComparedRun(name, str(path), record))
    names = [run.name for run in runs]
    if len(set(names)) < len(names):
        raise DataError(f"two runs are named alike ({', '.join(names)}): tell them apart with --name (in run order)")
    text = compare_markdown(runs, paper=args.paper, everything=args.all)
    if args.out is not None:
        from rarft_plugin.io_utils import write_atomic

        write_atomic(args.out, text)
    print(text, end="")
    return 0


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
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


@entry_point("rarft-eval")
def main(argv: list[str] | None = None) -> int:
    from eval import infer
    from eval.judge import JudgeUnavailable
    from rarft_plugin.llm_client import LLMError

    parser = ArgumentParser(prog="rarft-eval", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    infer.add_arguments(sub.add_parser("infer", help="predict with a checkpoint"))
    evaluate = sub.add_parser(
        "evaluate", aliases=list(DEPRECATED_COMMANDS), help="every metric of the paper, and a report"
    )
    add_evaluate_arguments(evaluate)
    add_data_arguments(evaluate)
    add_compare_arguments(sub.add_parser("compare", help="runs side by side per dataset, with the paper's rows"))
    args = parser.parse_args(argv)
    if args.command in DEPRECATED_COMMANDS:
        print(
            f"rarft-eval: `{args.command}` is deprecated: use `rarft-eval {DEPRECATED_COMMANDS[args.command]}` "
            "(same arguments)",
            file=sys.stderr,
        )
        args.command = DEPRECATED_COMMANDS[args.command]
    handlers = {
        "infer": (infer.command_files, infer.run),
        "evaluate": (evaluate_files, evaluate_command),
        "compare": (compare_files, compare_command),
    }
    files, handler = handlers[args.command]
    try:
        with claim(files(args), holder=command_line("rarft-eval", argv)):
            return handler(args)
    except DataError as error:
        print(f"rarft-eval {args.command}: error: {error}", file=sys.stderr)
        return 2
    except (JudgeUnavailable, LLMError) as error:  # the judge endpoint: down, or no usable verdict
        print(f"rarft-eval {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
