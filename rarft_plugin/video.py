"""Video files: which clip a record names, decoding it, sampling its frames, probing it.

- `VideoSpec`: a file and a window of it (`video_start`/`video_end`), parsed from what the OpenRLHF
  dataset carries (a path, a dict or its JSON string).
- `sample_frames(spec)`: decodes a clip (decord by default, PyAV as fallback) and takes its frames
  the way a model family samples them (`rarft_plugin.models`; the default family is Qwen2.5-VL:
  2 FPS, a total-pixel budget of 3584·28·28, frame sides multiples of 28). The result holds the
  frames and their real sampling rate, which the family hands the model's processor and vLLM.
  Decoded clips are kept in a per-process single-flight LRU cache keyed by (path, file size, mtime,
  window, family and sampling options), so the G rollouts of one prompt, which OpenRLHF starts
  together, decode the video once.
- `probe(spec)`, `probe_all` / `probe_durations`: open a clip and decode the first and last frame of
  its window, so bad files are found when a dataset is converted rather than inside a rollout.
- Resolution of the `video` a released record names to a file (`video_candidates`, `resolve_video`,
  `resolve_videos`), and the clips of a set of examples (`video_spec`, `check_clips`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from tqdm import tqdm

from rarft_plugin.cache import LruCache
from rarft_plugin.errors import DataError
from rarft_plugin.models import ModelFamily, default_family

if TYPE_CHECKING:
    from rarft_plugin.dataset import Example

__all__ = [
    "VIDEO_EXTENSIONS",
    "Backend",
    "MissingVideos",
    "SampledVideo",
    "Sampling",
    "VideoError",
    "VideoSpec",
    "cache_key",
    "cache_stats",
    "check_clips",
    "clear_cache",
    "probe",
    "probe_all",
    "probe_durations",
    "resolve_video",
    "resolve_videos",
    "sample_frames",
    "video_candidates",
    "video_extension",
    "video_spec",
]

CACHE_SIZE = 32
MAX_LISTED = 20  # failures named in one error message; the rest are counted
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")
Backend = Literal["auto", "decord", "pyav"]


class VideoError(DataError):
    """A video that cannot be used: missing, unreadable, empty, or a clip window outside it."""


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


@dataclass(frozen=True)
class SampledVideo:
    """Frames (T, H, W, 3) uint8, already resized; fps of the sampling; source timestamps (s); the file's frame
    rate (None where unknown)."""

    frames: np.ndarray
    fps: float
    timestamps: tuple[float, ...]
    source_fps: float | None = None


def sample_frames(
    spec: SpecLike,
    *,
    family: ModelFamily | None = None,
    fps: float | None = None,
    total_pixels: int | None = None,
    min_pixels: int | None = None,
    backend: Backend = "auto",
    cache: bool = True,
) -> SampledVideo:
    """Decode a clip and sample its frames as `family` (default: `default_family()`) does; errors name the file.

    `fps`, `total_pixels`, `min_pixels`: None takes the family's defaults.
    """
    spec = VideoSpec.parse(spec)
    how = Sampling.of(family, fps=fps, total_pixels=total_pixels, min_pixels=min_pixels)

    def decode() -> SampledVideo:
        with _named(spec):
            return _decode(spec, how, backend=backend)

    if not cache:
        return decode()
    return _CACHE.get_or_create(cache_key(spec, how), decode)


def probe(spec: SpecLike, *, family: ModelFamily | None = None, backend: Backend = "auto") -> float:
    """Open a clip, check its window and decode the first and last frame `sample_frames` would take.

    Returns the video's duration (s). Catches missing, empty, truncated and non-video files, clips
    too short to sample and windows outside the video, naming the file.
    """
    spec = VideoSpec.parse(spec)
    family = family or default_family()
    with _named(spec):
        reader = _open(spec.path, backend)
        first, last, duration = _window(reader, spec)
        indices = family.frame_indices(reader.frame_count, reader.fps, first, last, family.FPS)
        reader.get(indices[[0, -1]])
        return duration


def probe_all(specs: Iterable[SpecLike], *, workers: int = 8) -> dict[VideoSpec, VideoError]:
    """`probe` every distinct clip (in threads, with a progress bar); the clips that fail, with their errors."""
    return probe_durations(specs, workers=workers)[1]


def probe_durations(
    specs: Iterable[SpecLike], *, workers: int = 8
) -> tuple[dict[VideoSpec, float], dict[VideoSpec, VideoError]]:
    """`probe_all`, also returning the video duration of every clip that opens (for records without one)."""
    distinct = list(dict.fromkeys(VideoSpec.parse(spec) for spec in specs))

    def check(spec: VideoSpec) -> float | VideoError:
        try:
            return probe(spec)
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
    durations = {spec: r for spec, r in zip(distinct, results, strict=True) if not isinstance(r, VideoError)}
    return durations, {spec: r for spec, r in zip(distinct, results, strict=True) if isinstance(r, VideoError)}


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
    first, last, _ = _window(reader, spec)
    indices = how.family.frame_indices(reader.frame_count, reader.fps, first, last, how.fps)
    frames = reader.get(indices)
    height, width = how.family.frame_size(
        frames.shape[1], frames.shape[2], len(indices), total_pixels=how.total_pixels, min_pixels=how.min_pixels
    )
    sample_fps = len(indices) / max(last - first + 1, 1) * reader.fps
    return SampledVideo(
        frames=_resize(frames, height, width),
        fps=float(sample_fps),
        timestamps=tuple(float(i) / reader.fps for i in indices),
        source_fps=float(reader.fps),
    )


def _resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    if frames.shape[1:3] == (height, width):
        return frames
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    tensor = F.interpolate(tensor, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return tensor.clamp_(0, 255).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


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


class _PyAVReader:
    """Decodes the stream once (seeking per frame is slower for 2-FPS sampling of short clips)."""

    def __init__(self, path: str):
        import av

        self._path = path
        with av.open(path) as container:
            stream = container.streams.video[0]
            self.fps = float(stream.average_rate or stream.guessed_rate or 0)
            self.frame_count = stream.frames or sum(1 for _ in container.decode(video=0))

    def get(self, indices: np.ndarray) -> np.ndarray:
        import av

        wanted = {int(i) for i in indices}
        found: dict[int, np.ndarray] = {}
        with av.open(self._path) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index in wanted:
                    found[index] = frame.to_ndarray(format="rgb24")
                if index >= max(wanted):
                    break
        missing = wanted - set(found)
        if missing:
            raise VideoError(f"video is truncated: frame(s) {sorted(missing)[:5]} could not be decoded")
        return np.stack([found[int(i)] for i in indices])


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
