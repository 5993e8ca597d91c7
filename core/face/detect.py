"""Face detection on a downscaled, padded copy of the frame; boxes mapped back to full size."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.face.models import frontal_detector


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in full-frame pixels
    score: float


def detect_faces(gray: np.ndarray, max_side: int = 640, pad: float = 0.25, upsample: int = 0) -> list[Detection]:
    """dlib HOG detection. `pad` adds a border (fraction of the short side) so a face that fills
    the frame, as in tight 224x224 crops, is still seen whole by the 80x80 detection window."""
    h, w = gray.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    small = gray if scale == 1.0 else cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    border = int(round(pad * min(small.shape[:2])))
    if border:
        small = cv2.copyMakeBorder(small, border, border, border, border, cv2.BORDER_REPLICATE)
    small = np.ascontiguousarray(small)
    rects, scores, _ = frontal_detector().run(small, upsample, 0.0)
    out = []
    for r, s in zip(rects, scores):
        x0 = (r.left() - border) / scale
        y0 = (r.top() - border) / scale
        x1 = (r.right() - border) / scale
        y1 = (r.bottom() - border) / scale
        out.append(Detection((x0, y0, x1, y1), float(s)))
    return out


def iou(a: tuple[float, ...] | np.ndarray, b: tuple[float, ...] | np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
