"""Whether a frame's eye landmarks can be trusted for blinks: the "eyes assessable" mask.

dlib's 68-point predictor is a frontal model. On a turned head it still returns 68 points, but
the lids stop following the eyes: on AVLips `real/avlips_real_1` (a three-quarter view, eyes
about 18 px wide) the eyes are visibly shut at frames 3-4 while the EAR reads 0.39 / 0.35,
above its open level (about 0.3); on the profile frames of `avlips_real_0` the EAR reads
0.4-0.9, which no human eye measures. EAR there is noise, and a dip in it is not a blink.

A frame of a track is *assessable* when all of these hold (computed from the stored landmarks
and EAR of the face pass; nothing is recomputed):

1. head not turned: |yaw proxy| <= `max_yaw` after a running median over `yaw_window_s`
   (single-frame landmark jumps are not turns). The proxy is the nose-to-jaw asymmetry along the
   eye line: with a and b the distances from the nose tip (30) to the jaw ends (0 and 16),
   measured along the line through the outer eye corners (36 -> 45), yaw = (a - b) / (a + b):
   0 for a frontal face, +-1 when the nose tip reaches a jaw end, beyond that past it (positive:
   nose towards the image right; a mirrored fit has no yaw and fails). For a rigid head it grows like (nose depth / jaw half-width) x tan(yaw), so
   0.5 is very roughly 20-30 degrees;
2. both eyes at least `min_eye_px` wide (outer to inner corner, 36-39 and 42-45);
3. the eye points (36-47), the brows (17-26) and the yaw proxy's points (jaw ends 0 and 16, nose
   tip 30) inside the frame: a fit that runs off the picture is extrapolated, and on the AVLips
   profiles dlib pastes a frontal face whose far half lies outside the frame;
4. both EARs finite and at most `max_ear`: an "eye" taller than half its width is a landmark
   failure, not an open eye (dlib EAR of open eyes on the frontal test clips: at most 0.43).

Frames that fail are treated like frames without a face for blinks: the track's EAR is split
there (`core.signals.blinks.detect_blinks(..., mask=)`), no blink starts or ends inside, and
blink rates count assessable time only. docs/blinks.md has the measurements behind the values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
from scipy.ndimage import median_filter

from core.params import from_dict
from core.signals.blinks import BlinkEvent, BlinkParams, detect_blinks
from core.signals.geometry import BROWS, EYES, ears
from core.signals.timebase import usable_fps

# points that must lie inside the frame: eyes, brows, and the yaw proxy's jaw ends and nose tip
FRAME_POINTS = np.r_[EYES, BROWS, 0, 16, 30]

# why a frame is not assessable, in the order they are checked; the JSON uses these keys
REASONS = ("head_turned", "eyes_small", "outside_frame", "landmarks_implausible")
# the same reasons in words, for the GUI and the PDF
REASON_TEXT = {
    "head_turned": "head turned",
    "eyes_small": "eyes too small",
    "outside_frame": "face outside the frame",
    "landmarks_implausible": "implausible eye landmarks",
}


@dataclass
class EyeParams:
    max_yaw: float = 0.5  # |nose-to-jaw asymmetry| above which the head counts as turned
    yaw_window_s: float = 0.2  # running median of the yaw proxy (5 frames at 25 fps)
    min_eye_px: float = 8.0  # eye width (corner to corner) below which the lid gap is ~2 px
    max_ear: float = 0.5  # an eye taller than half its width is not an eye
    check_frame: bool = True  # require eyes, brows and the yaw points inside the frame (needs width and height)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EyeCheck:
    """Per-row measures of one track and the verdict; every array has one entry per track row."""

    yaw: np.ndarray  # float (M,) signed yaw proxy, unsmoothed (NaN where undefined)
    yaw_smoothed: np.ndarray  # float (M,) |yaw| after the running median (per gap-free stretch)
    eye_px: np.ndarray  # float (M,) width of the narrower eye in pixels
    inside: np.ndarray  # bool (M,) eyes, brows and the yaw points inside the frame
    plausible: np.ndarray  # bool (M,) both EARs finite and <= max_ear
    assessable: np.ndarray  # bool (M,) every check passed
    failed: dict[str, np.ndarray]  # reason -> bool (M,) rows failing that check (a row may fail several)

    def reason_counts(self) -> dict[str, int]:
        """Rows failing each check (a row can count under several reasons)."""
        return {k: int(v.sum()) for k, v in self.failed.items()}

    def reason(self, row: int) -> str:
        """Why this row is not assessable, in words ("" when it is)."""
        return ", ".join(REASON_TEXT[k] for k in REASONS if k in self.failed and bool(self.failed[k][row]))


class _Track(Protocol):
    frames: np.ndarray
    landmarks: np.ndarray
    ear: np.ndarray


def yaw_proxy(landmarks: np.ndarray) -> np.ndarray:
    """Signed nose-to-jaw asymmetry (..., 68, 2) -> (...): 0 frontal, +-1 nose at a jaw end
    (positive: nose towards the image right); NaN where the eye corners coincide or the jaw
    ends are in the wrong order."""
    lm = np.asarray(landmarks, np.float64)
    axis = lm[..., 45, :] - lm[..., 36, :]
    span = np.linalg.norm(axis, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        axis = axis / span
        nose = lm[..., 30, :]
        # signed, so that a nose beyond a jaw end reads beyond +-1 instead of folding back
        a = ((nose - lm[..., 0, :]) * axis).sum(-1)  # image-left jaw end to the nose
        b = ((lm[..., 16, :] - nose) * axis).sum(-1)  # nose to the image-right jaw end
        span = a + b  # the jaw's width along the eye line; not positive for a mirrored fit
        yaw = np.where(span > 0, (a - b) / span, np.nan)
    return np.where(np.isfinite(yaw), yaw, np.nan)


def eye_widths(landmarks: np.ndarray) -> np.ndarray:
    """Corner-to-corner width in pixels of the image-left and image-right eye: (..., 68, 2) -> (..., 2)."""
    lm = np.asarray(landmarks, np.float64)
    return np.stack([np.linalg.norm(lm[..., 39, :] - lm[..., 36, :], axis=-1), np.linalg.norm(lm[..., 45, :] - lm[..., 42, :], axis=-1)], axis=-1)


def _stretches(frames: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges [a, b) of consecutive frame numbers."""
    if frames.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(frames) != 1) + 1
    return list(zip(np.r_[0, breaks].tolist(), np.r_[breaks, frames.size].tolist()))


