import numpy as np
import pytest

from rarft_plugin.testing import write_test_video
from rarft_plugin.video import (
    MIN_PIXELS,
    VideoError,
    VideoSpec,
    cache_stats,
    clear_cache,
    frame_indices,
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
    [(200, 10, 0, 199, 40), (200, 10, 50, 99, 10), (5, 10, 0, 4, 4), (3000, 25, 0, 2999, 240), (10**5, 30, 0, 10**5 - 1, 768)],
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
def test_bad_videos_name_the_file(tmp_path, clip, make, message):
    spec = make(tmp_path, clip)
    with pytest.raises(VideoError, match=message) as caught:
        sample_frames(spec, cache=False)
    if not (isinstance(spec, str) and spec.startswith("{")) and not isinstance(spec, dict):
        assert str(VideoSpec.parse(spec).path) in str(caught.value)


def test_truncated_video_is_an_error_or_fewer_frames_never_a_hang(tmp_path, clip):
    path = _truncated(tmp_path, clip)
    try:
        video = sample_frames(str(path), cache=False)
    except VideoError as error:
        assert str(path) in str(error)
    else:
        assert 0 < video.frames.shape[0] <= 40
