"""`rarft-eval infer`: run a saved checkpoint over an evaluation file, one prediction per query.

Backends: vLLM when installed (`--backend vllm`, batched, video input through
`multi_modal_data` as frames with their metadata), else transformers `generate`, batched with
left padding. Both get the same frames (`rarft_plugin.video.sample_frames` as the checkpoint's model
family samples them, `rarft_plugin.models`; Qwen2.5-VL: 2 FPS, total-pixel budget) and the same
prompt (`rarft_plugin.prompts`, evaluation order: system message, video, text). Decoding is greedy.

`--shard i/n` takes every n-th query starting at i (one process per GPU, each with its own
`CUDA_VISIBLE_DEVICES` and output file; `rarft-eval evaluate` takes all shard files at once);
`--limit N` the first N queries of the shard (a later run without it extends the same file). The
data file, then the checkpoint are checked first (`eval.checkpoint`: one line naming what is missing, e.g. the processor
configuration OpenRLHF's `--ckpt.save_hf` does not write; `--processor BASE`). Every clip is opened
and decoded at its window's ends before the model loads (`--no-probe` skips it), so broken videos
are reported together up front (`--missing-videos FILE` writes the full list of the ones not found).
Queries are batched by clip length (less padding), and the next batch's clips are decoded in threads
while the model generates. Each finished batch is appended to the output and fsynced, so a killed
run resumes where it stopped: a rerun with the same settings skips every query already in the file
(a line cut short by the kill is dropped). Only infer's own prediction files are resumed: an
existing `--out` must have its `OUT.meta.json` (written before the first prediction) and hold only
predictions of this data file and shard, else it is refused untouched, never "repaired"; and two
runs never write one `--out` at once (`rarft_plugin.command_files`). Once complete, the file is
rewritten atomically in query order. The settings of a run (model, data, template, sampling, shard)
are recorded beside it in `OUT.meta.json`; resuming with other settings is an error rather than a
silently mixed file. The record also says what produced the file: the checkpoint's directory and
fingerprint, the processor's directory, the data file's SHA-256, the backend and dtype actually
used, the decoding settings and the package versions. A run that fails before its first prediction
leaves no file behind. Each row says whether its generation stopped at the token limit
(`truncated`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from rarft_plugin.arguments import positive_int, positive_number
from rarft_plugin.clips import SampledVideo
from rarft_plugin.command_files import CommandFiles, Output
from rarft_plugin.dataset import Example, load_examples
from rarft_plugin.errors import DataError
from rarft_plugin.io_utils import file_sha256, read_json, read_text, write_atomic, write_jsonl_atomic
from rarft_plugin.models import ModelFamily, family_of_model
from rarft_plugin.prompts import TEMPLATES, build_messages
from rarft_plugin.schema import JsonValue
from rarft_plugin.video import (
    VIDEO_EXTENSIONS,
    MissingVideos,
    check_clips,
    resolve_videos,
    sample_frames,
    video_extension,
    video_spec,
)

from .arguments import add_data_arguments, data_options
from .checkpoint import overlay, resolve_checkpoint
from .predictions import meta_path, parse_prediction, prediction_from_example
from .provenance import INFERENCE_PACKAGES, now, package_versions

__all__ = [
    "RESUME_SETTINGS",
    "RESUME_DEFAULTS",
    "RESUME_IF_RECORDED",
    "RELEASED_DTYPE",
    "RELEASED_MAX_NEW_TOKENS",
    "Generation",
    "default_dtype",
    "parse_shard",
    "HFBackend",
    "VLLMBackend",
    "make_backend",
    "finished_rows",
    "check_resumable",
    "clip_seconds",
    "command_files",
    "not_a_prediction_file",
    "run_inference",
    "add_arguments",
    "write_missing_videos",
    "resolve",
    "run",
]

# The released inference's decoding (inference.py): 512 new tokens, fp16 weights.
RELEASED_MAX_NEW_TOKENS = 512
RELEASED_DTYPE = "fp16"

# Settings that must match for a partial output to be resumed.
RESUME_SETTINGS = (
    "model",
    "data",
    "template",
    "shard",
    "fps",
    "total_pixels",
    "max_new_tokens",
    "unknown_spans",
    "spans_from",
)
# what a run recorded before a setting existed means
RESUME_DEFAULTS = {"unknown_spans": "skip", "spans_from": []}
# compared only when the partial output's record has them (runs recorded before they existed do not)
RESUME_IF_RECORDED = ("model_fingerprint", "data_sha256")


@dataclass(frozen=True)
class Generation:
    text: str
    truncated: bool  # stopped by max_new_tokens rather than by an end-of-sequence token


def _chat_template(processor):
    """The processor, with the tokenizer's chat template where the processor has none of its own."""
    if not getattr(processor, "chat_template", None) and getattr(processor, "tokenizer", None) is not None:
        processor.chat_template = processor.tokenizer.chat_template
    return processor


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shard must look like 0/4, got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"shard index must be in [0, {count}), got {text!r}")
    return index, count


