"""`rarft-eval`: inference on a checkpoint, scoring, comparing runs.

    rarft-eval infer --model CKPT --data hi_vtg_charades.json --video-root VIDEOS --out preds.jsonl
    rarft-eval score preds.jsonl --out run/ [--judge llm --base-url URL --model NAME] [--llm-explanations]
    rarft-eval compare runA/metrics.json runB/metrics.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rarft_plugin.errors import DataError


def add_score_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("predictions", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="report directory")
    parser.add_argument("--judge", choices=("rule", "llm"), default="rule",
                        help="who decides whether a response refused: the core parser (default) or an LLM")
    parser.add_argument("--llm-explanations", action="store_true",
                        help="RT-IoU (Table 15) and LLM score (Table 16) through the LLM endpoint")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint for the LLM judges")
    parser.add_argument("--model", default=None, help="judge model name at that endpoint")
    parser.add_argument("--api-key", default=None, help="default: $OPENAI_API_KEY")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--retry-backoff", type=float, default=1.0, help="first retry wait, seconds (doubles)")
    parser.add_argument("--cache", type=Path, default=None, help="judge cache (default: OUT/judge_cache.jsonl)")
    parser.add_argument("--sbert-model", default=None, help="SBERT score model (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument("--no-sbert", action="store_true", help="skip the SBERT score")
    parser.add_argument("--strict-recall", action="store_true", help="R@m counts IoU > m (Time-R1) instead of >=")
    parser.add_argument("--title", default=None)


def score_command(args: argparse.Namespace) -> int:
    from eval.judge import LlmJudge
    from eval.predictions import load_predictions
    from eval.report import write_report
    from eval.score import evaluate

    predictions = load_predictions(args.predictions)
    judge = None
    if args.judge == "llm" or args.llm_explanations:
        if not (args.base_url and args.model):
            raise DataError("--judge llm / --llm-explanations need --base-url and --model")
        from rarft_plugin.llm_client import ChatClient

        client = ChatClient(base_url=args.base_url, model=args.model, api_key=args.api_key,
                            concurrency=args.concurrency, backoff_s=args.retry_backoff, cache_path=args.cache or args.out / "judge_cache.jsonl")
        judge = LlmJudge(client)
    similarity = None
    if not args.no_sbert:
        from rarft_plugin.similarity import get_similarity

        similarity = get_similarity(args.sbert_model)
    metrics, items = evaluate(predictions, judge=judge, relevance_by_llm=args.judge == "llm",
                              similarity=similarity, strict=args.strict_recall)
    if judge is not None:
        usage = judge.client.usage
        metrics["judge"]["usage"] = {"requests": usage.requests, "cached": usage.cached, "retries": usage.retries,
                                     "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
        judge.client.close()
    report = write_report(metrics, items, args.out, title=args.title or f"rarft evaluation of {args.predictions.name}")
    print(report.read_text())
    print(f"report written to {args.out}/")
    return 0


def compare_command(args: argparse.Namespace) -> int:
    from eval.report import compare_markdown

    runs = []
    for path in (args.a, args.b):
        path = path / "metrics.json" if path.is_dir() else path
        try:
            runs.append(json.loads(path.read_text()))
        except FileNotFoundError:
            raise DataError("file not found", source=str(path)) from None
        except ValueError as error:
            raise DataError(f"not valid JSON ({error})", source=str(path)) from None
    print(compare_markdown(runs[0], runs[1], str(args.a), str(args.b)), end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    from eval import infer

    parser = argparse.ArgumentParser(prog="rarft-eval", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    infer.add_arguments(sub.add_parser("infer", help="predict with a checkpoint"))
    add_score_arguments(sub.add_parser("score", help="every metric of the paper, and a report"))
    compare = sub.add_parser("compare", help="two runs side by side with deltas")
    compare.add_argument("a", type=Path)
    compare.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    handlers = {"infer": infer.run, "score": score_command, "compare": compare_command}
    try:
        return handlers[args.command](args)
    except DataError as error:
        print(f"rarft-eval {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
