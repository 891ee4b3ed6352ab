from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rarft_plugin.clips import VideoError
from rarft_plugin.errors import DataError
from rarft_plugin.models.qwen2_5_vl import Qwen2_5_VL
from rarft_plugin.stand_ins import write_test_video
from rarft_plugin.video import (
    RESIZE_CHUNK,
    VideoSpec,
    _resize,
    cache_stats,
    clear_cache,
    probe,
    probe_all,
    probe_durations,
    resolve_video,
    sample_frames,
    video_candidates,
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_test_video(tmp_path_factory.mktemp("v") / "clip.mp4", seconds=20, fps=10, size=(320, 240))


@pytest.mark.parametrize("backend", ["decord", "pyav"])
@pytest.mark.parametrize(
    "start, end, frames, first_second",
    [(None, None, 40, 0), (5.0, 10.0, 10, 5), (0.0, 3.0, 6, 0), (18.0, 25.0, 4, 18)],  # end past 20 s: within 1 s
)
def test_sampling_windows(family, clip, backend, start, end, frames, first_second):
    if end == 25.0:
        end = 20.5
    video = sample_frames(VideoSpec(str(clip), start, end), family=family, backend=backend, cache=False)
    assert video.frames.shape[0] == frames and video.frames.dtype == np.uint8
    assert video.frames.shape[1] % family.IMAGE_FACTOR == 0 and video.frames.shape[2] % family.IMAGE_FACTOR == 0
    assert video.source_fps == 10.0
    assert video.fps == pytest.approx(2.0, rel=0.1)
    assert int(video.timestamps[0]) == first_second
    red = video.frames[0, ..., 0].mean()  # the clip's red level is 20 x the second
    assert abs(red - (20 * first_second) % 256) < 12


@pytest.mark.parametrize(
    "name, codec",
    [("clip.mp4", "mpeg4"), ("clip.mp4", "libx264"), ("clip.mkv", "libx264"), ("clip.webm", "libvpx")],
)
def test_decord_and_pyav_give_the_same_frames(tmp_path, name, codec):
    """The rollouts decode with PyAV (ROLLOUT_BACKEND), evaluation with decord first: the same frames, also from
    Matroska / WebM files, which record no frame count (PyAV counts their packets)."""
    clip = write_test_video(tmp_path / name, seconds=20, fps=10, size=(320, 240), codec=codec)
    a = sample_frames(str(clip), backend="decord", cache=False)
    b = sample_frames(str(clip), backend="pyav", cache=False)
    assert a.timestamps == b.timestamps and np.array_equal(a.frames, b.frames)


@pytest.mark.parametrize("count", [1, RESIZE_CHUNK, 2 * RESIZE_CHUNK + 3])
def test_frames_are_resized_a_chunk_at_a_time_to_the_values_of_all_at_once(count):
    import torch
    import torch.nn.functional as F

    frames = np.random.default_rng(count).integers(0, 256, (count, 60, 90, 3), dtype=np.uint8)
    whole = F.interpolate(
        torch.from_numpy(frames).permute(0, 3, 1, 2).float(), size=(28, 56), mode="bicubic", antialias=True
    )
    expected = whole.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(_resize(frames, 28, 56), expected)


# sampled frame indices of the 200-frame clip: every 5th, repeats (a short window sampled above its rate), one
# frame, one past a chunk
STREAMED_INDICES = {
    "every-5th": np.arange(0, 200, 5),
    "repeats": np.array([0, 0, 1, 1, 1, 2, 9, 9]),
    "one": np.array([17]),
    "chunk-plus-one": np.arange(RESIZE_CHUNK + 1) * 3,
}


@pytest.mark.parametrize("name", STREAMED_INDICES)
def test_pyav_resizes_as_it_decodes_holding_a_chunk_at_most(clip, name, monkeypatch):
    """The rollouts' reader resizes the sampled frames a chunk at a time as they are decoded (an ActivityNet-like
    clip held 830 MB of 720p frames before): the same frames as decoding all, then resizing them."""
    from rarft_plugin import video

    indices = STREAMED_INDICES[name]
    reader = video._PyAVReader(str(clip))
    whole = video._resize(reader.get(indices), 56, 84)
    batches = []
    real_resize = video._resize

    def counting(frames, height, width):
        batches.append(len(frames))
        return real_resize(frames, height, width)

    monkeypatch.setattr(video, "_resize", counting)
    sizes = []
    streamed = reader.resized(indices, lambda height, width: sizes.append((height, width)) or (56, 84))
    assert np.array_equal(streamed, whole) and sizes == [(240, 320)]
    assert max(batches) <= RESIZE_CHUNK and sum(batches) == len(set(indices.tolist()))


def test_pyav_names_the_missing_frames_of_a_truncated_stream(clip):
    from rarft_plugin import video

    with pytest.raises(VideoError, match=r"truncated: frame\(s\) \[200, 201\]"):
        video._PyAVReader(str(clip)).resized(np.array([0, 200, 201]), lambda height, width: (28, 28))


def test_total_pixel_budget(family, clip):
    budget = 40 * family.IMAGE_FACTOR**2
    video = sample_frames(str(clip), family=family, total_pixels=budget, cache=False)
    per_frame = video.frames.shape[1] * video.frames.shape[2]
    minimum = family.MIN_PIXELS * 1.05 * video.frames.shape[0] / 2
    assert per_frame * video.frames.shape[0] / 2 <= max(budget, minimum)


def test_cache_decodes_each_clip_once(clip):
    clear_cache()
    first = sample_frames(str(clip))
    for _ in range(7):  # the other G-1 rollouts of the prompt
        assert sample_frames(str(clip)) is first
    assert cache_stats() == (7, 1)
    sample_frames(VideoSpec(str(clip), 1.0, 2.0))  # another window is another entry
    assert cache_stats() == (7, 2)


def _file(path, content):
    path.write_bytes(content)
    return path


def _truncated(tmp_path, clip):
    data = clip.read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) // 3])
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda tmp, clip: tmp / "missing.mp4", "video file not found"),
        (lambda tmp, clip: _file(tmp / "empty.mp4", b""), "cannot decode"),
        (lambda tmp, clip: _file(tmp / "text.mp4", b"not a video"), "cannot decode"),
        (lambda tmp, clip: VideoSpec(str(clip), 0, 60), "beyond the video"),
        (lambda tmp, clip: VideoSpec(str(clip), 30, 40), "beyond the video"),
        (lambda tmp, clip: VideoSpec(str(clip), 5, 5), "empty or negative"),
        (lambda tmp, clip: {"path": str(clip), "video_start": "soon"}, "finite number"),
        (lambda tmp, clip: '{"path": ', "not valid JSON"),
    ],
)
@pytest.mark.parametrize("read", [lambda spec: sample_frames(spec, cache=False), probe], ids=["sample_frames", "probe"])
def test_bad_videos_name_the_file(tmp_path, clip, make, message, read):
    spec = make(tmp_path, clip)
    with pytest.raises(VideoError, match=message) as caught:
        read(spec)
    if not (isinstance(spec, str) and spec.startswith("{")) and not isinstance(spec, dict):
        assert str(VideoSpec.parse(spec).path) in str(caught.value)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
