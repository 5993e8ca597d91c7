"""Per-frame geometry from 68-point landmarks (iBUG numbering, 0-based).

`left`/`right` mean the image side: points 36-41 are the eye on the image left (the subject's
right eye), points 42-47 the eye on the image right.
"""

from __future__ import annotations

import numpy as np

# the 68 points' parts, named once (everything else indexes landmarks through these)
JAW = slice(0, 17)
LEFT_BROW = slice(17, 22)
RIGHT_BROW = slice(22, 27)
NOSE_BRIDGE = slice(27, 31)
NOSE_BASE = slice(31, 36)
LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
OUTER_LIPS = slice(48, 60)
INNER_LIPS = slice(60, 68)
BROWS = slice(17, 27)
NOSE = slice(27, 36)
EYES = slice(36, 48)
MOUTH = slice(48, 68)
# eye corners: they stay put when the lids close
LEFT_EYE_OUTER, LEFT_EYE_INNER, RIGHT_EYE_INNER, RIGHT_EYE_OUTER = 36, 39, 42, 45
# the outlines drawn over a face: (part, closed polygon)
OUTLINES = (
    (JAW, False), (LEFT_BROW, False), (RIGHT_BROW, False), (NOSE_BRIDGE, False), (NOSE_BASE, False),
    (LEFT_EYE, True), (RIGHT_EYE, True), (OUTER_LIPS, True), (INNER_LIPS, True),
)


def _dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=-1)


def eye_aspect_ratio(eye: np.ndarray) -> np.ndarray:
    """EAR = (|p2-p6| + |p3-p5|) / (2 |p1-p4|) for eye points (..., 6, 2) (EyeBlink card)."""
    p1, p2, p3, p4, p5, p6 = (eye[..., k, :] for k in range(6))
    width = _dist(p1, p4)
    with np.errstate(divide="ignore", invalid="ignore"):
        ear = (_dist(p2, p6) + _dist(p3, p5)) / (2.0 * width)
    return np.where(width > 0, ear, np.nan)


def ears(landmarks: np.ndarray) -> np.ndarray:
    """EAR of (image-left, image-right) eye for landmarks (..., 68, 2) -> (..., 2)."""
    return np.stack([eye_aspect_ratio(landmarks[..., LEFT_EYE, :]), eye_aspect_ratio(landmarks[..., RIGHT_EYE, :])], axis=-1)


def face_scale(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the outer eye corners (36, 45): a size that does not move with speech."""
    return _dist(landmarks[..., LEFT_EYE_OUTER, :], landmarks[..., RIGHT_EYE_OUTER, :])


def mouth_aperture(landmarks: np.ndarray) -> np.ndarray:
    """Mean inner-lip opening (61-67, 62-66, 63-65) divided by the outer eye-corner distance."""
    opening = (
        _dist(landmarks[..., 61, :], landmarks[..., 67, :])
        + _dist(landmarks[..., 62, :], landmarks[..., 66, :])
        + _dist(landmarks[..., 63, :], landmarks[..., 65, :])
    ) / 3.0
    scale = face_scale(landmarks)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(scale > 0, opening / scale, np.nan)
