"""What a clip is, as data: the frames sampled from it (`SampledVideo`), what probing it learns (`ClipInfo`), and
the error a clip that cannot be used raises (`VideoError`). The model families (`rarft_plugin.models`) read these
and `rarft_plugin.video` makes them; both import them from here, so neither imports the other to name a type."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rarft_plugin.errors import DataError

__all__ = ["ClipInfo", "SampledVideo", "VideoError"]


class VideoError(DataError):
    """A video that cannot be used: missing, unreadable, empty, or a clip window outside it."""


@dataclass(frozen=True)
class SampledVideo:
    """Frames (T, H, W, 3) uint8, already resized; fps of the sampling; source timestamps (s); the file's frame
    rate (None where unknown)."""

    frames: np.ndarray
    fps: float
    timestamps: tuple[float, ...]
    source_fps: float | None = None


@dataclass(frozen=True)
class ClipInfo:
    """What probing a clip learns without decoding it: the video's duration (s), and what `sample_frames` would
    give of its window: the frames' count, height and width (after the family's resize), their sampling rate,
    their times in the file (s) and the file's frame rate. A family counts the tokens such frames expand to
    (`ModelFamily.video_token_count`)."""

    duration: float
    frames: int
    height: int
    width: int
    fps: float
    timestamps: tuple[float, ...]
    source_fps: float