@pytest.mark.parametrize(
    "read",
    [lambda spec, backend: sample_frames(spec, backend=backend, cache=False), probe],
    ids=["sample_frames", "probe"],
)
@pytest.mark.parametrize("faststart", [False, True], ids=["index-last", "index-first"])
def test_truncated_videos_are_errors_naming_the_file(tmp_path, read, backend, faststart):
    clip = write_test_video(tmp_path / "whole.mp4", seconds=20, faststart=faststart)
    path = _truncated(tmp_path, clip)
    with pytest.raises(VideoError, match="cannot decode video|truncated") as caught:
        read(str(path), backend=backend)
    assert str(path) in str(caught.value)


def test_probe_returns_the_duration_and_accepts_a_window(clip):
    assert probe(str(clip)) == pytest.approx(20.0)
    assert probe(VideoSpec(str(clip), 5.0, 10.0)) == pytest.approx(20.0)


def test_probe_durations_measures_what_opens_and_lists_what_fails(clip, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 100)
    window = VideoSpec(str(clip), 5.0, 10.0)
    durations, failed = probe_durations([str(clip), window, str(broken), str(clip)])
    assert durations == {VideoSpec(str(clip)): pytest.approx(20.0), window: pytest.approx(20.0)}
    assert list(failed) == [VideoSpec(str(broken))] and list(probe_all([str(broken), window])) == list(failed)


