"""Video decode + preprocess for rollouts: with the per-process caches vs without, same run.

Workload: 16 prompts x G=8 rollouts over 60-s synthetic clips shaped like Charades (320x240,
30 fps, H.264; one clip per prompt), dispatched as OpenRLHF dispatches a rollout batch to one
engine: every rollout at once, each preparing its video (`sample_frames` + the Qwen2.5-VL
processor) in a worker thread, as the executor does. With G rollouts per prompt the caches save
about a factor G of the work. Both wall time and process CPU time are reported: the CPU-time
ratio is the work saved, and does not move with other load on the machine. Also decord vs PyAV
decode rate (frames/s) on the same clips.

With `--paper KIND` (charades: 30 s 480p; activitynet: 150 s 720p; mixed: 3 of the first to 1 of the second, as
bench/gpu_scale.sh's prompts; H.264, each clip its own content: `rarft_plugin.stand_ins.write_paper_clips`, kept in
`--clips DIR` for the next run) it measures instead what the paper's scale asks of the executor: the decode time of
one clip with decord and with PyAV (decode + resize, one at a time), and a step of `--prompts` distinct clips × G
rollouts all in flight, every clip a cache miss, in the engine's threads with decord (serialised by its lock: the
executor before 2026-12-06) vs PyAV (the executor's decoder, `video.ROLLOUT_BACKEND`, no lock) vs in a
`DecodePool` of `--processes` worker processes (the executor with RARFT_DECODE_PROCESSES=N). `--torch-threads 1`
gives torch the one thread it has in a vLLM engine's Ray actor.

    python bench/video_pipeline.py [--prompts 16] [--group 8] [--seconds 60]
    python bench/video_pipeline.py --paper mixed --clips DIR [--prompts 16] [--processes 2] [--torch-threads 1]
    python bench/video_pipeline.py --paper mixed --clips DIR --prompts 8 --train-seconds 30 [--steps 3]

`--train-seconds T` compares, on the same clips, a step's wait for its clips without and with the trainer's prefetch
(`rarft_plugin.launch.prefetch`): the next step's clips prepared during the T seconds of training between steps.

`--loop` measures what a rollout whose clip was prefetched still waits for, on the same clips: every clip prepared
ahead, then a step of `--prompts` clips x G rollouts in one event loop where, as in vLLM's AsyncLLM, each request's
input processing holds the loop (a stand-in: the processor pass on the clip's frames for its first request, a hash
of the frames for the others, as vLLM's processor cache looks them up) and generation frees it (`--generate-seconds`).
The executor before 2026-12-06 sent a ready clip through a worker thread, whose return waits for the loop; now it
takes it in the loop (`ready_video_prompt`). Per-rollout wait is what `rarft/video_prep_s` logs.

    python bench/video_pipeline.py --paper mixed --clips DIR --prompts 16 --group 2 --loop [--generate-seconds 3.6]

`--memory` measures the host memory a step's distinct clips take while they decode all at once (as the trainer's
prefetch or a step's rollouts start them), each way in a fresh process: the peak resident memory above the process's
start with PyAV decoding every sampled frame at its own resolution and then resizing them (before 2026-12-06) vs
resizing them a chunk at a time as they are decoded (`video._PyAVReader.resized`, now).

    python bench/video_pipeline.py --paper mixed --clips DIR --prompts 16 --memory
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rarft_plugin import video  # noqa: E402
from rarft_plugin.models import default_family  # noqa: E402
from rarft_plugin.openrlhf_agent import (  # noqa: E402
    _PREPARED,
    clear_prepared_cache,
    prefetch_video_prompt,
    prepare_video_prompt,
    ready_video_prompt,
)
from rarft_plugin.stand_ins import build_tiny_qwen2_5_vl, write_paper_clips, write_test_video  # noqa: E402
from rarft_plugin.video import ROLLOUT_BACKEND, DecodePool, cache_stats, clear_cache, sample_frames  # noqa: E402


def rollouts(processor, prompt, clips, group, cache, pool=None, backend=ROLLOUT_BACKEND) -> tuple[float, float]:
    """(wall s, CPU s of this process) to prepare every rollout of every prompt, all dispatched together."""

    async def dispatch():
        await asyncio.gather(
            *[
                asyncio.to_thread(
                    prepare_video_prompt, processor, prompt, str(clip), cache=cache, pool=pool, backend=backend
                )
                for clip in clips
                for _ in range(group)
            ]
        )

    clear_cache()
    clear_prepared_cache()
    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(dispatch())
    return time.perf_counter() - wall, time.process_time() - cpu


def serialising_cost(processor, prompt, clips) -> tuple[float, float]:
    """Wall s to prepare each clip once, all in flight (every one a cache miss, as in a batch of distinct videos
    at scale): decord serialised (shipped) vs not."""
    serial = rollouts(processor, prompt, clips, 1, cache=True)[0]
    # no lock: what the executor did before decord calls were serialised; unsafe (a GPU run aborted), compared only
    held, video._DECORD_LOCK = video._DECORD_LOCK, contextlib.nullcontext()
    try:
        parallel = rollouts(processor, prompt, clips, 1, cache=True)[0]
    finally:
        video._DECORD_LOCK = held
    return serial, parallel


def decode_rate(clips, backend) -> float:
    """Frames/s decoding only the frames `sample_frames` takes (its private reader; no resize)."""
    started, frames = time.perf_counter(), 0
    for clip in clips:
        reader = video._open(str(clip), backend)
        first, last, _ = video._window(reader, video.VideoSpec(str(clip)))
        family = default_family()
        frames += len(reader.get(family.frame_indices(reader.frame_count, reader.fps, first, last, family.FPS)))
    return frames / (time.perf_counter() - started)


def sample_rate(clips, backend) -> float:
    """Frames/s of `sample_frames` (decode + Qwen resize), uncached."""
    started = time.perf_counter()
    frames = sum(len(sample_frames(str(c), backend=backend, cache=False).frames) for c in clips)
    return frames / (time.perf_counter() - started)


def paper_clips(directory: Path, kind: str, count: int) -> list[Path]:
    """`count` paper-size clips of `kind`; "mixed": 3 Charades-like to 1 ActivityNet-like, as the scale bench's
    prompts hold them (their order does not matter here: a step's rollouts are all dispatched at once)."""
    if kind != "mixed":
        return write_paper_clips(directory, kind, count)
    return [
        *write_paper_clips(directory, "charades", count - count // 4),
        *write_paper_clips(directory, "activitynet", count // 4),
    ]


def paper_scale(args, processor, prompt) -> None:
    """Decode time per paper-size clip, and a step's distinct clips prepared in the engine's threads with decord
    (serialised by its lock: the executor before 2026-12-06) vs PyAV (the executor's decoder, no lock) vs a pool."""
    started = time.perf_counter()
    clips = paper_clips(args.clips, args.paper, args.prompts)
    print(
        f"{len(clips)} {args.paper} clips in {args.clips} ({time.perf_counter() - started:.0f} s to make the missing)"
    )
    timed = clips[: args.timed]
    for backend in ("decord", "pyav"):
        started = time.perf_counter()
        frames = [sample_frames(str(clip), cache=False, backend=backend) for clip in timed]
        per_clip = (time.perf_counter() - started) / len(timed)
        shapes = sorted({f"{len(f.frames)} frames of {f.frames.shape[2]}x{f.frames.shape[1]}" for f in frames})
        print(
            f"decode + resize with {backend}, one clip at a time: {per_clip:.2f} s a clip ({', '.join(shapes)}, "
            f"2 FPS; mean of {len(timed)})"
        )
    pool = DecodePool(args.processes)
    try:
        sample_frames(str(clips[0]), cache=False, pool=pool)  # the workers start outside the timing
        serialised = rollouts(processor, prompt, clips, args.group, cache=True, backend="decord")
        threads = rollouts(processor, prompt, clips, args.group, cache=True)
        pooled = rollouts(processor, prompt, clips, args.group, cache=True, pool=pool)
    finally:
        pool.close()
    total = len(clips) * args.group
    print(
        f"a step of {len(clips)} distinct clips x G={args.group} rollouts, all in flight, decode + processor "
        f"(torch threads {torch.get_num_threads()}, CPU cores {os.cpu_count()}):"
    )
    rows = (
        ("engine threads, decord serialised", serialised),
        (f"engine threads, {ROLLOUT_BACKEND} (the executor's)", threads),
        (f"DecodePool({args.processes})", pooled),
    )
    for name, (wall, _) in rows:
        print(f"  {name:<38} {wall:7.1f} s  ({total / wall:.2f} rollouts/s)")
    print(f"  {ROLLOUT_BACKEND} threads vs decord serialised: {serialised[0] / threads[0]:.2f}x faster")
    print(f"  pool vs threads: {threads[0] / pooled[0]:.2f}x faster")


def step_waits(processor, prompt, steps: list[list[Path]], group: int, train_s: float, prefetch: bool) -> list[float]:
    """Seconds each step's rollouts wait for their clips (all G rollouts of all its prompts in flight, as the
    engine runs them), with `train_s` of training between steps (the engine's CPU idle, as while the GPU trains),
    and with or without the trainer's prefetch of the next step's clips (`prefetch_video_prompt`, as the
    executor runs it when `launch.prefetch` sends them, right after a step's generation)."""

    async def run() -> list[float]:
        waits = []
        for index, clips in enumerate(steps):
            started = time.perf_counter()
            await asyncio.gather(
                *[
                    asyncio.to_thread(prepare_video_prompt, processor, prompt, str(c))
                    for c in clips
                    for _ in range(group)
                ]
            )
            waits.append(time.perf_counter() - started)
            if prefetch and index + 1 < len(steps):
                for clip in steps[index + 1]:
                    prefetch_video_prompt(processor, prompt, str(clip), keep=len(clips))
            await asyncio.sleep(train_s)
        return waits

    clear_cache()
    clear_prepared_cache()
    return asyncio.run(run())


def prefetch_scale(args, processor, prompt) -> None:
    """A step's wait for its clips without and with the next step's clips prepared during training."""
    clips = paper_clips(args.clips, args.paper, args.prompts * args.steps)
    steps = [clips[i :: args.steps] for i in range(args.steps)]  # each step its share of both kinds
    without = step_waits(processor, prompt, steps, args.group, args.train_seconds, prefetch=False)
    with_prefetch = step_waits(processor, prompt, steps, args.group, args.train_seconds, prefetch=True)
    print(
        f"{args.steps} steps of {args.prompts} distinct {args.paper} clips x G={args.group}, {args.train_seconds:g} s "
        f"of training between steps (torch threads {torch.get_num_threads()}, CPU cores {os.cpu_count()}); "
        "seconds a step's rollouts wait for their clips:"
    )
    print(f"  without prefetch  {'  '.join(f'{w:6.2f}' for w in without)}")
    print(f"  with prefetch     {'  '.join(f'{w:6.2f}' for w in with_prefetch)}")
    later = lambda waits: sum(waits[1:]) / max(len(waits) - 1, 1)  # noqa: E731 -- the first step has no step before
    print(f"  steps 2 on: {later(without):.2f} s -> {later(with_prefetch):.2f} s a step")


def loop_waits(processor, prompt, clips: list[Path], group: int, generate_s: float, in_loop: bool) -> list[float]:
    """Each rollout's wait for its prepared clip (all clips in the cache already), all G rollouts of every clip in
    flight in one loop, with vLLM's input processing holding the loop per request (see the module's doc);
    `in_loop`: a ready clip taken in the loop (the executor now) instead of through a worker thread (before)."""
    family = default_family()
    seen: set[str] = set()

    def input_processing(clip: Path, video) -> None:  # vLLM's process_inputs, in the loop
        if str(clip) in seen:
            hashlib.blake2b(video.frames.tobytes()).digest()
        else:
            seen.add(str(clip))
            family.process_video_prompt(processor, prompt, video)

    async def rollout(clip: Path) -> float:
        started = time.perf_counter()
        ready = ready_video_prompt(processor, prompt, str(clip)) if in_loop else None
        if ready is None:
            ready = await asyncio.to_thread(prepare_video_prompt, processor, prompt, str(clip))
        waited = time.perf_counter() - started
        input_processing(clip, ready[0])
        await asyncio.sleep(generate_s)  # the GPU generates: the loop is free
        return waited

    async def step() -> list[float]:
        return await asyncio.gather(*[rollout(clip) for clip in clips for _ in range(group)])

    for clip in clips:  # the prefetch's work, done before the step
        prepare_video_prompt(processor, prompt, str(clip))
    return asyncio.run(step())


def loop_scale(args, processor, prompt) -> None:
    """A step's rollouts on prefetched clips: their wait through a worker thread (before) vs in the loop (now)."""
    clips = paper_clips(args.clips, args.paper, args.prompts)
    clear_cache()
    clear_prepared_cache()
    _PREPARED.reserve(len(clips))
    through_thread = loop_waits(processor, prompt, clips, args.group, args.generate_seconds, in_loop=False)
    in_loop = loop_waits(processor, prompt, clips, args.group, args.generate_seconds, in_loop=True)
    print(
        f"a step of {args.prompts} prefetched {args.paper} clips x G={args.group}, all in flight, vLLM's input "
        f"processing holding the loop, {args.generate_seconds:g} s of generation (torch threads "
        f"{torch.get_num_threads()}, CPU cores {os.cpu_count()}); seconds a rollout waits for its prepared clip:"
    )
    mean = lambda waits: sum(waits) / len(waits)  # noqa: E731
    for name, waits in (("through a worker thread (before)", through_thread), ("taken in the loop (now)", in_loop)):
        print(f"  {name:<34} mean {mean(waits):6.3f}  max {max(waits):6.3f}")
    print(f"  mean wait: {mean(through_thread):.3f} s -> {mean(in_loop):.3f} s a rollout")


MEMORY_WAYS = ("decode all, then resize", "resize as decoded")


def _resident_gb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field)) / 1e6


def memory_worker(args) -> None:
    """One way of `--memory` in this process: decode the clips together in threads, print the peak above the start."""
    from concurrent.futures import ThreadPoolExecutor

    how = video.Sampling.of()
    clips = paper_clips(args.clips, args.paper, args.prompts)
    start = _resident_gb()

    def decode(clip: Path) -> None:
        reader = video._PyAVReader(str(clip))
        indices, *_ = video._sampled_indices(reader, video.VideoSpec(str(clip)), how)
        size = video.sampled_size(how, len(indices))
        if args.memory_worker == MEMORY_WAYS[0]:
            frames = reader.get(indices)
            video._resize(frames, *size(frames.shape[1], frames.shape[2]))
        else:
            reader.resized(indices, size)

    with ThreadPoolExecutor(len(clips)) as pool:
        list(pool.map(decode, clips))
    print(f"{_resident_gb('VmHWM') - start:.3f}")


def memory_scale(args) -> None:
    """Peak host memory of a step's clips decoding at once, each way in a fresh process (same clips)."""
    import subprocess

    paper_clips(args.clips, args.paper, args.prompts)  # made once, before either way is measured
    base = [sys.executable, __file__, "--paper", args.paper, "--clips", str(args.clips), "--prompts", str(args.prompts)]
    peaks = {
        way: float(subprocess.run([*base, "--memory-worker", way], check=True, capture_output=True, text=True)
                   .stdout.split()[-1])
        for way in MEMORY_WAYS
    }  # fmt: skip
    print(f"{args.prompts} distinct {args.paper} clips decoding at once (PyAV, one thread each); peak host memory "
          "above the process's start:")  # fmt: skip
    for way, peak in peaks.items():
        print(f"  {way:<24} {peak:6.2f} GB")
    print(f"  {peaks[MEMORY_WAYS[0]] / peaks[MEMORY_WAYS[1]]:.1f}x less")


def _prompt(processor) -> str:
    return processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "text", "text": "find it"}, {"type": "video", "text": ""}]}],
        tokenize=False,
        add_generation_prompt=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--paper",
        choices=("charades", "activitynet", "mixed"),
        default=None,
        help="paper-size clips (mixed: 3 Charades-like to 1 ActivityNet-like)",
    )
    parser.add_argument("--clips", type=Path, default=Path("runs/bench_clips"), help="where --paper clips are kept")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="DecodePool size (--paper)")
    parser.add_argument("--timed", type=int, default=4, help="clips decoded one at a time (--paper)")
    parser.add_argument(
        "--train-seconds",
        type=float,
        default=None,
        help="with --paper: steps of --prompts clips with this much training between them, without and with the "
        "trainer's prefetch of the next step's clips (instead of the decoder comparison)",
    )
    parser.add_argument("--steps", type=int, default=3, help="steps of the prefetch comparison (--train-seconds)")
    parser.add_argument(
        "--loop",
        action="store_true",
        help="with --paper: what a rollout on a prefetched clip waits for with vLLM's input processing in its loop, "
        "through a worker thread vs taken in the loop (instead of the decoder comparison)",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="with --paper: peak host memory of --prompts clips decoding at once, decoded then resized vs resized "
        "as decoded (instead of the decoder comparison)",
    )
    parser.add_argument("--memory-worker", choices=MEMORY_WAYS, help=argparse.SUPPRESS)
    parser.add_argument(
        "--generate-seconds",
        type=float,
        default=3.6,
        help="--loop: a rollout's generation, the loop free (default: the 3B's on an H100, docs/gpu.md)",
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch's threads, e.g. 1 as in a vLLM engine's Ray actor (Ray sets OMP_NUM_THREADS=1 for an actor "
        "with less than one CPU; default: torch's own)",
    )
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    from transformers import AutoProcessor

    if args.paper and (args.memory or args.memory_worker):
        (memory_worker if args.memory_worker else memory_scale)(args)
        return 0
    if args.paper:
        with tempfile.TemporaryDirectory() as tmp:
            processor = AutoProcessor.from_pretrained(build_tiny_qwen2_5_vl(Path(tmp) / "tiny"))  # 7B pixel bounds
            run = loop_scale if args.loop else paper_scale if args.train_seconds is None else prefetch_scale
            run(args, processor, _prompt(processor))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"writing {args.prompts} synthetic {args.seconds:.0f}-s clips ...")
        clips = [
            write_test_video(tmp / f"clip{i}.mp4", seconds=args.seconds, fps=30, size=(320, 240), codec="libx264")
            for i in range(args.prompts)
        ]
        processor = AutoProcessor.from_pretrained(build_tiny_qwen2_5_vl(tmp / "tiny"))
        prompt = _prompt(processor)

        total = args.prompts * args.group
        prepare_video_prompt(processor, prompt, str(clips[0]), cache=False)  # warm-up: first-call costs out of both
        uncached = rollouts(processor, prompt, clips, args.group, cache=False)
        cached = rollouts(processor, prompt, clips, args.group, cache=True)
        print(
            f"{total} rollouts ({args.prompts} prompts x G={args.group}, all in flight), decode + resize + processor:"
        )
        print(f"  without cache {total / uncached[0]:8.2f} rollouts/s  {uncached[1]:7.1f} CPU s")
        print(
            f"  with cache    {total / cached[0]:8.2f} rollouts/s  {cached[1]:7.1f} CPU s   "
            f"(decodes {cache_stats()[1]}, processor runs {_PREPARED.misses} for {total} rollouts)"
        )
        print(f"  speed-up: {uncached[0] / cached[0]:.1f}x wall, {uncached[1] / cached[1]:.1f}x CPU time (goal >= 6x)")

        serial, parallel = serialising_cost(processor, prompt, clips)
        print(
            f"{args.prompts} distinct clips, all in flight: decord serialised {args.prompts / serial:.2f} clips/s, "
            f"unserialised {args.prompts / parallel:.2f} clips/s ({serial / parallel:.2f}x the time)"
        )
        print("decoders on the same clips, the 2-FPS frames of each (frames/s):")
        rates = {backend: (decode_rate(clips, backend), sample_rate(clips, backend)) for backend in ("decord", "pyav")}
        for backend, (decode, sample) in rates.items():
            print(f"  {backend:<7} decode only {decode:8.1f}   decode + resize {sample:8.1f}")
        print(f"  decord / PyAV, decode only: {rates['decord'][0] / rates['pyav'][0]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
