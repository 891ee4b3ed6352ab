"""Evaluation throughput, every figure against a baseline measured in the same run:

1. scoring 20,000 predictions with the rule-based judge (items/s), against reading the responses alone
   (`rarft_eval.reading.read`, the one parse every judge and check shares);
   then the SBERT score on a subset (its cost is the encoder's);
2. the LLM judges against a local chat-completions server on 127.0.0.1 (no model latency, so
   this is the client's own cost): a cold run vs a rerun served from the disk cache;
3. `rarft-eval infer`'s transformers backend with the tiny random Qwen2.5-VL over generated
   videos: batched vs one-by-one (`run_inference`, frame sampling and writing included).

    python bench/eval_throughput.py [--predictions 20000] [--sbert-predictions 2000] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars would interleave with the figures

from rarft_eval.evaluate import evaluate  # noqa: E402
from rarft_eval.predictions import prediction_from_example  # noqa: E402
from rarft_eval.reading import read  # noqa: E402
from rarft_plugin.dataset import load_examples  # noqa: E402

DATA = REPO / "eval" / "benchmarks" / "hi_vtg_charades.json"


def synthetic_predictions(count: int, seed: int = 0):
    """Half refusals quoting the reference, half segments, over the HI-Charades queries."""
    examples, _ = load_examples(DATA)
    rng = random.Random(seed)
    out = []
    for index in range(count):
        e = examples[index % len(examples)]
        if rng.random() < 0.5:
            answer = f"No segment: {e.label.answer_refusal[:160]} ({index})"
        else:
            answer = f"{rng.uniform(0, 10):.2f} to {rng.uniform(10, 30):.2f}"
        text = f"<think>t{index}</think> <answer>{answer}</answer> <correct>q</correct>"
        prediction = prediction_from_example(e, text)
        out.append(prediction.__class__(**{**prediction.__dict__, "id": f"{index}:{prediction.id}", "item": ""}))
    return out


def timed(function):
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def bench_scoring(count: int, sbert_count: int, device: str) -> None:
    rows = synthetic_predictions(count)
    evaluate(rows[:100])  # imports and caches on first use (the model families' markers), outside the timings
    parse_s, _ = timed(lambda: [read(p, "ra_rft") for p in rows])
    score_s, _ = timed(lambda: evaluate(rows))
    print(f"scoring {count} predictions, rule-based judge:")
    print(f"  reading only (baseline)      {count / parse_s:10.0f} items/s")
    print(f"  all metrics                  {count / score_s:10.0f} items/s ({parse_s / score_s:.2f}x of reading)")
    if sbert_count:
        from rarft_plugin.similarity import SentenceSimilarity

        similarity = SentenceSimilarity(device=device)
        subset = rows[:sbert_count]
        sbert_s, _ = timed(lambda: evaluate(subset, similarity=similarity))
        print(
            f"  all metrics + SBERT ({sbert_count}) {sbert_count / sbert_s:10.0f} items/s on {device} "
            f"({similarity.encoded_texts} texts encoded)"
        )


def bench_judge(count: int) -> None:
    from support.openai_server import ChatServer, system_text

    from rarft_eval.judge import LlmJudge
    from rarft_plugin.llm_client import ChatClient

    def responder(request):
        system = system_text(request)
        if system.startswith("You read the response"):
            return '{"relevant": false, "start": null, "end": null}'
        return '["Object/ObjectExistence"]' if system.startswith("You are a strict") else "'score': 3.0"

    rows = synthetic_predictions(count, seed=1)
    with tempfile.TemporaryDirectory() as tmp, ChatServer(responder) as server:

        def run():
            judge = LlmJudge(
                ChatClient(base_url=server.url, model="judge", concurrency=16, cache_path=Path(tmp) / "cache.jsonl")
            )
            evaluate(rows, judge=judge, relevance_by_llm=True, llm_explanations=True)
            judge.client.close()
            return judge.client.usage

        cold_s, cold = timed(run)
        warm_s, warm = timed(run)
    print(f"LLM judges over {count} predictions, local server (client cost only):")
    print(f"  cold ({cold.requests} requests)          {count / cold_s:10.0f} items/s")
    print(
        f"  rerun from the disk cache ({warm.cached} hits) {count / warm_s:10.0f} items/s "
        f"({cold_s / warm_s:.1f}x faster)"
    )


def bench_inference(queries: int, batch: int, new_tokens: int, device: str) -> None:
    import json

    from rarft_eval.infer import HFBackend, run_inference
    from rarft_plugin.dataset import load_examples as load
    from rarft_plugin.models import default_family
    from rarft_plugin.stand_ins import build_tiny_qwen2_5_vl, write_test_video

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        items = [
            {
                "video": f"v{i}.mp4",
                "query_text": f"event {i}",
                "timestamp": [0.0, 1.0],
                "duration": 4.0 + i % 4,
                "GRPO": [{"q": f"event {i}", "a": "", "r": True}],
            }
            for i in range(queries)
        ]
        (tmp / "eval.json").write_text(json.dumps(items))
        examples, _ = load(tmp / "eval.json")
        videos = {
            item["video"]: write_test_video(tmp / item["video"], seconds=item["duration"], size=(112, 84))
            for item in items
        }
        dtype = "bf16" if device.startswith("cuda") else "fp32"
        backend = HFBackend(
            str(build_tiny_qwen2_5_vl(tmp / "tiny")), family=default_family(), device=device, dtype=dtype
        )
        # a fixed number of new tokens, so both runs do the same work
        generate = backend.model.generate
        backend.model.generate = lambda **kw: generate(**kw, min_new_tokens=new_tokens)
        run_inference(
            examples[:2],
            videos,
            backend,
            tmp / "warm.jsonl",
            template="ra_rft",
            batch_size=2,
            max_new_tokens=new_tokens,
        )  # warm-up
        single_s, _ = timed(
            lambda: run_inference(
                examples, videos, backend, tmp / "one.jsonl", template="ra_rft", batch_size=1, max_new_tokens=new_tokens
            )
        )
        batched_s, _ = timed(
            lambda: run_inference(
                examples,
                videos,
                backend,
                tmp / "batched.jsonl",
                template="ra_rft",
                batch_size=batch,
                max_new_tokens=new_tokens,
            )
        )
    print(f"rarft-eval infer, tiny Qwen2.5-VL, {queries} video queries, {new_tokens} new tokens, device={device}:")
    print(f"  one by one (baseline)        {queries / single_s:10.2f} queries/s")
    print(f"  batch of {batch:<3}                 {queries / batched_s:10.2f} queries/s ({single_s / batched_s:.2f}x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=20_000, help="0: skip the scoring figures")
    parser.add_argument("--sbert-predictions", type=int, default=2_000, help="0: skip the SBERT figure")
    parser.add_argument("--judge-predictions", type=int, default=2_000, help="0: skip the LLM judge figure")
    parser.add_argument("--queries", type=int, default=16, help="inference queries (0: skip)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    if args.predictions:
        bench_scoring(args.predictions, args.sbert_predictions, args.device)
    if args.judge_predictions:
        bench_judge(args.judge_predictions)
    if args.queries:
        bench_inference(args.queries, args.batch, args.new_tokens, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
