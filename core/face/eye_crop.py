"""The EyeBlink eye-region crop: both eyes in one square, the eye line horizontal, placed from
the four eye corners of the stored landmarks (no re-detection). Used by the EyeBlink CNN-LSTM and
the ViViT blink model's eye clips."""

from __future__ import annotations

import math

import numpy as np

from core.signals.geometry import LEFT_EYE_INNER, LEFT_EYE_OUTER, RIGHT_EYE_INNER, RIGHT_EYE_OUTER


def eye_crop_transform(landmarks: np.ndarray, size: int, margin: float) -> np.ndarray:
    """2x3 affine map from the frame to a size x size crop of both eyes, eye line horizontal.

    Centre and scale come from the four eye corners (36, 39, 42, 45), which do not move when the
    lids close, so the crop stays still through a blink.
    """
    lm = np.asarray(landmarks, np.float64)
    outer_l, inner_l, inner_r, outer_r = lm[LEFT_EYE_OUTER], lm[LEFT_EYE_INNER], lm[RIGHT_EYE_INNER], lm[RIGHT_EYE_OUTER]
    centre = (outer_l + inner_l + inner_r + outer_r) / 4.0
    d = outer_r - outer_l
    span = float(np.hypot(*d))
    side = max(span * (1.0 + 2.0 * margin), 1.0)
    angle = math.atan2(d[1], d[0])
    s = size / side
    c, si = math.cos(angle) * s, math.sin(angle) * s
    # rotate by -angle and scale about the centre, then move the centre to the crop's centre
    m = np.array([[c, si, 0.0], [-si, c, 0.0]])
    m[:, 2] = np.array([size / 2.0, size / 2.0]) - m[:, :2] @ centre
    return m


def crop_eyes(frame_rgb: np.ndarray, landmarks: np.ndarray, size: int, margin: float) -> np.ndarray:
    """Eye-region crop (size, size, 3) uint8; outside the frame is black."""
    import cv2

    m = eye_crop_transform(landmarks, size, margin)
    return cv2.warpAffine(frame_rgb, m, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
