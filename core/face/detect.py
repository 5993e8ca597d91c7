"""Face detection: three dlib detectors from cheap to thorough, boxes in full-frame pixels.

- `detect_faces`: HOG (dlib's frontal detector, 5 views) on a downscaled, padded copy of the
  frame. Fast; finds ordinary faces of at least ~80 px at detection scale.
- `detect_local`: HOG in a neighbourhood of a tracked box, equalised (CLAHE) and scaled so the
  face is ~110 px, with a lowered threshold. Confirms that a track still holds a face.
- `mmod_near`: dlib's MMOD CNN in a neighbourhood of a box (the last check before a track ends).
- `detect_hard`: for frames where the HOG finds nothing. Small frames (tight crops such as the
  224x224 AVLips clips, profile views) go whole through dlib's MMOD CNN; large frames get a
  contrast-equalised full-resolution HOG at a low threshold whose candidates must then be
  confirmed by the MMOD CNN in their neighbourhood (two different detectors must agree).

Every detector returns HOG-style boxes (the 68-point landmark model was trained on those).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from core.face.dlib_models import cnn_detector, frontal_detector

HOG = "dlib-hog"
MMOD = "dlib-mmod-cnn"
# Below this many pixels on a side no detector can hold a face (dlib's HOG window is 80 px, the
# CNN's 40 px before upsampling) and dlib's native code fails on the padded pyramid (2x2 and 4x4
# px frames crashed it, sometimes with SIGBUS): such images never reach dlib.
MIN_FRAME_SIDE = 32


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in full-frame pixels
    score: float
    detector: str = HOG


def _pad(img: np.ndarray, border: int) -> np.ndarray:
    if border <= 0:
        return np.ascontiguousarray(img)
    return cv2.copyMakeBorder(img, border, border, border, border, cv2.BORDER_REPLICATE)


def detect_faces(
    gray: np.ndarray, max_side: int = 640, pad: float = 0.25, upsample: int = 0, threshold: float = 0.0
) -> list[Detection]:
    """dlib HOG detection. `pad` adds a border (fraction of the short side) so a face that fills
    the frame, as in tight 224x224 crops, is still seen whole by the 80x80 detection window."""
    h, w = gray.shape[:2]
    if min(h, w) < MIN_FRAME_SIDE:
        return []
    scale = min(1.0, max_side / max(h, w))
    small = gray if scale == 1.0 else cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    border = int(round(pad * min(small.shape[:2])))
    small = _pad(small, border)
    rects, scores, _ = frontal_detector().run(small, upsample, threshold)
    return [
        Detection(((r.left() - border) / scale, (r.top() - border) / scale, (r.right() - border) / scale, (r.bottom() - border) / scale), float(s))
        for r, s in zip(rects, scores)
    ]


def _stretch(img: np.ndarray) -> np.ndarray:
    """Linear contrast stretch (1st..99th percentile to 0..255): dark, flat faces become visible
    to gradient features without changing geometry."""
    lo, hi = np.percentile(img, (1, 99))
    if hi - lo < 1:
        return np.ascontiguousarray(img)
    lut = np.clip((np.arange(256, dtype=np.float32) - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)
    return lut[img]


def _crop(gray: np.ndarray, box: np.ndarray | tuple[float, ...], margin: float) -> tuple[np.ndarray, int, int]:
    """The box grown by `margin` of its size on every side, clipped to the frame."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    H, W = gray.shape[:2]
    cx0 = int(max(0, np.floor(x0 - margin * w)))
    cy0 = int(max(0, np.floor(y0 - margin * h)))
    cx1 = int(min(W, np.ceil(x1 + margin * w)))
    cy1 = int(min(H, np.ceil(y1 + margin * h)))
    return gray[cy0:cy1, cx0:cx1], cx0, cy0


def _equalise(img: np.ndarray) -> np.ndarray:
    """Local contrast equalisation (CLAHE) of a face-sized crop: dark, flat faces score as faces."""
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4)).apply(np.ascontiguousarray(img))


