"""Frame sampling for Qwen2.5-VL video input, the way the released code feeds it.

`sample_frames(spec)` decodes a clip (decord by default, PyAV as fallback), takes frames at
2 FPS between `video_start` and `video_end`, and resizes them by Qwen2.5-VL's rules:
height and width multiples of 28, an even number of frames, per-frame pixels bounded by a
total-pixel budget (default 3584·28·28 ≈ 2.8M, as the paper and released code) and a minimum
(16·28·28). The result holds what both the HF processor and vLLM's
`multi_modal_data={"video": frames}` take, with the sampling fps that sets
`second_per_grid_ts` (temporal patch size / fps) for the model's temporal position ids.

Decoded clips are kept in a per-process LRU cache keyed by (path, file size, mtime, sampling
options), so the G rollouts of one prompt decode the video once. OpenRLHF starts the G rollouts of
a prompt together, so the cache is single-flight: concurrent callers of one key wait for the first
decode instead of each missing the cache.

`probe(spec)` opens a clip and decodes the first and last frame of its window, so bad files are
found when a dataset is converted rather than inside a rollout.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from rarft_plugin.errors import DataError

IMAGE_FACTOR = 28
FRAME_FACTOR = 2
FPS = 2.0
MIN_FRAMES = 4
MAX_FRAMES = 768
MIN_PIXELS = 16 * 28 * 28
TOTAL_PIXELS = 3584 * 28 * 28
MAX_PIXELS_PER_FRAME = 768 * 28 * 28
TEMPORAL_PATCH_SIZE = 2
CACHE_SIZE = 32
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
    def parse(cls, value: Any) -> VideoSpec:
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


@dataclass(frozen=True)
class SampledVideo:
    """Frames (T, H, W, 3) uint8, already resized; fps of the sampling; source timestamps (s)."""

    frames: np.ndarray
    fps: float
    timestamps: tuple[float, ...]

    @property
    def second_per_grid(self) -> float:
        return TEMPORAL_PATCH_SIZE / self.fps

    def metadata(self) -> dict[str, Any]:
        """The frames described as transformers' `VideoMetadata`: these frames are the video, at `fps`.

        Qwen2.5-VL's processor derives `second_per_grid_ts` from it (temporal patch size / fps),
        and vLLM requires it beside the frames of a Qwen2.5-VL video.
        """
        count, height, width = self.frames.shape[:3]
        return {
            "total_num_frames": count,
            "fps": self.fps,
            "width": width,
            "height": height,
            "duration": count / self.fps,
            "frames_indices": list(range(count)),
        }


# How vLLM takes a Qwen2.5-VL video whose frames are already sampled, by release. Both ways hand the HF
# processor the frames' metadata, so it derives second_per_grid_ts = temporal patch size / fps (the
# temporal M-RoPE positions) exactly as training does:
# - >= 0.31: `multi_modal_data={"video": (frames, metadata)}`; the metadata reaches the processor.
# - 0.26-0.30: Qwen2-VL's data parser drops item metadata (`video_needs_metadata` is False there) and the
#   processor then assumes 24 fps (positions 12x too dense for 2-FPS frames). Per-request
#   `mm_processor_kwargs` do reach the processor call, so the frames go alone and the metadata rides there.
# - older: not supported; the per-request metadata path was verified from 0.26 on only.
VLLM_METADATA_IN_ITEM = "0.31.0"
VLLM_OLDEST_SUPPORTED = "0.26.0"


@dataclass(frozen=True)
class VllmVideoRequest:
    """What a vLLM prompt carries for one video: `multi_modal_data`, and `mm_processor_kwargs` where needed."""

    multi_modal_data: dict[str, Any]
    mm_processor_kwargs: dict[str, Any] | None = None


def check_vllm_version(version: str) -> None:
    """Refuse a vLLM that rarft cannot hand a Qwen2.5-VL video's frame rate (see `vllm_video_request`)."""
    from packaging.version import Version

    if Version(version) < Version(VLLM_OLDEST_SUPPORTED):
        raise RuntimeError(
            f"vLLM {version} is not supported for video rollouts: rarft hands Qwen2.5-VL the frames' metadata "
            f"(fps, hence the temporal positions) through per-request processor options verified from vLLM "
            f"{VLLM_OLDEST_SUPPORTED} on; install vllm>={VLLM_OLDEST_SUPPORTED} (docs/gpu.md lists tested pairs)"
        )