class HFBackend:
    """transformers `generate`, greedy, batched with left padding."""

    name = "hf"

    def __init__(self, model_path: str, *, family: ModelFamily, device: str, dtype: str):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from rarft_plugin.models.window_attention import use_grouped_window_attention

        family.use_reference_video_positions()  # the video positions vLLM and the model's reference use
        use_grouped_window_attention()  # without flash-attn: Qwen2.5-VL's vision windows in a few sdpa calls
        self.family = family
        self.processor = _chat_template(AutoProcessor.from_pretrained(model_path))
        torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
        self.model = AutoModelForImageTextToText.from_pretrained(model_path, dtype=torch_dtype).to(device).eval()
        self.device, self.dtype = device, dtype
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])

    def prompt(self, messages: list[dict]) -> str:
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(self, prompts: Sequence[str], videos: Sequence[SampledVideo], max_new_tokens: int) -> list[Generation]:
        import torch

        inputs = self.processor(
            text=list(prompts),
            **self.family.processor_video_inputs(list(videos)),
            padding=True,
            padding_side="left",
            return_tensors="pt",
        ).to(self.device)
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new = out[:, inputs["input_ids"].shape[1] :]
        texts = self.processor.batch_decode(new, skip_special_tokens=True)
        # a row that ended early is padded after its end-of-sequence token; one that never emitted it was cut
        full = new.shape[1] >= max_new_tokens
        return [
            Generation(text, truncated=full and not self.eos_ids.intersection(row.tolist()))
            for text, row in zip(texts, new, strict=True)
        ]