class EverySecond(Qwen2_5_VL):
    """A family that differs from Qwen2.5-VL in its rate and frame size only (not registered)."""

    NAME, FPS = "every_second", 1.0

    def frame_size(self, height, width, frames, **_):
        return 56, 84


def test_the_model_family_decides_which_frames_and_their_size(clip):
    family = EverySecond()
    video = sample_frames(str(clip), family=family, cache=False)
    assert video.frames.shape[:3] == (20, 56, 84) and video.fps == pytest.approx(1.0)  # 20 s at the family's 1 FPS
    assert sample_frames(str(clip), family=family, fps=0.5, cache=False).frames.shape[0] == 10  # an explicit fps wins


def test_the_frame_cache_keeps_families_apart(clip):
    clear_cache()
    qwen = sample_frames(str(clip))
    other = sample_frames(str(clip), family=EverySecond(), fps=2.0)
    assert cache_stats() == (0, 2) and other.frames.shape[1:3] == (56, 84) != qwen.frames.shape[1:3]


@pytest.mark.parametrize(
    "written, root, expected",
    [
        ("AO8RW", "videos", ["data/AO8RW", "data/AO8RW.mp4", "videos/AO8RW", "videos/AO8RW.mp4"]),  # a bare id
        ("/authors/Charades_v1/E6DLK.mp4", "videos", ["/authors/Charades_v1/E6DLK.mp4", "videos/E6DLK.mp4"]),
        ("../clips/72LJ3.mp4", "videos", ["data/../clips/72LJ3.mp4", "videos/../clips/72LJ3.mp4", "videos/72LJ3.mp4"]),
        ("x.mp4", None, ["data/x.mp4"]),
    ],
)
def test_video_candidates_in_the_order_tried(written, root, expected):
    candidates = video_candidates(
        written, video_root=Path(root) if root else None, base=Path("data"), extensions=[".mp4"]
    )
    assert [str(c) for c in candidates] == expected


def test_resolve_video_names_what_it_tried_and_tells_empty_from_missing(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "empty.mp4").write_bytes(b"")
    (tmp_path / "videos" / "ok.mp4").write_bytes(b"x")
    assert (
        resolve_video("/elsewhere/ok.mp4", video_root=tmp_path / "videos", base=tmp_path)
        == (tmp_path / "videos" / "ok.mp4").resolve()
    )
    with pytest.raises(DataError, match="empty.mp4: video file is empty"):
        resolve_video("empty.mp4", video_root=tmp_path / "videos", base=tmp_path)
    with pytest.raises(DataError, match=r"none.mp4: video not found under --video-root .*; tried "):
        resolve_video("none.mp4", video_root=tmp_path / "videos", base=tmp_path)


class _OverlapCounter:
    """A stand-in decord module that records how many of its calls run at the same time."""

    def __init__(self):
        import threading

        self.lock, self.active, self.most = threading.Lock(), 0, 0

    def call(self, result):
        import time

        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
        time.sleep(0.01)  # long enough for the other threads to arrive
        with self.lock:
            self.active -= 1
        return result

    def VideoReader(self, path, num_threads):  # noqa: N802 -- decord's name
        counter = self

        class Reader:
            def __init__(self):
                counter.call(None)

            def __len__(self):
                return 8

            def get_avg_fps(self):
                return 4.0

            def get_batch(self, indices):
                return SimpleNamespace(asnumpy=lambda: counter.call(np.zeros((len(indices), 2, 2, 3), np.uint8)))

        return Reader()


def test_decord_is_never_called_from_two_threads_at_once(monkeypatch):
    """decord aborted a vLLM actor when two rollouts opened videos in parallel threads (docs/gpu-log.md, 2026-11-26)."""
    from concurrent.futures import ThreadPoolExecutor

    from rarft_plugin import video

    fake = _OverlapCounter()
    monkeypatch.setitem(__import__("sys").modules, "decord", fake)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: video._DecordReader(f"clip{i}.mp4").get(np.arange(4)), range(16)))
    assert fake.most == 1


