"""Face identity descriptors: dlib's face-recognition ResNet on quality-selected frames.

dlib's model (King, dlib 19.3, 2017: a ResNet-29 trained on about 3 million faces) maps an
aligned 150x150 face chip to a 128-d descriptor; the Euclidean distance between two descriptors
is small for the same person (dlib's published threshold 0.6, 99.38 % on the LFW benchmark).
The chip is aligned from the face pass's stored 68 landmarks (`dlib.get_face_chip`): nothing is
re-detected in a video.

Sampling rule, per face track: a row (frame) is *eligible* when the face is
- frontal: |yaw proxy| <= `max_yaw` (core.signals.eyes.yaw_proxy; 0 frontal, 0.35 roughly 15-20
  degrees): the descriptor of a turned face drifts away from the same person's frontal one;
- large enough: outer eye corners (points 36, 45) at least `min_eye_span_px` apart (a face of
  about 2.5 times that width): smaller faces are upsampled into the chip and lose identity;
- inside the frame: every landmark inside the picture (a cut-off face gives a partial chip).
Up to `max_frames` eligible rows, evenly spaced over the track, are decoded and aligned into
chips; a chip gets a descriptor when it is
- a frontal face to dlib's HOG frontal detector (score >= `min_frontal_score` on the chip): the
  yaw proxy reads near 0 where dlib pastes a frontal landmark shape on a profile (the AVLips
  Federer clip: 20 of 20 sampled profile chips with |yaw| <= 0.35 are not found by the HOG,
  while it finds 20 of 20 on each of eight frontal clips of the media);
- sharp: its edge blur (core.signals.eye_quality.edge_blur_px on the chip's inner face, in chip
  pixels, so independent of the face's size in the frame) at most `max_chip_blur_px`.
Every excluded row is counted under its reason.

The track's identity is a robust aggregate: the mean of the descriptors left after dropping those
farther from the coordinate-wise median than median + 3 MAD of those distances (a few frames where
a swap fails, or the tracker slips, do not move it). Its stability is measured by the spread of
the frames around it and by the distance between the aggregates of its first and second half.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from core.signals.eye_quality import edge_blur_px
from core.signals.eyes import yaw_proxy
from core.signals.geometry import face_scale

CHIP = 150  # dlib's chip size for the recognition model
CHIP_PADDING = 0.25  # dlib's default padding around the aligned face
INNER = (30, 30, 120, 120)  # the chip's inner face (brows to chin) where blur is measured
BATCH = 16  # chips per call of the recognition network
REASONS = ("head_turned", "face_small", "outside_frame", "not_frontal", "blurred", "not_sampled")
REASON_TEXT = {
    "head_turned": "head turned",
    "face_small": "face too small",
    "outside_frame": "face outside the frame",
    "not_frontal": "not a frontal face to the HOG detector",
    "blurred": "face blurred",
    "not_sampled": "not sampled",
}


@dataclass
class IdentityParams:
    """Everything `identity_reference` is run with (one dataclass, so a result can be reproduced)."""

    track: int | None = None  # face track to compare; None: the largest track (median face width)
    person: str | None = None  # whose exemplars; None: the case's only person
    max_frames: int = 40  # descriptors of the compared track and of each reference video, evenly spaced over eligible rows
    spread_frames: int = 16  # descriptors of every other track (and of all without an exemplar): the spread measurement
    max_yaw: float = 0.35  # |yaw proxy| above which the face counts as turned
    min_eye_span_px: float = 28.0  # outer eye-corner distance below which the face is too small
    max_chip_blur_px: float = 2.5  # edge blur of the 150 px chip above which the face is blurred
    min_frontal_score: float = 0.0  # dlib HOG frontal-face score the chip must reach (the detector's own threshold)
    min_frames: int = 5  # sharp frontal frames needed on each side for a reading
    # a face whose first and second halves (in time) lie farther apart than this is not one stable
    # identity (occlusion, failing landmarks, or a swap that fails part of the time): no reading
    max_halves_distance: float = 0.30
    # reading (calibrated, docs/identity.md): distance of the track's aggregate to the person's
    consistent_max: float = 0.40  # at or below: the same person
    inconsistent_min: float = 0.50  # at or above: another person
    departure: float = 0.6  # per-frame distance marking a frame whose identity departs (dlib's threshold)
    departure_min_frames: int = 2  # sampled frames in a row that make a departure segment
    algorithm: int = 2  # bumped when descriptors change, so cached exemplar descriptors are not reused

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FaceIdentity:
    """Descriptors of one face (a track, or the face of a photo) and how its frames were chosen."""

    frames: np.ndarray  # int (K,) frames with a descriptor, increasing
    descriptors: np.ndarray  # float32 (K, 128)
    boxes: np.ndarray  # float32 (K, 4) face box of each (for the face image in reports)
    blur: np.ndarray  # float (K,) chip edge blur in chip pixels
    rows: int = 0  # frames of the track (1 for a photo)
    excluded: dict[str, int] = field(default_factory=dict)  # reason -> rows left out
    eye_span_px: float | None = None  # median outer eye-corner distance of the used frames

    def __len__(self) -> int:
        return int(self.frames.size)

    def aggregate(self) -> np.ndarray | None:
        return robust_mean(self.descriptors)[0] if len(self) else None

    def representative(self) -> int | None:
        """Index of the descriptor nearest the aggregate: the face shown for this identity."""
        agg = self.aggregate()
        if agg is None:
            return None
        return int(np.argmin(np.linalg.norm(self.descriptors - agg, axis=1)))

    def summary(self) -> dict[str, Any]:
        k = self.representative()
        return {
            "rows": self.rows,
            "frames_used": len(self),
            "frames": self.frames.astype(int).tolist(),
            "excluded": {r: n for r, n in self.excluded.items() if n},
            "eye_span_px": None if self.eye_span_px is None else round(self.eye_span_px, 1),
            "blur_px_median": round(float(np.median(self.blur)), 2) if len(self) else None,
            "face_frame": None if k is None else int(self.frames[k]),
            "face_box": None if k is None else [round(float(v), 1) for v in self.boxes[k]],
        }


_ROWS_AT_ONCE = 4096  # landmark rows judged at once: each row on its own, a long track in bounded memory


def eligible_rows(landmarks: np.ndarray, width: int, height: int, params: IdentityParams) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(M,) bool eligible rows and reason -> (M,) bool failing rows (a row may fail several)."""
    if len(landmarks) > _ROWS_AT_ONCE:
        parts = [eligible_rows(landmarks[a:a + _ROWS_AT_ONCE], width, height, params) for a in range(0, len(landmarks), _ROWS_AT_ONCE)]
        return np.concatenate([ok for ok, _ in parts]), {r: np.concatenate([f[r] for _, f in parts]) for r in parts[0][1]}
    lm = np.asarray(landmarks, np.float64)
    yaw = yaw_proxy(lm)
    failed = {
        "head_turned": ~(np.abs(np.nan_to_num(yaw, nan=np.inf)) <= params.max_yaw),
        "face_small": ~(face_scale(lm) >= params.min_eye_span_px),
        "outside_frame": ~((lm[..., 0] >= 0).all(-1) & (lm[..., 0] < width).all(-1) & (lm[..., 1] >= 0).all(-1) & (lm[..., 1] < height).all(-1)),
    }
    ok = ~(failed["head_turned"] | failed["face_small"] | failed["outside_frame"])
    return ok, failed