def vllm_video_request(video: SampledVideo, vllm_version: str) -> VllmVideoRequest:
    """The video part of a vLLM prompt for `vllm_version` (see the table above `VllmVideoRequest`).

    >>> clip = SampledVideo(np.zeros((2, 28, 28, 3), np.uint8), 2.0, (0.0, 0.5))
    >>> vllm_video_request(clip, "0.31.0").mm_processor_kwargs is None
    True
    >>> vllm_video_request(clip, "0.26.0").mm_processor_kwargs["video_metadata"]["fps"]
    2.0
    """
    from packaging.version import Version

    check_vllm_version(vllm_version)
    metadata = video.metadata()
    if Version(vllm_version) >= Version(VLLM_METADATA_IN_ITEM):
        return VllmVideoRequest({"video": (video.frames, {**metadata, "do_sample_frames": False})})
    return VllmVideoRequest({"video": video.frames}, {"video_metadata": metadata, "do_sample_frames": False})


def processor_video_inputs(videos: Sequence[SampledVideo]) -> dict[str, Any]:
    """`videos=` and `video_metadata=` for a Qwen2.5-VL processor call, built as vLLM builds them.

    >>> inputs = processor(text=prompts, **processor_video_inputs(clips), return_tensors="pt")  # doctest: +SKIP
    """
    from transformers.video_utils import VideoMetadata

    return {"videos": [v.frames for v in videos], "video_metadata": [VideoMetadata(**v.metadata()) for v in videos]}


