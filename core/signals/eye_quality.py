"""Whether an eye is resolved well enough for its blink *depth* to be measured.

A blink can be seen on a small or blurred eye (the EAR dips), but how far the lids close cannot:
dlib's 68-point lids are a shape model fitted to image edges, and where the lid edge is smeared
by compression or defocus, or spans a few pixels only, the fitted lids stop short of the lid
line. Genuine blinks then measure shallow, exactly like a generator's half-closed blinks
(docs/physiology.md, "Blink depth", has the measurements on ../shared/media).

Two pixel-free measures come from the face pass (eye width, the open-eye closure noise) and one
from a few decoded frames (the eye region's edge blur):

- **edge blur** `sigma` in pixels: for a step edge of contrast C blurred by a Gaussian of width
  sigma, the steepest gradient is C / (sigma * sqrt(2 pi)); so sigma = C / (sqrt(2 pi) * g_max),
  with C the 5-95 % grey-level range of the eye box and g_max its 98th-percentile gradient.
  About 1 px on a sharp image (the Sobel operator's own width), 2-3 px on FaceForensics++ c40.
- **closure noise**: the robust spread (1.4826 MAD) of `1 - EAR / open level` on open-eye frames:
  the resolution of any depth read from that EAR.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

LEFT_EYE_POINTS = slice(36, 42)
RIGHT_EYE_POINTS = slice(42, 48)
BOX_PAD = 0.35  # eye box margin, a fraction of the eye's width: lids, lashes and some skin
MIN_BOX_PX = 16  # fewer pixels than this in a box: no edge statistics


def eye_box(landmarks: np.ndarray, points: slice, width: int, height: int, pad: float = BOX_PAD) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) pixel box around one eye's six points (68-point landmarks (68, 2)),
    clipped to the frame; None when nothing of it is inside."""
    e = np.asarray(landmarks, np.float64)[points]
    if not np.isfinite(e).all():
        return None
    (x0, y0), (x1, y1) = e.min(axis=0), e.max(axis=0)
    m = pad * (x1 - x0)
    box = (max(int(x0 - m), 0), max(int(y0 - m), 0), min(int(math.ceil(x1 + m)) + 1, width), min(int(math.ceil(y1 + m)) + 1, height))
    return box if box[2] > box[0] and box[3] > box[1] else None


def edge_blur_px(gray: np.ndarray, box: tuple[int, int, int, int]) -> float | None:
    """Edge blur sigma (px) of a grey image (H, W) inside box; None for a flat or tiny box."""
    x0, y0, x1, y1 = box
    crop = np.asarray(gray, np.float64)[y0:y1, x0:x1]
    if crop.size < MIN_BOX_PX:
        return None
    # Sobel /8: the gradient in grey levels per pixel
    gx = cv2.Sobel(crop, cv2.CV_64F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(crop, cv2.CV_64F, 0, 1, ksize=3) / 8.0
    g_max = float(np.percentile(np.hypot(gx, gy), 98))
    contrast = float(np.percentile(crop, 95) - np.percentile(crop, 5))
    if g_max <= 0 or contrast < 8:  # a flat box (under 8 grey levels): no edge to measure
        return None
    return contrast / (math.sqrt(2 * math.pi) * g_max)


def eyes_blur_px(gray: np.ndarray, landmarks: np.ndarray) -> list[float]:
    """Edge blur of both eyes of one face in one grey frame (those that could be measured)."""
    h, w = gray.shape[:2]
    out = []
    for points in (LEFT_EYE_POINTS, RIGHT_EYE_POINTS):
        box = eye_box(landmarks, points, w, h)
        sigma = None if box is None else edge_blur_px(gray, box)
        if sigma is not None:
            out.append(sigma)
    return out


def closure_noise(closure: np.ndarray, open_rows: np.ndarray) -> float | None:
    """Robust spread of the per-eye closure (M, 2) over the open-eye rows (bool (M,)), averaged
    over the two eyes; None with fewer than 10 open rows."""
    c = np.asarray(closure, np.float64)[np.asarray(open_rows, bool)]
    c = c[np.isfinite(c).all(axis=1)] if c.size else c
    if c.shape[0] < 10:
        return None
    mad = np.median(np.abs(c - np.median(c, axis=0)), axis=0)
    return float(1.4826 * mad.mean())
