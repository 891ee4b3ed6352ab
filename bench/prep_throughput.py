"""HI-VTG building throughput against a local chat-completions server with a fixed latency.

Each query costs two requests (category extraction, then generation). At concurrency c and
latency L the ceiling is c / (2 L) queries/s; the bench reports items/s and the fraction of that
ceiling reached, at concurrency 1 and 16 in the same run.

    python bench/prep_throughput.py [--queries 2000] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from support.hi_vtg_llm import hi_vtg_reply as responder  # noqa: E402
from support.openai_server import ChatServer  # noqa: E402

from rarft_prep.cli import main as prep  # noqa: E402


def serve(latency: float, port_queue, stop) -> None:
    """The server in its own process, as a real LLM endpoint is (not competing for this one's GIL)."""
    with ChatServer(responder, latency_s=latency) as server:
        port_queue.put(server.url)
        stop.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    import multiprocessing

    context = multiprocessing.get_context("fork")
    urls, stop = context.Queue(), context.Event()
    process = context.Process(target=serve, args=(args.latency, urls, stop), daemon=True)
    process.start()
    url = urls.get(timeout=30)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = [
            {"video": f"v{i % 200}.mp4", "query": f"a person does thing {i}", "timestamp": [1, 2], "duration": 9}
            for i in range(args.queries)
        ]
        source = tmp / "in.jsonl"
        source.write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"{args.queries} queries, 2 requests each, server latency {args.latency * 1000:.0f} ms")
        for concurrency in args.concurrency:
            started = time.perf_counter()
            status = prep(
                [
                    "hi-vtg",
                    str(source),
                    "--format",
                    "jsonl",
                    "--out",
                    str(tmp / f"out{concurrency}.json"),
                    "--base-url",
                    url,
                    "--model",
                    "m",
                    "--concurrency",
                    str(concurrency),
                ]
            )
            seconds = time.perf_counter() - started
            rate, ceiling = args.queries / seconds, concurrency / (2 * args.latency)
            print(
                f"  concurrency {concurrency:3d}: {rate:7.2f} items/s, ceiling {ceiling:7.2f}, "
                f"{rate / ceiling:.0%} of it (status {status})"
            )
    stop.set()
    process.join(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