def _running_median(x: np.ndarray, frames: np.ndarray, size: int) -> np.ndarray:
    """Running median of x per gap-free stretch (NaN counts as +inf: an undefined yaw fails)."""
    x = np.where(np.isfinite(x), x, np.inf)
    out = np.empty_like(x)
    for a, b in _stretches(frames):
        out[a:b] = median_filter(x[a:b], size=min(size, b - a), mode="nearest") if size > 1 else x[a:b]
    return out


def check_eyes(
    frames: np.ndarray,
    landmarks: np.ndarray,
    width: int,
    height: int,
    fps: float | None = None,
    ear: np.ndarray | None = None,
    params: EyeParams | None = None,
) -> EyeCheck:
    """Every measure behind the mask for one track: frames (M,), landmarks (M, 68, 2), EAR (M, 2)
    (computed from the landmarks when not given). width/height of the frame in pixels (<= 0:
    unknown, the inside-frame check is skipped); fps <= 0 or None: the smoothing assumes 25 fps."""
    p = params or EyeParams()
    frames = np.asarray(frames).reshape(-1)
    lm = np.asarray(landmarks, np.float64).reshape(-1, 68, 2)
    if lm.shape[0] != frames.size:
        raise ValueError(f"{frames.size} frames but {lm.shape[0]} landmark rows")
    ear = ears(lm) if ear is None else np.asarray(ear, np.float64).reshape(-1, 2)
    if ear.shape[0] != frames.size:
        raise ValueError(f"{frames.size} frames but {ear.shape[0]} EAR rows")
    rate = usable_fps(fps)
    size = max(1, int(round(p.yaw_window_s * rate)) | 1)

    yaw = yaw_proxy(lm)
    smooth = _running_median(np.abs(yaw), frames, size)
    px = eye_widths(lm).min(axis=-1) if frames.size else np.zeros(0)
    pts = lm[:, FRAME_POINTS]  # (M, 25, 2)
    finite = np.isfinite(pts).all(axis=(1, 2))
    if p.check_frame and width > 0 and height > 0:
        inside = finite & ((pts[..., 0] >= 0) & (pts[..., 0] <= width) & (pts[..., 1] >= 0) & (pts[..., 1] <= height)).all(axis=1)
    else:
        inside = finite
    with np.errstate(invalid="ignore"):
        plausible = np.isfinite(ear).all(axis=1) & (ear <= p.max_ear).all(axis=1)
    failed = {
        "head_turned": ~(smooth <= p.max_yaw),
        "eyes_small": ~(px >= p.min_eye_px),
        "outside_frame": ~inside,
        "landmarks_implausible": ~plausible,
    }
    ok = ~np.logical_or.reduce(list(failed.values())) if frames.size else np.zeros(0, bool)
    return EyeCheck(yaw=yaw, yaw_smoothed=np.where(np.isfinite(smooth), smooth, np.nan), eye_px=px, inside=inside,
                    plausible=plausible, assessable=ok, failed=failed)