def sample_rows(eligible: np.ndarray, max_frames: int) -> np.ndarray:
    """Up to `max_frames` eligible row indices, evenly spaced over them (all when fewer)."""
    rows = np.flatnonzero(eligible)
    if rows.size <= max_frames:
        return rows
    return rows[np.unique(np.round(np.linspace(0, rows.size - 1, max_frames)).astype(int))]


def face_shape(landmarks: np.ndarray, box: np.ndarray | Iterable[float]) -> Any:
    """A dlib.full_object_detection from stored 68 landmarks (what get_face_chip aligns with)."""
    import dlib

    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    return dlib.full_object_detection(dlib.rectangle(x0, y0, x1, y1), [dlib.point(int(round(x)), int(round(y))) for x, y in landmarks])


def face_chip(rgb: np.ndarray, landmarks: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The aligned 150x150 RGB chip the recognition model reads."""
    import dlib

    return dlib.get_face_chip(np.ascontiguousarray(rgb), face_shape(landmarks, box), CHIP, CHIP_PADDING)


def chip_blur_px(chip: np.ndarray) -> float | None:
    """Edge blur (px) of a chip's inner face; None when it is flat."""
    import cv2

    return edge_blur_px(cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY), INNER)


def frontal_score(chip: np.ndarray) -> float | None:
    """dlib's HOG frontal-face score on a chip (padded so the whole face fits the 80 px window);
    None when it finds no face at all."""
    import cv2

    from core.face.dlib_models import frontal_detector

    gray = cv2.copyMakeBorder(cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY), 20, 20, 20, 20, cv2.BORDER_REPLICATE)
    _, scores, _ = frontal_detector().run(gray, 0, -1.0)
    return float(max(scores)) if len(scores) else None