def smart_resize(
    height: int, width: int, *, factor: int = IMAGE_FACTOR, min_pixels: int, max_pixels: int
) -> tuple[int, int]:
    """Qwen2.5-VL's resize: multiples of `factor`, aspect ratio kept, pixels within [min, max].

    >>> smart_resize(240, 320, min_pixels=16 * 28 * 28, max_pixels=100 * 28 * 28)
    (252, 308)
    """
    if max(height, width) / max(1, min(height, width)) > 200:
        raise VideoError(f"aspect ratio of {width}x{height} is beyond 200")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def frame_indices(total_frames: int, video_fps: float, first: int, last: int, fps: float = FPS) -> np.ndarray:
    """Evenly spaced frame indices in [first, last] at about `fps`, an even count (Qwen's rule)."""
    available = last - first + 1
    wanted = available / video_fps * fps
    count = min(max(wanted, MIN_FRAMES), MAX_FRAMES, available)
    count = max(FRAME_FACTOR, int(count // FRAME_FACTOR) * FRAME_FACTOR)
    if count > available:
        raise VideoError(f"the clip has {available} frame(s); at least {FRAME_FACTOR} are needed")
    return np.linspace(first, last, count).round().astype(np.int64)


def sample_frames(
    spec: Any,
    *,
    fps: float = FPS,
    total_pixels: int = TOTAL_PIXELS,
    min_pixels: int = MIN_PIXELS,
    backend: Backend = "auto",
    cache: bool = True,
) -> SampledVideo:
    """Decode and resize a clip for Qwen2.5-VL (see the module docstring). Errors name the file."""
    spec = VideoSpec.parse(spec)

    def decode() -> SampledVideo:
        with _named(spec):
            return _decode(spec, fps=fps, total_pixels=total_pixels, min_pixels=min_pixels, backend=backend)

    if not cache:
        return decode()
    return _CACHE.get_or_create(cache_key(spec, fps=fps, total_pixels=total_pixels, min_pixels=min_pixels), decode)


def probe(spec: Any, *, backend: Backend = "auto") -> float:
    """Open a clip, check its window and decode the first and last frame `sample_frames` would take.

    Returns the video's duration (s). Catches missing, empty, truncated and non-video files, clips
    too short to sample and windows outside the video, naming the file.
    """
    spec = VideoSpec.parse(spec)
    with _named(spec):
        reader = _open(spec.path, backend)
        first, last, duration = _window(reader, spec)
        indices = frame_indices(reader.frame_count, reader.fps, first, last)
        reader.get(indices[[0, -1]])
        return duration


def probe_all(specs: Iterable[Any], *, workers: int = 8) -> dict[VideoSpec, VideoError]:
    """`probe` every distinct clip (in threads, with a progress bar); the clips that fail, with their errors."""
    distinct = list(dict.fromkeys(VideoSpec.parse(spec) for spec in specs))

    def check(spec: VideoSpec) -> VideoError | None:
        try:
            probe(spec)
        except VideoError as error:
            return error
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        errors = list(tqdm(pool.map(check, distinct), total=len(distinct), desc="probing videos", unit="clip",
                           disable=len(distinct) < 200))
    return {spec: error for spec, error in zip(distinct, errors) if error is not None}


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


def cache_key(spec: Any, *, fps: float = FPS, total_pixels: int = TOTAL_PIXELS, min_pixels: int = MIN_PIXELS) -> tuple:
    """What identifies a sampled clip: the file (path, size, mtime), its window and the sampling options."""
    spec = VideoSpec.parse(spec)
    path = Path(spec.path)
    try:
        stat = path.stat()
    except OSError:
        raise VideoError("video file not found", source=spec.path) from None
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns, spec.start, spec.end, fps, total_pixels, min_pixels)


def _window(reader, spec: VideoSpec) -> tuple[int, int, float]:
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


def _decode(spec: VideoSpec, *, fps: float, total_pixels: int, min_pixels: int, backend: Backend) -> SampledVideo:
    reader = _open(spec.path, backend)
    first, last, _ = _window(reader, spec)
    total_frames, video_fps = reader.frame_count, reader.fps
    indices = frame_indices(total_frames, video_fps, first, last, fps)
    frames = reader.get(indices)
    count = len(indices)
    max_pixels = max(min(MAX_PIXELS_PER_FRAME, total_pixels / count * FRAME_FACTOR), int(min_pixels * 1.05))
    height, width = smart_resize(frames.shape[1], frames.shape[2], min_pixels=min_pixels, max_pixels=int(max_pixels))
    sample_fps = count / max(last - first + 1, 1) * video_fps
    return SampledVideo(
        frames=_resize(frames, height, width),
        fps=float(sample_fps),
        timestamps=tuple(float(i) / video_fps for i in indices),
    )


def _resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    if frames.shape[1:3] == (height, width):
        return frames
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    tensor = F.interpolate(tensor, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return tensor.clamp_(0, 255).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


class _DecordReader:
    def __init__(self, path: str):
        import decord

        self._video = decord.VideoReader(path, num_threads=1)
        self.frame_count = len(self._video)
        self.fps = float(self._video.get_avg_fps())

    def get(self, indices: np.ndarray) -> np.ndarray:
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


def _open(path: str, backend: Backend):
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


class LruCache:
    """A small thread-safe, single-flight LRU map with hit / miss counters.

    `get_or_create(key, create)` runs `create()` once per key: callers that arrive while it runs
    wait for its value (or its error) and count as hits.
    """

    def __init__(self, size: int):
        self._size = size
        self._items: OrderedDict = OrderedDict()
        self._pending: dict[Any, Future] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_create(self, key, create: Callable[[], Any]):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            waiting_for = self._pending.get(key)
            if waiting_for is None:
                pending = self._pending[key] = Future()
                self.misses += 1
            else:
                self.hits += 1
        if waiting_for is not None:
            return waiting_for.result()
        try:
            value = create()
        except BaseException as error:
            with self._lock:
                del self._pending[key]
            pending.set_exception(error)
            raise
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)
            del self._pending[key]
        pending.set_result(value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0


_CACHE = LruCache(CACHE_SIZE)


def clear_cache() -> None:
    _CACHE.clear()


def cache_stats() -> tuple[int, int]:
    """(hits, misses) of the per-process frame cache."""
    return _CACHE.hits, _CACHE.misses


def _optional_seconds(value: dict, name: str) -> float | None:
    seconds = value.get(name)
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise VideoError(f"must be a finite number of seconds, got {seconds!r}", field=name)
    return float(seconds)