def detect_local(
    gray: np.ndarray, box: np.ndarray | tuple[float, ...], threshold: float = -0.7, face_px: float = 110.0
) -> list[Detection]:
    """HOG near a tracked box: crop (box + 60% margin), equalise (CLAHE), scale the face to about
    `face_px` and pad so a face touching the frame edge still fits the window. On the DFDC clip's
    dark 60 px face the true box scores >= -0.7 in 97% of sampled frames (linear stretch: 90%)."""
    crop, ox, oy = _crop(gray, box, 0.6)
    if crop.size == 0 or min(crop.shape) < 8:
        return []
    s = face_px / max(box[2] - box[0], 1.0)
    s = float(np.clip(s, 0.25, 4.0))
    img = cv2.resize(crop, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    border = int(0.3 * face_px)
    img = _pad(_equalise(img), border)
    rects, scores, _ = frontal_detector().run(img, 0, threshold)
    return [
        Detection(
            ((r.left() - border) / s + ox, (r.top() - border) / s + oy, (r.right() - border) / s + ox, (r.bottom() - border) / s + oy),
            float(sc),
        )
        for r, sc in zip(rects, scores)
    ]


# MMOD boxes are ~8% smaller than HOG boxes and sit higher on the face (measured on 15 frames of
# four media clips where both fire: centre offset (-0.04, -0.08) of the HOG width, size 0.92).
# The landmark model was trained on HOG-style boxes, so MMOD boxes are mapped to that style.
_MMOD_TO_HOG = (0.039, 0.080, 1 / 0.92)


def _mmod(img_gray: np.ndarray, threshold: float) -> list[tuple[tuple[float, float, float, float], float]]:
    rgb = np.ascontiguousarray(np.repeat(img_gray[:, :, None], 3, axis=2))
    out = []
    for d in cnn_detector()(rgb, 0):
        if d.confidence >= threshold:
            r = d.rect
            w = (r.right() - r.left()) * _MMOD_TO_HOG[2]
            h = (r.bottom() - r.top()) * _MMOD_TO_HOG[2]
            cx = (r.left() + r.right()) / 2 + _MMOD_TO_HOG[0] * w
            cy = (r.top() + r.bottom()) / 2 + _MMOD_TO_HOG[1] * w
            out.append(((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), float(d.confidence)))
    return out


def mmod_near(
    gray: np.ndarray, box: np.ndarray | tuple[float, ...], threshold: float = 0.0, face_px: float = 70.0, margin: float = 0.4
) -> list[Detection]:
    """dlib's MMOD CNN around a box (box + `margin` on each side, face scaled to about `face_px`:
    the CNN finds faces from ~40 px and its cost grows with the crop's area)."""
    crop, ox, oy = _crop(gray, box, margin)
    if crop.size == 0 or min(crop.shape) < 8:
        return []
    s = float(np.clip(face_px / max(box[2] - box[0], 1.0), 0.25, 4.0))
    img = cv2.resize(crop, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    border = int(0.2 * face_px)
    img = _pad(_stretch(img), border)
    return [
        Detection(((b[0] - border) / s + ox, (b[1] - border) / s + oy, (b[2] - border) / s + ox, (b[3] - border) / s + oy), c, MMOD)
        for b, c in _mmod(img, threshold)
    ]


def detect_hard(
    gray: np.ndarray,
    whole_frame_px: int = 400 * 400,
    candidate_threshold: float = -0.7,
    confirm_threshold: float = 0.0,
    max_candidates: int = 3,
    whole_frame_side: int = 160,
    max_side: int = 1920,
    exclude: Sequence[tuple[float, ...] | np.ndarray] = (),
) -> list[Detection]:
    """The thorough search for frames where the fast HOG found nothing (see module doc).

    Frames up to `whole_frame_px` pixels go whole (short side scaled to `whole_frame_side`, 20%
    border) through the MMOD CNN: in small frames a face is large. Larger frames: CLAHE-equalised
    HOG at full resolution with `candidate_threshold`; each of the best `max_candidates`
    candidates is kept only if the MMOD CNN confirms it in its neighbourhood. Candidates on an
    `exclude` box (faces already tracked) are skipped before the costly confirmation.
    """
    h, w = gray.shape[:2]
    if min(h, w) < MIN_FRAME_SIDE:
        return []
    if h * w <= whole_frame_px:
        s = min(1.0, whole_frame_side / min(h, w))
        img = gray if s == 1.0 else cv2.resize(gray, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        border = int(round(0.2 * min(img.shape[:2])))
        img = _pad(_stretch(img), border)
        return [
            Detection(((b[0] - border) / s, (b[1] - border) / s, (b[2] - border) / s, (b[3] - border) / s), c, MMOD)
            for b, c in _mmod(img, confirm_threshold)
        ]
    # beyond 1080p (4K) the candidate search runs on a 1920 px copy: faces of 80 px and more
    s = min(1.0, max_side / max(h, w))
    small = gray if s == 1.0 else cv2.resize(gray, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    eq = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(np.ascontiguousarray(small))
    rects, scores, _ = frontal_detector().run(eq, 0, candidate_threshold)
    boxes = [(r.left() / s, r.top() / s, r.right() / s, r.bottom() / s) for r in rects]
    cands = sorted(
        ((sc, b) for sc, b in zip(scores, boxes) if not any(same_face(b, e) for e in exclude)), key=lambda t: -t[0]
    )[:max_candidates]
    out: list[Detection] = []
    for _, box in cands:
        # a low-threshold HOG box often spans the head with hair: scale for a face of ~2/3 of it
        confirmed = [d for d in mmod_near(gray, box, confirm_threshold, face_px=95.0) if same_face(d.box, box)]
        if confirmed:
            # the CNN's box (mapped to HOG style) sizes the face better than a low-scoring HOG box
            best = max(confirmed, key=lambda d: d.score)
            if not any(same_face(best.box, o.box) for o in out):
                out.append(Detection(best.box, best.score, f"{HOG}+{MMOD}"))
    return out


def same_face(
    a: tuple[float, ...] | np.ndarray, b: tuple[float, ...] | np.ndarray, min_iou: float = 0.3, max_ratio: float = 2.0
) -> bool:
    """Two boxes on one face: enough overlap, or one's centre inside the other at a similar size
    (detectors place boxes differently on turned faces; faces themselves rarely overlap)."""
    if iou(a, b) >= min_iou:
        return True
    wa, wb = a[2] - a[0], b[2] - b[0]
    if not (1 / max_ratio <= wa / max(wb, 1e-6) <= max_ratio):
        return False
    ca = ((a[0] + a[2]) / 2, (a[1] + a[3]) / 2)
    cb = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    return bool((b[0] <= ca[0] <= b[2] and b[1] <= ca[1] <= b[3]) or (a[0] <= cb[0] <= a[2] and a[1] <= cb[1] <= a[3]))


def iou(a: tuple[float, ...] | np.ndarray, b: tuple[float, ...] | np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