@pytest.fixture(scope="module")
def pool():
    from rarft_plugin.video import DecodePool

    decode_pool = DecodePool(2)
    yield decode_pool
    decode_pool.close()


@pytest.mark.parametrize("window", [(None, None), (5.0, 10.0)])
def test_a_decode_pool_gives_the_frames_this_process_decodes(clip, pool, window, family):
    spec = VideoSpec(str(clip), *window)
    here = sample_frames(spec, family=family, cache=False)
    there = sample_frames(spec, family=family, cache=False, pool=pool)  # the worker finds the family by its name
    assert np.array_equal(here.frames, there.frames) and (here.fps, here.timestamps) == (there.fps, there.timestamps)


def test_a_decode_pool_reports_bad_clips_naming_the_file(tmp_path, clip, pool):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(VideoError, match="cannot decode") as raised:
        sample_frames(str(text), cache=False, pool=pool)
    assert raised.value.source == str(text)
    with pytest.raises(VideoError, match="beyond the video") as raised:
        sample_frames(VideoSpec(str(clip), 30.0, 40.0), cache=False, pool=pool)
    assert raised.value.source == str(clip) and raised.value.field == "video_end"


def test_a_decoder_crash_fails_the_clip_and_the_pool_restarts(clip, pool):
    import os
    import signal

    sample_frames(str(clip), cache=False, pool=pool)  # the workers are up
    for process in list(pool._pool._processes.values()):  # a crash in libavcodec kills the worker like this
        os.kill(process.pid, signal.SIGKILL)
    with pytest.raises(VideoError, match="decoding process died") as raised:
        sample_frames(str(clip), cache=False, pool=pool)
    assert raised.value.source == str(clip)
    assert sample_frames(str(clip), cache=False, pool=pool).frames.shape[0] == 40  # a fresh pool decodes again


@pytest.mark.parametrize(
    ("value", "processes"),
    [("0", None), ("3", 3), ("", None), (" 1 ", 1), ("-2", None)],
)
def test_decode_pool_size_comes_from_the_environment_and_is_off_by_default(value, processes):
    from rarft_plugin.video import DECODE_PROCESSES_ENV, decode_pool

    found = decode_pool({DECODE_PROCESSES_ENV: value})
    assert (found.processes if found else None) == processes
    assert decode_pool({DECODE_PROCESSES_ENV: value}) is found  # one pool per process, kept
    assert decode_pool({}) is None  # unset: decode in the calling process


def test_a_bad_decode_pool_size_is_a_clear_error():
    from rarft_plugin.video import DECODE_PROCESSES_ENV, decode_env, decode_pool

    for read in (decode_pool, decode_env):
        with pytest.raises(ValueError, match=DECODE_PROCESSES_ENV):
            read({DECODE_PROCESSES_ENV: "four"})


def test_probe_clip_describes_the_frames_sampling_would_take_without_decoding_them(clip, family):
    from rarft_plugin.video import probe_clip

    info = probe_clip(VideoSpec(str(clip), 5.0, 10.0), family=family)
    video = sample_frames(VideoSpec(str(clip), 5.0, 10.0), family=family, cache=False)
    assert (info.frames, info.height, info.width) == video.frames.shape[:3]
    assert (info.fps, info.timestamps, info.source_fps) == (video.fps, video.timestamps, video.source_fps)
    assert info.duration == pytest.approx(20.0)


def test_pyav_counts_a_matroska_clips_frames_without_decoding_them(tmp_path, monkeypatch):
    import av

    from rarft_plugin import video

    clip = write_test_video(tmp_path / "clip.mkv", seconds=5, fps=10, codec="libx264")
    real_open = av.open

    class NoDecoding:  # the container, but decoding fails
        def __init__(self, *args, **kwargs):
            self.container = real_open(*args, **kwargs)

        def __getattr__(self, name):
            if name == "decode":
                raise AssertionError("decoded to count the frames")
            return getattr(self.container, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.container.close()

    monkeypatch.setattr(av, "open", NoDecoding)
    assert video._PyAVReader(str(clip)).frame_count == 50
