"""rarft-train's dataset pre-flight on a 1,500-row training file: clips probed in threads vs one by one.

The file has 1,500 prompts over 750 distinct clips (2 queries per clip, as HI-VTG training items
give), each clip a 30-s 320x240 video at 30 fps, hard links of a few generated files under
distinct names (each name is opened and decoded on its own). Both variants run
`validate_dataset` (every row parsed and checked, every distinct clip probed) in the same run;
the ratio is the figure.

    python bench/preflight_probe.py [--rows 1500] [--workers 8]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from rarft_plugin.launch.checks import validate_dataset  # noqa: E402
from rarft_plugin.prompt_row import make_row  # noqa: E402
from rarft_plugin.schema import parse_label  # noqa: E402
from rarft_plugin.stand_ins import write_test_video  # noqa: E402
from rarft_plugin.video import VideoSpec  # noqa: E402

SOURCES = 8


def training_file(directory: Path, rows: int) -> Path:
    sources = [
        write_test_video(directory / f"source{i}.mp4", seconds=30, fps=30, size=(320, 240), codec="h264")
        for i in range(SOURCES)
    ]
    lines = []
    for index in range(rows // 2):
        clip = directory / f"clip{index:04d}.mp4"
        os.link(sources[index % SOURCES], clip)
        for relevant in (True, False):
            label = {
                "relevant": relevant,
                "timestamp": [3.0, 9.0] if relevant else None,
                "duration": 30.0,
                "query": f"query {index} {'relevant' if relevant else 'irrelevant'}",
            }
            row = make_row(
                parse_label(label),
                VideoSpec(str(clip), 0.0, 30.0),
                template="ra_rft",
                datasource="bench",
                row_id=f"{index}:{int(not relevant)}",
            )
            lines.append(json.dumps(row))
    path = directory / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1500)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = training_file(Path(tmp), args.rows)
        print(
            f"{args.rows} rows, {args.rows // 2} distinct clips (30 s, 320x240, 30 fps, H.264), {os.cpu_count()} CPUs"
        )
        seconds = {}
        for workers in (1, args.workers, 1, args.workers):  # twice each, interleaved: the best of two
            before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            problems = validate_dataset(str(path), "ra_rft", "paper", workers=workers)
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_SELF)
            cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            assert problems == [], problems[:3]
            seconds[workers] = min(seconds.get(workers, wall), wall)
            print(f"  {workers} probe thread(s): {wall:6.2f} s wall, {cpu:6.2f} s CPU ({cpu / wall:.2f} cores busy)")
        print(f"threads vs one by one: {seconds[1] / seconds[args.workers]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