def descriptors_of(chips: list[np.ndarray]) -> np.ndarray:
    """(K, 128) float32 descriptors of aligned chips, in batches."""
    from core.face.dlib_models import face_recognizer

    net = face_recognizer()
    out = [np.asarray(v, np.float32) for k in range(0, len(chips), BATCH) for v in net.compute_face_descriptor(chips[k : k + BATCH])]
    return np.stack(out) if out else np.zeros((0, 128), np.float32)


def describe(
    frames: np.ndarray,
    landmarks: np.ndarray,
    boxes: np.ndarray,
    width: int,
    height: int,
    read_frame: Callable[[int], np.ndarray],
    params: IdentityParams,
    check_cancel: Callable[[], None] = lambda: None,
) -> FaceIdentity:
    """Descriptors of one face track (frames (M,), landmarks (M, 68, 2), boxes (M, 4)) on its
    quality-selected rows; `read_frame(i)` gives frame i as RGB (called in increasing order)."""
    ok, failed = eligible_rows(landmarks, width, height, params)
    picked = sample_rows(ok, params.max_frames)
    excluded = {r: int(v.sum()) for r, v in failed.items()}
    excluded["not_sampled"] = int(ok.sum()) - int(picked.size)
    chips, keep, blurs = [], [], []
    excluded["not_frontal"] = excluded["blurred"] = 0
    for r in picked:
        check_cancel()
        chip = face_chip(read_frame(int(frames[r])), landmarks[r], boxes[r])
        score = frontal_score(chip)
        if score is None or score < params.min_frontal_score:
            excluded["not_frontal"] += 1
            continue
        blur = chip_blur_px(chip)
        if blur is None or blur > params.max_chip_blur_px:
            excluded["blurred"] += 1
            continue
        chips.append(chip)
        keep.append(int(r))
        blurs.append(blur)
    rows = np.asarray(keep, int)
    return FaceIdentity(
        frames=np.asarray(frames, int)[rows], descriptors=descriptors_of(chips), boxes=np.asarray(boxes, np.float32)[rows],
        blur=np.asarray(blurs, np.float64), rows=int(len(frames)), excluded=excluded,
        eye_span_px=float(np.median(face_scale(np.asarray(np.asarray(landmarks)[rows], np.float64)))) if rows.size else None,
    )


def robust_mean(descriptors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(aggregate (128,), kept (K,) bool): the mean of the descriptors within median + 3 MAD of
    their distances to the coordinate-wise median."""
    d = np.asarray(descriptors, np.float64)
    if d.shape[0] <= 2:
        return d.mean(axis=0), np.ones(d.shape[0], bool)
    dist = np.linalg.norm(d - np.median(d, axis=0), axis=1)
    med = float(np.median(dist))
    mad = float(np.median(np.abs(dist - med)))
    kept = dist <= med + 3 * 1.4826 * mad + 1e-9
    return d[kept].mean(axis=0), kept


def distances(descriptors: np.ndarray, to: np.ndarray) -> np.ndarray:
    """Euclidean distance of each descriptor (K, 128) to one descriptor (128,)."""
    return np.linalg.norm(np.asarray(descriptors, np.float64) - np.asarray(to, np.float64), axis=-1)


def halves_distance(face: FaceIdentity) -> float | None:
    """Distance between the robust aggregates of the first and the second half (in time) of a
    face's descriptors; None with fewer than 6."""
    k = len(face)
    if k < 6:
        return None
    return float(np.linalg.norm(robust_mean(face.descriptors[: k // 2])[0] - robust_mean(face.descriptors[k // 2 :])[0]))


def stability(face: FaceIdentity) -> dict[str, Any]:
    """Identity spread within one track (a measurement, not a reading): the median distance
    between consecutive sampled descriptors, and the median and 90th percentile distance of the
    frames to the track's own aggregate."""
    if len(face) < 2:
        return {"n": len(face), "frame_to_frame_median": None, "to_aggregate_median": None, "to_aggregate_p90": None, "halves_distance": None}
    step = np.linalg.norm(np.diff(face.descriptors.astype(np.float64), axis=0), axis=1)
    to_agg = distances(face.descriptors, face.aggregate())  # type: ignore[arg-type]
    return {
        "n": len(face),
        "frame_to_frame_median": round(float(np.median(step)), 4),
        "to_aggregate_median": round(float(np.median(to_agg)), 4),
        "to_aggregate_p90": round(float(np.percentile(to_agg, 90)), 4),
        "halves_distance": None if (h := halves_distance(face)) is None else round(h, 4),
    }