class VLLMBackend:
    """vLLM offline inference with video input (needs a GPU and the `vllm` package)."""

    name = "vllm"
    device = "cuda"

    def __init__(
        self,
        model_path: str,
        *,
        family: ModelFamily,
        dtype: str = RELEASED_DTYPE,
        tensor_parallel_size: int = 1,
        max_model_len: int = 8192,
    ):
        from transformers import AutoProcessor
        from vllm import LLM

        self.family, self.dtype = family, dtype
        self.processor = _chat_template(AutoProcessor.from_pretrained(model_path))
        self.llm = LLM(
            model=model_path,
            limit_mm_per_prompt={"video": 1},
            dtype={"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[dtype],
            tensor_parallel_size=tensor_parallel_size,
            max_model_len=max_model_len,
        )

    def prompt(self, messages: list[dict]) -> str:
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(self, prompts: Sequence[str], videos: Sequence[SampledVideo], max_new_tokens: int) -> list[Generation]:
        import vllm
        from vllm import SamplingParams

        # frames with their metadata, as this vLLM takes them
        requests = [
            {"prompt": prompt, **self.family.vllm_video_request(video, vllm.__version__).prompt_fields()}
            for prompt, video in zip(prompts, videos, strict=True)
        ]
        outputs = self.llm.generate(
            requests, SamplingParams(temperature=0.0, max_tokens=max_new_tokens), use_tqdm=False
        )
        return [Generation(o.outputs[0].text, truncated=o.outputs[0].finish_reason == "length") for o in outputs]


def default_dtype(device: str) -> str:
    """The released inference's fp16 on a GPU; fp32 on a CPU (fp16 runs there but slower, and CPU
    half-precision kernels do not reproduce a GPU's fp16 results, so it buys nothing)."""
    return RELEASED_DTYPE if device.startswith("cuda") else "fp32"


def make_backend(
    name: str, model_path: str, *, family: ModelFamily, device: str, dtype: str, max_model_len: int = 8192
):
    """`vllm`, `hf`, or `auto` (vLLM when it imports, else transformers)."""
    if name in ("auto", "vllm"):
        try:
            import vllm  # noqa: F401
        except ImportError:
            if name == "vllm":
                raise DataError("--backend vllm: the vllm package is not installed") from None
        else:
            return VLLMBackend(model_path, family=family, dtype=dtype, max_model_len=max_model_len)
    return HFBackend(model_path, family=family, device=device, dtype=dtype)


def not_a_prediction_file(out: Path) -> str | None:
    """Why an existing `--out` is not a prediction file infer would resume, or None: it must have the
    record infer writes beside it before its first prediction (`meta_path`), holding the resume settings."""
    meta = meta_path(out)
    try:
        recorded = read_json(meta) if meta.is_file() else None
    except DataError:
        recorded = None
    if not isinstance(recorded, dict) or not set(RESUME_SETTINGS) - set(RESUME_DEFAULTS) <= set(recorded):
        return (
            f"exists, and is not a prediction file of rarft-eval infer (no {meta.name} beside it): it is "
            "left as it is; write to a new --out, or remove it to start afresh"
        )
    return None


def finished_rows(out: Path, examples: Sequence[Example]) -> dict[str, dict]:
    """Rows of a partial output, by id, after checking each belongs to one of `examples`.

    A last line cut short (a killed run) is dropped from the file, once every complete line has
    been checked; anything else that is wrong is a DataError and the file is left as it is:
    resuming must never mix two runs.
    """
    if not out.exists():
        return {}
    lines = read_text(out).split("\n")
    complete, torn = lines[:-1], lines[-1]  # after the last newline: "" or a line cut short
    by_key = {e.key: e for e in examples}
    rows = {}
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            prediction = parse_prediction(row)
        except (ValueError, RecursionError) as error:  # DataError is a ValueError
            raise DataError(
                f"cannot resume from this line ({error or 'nested too deeply'})",
                source=str(out),
                record=f"line {number}",
            ) from None
        example = by_key.get(prediction.id)
        if example is None or example.label.query != prediction.query or example.item.video != prediction.video:
            raise DataError(
                f"prediction {prediction.id!r} is not a query of this data file and shard; write to a new --out",
                source=str(out),
                record=f"line {number}",
            )
        rows[prediction.id] = row
    if torn.strip():
        write_atomic(out, "".join(line + "\n" for line in complete))
    return rows


def check_resumable(out: Path, settings: dict[str, JsonValue]) -> None:
    """Refuse to append to an output written with other settings (`run` records the new ones once the
    model has loaded)."""
    meta = meta_path(out)
    if out.exists() and meta.exists():
        recorded = read_json(meta)
        if not isinstance(recorded, dict):
            raise DataError("expected the JSON object rarft-eval infer writes", source=str(meta))
        keys = [*RESUME_SETTINGS, *(key for key in RESUME_IF_RECORDED if key in recorded)]
        changed = [
            f"{key}: {recorded.get(key, RESUME_DEFAULTS.get(key))!r} -> {settings.get(key)!r}"
            for key in keys
            if recorded.get(key, RESUME_DEFAULTS.get(key)) != settings.get(key)
        ]
        if changed:
            raise DataError(
                f"{out} was written with other settings ({'; '.join(changed)}); write to a new --out", source=str(meta)
            )


def clip_seconds(example: Example, video_duration: float | None = None) -> float:
    """The clip's length: its window, else the record's duration, else the duration measured on the
    video (`duration: null` in HI-TVGBench and SS-QVHighlights); inf when none is known."""
    item = example.item
    end = item.video_end if item.video_end is not None else item.duration or video_duration
    return math.inf if end is None else end - (item.video_start or 0.0)


def run_inference(
    examples: Sequence[Example],
    videos: dict[str, Path],
    backend,
    out: Path,
    *,
    template: str,
    batch_size: int,
    max_new_tokens: int,
    fps: float | None = None,
    total_pixels: int | None = None,
    decode_workers: int = 4,
    durations: dict | None = None,
    limit: int | None = None,
) -> int:
    """Predict every example (of the first `limit`) not yet in `out`; returns how many were predicted now.

    Frames are sampled as the backend's model family samples them (`fps`, `total_pixels`: None takes the
    family's defaults). Queries are batched by clip length (`durations`: video durations `check_clips` measured, for
    records without one). The clips of the next batch are decoded in threads while the model
    generates the current one. `out` is created with the first batch's predictions.
    """
    finished = finished_rows(out, examples)
    durations = durations or {}
    wanted = examples[:limit] if limit is not None else examples
    todo = sorted(
        (e for e in wanted if e.key not in finished),
        key=lambda e: clip_seconds(e, durations.get(video_spec(e, videos[e.item.video]))),
    )
    batches = [todo[start : start + batch_size] for start in range(0, len(todo), batch_size)]
    with (
        ThreadPoolExecutor(max_workers=decode_workers) as pool,
        contextlib.ExitStack() as files,
        tqdm(total=len(wanted), initial=len(wanted) - len(todo), desc="infer", unit="query") as progress,
    ):

        def decode(batch: list[Example]) -> list[Future]:
            return [
                pool.submit(
                    sample_frames,
                    video_spec(e, videos[e.item.video]),
                    family=backend.family,
                    fps=fps,
                    total_pixels=total_pixels,
                )
                for e in batch
            ]

        handle = None
        upcoming = decode(batches[0]) if batches else []
        for number, batch in enumerate(batches):
            clips = [future.result() for future in upcoming]
            upcoming = decode(batches[number + 1]) if number + 1 < len(batches) else []
            prompts = [backend.prompt(build_messages(template, e.label.query, purpose="eval")) for e in batch]
            generations = backend.generate(prompts, clips, max_new_tokens)
            handle = handle or files.enter_context(open(out, "a", encoding="utf-8"))
            for example, generation in zip(batch, generations, strict=True):
                row = prediction_from_example(example, generation.text, generation.truncated).to_json()
                finished[example.key] = row
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
            progress.update(len(batch))
    if finished:  # complete: rewrite in query order
        write_jsonl_atomic(out, [finished[e.key] for e in examples if e.key in finished])
    return len(todo)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        help="checkpoint directory (HF format, as OpenRLHF saves it), or a hub name in the local cache",
    )
    parser.add_argument(
        "--processor",
        default=None,
        metavar="DIR",
        help="take the processor files (and a chat template, where the checkpoint has none) from this "
        "directory, e.g. the base model: OpenRLHF's --ckpt.save_hf writes no "
        "preprocessor_config.json",
    )
    parser.add_argument("--data", type=Path, required=True, help="evaluation file in the released schema")
    parser.add_argument("--out", type=Path, required=True, help="predictions JSONL (resumed if present)")
    parser.add_argument("--video-root", type=Path, default=None, help="directory holding the videos")
    parser.add_argument(
        "--video-ext",
        dest="video_extensions",
        type=video_extension,
        action="append",
        default=None,
        help="extension tried for a video named without one, e.g. a bare Charades id; repeat for "
        f"several (default: {' '.join(VIDEO_EXTENSIONS)})",
    )
    parser.add_argument(
        "--missing-videos",
        type=Path,
        default=None,
        metavar="FILE",
        help="write every video that is not found or empty to FILE (video<TAB>record<TAB>reason, one "
        "per line; empty when none is missing)",
    )
    parser.add_argument(
        "--no-probe",
        dest="probe",
        action="store_false",
        help="skip opening every clip before the model loads (existence is still checked)",
    )
    parser.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        metavar="N",
        help="predict only the first N queries (of this shard); a rerun without it extends the file",
    )
    parser.add_argument(
        "--template",
        choices=sorted(TEMPLATES),
        default="ra_rft",
        help="prompt template (rarft_plugin.prompts); baselines: time_r1, videochat_r1, ...",
    )
    parser.add_argument("--backend", choices=("auto", "vllm", "hf"), default="auto")
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="queries per generate call (default: 8 with transformers, 64 with vLLM)",
    )
    parser.add_argument(
        "--decode-workers", type=positive_int, default=4, help="threads decoding the next batch's clips"
    )
    parser.add_argument(
        "--max-new-tokens",
        type=positive_int,
        default=RELEASED_MAX_NEW_TOKENS,
        help=f"generation limit per response (default: {RELEASED_MAX_NEW_TOKENS}, the released inference's)",
    )
    parser.add_argument("--shard", type=parse_shard, default=(0, 1), help="i/n: this process's share")
    parser.add_argument(
        "--fps",
        type=positive_number,
        default=None,
        help="frame sampling rate (default: the model family's; Qwen2.5-VL: 2, as the paper)",
    )
    parser.add_argument(
        "--total-pixels",
        type=positive_int,
        default=None,
        help="pixel budget of a clip (default: the model family's; Qwen2.5-VL: 3584*28*28, as the "
        "paper and the released code)",
    )
    parser.add_argument("--device", default=None, help="transformers backend device (default: cuda if available)")
    parser.add_argument(
        "--dtype",
        choices=("bf16", "fp16", "fp32"),
        default=None,
        help=f"default: {RELEASED_DTYPE} on a GPU (the released inference's); fp32 on a CPU, where fp16 runs "
        "slower and does not reproduce a GPU's fp16 arithmetic anyway",
    )
    parser.add_argument("--max-model-len", type=positive_int, default=8192, help="vLLM context length")
    add_data_arguments(parser)


