"""Video files: which clip a record names, decoding it, sampling its frames, probing it.

- `VideoSpec`: a file and a window of it (`video_start`/`video_end`), parsed from what the OpenRLHF
  dataset carries (a path, a dict or its JSON string).
- `sample_frames(spec)`: decodes a clip (decord by default, PyAV as fallback; in worker processes with
  `pool=DecodePool(n)`, which the rollout executor uses when $RARFT_DECODE_PROCESSES > 0) and takes its frames
  the way a model family samples them (`rarft_plugin.models`; the default family is Qwen2.5-VL:
  2 FPS, a total-pixel budget of 3584·28·28, frame sides multiples of 28). The result holds the
  frames and their real sampling rate, which the family hands the model's processor and vLLM.
  Decoded clips are kept in a per-process single-flight LRU cache keyed by (path, file size, mtime,
  window, family and sampling options), so the G rollouts of one prompt, which OpenRLHF starts
  together, decode the video once.
- `probe(spec)`, `probe_all` / `probe_durations`: open a clip and decode the first and last frame of
  its window, so bad files are found when a dataset is converted rather than inside a rollout;
  `probe_clip` / `probe_clips` also give the sampled frames' count, size and times (`ClipInfo`), from
  which a family counts a prompt's video tokens without decoding the clip.
- Resolution of the `video` a released record names to a file (`video_candidates`, `resolve_video`,
  `resolve_videos`), and the clips of a set of examples (`video_spec`, `check_clips`).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from tqdm import tqdm

from rarft_plugin.cache import LruCache
from rarft_plugin.clips import ClipInfo, SampledVideo, VideoError
from rarft_plugin.errors import DataError
from rarft_plugin.models import ModelFamily, default_family, family_named

if TYPE_CHECKING:
    from rarft_plugin.dataset import Example

__all__ = [
    "VIDEO_EXTENSIONS",
    "DECODE_PROCESSES_ENV",
    "Backend",
    "ROLLOUT_BACKEND",
    "DecodePool",
    "MissingVideos",
    "Sampling",
    "VideoSpec",
    "cache_key",
    "cache_stats",
    "check_clips",
    "clear_cache",
    "decode_env",
    "decode_pool",
    "decode_processes",
    "probe",
    "probe_all",
    "probe_clip",
    "probe_clips",
    "probe_durations",
    "resolve_video",
    "resolve_videos",
    "sampled_size",
    "sample_frames",
    "video_candidates",
    "video_extension",
    "video_spec",
]

CACHE_SIZE = 32
MAX_LISTED = 20  # failures named in one error message; the rest are counted
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")
Backend = Literal["auto", "decord", "pyav"]
# The decoder of training rollouts (the executor's `prepare_video_prompt`); "auto" (decord first, the released
# code's and the evaluation's) elsewhere. PyAV keeps its state per container, so a step's distinct clips decode at
# once in the engine's threads, where decord's calls queue behind `_DECORD_LOCK`; its frames equal decord's
# (tests/test_video.py) and it decoded paper-size clips 1.8-1.9x faster (one thread, 2026-12-06). In the 3B's run
# on an H100 the serialised decoding was most of the generation phase (docs/gpu.md, "Paper scale").
ROLLOUT_BACKEND: Backend = "pyav"


@dataclass(frozen=True)
class VideoSpec:
    """Which file, and which window of it (seconds; None = from the start / to the end)."""

    path: str
    start: float | None = None
    end: float | None = None

    def to_json(self) -> str:
        return json.dumps({"path": self.path, "video_start": self.start, "video_end": self.end})

    @classmethod
    def parse(cls, value: SpecLike) -> VideoSpec:
        """From a VideoSpec, a path, a dict or its JSON string (as the OpenRLHF dataset carries it)."""
        if isinstance(value, VideoSpec):
            return value
        if isinstance(value, list) and len(value) == 1:  # OpenRLHF may wrap media in a list
            return cls.parse(value[0])
        if isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                value = json.loads(value)
            except ValueError as error:
                raise VideoError(f"video spec is not valid JSON ({error})", field="video") from None
        if isinstance(value, (str, os.PathLike)):
            return cls(str(value))
        if isinstance(value, dict) and isinstance(value.get("path"), str):
            return cls(value["path"], _optional_seconds(value, "video_start"), _optional_seconds(value, "video_end"))
        raise VideoError(f"expected a path or {{'path', 'video_start', 'video_end'}}, got {value!r}", field="video")


# What the OpenRLHF dataset (or a caller) gives as a clip: a spec, a path, {"path", "video_start",
# "video_end"} or its JSON string, possibly wrapped in a one-element list.
SpecLike = VideoSpec | str | os.PathLike | dict | list


def sample_frames(
    spec: SpecLike,
    *,
    family: ModelFamily | None = None,
    fps: float | None = None,
    total_pixels: int | None = None,
    min_pixels: int | None = None,
    backend: Backend = "auto",
    cache: bool = True,
    pool: DecodePool | None = None,
) -> SampledVideo:
    """Decode a clip and sample its frames as `family` (default: `default_family()`) does; errors name the file.

    `fps`, `total_pixels`, `min_pixels`: None takes the family's defaults. `pool`: decode (and resize) in one of
    its worker processes instead of this one; the cache stays in this process.
    """
    spec = VideoSpec.parse(spec)
    how = Sampling.of(family, fps=fps, total_pixels=total_pixels, min_pixels=min_pixels)

    def decode() -> SampledVideo:
        with _named(spec):
            return pool.decode(spec, how, backend) if pool is not None else _decode(spec, how, backend=backend)

    if not cache:
        return decode()
    return _CACHE.get_or_create(cache_key(spec, how), decode)


def probe(spec: SpecLike, *, family: ModelFamily | None = None, backend: Backend = "auto") -> float:
    """Open a clip, check its window and decode the first and last frame `sample_frames` would take.

    Returns the video's duration (s). Catches missing, empty, truncated and non-video files, clips
    too short to sample and windows outside the video, naming the file.
    """
    return probe_clip(spec, family=family, backend=backend).duration


def probe_clip(spec: SpecLike, *, family: ModelFamily | None = None, backend: Backend = "auto") -> ClipInfo:
    """`probe`, with what the sampled frames would be (`ClipInfo`; the family's rules at its default budget)."""
    spec = VideoSpec.parse(spec)
    how = Sampling.of(family)
    with _named(spec):
        reader = _open(spec.path, backend)
        indices, first, last, duration = _sampled_indices(reader, spec, how)
        ends = reader.get(indices[[0, -1]])
        height, width = sampled_size(how, len(indices))(ends.shape[1], ends.shape[2])
        return ClipInfo(duration, len(indices), height, width, *_sampled_times(reader, indices, first, last))


def probe_all(specs: Iterable[SpecLike], *, workers: int = 8) -> dict[VideoSpec, VideoError]:
    """`probe` every distinct clip (in threads, with a progress bar); the clips that fail, with their errors."""
    return probe_clips(specs, workers=workers)[1]


def probe_durations(
    specs: Iterable[SpecLike], *, workers: int = 8
) -> tuple[dict[VideoSpec, float], dict[VideoSpec, VideoError]]:
    """`probe_all`, also returning the video duration of every clip that opens (for records without one)."""
    infos, failed = probe_clips(specs, workers=workers)
    return {spec: info.duration for spec, info in infos.items()}, failed


def probe_clips(
    specs: Iterable[SpecLike], *, family: ModelFamily | None = None, workers: int = 8
) -> tuple[dict[VideoSpec, ClipInfo], dict[VideoSpec, VideoError]]:
    """`probe_clip` every distinct clip in threads (a progress bar past 200), sampled as `family` samples (default:
    `default_family()`): what each that opens holds, and the errors of those that do not."""
    distinct = list(dict.fromkeys(VideoSpec.parse(spec) for spec in specs))

    def check(spec: VideoSpec) -> ClipInfo | VideoError:
        try:
            return probe_clip(spec, family=family)
        except VideoError as error:
            return error

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(
            tqdm(
                pool.map(check, distinct),
                total=len(distinct),
                desc="probing videos",
                unit="clip",
                disable=len(distinct) < 200,
            )
        )
    infos = {spec: r for spec, r in zip(distinct, results, strict=True) if isinstance(r, ClipInfo)}
    return infos, {spec: r for spec, r in zip(distinct, results, strict=True) if isinstance(r, VideoError)}


@dataclass(frozen=True)
class Sampling:
    """How a clip is sampled: a model family's rules with its options."""

    family: ModelFamily
    fps: float
    total_pixels: int
    min_pixels: int

    @classmethod
    def of(
        cls,
        family: ModelFamily | None = None,
        *,
        fps: float | None = None,
        total_pixels: int | None = None,
        min_pixels: int | None = None,
    ) -> Sampling:
        """`family` (default: `default_family()`) with its defaults for the options not given."""
        family = family or default_family()
        return cls(
            family,
            family.FPS if fps is None else fps,
            family.TOTAL_PIXELS if total_pixels is None else total_pixels,
            family.MIN_PIXELS if min_pixels is None else min_pixels,
        )


def cache_key(spec: SpecLike, how: Sampling | None = None) -> tuple[object, ...]:
    """What identifies a sampled clip: the file (path, size, mtime), its window, and how it is sampled
    (default: the default family's defaults)."""
    spec = VideoSpec.parse(spec)
    how = how or Sampling.of()
    path = Path(spec.path)
    try:
        stat = path.stat()
    except OSError:
        raise VideoError("video file not found", source=spec.path) from None
    return (
        str(path.resolve()),
        stat.st_size,
        stat.st_mtime_ns,
        spec.start,
        spec.end,
        how.family.NAME,
        how.fps,
        how.total_pixels,
        how.min_pixels,
    )


def clear_cache() -> None:
    _CACHE.clear()


def cache_stats() -> tuple[int, int]:
    """(hits, misses) of the per-process frame cache."""
    return _CACHE.hits, _CACHE.misses


@contextmanager
def _named(spec: VideoSpec) -> Iterator[None]:
    """Re-raise any decoding failure as a VideoError that names the file."""
    if not Path(spec.path).is_file():
        raise VideoError("video file not found", source=spec.path)
    try:
        yield
    except VideoError as error:
        raise error.located(source=spec.path) from None
    except Exception as error:  # noqa: BLE001 -- decoder libraries raise many types
        raise VideoError(f"cannot decode video ({type(error).__name__}: {error})", source=spec.path) from None


def _window(reader: _Reader, spec: VideoSpec) -> tuple[int, int, float]:
    """First and last frame index of the spec's window, and the video's duration (s)."""
    total_frames, video_fps = reader.frame_count, reader.fps
    if total_frames <= 0 or not video_fps or video_fps <= 0:
        raise VideoError("video has no frames")
    duration = total_frames / video_fps
    start = spec.start or 0.0
    end = duration if spec.end is None else spec.end
    if start < 0 or end <= start:
        raise VideoError(f"clip window [{start}, {end}] is empty or negative", field="video_start")
    if start >= duration or end > duration + 1.0:
        raise VideoError(f"clip window [{start}, {end}] s lies beyond the video's {duration:.2f} s", field="video_end")
    first = max(0, math.ceil(start * video_fps))
    last = min(total_frames - 1, max(first, math.floor(end * video_fps) - 1))
    return first, last, duration


def _decode(spec: VideoSpec, how: Sampling, *, backend: Backend) -> SampledVideo:
    reader = _open(spec.path, backend)
    indices, first, last, _ = _sampled_indices(reader, spec, how)
    resized = reader.resized(indices, sampled_size(how, len(indices)))
    return SampledVideo(resized, *_sampled_times(reader, indices, first, last))


def _sampled_indices(reader: _Reader, spec: VideoSpec, how: Sampling) -> tuple[np.ndarray, int, int, float]:
    """The frames `how` samples of the clip's window: (indices, the window's first and last frame, the video's
    duration in s)."""
    first, last, duration = _window(reader, spec)
    return how.family.frame_indices(reader.frame_count, reader.fps, first, last, how.fps), first, last, duration


def _sampled_times(
    reader: _Reader, indices: np.ndarray, first: int, last: int
) -> tuple[float, tuple[float, ...], float]:
    """(sampling rate, the frames' times in the file, the file's frame rate) of sampled frames: what
    `SampledVideo` and `ClipInfo` record beside the frames."""
    sample_fps = len(indices) / max(last - first + 1, 1) * reader.fps
    return float(sample_fps), tuple(float(i) / reader.fps for i in indices), float(reader.fps)


# Frames resized at a time: each frame is resized on its own, so the values do not depend on it, but the float32
# copy does. All at once, an ActivityNet-like clip (300 frames of 1280x720) took a 3.3-GB float copy and 3.2 s on
# one thread; 8 at a time, 88 MB and 2.2 s (bench/video_pipeline.py --paper activitynet, 2 cores, 2026-12-06).
RESIZE_CHUNK = 8


def _resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    if frames.shape[1:3] == (height, width):
        return frames
    import torch
    import torch.nn.functional as F

    resized = np.empty((len(frames), height, width, frames.shape[3]), dtype=np.uint8)
    for start in range(0, len(frames), RESIZE_CHUNK):
        tensor = torch.from_numpy(frames[start : start + RESIZE_CHUNK]).permute(0, 3, 1, 2).float()
        tensor = F.interpolate(tensor, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
        resized[start : start + RESIZE_CHUNK] = tensor.clamp_(0, 255).round_().to(torch.uint8).permute(0, 2, 3, 1)
    return resized


Size = Callable[[int, int], tuple[int, int]]  # a decoded frame's (height, width) -> the sampled frames' size


def sampled_size(how: Sampling, count: int) -> Size:
    """The size `how` gives `count` sampled frames of a video decoded at (height, width)."""

    def size(height: int, width: int) -> tuple[int, int]:
        return how.family.frame_size(height, width, count, total_pixels=how.total_pixels, min_pixels=how.min_pixels)

    return size


class _Resized:
    """Sampled frames resized RESIZE_CHUNK at a time as they are decoded, each into its places among them, so a clip
    holds at most a chunk of frames at its own resolution (an ActivityNet-like clip's 300 sampled 720p frames were
    830 MB all at once). Each frame is resized on its own: the values are those of `_resize` on all of them."""

    def __init__(self, count: int, size: Size):
        self._count, self._size = count, size
        self._frames: np.ndarray | None = None
        self._pending: list[tuple[list[int], np.ndarray]] = []

    def add(self, places: list[int], frame: np.ndarray) -> None:
        if self._frames is None:
            height, width = self._size(frame.shape[0], frame.shape[1])
            self._frames = np.empty((self._count, height, width, frame.shape[2]), dtype=np.uint8)
        self._pending.append((places, frame))
        if len(self._pending) == RESIZE_CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            resized = _resize(np.stack([frame for _, frame in self._pending]), *self._frames.shape[1:3])
            for (places, _), frame in zip(self._pending, resized, strict=True):
                self._frames[places] = frame
            self._pending = []

    def frames(self) -> np.ndarray:
        self._flush()
        return self._frames


# decord is not safe to call from several threads at once: in a GPU run (2026-11-26) the executor's worker
# threads opening a batch's clips together aborted the whole vLLM actor inside VideoReader() ("Assertion
# ret >= 0 failed at libavcodec/bitstream.c"), before the first step. Frames are cached per video, so
# serialising decord costs a rollout little; PyAV keeps its state per container and needs no lock.
_DECORD_LOCK = threading.Lock()


class _DecordReader:
    def __init__(self, path: str):
        import decord

        with _DECORD_LOCK:
            self._video = decord.VideoReader(path, num_threads=1)
            self.frame_count = len(self._video)
            self.fps = float(self._video.get_avg_fps())

    def get(self, indices: np.ndarray) -> np.ndarray:
        with _DECORD_LOCK:
            return self._video.get_batch(list(indices)).asnumpy()

    def resized(self, indices: np.ndarray, size: Size) -> np.ndarray:
        frames = self.get(indices)
        return _resize(frames, *size(frames.shape[1], frames.shape[2]))


class _PyAVReader:
    """Decodes the stream once (seeking per frame is slower for 2-FPS sampling of short clips)."""

    def __init__(self, path: str):
        import av

        self._path = path
        with av.open(path) as container:
            stream = container.streams.video[0]
            self.fps = float(stream.average_rate or stream.guessed_rate or 0)
            # Matroska and WebM (many ActivityNet downloads) record no frame count: count the stream's packets, a
            # frame each, without decoding them (decoding a 150-s 720p clip to count it took seconds)
            self.frame_count = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)

    def get(self, indices: np.ndarray) -> np.ndarray:
        found: dict[int, np.ndarray] = dict(self._decoded(indices))
        return np.stack([found[int(i)] for i in indices])

    def resized(self, indices: np.ndarray, size: Size) -> np.ndarray:
        places: dict[int, list[int]] = {}
        for place, index in enumerate(indices):
            places.setdefault(int(index), []).append(place)
        resized = _Resized(len(indices), size)
        for index, frame in self._decoded(indices):
            resized.add(places[index], frame)
        return resized.frames()

    def _decoded(self, indices: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """(index, RGB frame) of each distinct wanted frame, in stream order, as it is decoded; VideoError where the
        stream ends before the last one."""
        import av

        wanted = {int(i) for i in indices}
        found = set()
        with av.open(self._path) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index in wanted:
                    found.add(index)
                    yield index, frame.to_ndarray(format="rgb24")
                if index >= max(wanted):
                    break
        missing = wanted - found
        if missing:
            raise VideoError(f"video is truncated: frame(s) {sorted(missing)[:5]} could not be decoded")


_Reader = _DecordReader | _PyAVReader


def _open(path: str, backend: Backend) -> _Reader:
    if backend == "pyav":
        return _PyAVReader(path)
    if backend == "decord":
        return _DecordReader(path)
    try:
        return _DecordReader(path)
    except ImportError:
        return _PyAVReader(path)
    except Exception:  # noqa: BLE001 -- decord cannot open some containers that PyAV reads
        return _PyAVReader(path)


# ---------------------------------------------------------------- decoding in worker processes

DECODE_PROCESSES_ENV = "RARFT_DECODE_PROCESSES"
# Decoding stays in the calling process unless $RARFT_DECODE_PROCESSES asks for workers: on the H100 host the pool
# was slower than the engine's threads for Charades-like clips (0.74-0.81x, bench/video_pipeline.py; docs/gpu.md
# "Paper scale"), and the rollouts' decoder needs no lock (ROLLOUT_BACKEND). bench/gpu_scale.sh measures both.
DEFAULT_DECODE_PROCESSES = 0


@dataclass(frozen=True)
class _WorkerFailure:
    """A decoding error in a worker, carried back as text (exceptions with keyword fields do not pickle back)."""

    message: str
    field: str | None


def _init_decode_worker() -> None:
    try:
        import torch

        torch.set_num_threads(1)  # one clip per process; the processes are the parallelism
    except ImportError:
        pass


def _decode_in_worker(
    spec: VideoSpec, family_name: str, sampling: tuple[float, int, int], backend: Backend
) -> SampledVideo | _WorkerFailure:
    how = Sampling(family_named(family_name), *sampling)
    try:
        return _decode(spec, how, backend=backend)
    except VideoError as error:
        return _WorkerFailure(error.message, error.field)
    except Exception as error:  # noqa: BLE001 -- decoder libraries raise many types; the parent names the file
        return _WorkerFailure(f"cannot decode video ({type(error).__name__}: {error})", None)


class DecodePool:
    """Decoding and resizing clips in `processes` worker processes, for `sample_frames(..., pool=...)`.

    Why: decord is not safe to call from two threads at once (`_DECORD_LOCK`), so in one process the distinct
    clips of a step decode one after another; at the paper's scale (16 distinct clips a step, a 30-s 480p clip
    taking about a second and a 150-s 720p one several) that queue sits on the rollouts' critical path. Each
    worker is a process of its own (spawned, so nothing of a CUDA or vLLM parent is inherited) with its own
    decord, so clips decode in parallel and a decoder crash ("Assertion ... libavcodec") takes down a worker, not
    the engine: the rollout fails naming the file and the pool is restarted.
    """

    def __init__(self, processes: int):
        if processes < 1:
            raise ValueError(f"a decode pool needs at least one process, got {processes}")
        self.processes = processes
        self._lock = threading.Lock()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_decode_worker,
        )

    def decode(self, spec: VideoSpec, how: Sampling, backend: Backend = "auto") -> SampledVideo:
        """`spec` sampled as `how` says, decoded in a worker; a VideoError (without its file: `_named` adds it)."""
        with self._lock:
            pool = self._pool
        sampling = (how.fps, how.total_pixels, how.min_pixels)
        try:
            result = pool.submit(_decode_in_worker, spec, how.family.NAME, sampling, backend).result()
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:  # the first caller to see it restarts the pool
                    self._pool = self._start()
            raise VideoError("the decoding process died on this clip (a decoder crash)") from None
        if isinstance(result, _WorkerFailure):
            raise VideoError(result.message, field=result.field)
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


_POOL: DecodePool | None = None
_POOL_LOCK = threading.Lock()


def decode_processes(environ: Mapping[str, str] | None = None) -> int:
    """The decoding processes $RARFT_DECODE_PROCESSES asks for (unset or empty: `DEFAULT_DECODE_PROCESSES`, 0)."""
    environ = os.environ if environ is None else environ
    text = environ.get(DECODE_PROCESSES_ENV, "").strip()
    try:
        return max(0, int(text)) if text else DEFAULT_DECODE_PROCESSES
    except ValueError:
        raise ValueError(f"${DECODE_PROCESSES_ENV} must be a whole number of processes, got {text!r}") from None


def decode_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """`{RARFT_DECODE_PROCESSES: n}` when the variable is set (checked: a bad value is a ValueError naming it), for
    the Ray workers whose executors read it; else {}."""
    environ = os.environ if environ is None else environ
    if not environ.get(DECODE_PROCESSES_ENV, "").strip():
        return {}
    return {DECODE_PROCESSES_ENV: str(decode_processes(environ))}


def decode_pool(environ: Mapping[str, str] | None = None) -> DecodePool | None:
    """This process's shared `DecodePool` of `decode_processes()` processes; None when that is 0 (the default:
    decode in the calling threads, one clip at a time through decord's lock)."""
    global _POOL
    processes = decode_processes(environ)
    if processes <= 0:
        return None
    with _POOL_LOCK:
        if _POOL is None or _POOL.processes != processes:
            if _POOL is not None:
                _POOL.close()
            _POOL = DecodePool(processes)
        return _POOL


_CACHE: LruCache[SampledVideo] = LruCache(CACHE_SIZE)


def _optional_seconds(value: dict, name: str) -> float | None:
    seconds = value.get(name)
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise VideoError(f"must be a finite number of seconds, got {seconds!r}", field=name)
    return float(seconds)


# ---------------------------------------------------------------- which file a record's `video` names


def video_extension(text: str) -> str:
    """A `--video-ext` value: '.mp4' or 'mp4' -> '.mp4'."""
    text = text.strip()
    if not text.strip("."):
        raise argparse.ArgumentTypeError(f"expected a file extension such as .mp4, got {text!r}")
    return text if text.startswith(".") else f".{text}"


def video_candidates(
    path: str, *, video_root: Path | None, base: Path, extensions: Sequence[str] = VIDEO_EXTENSIONS
) -> list[Path]:
    """The files a record's `video` may name, in the order they are tried.

    The path as written (absolute, or relative to the data file's folder `base`); under
    `video_root`: the relative path, then the file name alone (the released files' absolute author
    paths, e.g. `/data/.../Charades_v1/E6DLK.mp4`, resolve by name). A name without a video
    extension (a bare id such as `AO8RW` from Charades-STA) is also tried with each of
    `extensions`.

    >>> [str(p) for p in video_candidates("AO8RW", video_root=Path("videos"), base=Path("data"), extensions=[".mp4"])]
    ['data/AO8RW', 'data/AO8RW.mp4', 'videos/AO8RW', 'videos/AO8RW.mp4']
    """
    written = Path(path)
    places = [written if written.is_absolute() else base / written]
    if video_root is not None:
        if not written.is_absolute():
            places.append(video_root / written)
        places.append(video_root / written.name)
    with_extension = written.suffix.lower() in {e.lower() for e in extensions}
    candidates = []
    for place in places:
        for candidate in [place] if with_extension else [place, *(place.with_name(place.name + e) for e in extensions)]:
            if candidate not in candidates:
                candidates.append(candidate)
    return candidates


def resolve_video(
    path: str, *, video_root: Path | None, base: Path, extensions: Sequence[str] = VIDEO_EXTENSIONS
) -> Path:
    """The first non-empty existing candidate (`video_candidates`); a DataError saying what was tried.

    An existing but empty file is reported as empty, not as missing.
    """
    candidates = video_candidates(path, video_root=video_root, base=base, extensions=extensions)
    empty = []
    for candidate in candidates:
        if candidate.is_file():
            if candidate.stat().st_size > 0:
                return candidate.resolve()
            empty.append(candidate)
    if empty:
        raise DataError(f"{path}: video file is empty (0 bytes): {', '.join(map(str, empty))}")
    where = f"under --video-root {video_root}" if video_root is not None else "(no --video-root given)"
    raise DataError(f"{path}: video not found {where}; tried {', '.join(map(str, candidates))}")


class MissingVideos(DataError):
    """Videos that were not found or are empty: the message lists the first MAX_LISTED, `failures`
    all of them as (video as written, record index, reason)."""

    def __init__(self, message: str, failures: list[tuple[str, int, str]], **where):
        super().__init__(message, **where)
        self.failures = failures

    def located(self, *, source: str | None = None, record: object = None) -> MissingVideos:
        return MissingVideos(
            self.message,
            self.failures,
            source=self.source if self.source is not None else source,
            record=self.record if self.record is not None else record,
            field=self.field,
        )


def resolve_videos(
    examples: list[Example], *, video_root: Path | None, source: Path, extensions: Sequence[str] = VIDEO_EXTENSIONS
) -> dict[str, Path]:
    """Every distinct video path -> its file; raises one MissingVideos listing all the unusable ones."""
    resolved: dict[str, Path] = {}
    failed: dict[str, tuple[int, DataError]] = {}
    for example in examples:
        path = example.item.video
        if path in resolved or path in failed:
            continue
        try:
            resolved[path] = resolve_video(path, video_root=video_root, base=source.parent, extensions=extensions)
        except DataError as error:
            failed[path] = (example.item.index, error)
    if failed:
        listed = "; ".join(f"record {index}: {error}" for index, error in list(failed.values())[:MAX_LISTED])
        more = f" (and {len(failed) - MAX_LISTED} more)" if len(failed) > MAX_LISTED else ""
        raise MissingVideos(
            f"{len(failed)} video(s) not found or empty: {listed}{more}",
            [(path, index, error.message) for path, (index, error) in failed.items()],
            source=str(source),
        )
    return resolved


def video_spec(example: Example, video: Path) -> VideoSpec:
    """The clip an example asks about: its resolved file and its item's window."""
    return VideoSpec(str(video), example.item.video_start, example.item.video_end)


def check_clips(examples: list[Example], videos: dict[str, Path], *, source: Path) -> dict[VideoSpec, float]:
    """Probe every clip the examples use; one DataError listing every clip that fails, with a record of each.

    Returns each clip's measured video duration (s): the duration of records whose file has none.
    """
    records = {}
    for example in examples:
        records.setdefault(video_spec(example, videos[example.item.video]), example.item.index)
    durations, failed = probe_durations(records)
    if failed:
        listed = "; ".join(f"record {records[spec]}: {error}" for spec, error in list(failed.items())[:MAX_LISTED])
        more = f" (and {len(failed) - MAX_LISTED} more)" if len(failed) > MAX_LISTED else ""
        raise DataError(f"{len(failed)} video clip(s) cannot be used: {listed}{more}", source=str(source))
    return durations
