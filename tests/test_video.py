import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from rarft_plugin.testing import write_test_video
from rarft_plugin.video import (
    MIN_PIXELS,
    LruCache,
    VideoError,
    VideoSpec,
    cache_stats,
    clear_cache,
    frame_indices,
    probe,
    probe_all,
    probe_durations,
    processor_video_inputs,
    sample_frames,
    smart_resize,
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_test_video(tmp_path_factory.mktemp("v") / "clip.mp4", seconds=20, fps=10, size=(320, 240))


@pytest.mark.parametrize(
    "height, width, max_pixels, expected",
    [
        (240, 320, 100 * 28 * 28, (252, 308)),  # already within budget: nearest multiples of 28
        (1080, 1920, 100 * 28 * 28, (196, 364)),  # shrunk under the budget, aspect kept
        (20, 20, 100 * 28 * 28, (112, 112)),  # grown to the minimum
    ],
)
def test_smart_resize(height, width, max_pixels, expected):
    h, w = smart_resize(height, width, min_pixels=MIN_PIXELS, max_pixels=max_pixels)
    assert (h, w) == expected and h % 28 == 0 and w % 28 == 0
    assert MIN_PIXELS <= h * w <= max_pixels


def test_extreme_aspect_ratio_is_refused():
    with pytest.raises(VideoError, match="aspect ratio"):
        smart_resize(10, 4000, min_pixels=MIN_PIXELS, max_pixels=10**6)


@pytest.mark.parametrize(
    "total, fps, first, last, count",
    [
        (200, 10, 0, 199, 40),
        (200, 10, 50, 99, 10),
        (5, 10, 0, 4, 4),
        (3000, 25, 0, 2999, 240),
        (10**5, 30, 0, 10**5 - 1, 768),  # capped at 768 frames
    ],
)
def test_frame_indices_are_even_at_2_fps(total, fps, first, last, count):
    indices = frame_indices(total, fps, first, last)
    assert len(indices) == count and len(indices) % 2 == 0
    assert indices[0] == first and indices[-1] == last and np.all(np.diff(indices) > 0)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
@pytest.mark.parametrize(
    "start, end, frames, first_second",
    [(None, None, 40, 0), (5.0, 10.0, 10, 5), (0.0, 3.0, 6, 0), (18.0, 25.0, 4, 18)],  # end past 20 s: within 1 s
)
def test_sampling_windows(clip, backend, start, end, frames, first_second):
    if end == 25.0:
        end = 20.5
    video = sample_frames(VideoSpec(str(clip), start, end), backend=backend, cache=False)
    assert video.frames.shape[0] == frames and video.frames.dtype == np.uint8
    assert video.frames.shape[1] % 28 == 0 and video.frames.shape[2] % 28 == 0
    assert video.fps == pytest.approx(2.0, rel=0.1) and video.second_per_grid == pytest.approx(2 / video.fps)
    assert int(video.timestamps[0]) == first_second
    red = video.frames[0, ..., 0].mean()  # the clip's red level is 20 x the second
    assert abs(red - (20 * first_second) % 256) < 12


def test_decord_and_pyav_agree(clip):
    a = sample_frames(str(clip), backend="decord", cache=False)
    b = sample_frames(str(clip), backend="pyav", cache=False)
    assert a.frames.shape == b.frames.shape and a.timestamps == b.timestamps
    assert np.abs(a.frames.astype(int) - b.frames.astype(int)).mean() < 3


def test_total_pixel_budget(clip):
    video = sample_frames(str(clip), total_pixels=40 * 28 * 28, cache=False)
    per_frame = video.frames.shape[1] * video.frames.shape[2]
    assert per_frame * video.frames.shape[0] / 2 <= max(40 * 28 * 28, MIN_PIXELS * 1.05 * video.frames.shape[0] / 2)


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
@pytest.mark.parametrize("read", [lambda spec, backend: sample_frames(spec, backend=backend, cache=False), probe],
                         ids=["sample_frames", "probe"])
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


def test_single_flight_cache_runs_create_once_for_concurrent_callers():
    cache, calls, started = LruCache(4), [], threading.Event()

    def create():
        calls.append(1)
        started.set()
        time.sleep(0.2)  # the other callers arrive while this runs
        return object()

    def caller():
        return cache.get_or_create("clip", create)

    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(caller)
        started.wait()
        values = [first.result()] + [f.result() for f in [pool.submit(caller) for _ in range(7)]]
    assert len(calls) == 1 and all(v is values[0] for v in values)
    assert (cache.hits, cache.misses) == (7, 1)


def test_single_flight_cache_hands_an_error_to_the_waiters_and_keeps_nothing():
    cache, started = LruCache(4), threading.Event()

    def create():
        started.set()
        time.sleep(0.2)
        raise VideoError("cannot decode video", source="x.mp4")

    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(cache.get_or_create, "clip", create)
        started.wait()
        others = [pool.submit(cache.get_or_create, "clip", create) for _ in range(3)]
        for future in [first, *others]:
            with pytest.raises(VideoError, match="x.mp4"):
                future.result()
    assert cache.get_or_create("clip", lambda: "decoded now") == "decoded now"  # the failure was not cached


def test_lru_cache_evicts_the_least_recently_used():
    cache = LruCache(2)
    for key in "ab":
        cache.get_or_create(key, lambda key=key: key.upper())
    cache.get_or_create("a", lambda: "fresh a")  # touch a
    cache.get_or_create("c", lambda: "C")  # evicts b
    assert cache.get_or_create("a", lambda: "fresh a") == "A" and cache.get_or_create("b", lambda: "new b") == "new b"


def test_metadata_gives_the_processor_the_sampling_fps(clip, tmp_path):
    from transformers import AutoProcessor

    from rarft_plugin.testing import build_tiny_qwen2_5_vl

    processor = AutoProcessor.from_pretrained(build_tiny_qwen2_5_vl(tmp_path / "tiny"))
    video = sample_frames(VideoSpec(str(clip), 0.0, 7.5), cache=False)  # 75 frames -> 14: fps 1.87, not 2
    assert video.fps == pytest.approx(14 / 75 * 10)
    out = processor(text=["<|vision_start|><|video_pad|><|vision_end|>"], **processor_video_inputs([video]),
                    return_tensors="pt")
    assert out["second_per_grid_ts"].tolist() == pytest.approx([video.second_per_grid])
    assert tuple(out["video_grid_thw"][0].tolist()) == (7, video.frames.shape[1] // 14, video.frames.shape[2] // 14)