def write_missing_videos(path: Path, failures: list[tuple[str, int, str]]) -> None:
    write_atomic(path, "".join(f"{video}\trecord {record}\t{reason}\n" for video, record, reason in failures))


def resolve(examples: list[Example], args: argparse.Namespace) -> dict[str, Path]:
    """The examples' videos; every missing one goes to --missing-videos when given."""
    extensions = tuple(args.video_extensions or VIDEO_EXTENSIONS)
    try:
        videos = resolve_videos(examples, video_root=args.video_root, source=args.data, extensions=extensions)
    except MissingVideos as error:
        if args.missing_videos is not None:
            write_missing_videos(args.missing_videos, error.failures)
            raise DataError(f"{error} (all {len(error.failures)} listed in {args.missing_videos})") from None
        raise
    if args.missing_videos is not None:
        write_missing_videos(args.missing_videos, [])
    return videos


def command_files(args: argparse.Namespace) -> CommandFiles:
    return CommandFiles.of(
        inputs=[args.data, *args.spans_from],
        outputs=[Output(args.out, resumes=not_a_prediction_file), meta_path(args.out), args.missing_videos],
    )


def run(args: argparse.Namespace) -> int:
    import torch

    examples, report = load_examples(args.data, **data_options(args))  # a bad data file fails first, then
    checkpoint = resolve_checkpoint(args.model, args.processor)  # a bad --model, both before any loading
    family = family_of_model(checkpoint.model)  # a model rarft cannot feed video fails here too
    fps = family.FPS if args.fps is None else args.fps
    total_pixels = family.TOTAL_PIXELS if args.total_pixels is None else args.total_pixels
    if report.summary():
        print(report.summary())
    index, count = args.shard
    examples = examples[index::count]
    wanted = examples[: args.limit] if args.limit is not None else examples
    videos = resolve(wanted, args)
    durations = {}
    if args.probe:  # a broken clip fails now, with all the others, rather than hours into the run
        durations = check_clips(wanted, videos, source=args.data)
    settings = {
        "model": str(checkpoint.model),
        "model_fingerprint": checkpoint.fingerprint,
        "processor": str(checkpoint.processor) if checkpoint.processor else None,
        "data": str(args.data.resolve()),
        "data_sha256": file_sha256(args.data),
        "template": args.template,
        "shard": f"{index}/{count}",
        "fps": fps,
        "total_pixels": total_pixels,
        "max_new_tokens": args.max_new_tokens,
        "decoding": "greedy",
        "queries": len(examples),
        "limit": args.limit,
        "unknown_spans": args.unknown_spans,
        "spans_from": [str(p.resolve()) for p in args.spans_from],
    }
    check_resumable(args.out, settings)
    finished_rows(args.out, examples)  # a bad partial output fails before the model loads
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = args.dtype or default_dtype(device)
    fresh = not args.out.exists()
    with overlay(checkpoint) as model_dir:
        try:
            backend = make_backend(
                args.backend,
                str(model_dir),
                family=family,
                device=device,
                dtype=dtype,
                max_model_len=args.max_model_len,
            )
        except DataError:
            raise
        except Exception as error:  # noqa: BLE001 - the files are there but cannot be used (corrupt, unknown
            # architecture, out of memory): one line naming the checkpoint, not a loader traceback
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise DataError(
                f"--model {checkpoint.model}: cannot be loaded ({type(error).__name__}: {first_line})"
            ) from None
        settings |= {
            "backend": backend.name,
            "dtype": backend.dtype,
            "device": backend.device,
            "packages": package_versions(INFERENCE_PACKAGES),
            "started_at": now(),
        }
        write_atomic(meta_path(args.out), json.dumps(settings, indent=2) + "\n")
        batch_size = args.batch_size or (64 if isinstance(backend, VLLMBackend) else 8)
        try:
            predicted = run_inference(
                examples,
                videos,
                backend,
                args.out,
                template=args.template,
                batch_size=batch_size,
                max_new_tokens=args.max_new_tokens,
                fps=fps,
                total_pixels=total_pixels,
                decode_workers=args.decode_workers,
                durations=durations,
                limit=args.limit,
            )
        except BaseException:
            if fresh and not args.out.exists():  # nothing predicted: leave no record of a run that never was
                meta_path(args.out).unlink(missing_ok=True)
            raise
    done = len(finished_rows(args.out, examples))
    print(
        f"{predicted} predicted now, {done} of {len(examples)} queries of shard {index}/{count} in {args.out}"
        f"{' (--limit ' + str(args.limit) + ')' if args.limit is not None else ''}"
    )
    return 0
