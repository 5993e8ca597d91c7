"""Face crops for the frame-sequence classifiers: aligned by the eyes, or the whole frame.

`crop_transform` gives the 2x3 affine map from frame pixels to a size x size crop:
- input "face_aligned" (seed 004): a similarity transform that puts the eye line horizontal,
  the eye centres `eye_distance * size` apart and their midpoint at (size / 2, eye_y * size);
  landmarks 36-41 and 42-47 give the eye centres. When the eyes are implausible for an
  alignment (non-finite, under 4 px apart or under 20 % of the face box width, as on a strongly
  turned head, or the eye line steeper than 45 degrees) it falls back to a plain square crop
  around the face box, and says so (the count is kept in the dataset manifest);
- input "frame" (seed 001's upstream code): the whole frame resized to size x size, aspect
  ratio not kept, as upstream's `Resize((224, 224))` does.

The same map is stored with every Grad-CAM heat map, so a map can be drawn back onto the frame.
`sample_frames` picks the frames of a video at a chosen rate from their presentation times, the
same way for dataset preparation and analysis.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from core.face.facepass import FaceTrack
    from core.progress import CancelToken
    from core.video.reader import VideoReader

INPUTS = ("face_aligned", "frame")


@dataclass(frozen=True)
class CropSpec:
    input: str = "face_aligned"
    size: int = 224
    eye_distance: float = 0.28  # eye-centre distance / crop side
    eye_y: float = 0.40  # height of the eye line / crop side
    fallback_scale: float = 1.3  # plain crop side / larger side of the face box

    def __post_init__(self) -> None:
        if self.input not in INPUTS:
            raise ValueError(f"crop input {self.input!r} is not one of {', '.join(INPUTS)}")


def _aligned(lm: np.ndarray, box: np.ndarray, spec: CropSpec) -> np.ndarray | None:
    left, right = lm[36:42].mean(0), lm[42:48].mean(0)  # image-left and image-right eye centres
    d = right - left
    dist = float(np.hypot(*d))
    width = float(box[2] - box[0])
    if not (np.isfinite(lm).all() and dist >= 4.0 and dist >= 0.2 * width):
        return None
    angle = math.atan2(d[1], d[0])
    if abs(angle) > math.pi / 4:
        return None
    s = spec.eye_distance * spec.size / dist
    c, si = math.cos(angle) * s, math.sin(angle) * s
    m = np.array([[c, si, 0.0], [-si, c, 0.0]])  # rotate by -angle, scale
    mid = (left + right) / 2.0
    m[:, 2] = np.array([spec.size / 2.0, spec.eye_y * spec.size]) - m[:, :2] @ mid
    return m


def _plain(box: np.ndarray, spec: CropSpec) -> np.ndarray:
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(spec.fallback_scale * max(x1 - x0, y1 - y0), 1.0)
    s = spec.size / side
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return np.array([[s, 0.0, spec.size / 2.0 - s * cx], [0.0, s, spec.size / 2.0 - s * cy]])


def crop_transform(landmarks: np.ndarray, box: np.ndarray, frame_wh: tuple[int, int], spec: CropSpec) -> tuple[np.ndarray, bool]:
    """(2x3 frame -> crop affine, aligned by the eyes). `aligned` is False for the plain-crop
    fallback and for whole-frame input."""
    if spec.input == "frame":
        w, h = frame_wh
        return np.array([[spec.size / w, 0.0, 0.0], [0.0, spec.size / h, 0.0]]), False
    lm = np.asarray(landmarks, np.float64)
    b = np.asarray(box, np.float64)
    m = _aligned(lm, b, spec)
    return (m, True) if m is not None else (_plain(b, spec), False)


def warp(frame_rgb: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """The crop (size, size, 3) uint8; outside the frame is black."""
    import cv2

    return cv2.warpAffine(frame_rgb, np.asarray(m, np.float64), (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def invert(m: np.ndarray) -> np.ndarray:
    """The crop -> frame affine of a frame -> crop affine."""
    import cv2

    return cv2.invertAffineTransform(np.asarray(m, np.float64))


def sample_frames(times_s: np.ndarray, fps: float) -> np.ndarray:
    """Indices of the frames kept at `fps` frames per second (<= 0: every frame): the first frame
    of each 1/fps interval of presentation time, so variable frame rates sample evenly."""
    t = np.asarray(times_s, np.float64)
    if t.size == 0 or fps <= 0:
        return np.arange(t.size)
    bins = np.floor((t - t[0]) * fps + 1e-6).astype(np.int64)
    _, first = np.unique(bins, return_index=True)
    return np.sort(first)


@dataclass
class Crop:
    track_id: int
    frame: int
    image: np.ndarray  # (size, size, 3) uint8 RGB
    affine: np.ndarray  # (2, 3) frame -> crop
    aligned: bool


def iter_track_crops(
    reader: VideoReader,
    tracks: Sequence[FaceTrack],
    wanted: Mapping[int, Sequence[int]],
    spec: CropSpec,
    cancel: CancelToken | None = None,
    undecodable: list[int] | None = None,
) -> Iterator[Crop]:
    """Crops of the given face tracks on the wanted frames (frame -> track ids), each frame
    decoded once in increasing order (the reader decodes forward). A frame that cannot be
    decoded raises EvidenceError, or, when `undecodable` is a list, is appended to it and skipped."""
    from core.errors import EvidenceError

    by_id = {t.track_id: t for t in tracks}
    for f in sorted(wanted):
        if cancel is not None:
            cancel.raise_if_cancelled()
        try:
            rgb = reader.frame(f)
        except EvidenceError:
            if undecodable is None:
                raise
            undecodable.append(int(f))
            continue
        h, w = rgb.shape[:2]
        for tid in sorted(set(wanted[f])):
            t = by_id[tid]
            row = t.row_of(f)
            if row is None:
                continue
            m, ok = crop_transform(t.landmarks[row], t.boxes[row], (w, h), spec)
            yield Crop(tid, f, warp(rgb, m, spec.size), m, ok)