def unassessable_runs(frames: np.ndarray, check: EyeCheck) -> list[tuple[int, int, str]]:
    """(first frame, last frame inclusive, reason in words) of each run of consecutive frames of a
    track whose eyes are not assessable for the same reason: the stretches the GUI and the PDF grey out."""
    frames = np.asarray(frames).reshape(-1)
    out: list[tuple[int, int, str]] = []
    for row in np.flatnonzero(~check.assessable):
        f, why = int(frames[row]), check.reason(int(row))
        if out and out[-1][1] == f - 1 and out[-1][2] == why:
            out[-1] = (out[-1][0], f, why)
        else:
            out.append((f, f, why))
    return out


def assessable_percent(fraction: float) -> int:
    """A share of assessable frames as a whole percentage that never reads 0 or 100 unless it is
    (one turned frame in a thousand is not "100%")."""
    f = float(fraction)
    return round(100 * f) if f <= 0.0 or f >= 1.0 else min(max(round(100 * f), 1), 99)


def stored_params(parameters: Mapping[str, Any] | None) -> tuple[BlinkParams, EyeParams]:
    """The blink and eye parameters recorded in an analysis JSON's `parameters` (its `blinks` and
    `eyes` entries; unknown keys ignored, missing ones at their defaults), so that the GUI, the
    report and training recompute exactly what that run reported."""
    p = parameters or {}

    def pick(cls: Any, d: Any) -> Any:
        return from_dict(cls, d if isinstance(d, Mapping) else None, "stored parameters", unknown="ignore")

    return pick(BlinkParams, p.get("blinks")), pick(EyeParams, p.get("eyes"))


def eyes_assessable(track: _Track, width: int, height: int, fps: float | None = None, params: EyeParams | None = None) -> np.ndarray:
    """bool (M,): for each row of a face track (`core.face.facepass.FaceTrack`), whether its eyes
    can be judged for blinks. width/height: the frame size (FacePass.width / .height)."""
    return check_eyes(track.frames, track.landmarks, width, height, fps, track.ear, params).assessable


def assessable_summary(check: EyeCheck) -> dict[str, Any]:
    """The per-track figures for the analysis JSON (faces[] entries)."""
    n = int(check.assessable.size)
    k = int(check.assessable.sum())
    return {
        "eyes_assessable_frames": k,
        "eyes_assessable_fraction": round(k / n, 4) if n else 0.0,
        "eyes_not_assessable": check.reason_counts(),
    }


def track_blinks(
    track: _Track,
    width: int,
    height: int,
    fps: float,
    params: BlinkParams | None = None,
    eye_params: EyeParams | None = None,
) -> tuple[list[BlinkEvent], np.ndarray, EyeCheck]:
    """Blink events of one face track over its assessable frames only (what `verity analyze`
    reports): the events, the per-row closing threshold (NaN where not assessed) and the check."""
    check = check_eyes(track.frames, track.landmarks, width, height, fps, track.ear, eye_params)
    events, threshold = detect_blinks(track.frames, track.ear, fps, params, mask=check.assessable)
    return events, threshold, check
