"""Eye-region clips from the stored face pass: both eyes, a crop that holds still over time.

The crop of each frame is the EyeBlink crop (`core.face.eye_crop.eye_crop_transform`:
centre, scale and angle from the eye corners 36, 39, 42, 45, which do not move when the lids
close), made `width` x `height` by keeping the middle rows of its square, and smoothed over time:
each entry of the 2x3 affine map is replaced by its running median over `smooth_frames` frames
of the same gap-free stretch of the track. The maps are similarity transforms
([[a, b, tx], [-b, a, ty]]); an entry-wise median keeps that form, so the smoothed crop is never
sheared. Nothing is detected again: only the face pass's landmarks are read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.ndimage import median_filter

from core.face.eye_crop import eye_crop_transform
from core.progress import CancelToken, ProgressCallback, Throttle, no_progress

if TYPE_CHECKING:
    from core.face.facepass import FacePass, FaceTrack
    from core.video.reader import VideoReader


@dataclass
class EyeRegionParams:
    width: int = 64  # crop size in pixels fed to the model
    height: int = 32
    margin: float = 0.15  # crop width = outer-eye-corner distance x (1 + 2 margin)
    smooth_frames: int = 5  # running median of the crop map (odd; 1 = none)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EyeRegionParams:
        return cls(**{k: d[k] for k in ("width", "height", "margin", "smooth_frames") if k in d})


def stretches(frames: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges [a, b) of a track whose frame numbers are consecutive."""
    frames = np.asarray(frames).reshape(-1)
    if frames.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(frames) != 1) + 1
    return list(zip(np.r_[0, breaks].tolist(), np.r_[breaks, frames.size].tolist()))


def crop_maps(frames: np.ndarray, landmarks: np.ndarray, p: EyeRegionParams) -> np.ndarray:
    """(M, 2, 3) affine maps frame -> crop for every row of a track, smoothed over time."""
    m = np.stack([eye_crop_transform(lm, p.width, p.margin) for lm in np.asarray(landmarks)]) if len(landmarks) else np.zeros((0, 2, 3))
    m[:, 1, 2] -= (p.width - p.height) / 2.0  # the square's middle `height` rows
    size = max(int(p.smooth_frames), 1) | 1
    if size > 1:
        for a, b in stretches(frames):
            if b - a > 1:
                m[a:b] = median_filter(m[a:b], size=(min(size, b - a), 1, 1), mode="nearest")
    return m


def crop_quad(m: np.ndarray, p: EyeRegionParams) -> np.ndarray:
    """(4, 2) image coordinates of the crop's corners (top-left, top-right, bottom-right,
    bottom-left) for one map: where an attention map over the crop lies on the frame."""
    full = np.vstack([np.asarray(m, np.float64), [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(full)[:2]
    corners = np.array([[0, 0, 1], [p.width, 0, 1], [p.width, p.height, 1], [0, p.height, 1]], np.float64)
    return corners @ inv.T


def iter_eye_clips(
    reader: VideoReader,
    facepass: FacePass,
    p: EyeRegionParams,
    tracks: list[FaceTrack] | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """(track id, row, crop uint8 (height, width, 3)) for every row of the tracks, each frame
    decoded once, in frame order."""
    import cv2

    chosen = list(facepass.tracks if tracks is None else tracks)
    maps = {t.track_id: crop_maps(t.frames, t.landmarks, p) for t in chosen}
    by_frame: dict[int, list[tuple[int, int]]] = {}
    for t in chosen:
        for row, f in enumerate(t.frames.tolist()):
            by_frame.setdefault(int(f), []).append((t.track_id, row))
    if not by_frame:
        return
    first, last = min(by_frame), max(by_frame)
    tick = Throttle(progress, 0.2)
    for f, rgb in reader.iter_frames(first, last + 1):
        if cancel is not None:
            cancel.raise_if_cancelled()
        for tid, row in by_frame.get(f, ()):
            crop = cv2.warpAffine(rgb, maps[tid][row], (p.width, p.height), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            yield tid, row, crop
        tick("eye clips", (f - first + 1) / (last - first + 1), f"eye regions, frame {f}")


def eye_clips(
    reader: VideoReader,
    facepass: FacePass,
    p: EyeRegionParams,
    tracks: list[FaceTrack] | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> dict[int, np.ndarray]:
    """Track id -> uint8 (M, height, width, 3): the eye region of every row of the track."""
    chosen = list(facepass.tracks if tracks is None else tracks)
    out = {t.track_id: np.zeros((len(t), p.height, p.width, 3), np.uint8) for t in chosen}
    for tid, row, crop in iter_eye_clips(reader, facepass, p, chosen, progress, cancel):
        out[tid][row] = crop
    return out
