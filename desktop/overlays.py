"""Overlays drawn over the frame: face boxes with track id, 68 landmarks, eye contours coloured
by open/closed (muted grey on frames whose eyes cannot be judged for blinks), mouth contour, and
the Grad-CAM heat maps a detector stored with the run (off by default), and the ViViT blink
model's spatial attention over the eye region (read from the stored `vivit_blink` result, off by
default). Nothing is recomputed. One drawing routine serves the view (as graphics items, each
toggled on its own) and the exports (painted into a QImage, in any thread).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen, QPolygonF, QTransform
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from core.heatmaps import HeatmapStore
from core.signals.geometry import INNER_LIPS, LEFT_EYE, OUTER_LIPS, RIGHT_EYE
from desktop.review import Review

KINDS = ("boxes", "landmarks", "eyes", "mouth", "heatmap", "attention")
SHORT = {"boxes": "Boxes", "landmarks": "Landmarks", "eyes": "Eyes", "mouth": "Mouth", "heatmap": "Grad-CAM", "attention": "Attention"}
TITLES = {"boxes": "Face boxes", "landmarks": "68 landmarks", "eyes": "Eyes (open/closed)", "mouth": "Mouth contour",
          "heatmap": "Grad-CAM heat maps (frames of flagged windows)", "attention": "ViViT attention over the eyes"}
OFF_BY_DEFAULT = {"heatmap", "attention"}  # interpretation aids drawn over the evidence: the examiner turns them on
ATTENTION_DETECTOR = "vivit_blink"
ATTENTION_ALPHA = 150  # opacity of the strongest attention cell (0..255)

BOX = QColor(80, 200, 255)
LANDMARK = QColor(255, 220, 60)
EYE_OPEN = QColor(60, 230, 90)
EYE_CLOSED = QColor(255, 60, 60)
EYE_MUTED = QColor(150, 150, 150)  # eyes not assessable (turned head, small eyes...): no open/closed verdict
MOUTH = QColor(255, 120, 220)
FLAGGED = QColor(255, 80, 40)


def _poly(points: object) -> QPolygonF:
    return QPolygonF([QPointF(float(x), float(y)) for x, y in points])


def draw_overlays(
    painter: QPainter,
    review: Review | None,
    frame: int,
    kinds: set[str] | tuple[str, ...],
    track_id: int | None = None,
    line_width: float = 0.0,
) -> None:
    """Paint the chosen overlay kinds for `frame` in image coordinates.

    line_width 0 draws cosmetic (screen-pixel) lines, for the zoomable view; exports pass a width
    in image pixels. track_id None draws every track.
    """
    if review is None:
        return
    cosmetic = line_width <= 0
    flagged = review.segment_at(frame) is not None

    def pen(color: QColor, width: float = 1.0) -> QPen:
        p = QPen(color)
        p.setCosmetic(cosmetic)
        p.setWidthF((1.5 * width) if cosmetic else line_width * width)
        return p

    if "heatmap" in kinds:
        draw_heatmaps(painter, review, frame, track_id)
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    for tv in review.tracks:
        if track_id is not None and tv.track_id != track_id:
            continue
        row = tv.row(frame)
        if row is None:
            continue
        lm = tv.track.landmarks[row]
        if "boxes" in kinds:
            x0, y0, x1, y1 = (float(v) for v in tv.track.boxes[row])
            painter.setPen(pen(FLAGGED if flagged else BOX, 1.3))
            painter.drawRect(QRectF(x0, y0, x1 - x0, y1 - y0))
            size = max(10.0, (y1 - y0) * 0.16) if not cosmetic else 11.0
            font = QFont()
            font.setPixelSize(int(size)) if not cosmetic else font.setPointSizeF(size)
            painter.setFont(font)
            label = f"face {tv.track_id}"
            painter.setPen(pen(FLAGGED if flagged else BOX))
            if cosmetic:
                # Text at a fixed screen size: draw it untransformed at the mapped corner.
                corner = painter.transform().map(QPointF(x0, y0))
                painter.save()
                painter.resetTransform()
                painter.drawText(corner + QPointF(0, -4), label)
                painter.restore()
            else:
                painter.drawText(QPointF(x0, y0 - size * 0.3), label)
        if "landmarks" in kinds:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(LANDMARK)
            r = 1.2 if cosmetic else max(1.0, line_width)
            if cosmetic:
                scale = max(painter.transform().m11(), 1e-6)
                r = 1.6 / scale
            for x, y in lm:
                painter.drawEllipse(QPointF(float(x), float(y)), r, r)
            painter.setBrush(Qt.BrushStyle.NoBrush)
        if "eyes" in kinds:
            closed = tv.eyes_closed(row)
            judged = tv.eyes_assessable(row)
            for k, sl in enumerate((LEFT_EYE, RIGHT_EYE)):
                painter.setPen(pen(EYE_MUTED if not judged else EYE_CLOSED if closed[k] else EYE_OPEN, 1.0 if not judged else 1.2))
                painter.drawPolygon(_poly(lm[sl]))
        if "mouth" in kinds:
            painter.setPen(pen(MOUTH, 1.1))
            painter.drawPolygon(_poly(lm[OUTER_LIPS]))
            painter.drawPolygon(_poly(lm[INNER_LIPS]))
        if "attention" in kinds:
            _draw_attention(painter, review, tv.track_id, frame)
    painter.restore()


def attention_at(review: Review, track_id: int, frame: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The stored ViViT attention map (grid h x w, 0..255) of this frame and track, and the corners
    (4, 2) of the eye crop it covers in the image; None where the run has none."""
    det: dict[str, Any] = (review.analysis.get("detectors") or {}).get(ATTENTION_DETECTOR) or {}
    att = ((det.get("per_track") or {}).get(str(track_id)) or {}).get("attention")
    if not isinstance(att, dict) or not att.get("frames"):
        return None
    frames = att["frames"]
    k = bisect_left(frames, frame)
    if k == len(frames) or frames[k] != frame:
        return None
    h, w = (int(v) for v in att["grid"])
    return np.asarray(att["maps"][k], np.uint8).reshape(h, w), np.asarray(att["quads"][k], np.float64).reshape(4, 2)


def _draw_attention(painter: QPainter, review: Review, track_id: int, frame: int) -> None:
    """The map as a red heat layer warped onto the eye crop (the crop is rotated with the eye line)."""
    hit = attention_at(review, track_id, frame)
    if hit is None:
        return
    grid, quad = hit
    h, w = grid.shape
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 1] = 255 - grid  # low attention yellow, high red
    rgba[..., 3] = (grid.astype(np.uint16) * ATTENTION_ALPHA // 255).astype(np.uint8)
    image = QImage(np.ascontiguousarray(rgba).data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
    cell = QPolygonF([QPointF(0, 0), QPointF(w, 0), QPointF(w, h), QPointF(0, h)])
    to_image = QTransform()
    if not QTransform.quadToQuad(cell, _poly(quad), to_image):
        return
    painter.save()
    painter.setTransform(to_image, True)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
    painter.drawImage(QPointF(0, 0), image)
    painter.restore()


def _heat_to_frame(review: Review, store: HeatmapStore, k: int, frame: int) -> np.ndarray:
    """2x3 map-pixel -> frame-pixel affine for stored map k shown on `frame`. The crop is placed
    by this frame's own landmarks when the face is tracked here (maps exist on sampled frames
    only; the face moves in between), else by the mapped frame's crop."""
    from core.face.align import CropSpec, crop_transform, invert

    m = np.asarray(store.affine[k], np.float64)
    tv = review.track(int(store.track_id[k]))
    spec = store.meta.get("crop")
    row = tv.row(frame) if tv is not None else None
    if row is not None and spec and review.facepass is not None:
        m, _ = crop_transform(tv.track.landmarks[row], tv.track.boxes[row], (review.facepass.width, review.facepass.height), CropSpec(**spec))
    back = invert(m)  # crop -> frame
    s = store.crop_size / store.maps.shape[-1]
    return back @ np.array([[s, 0.0, 0.0], [0.0, s, 0.0], [0.0, 0.0, 1.0]])


def draw_heatmaps(painter: QPainter, review: Review, frame: int, track_id: int | None = None) -> None:
    """The stored Grad-CAM map of each face's flagged window covering this frame, coloured and
    see-through where cold, warped onto the face (never recomputed: core.heatmaps)."""
    from core.heatmaps import colourise

    for store in review.heatmaps.values():
        for k in store.at(frame, track_id):
            rgba = np.ascontiguousarray(colourise(store.maps[k]))
            h, w = rgba.shape[:2]
            image = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
            a = _heat_to_frame(review, store, k, frame)
            painter.save()
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.setTransform(QTransform(a[0, 0], a[1, 0], a[0, 1], a[1, 1], a[0, 2], a[1, 2]), True)
            painter.drawImage(QRectF(0, 0, w, h), image)
            painter.restore()


def render_frame(rgb: object, review: Review | None, frame: int, kinds: set[str] | tuple[str, ...], track_id: int | None = None) -> QImage:
    """The frame as a QImage with overlays burned in at image resolution (thread-safe)."""
    import numpy as np

    arr = np.ascontiguousarray(rgb)
    h, w = arr.shape[:2]
    image = QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).convertToFormat(QImage.Format.Format_RGB32)
    if kinds and review is not None:
        painter = QPainter(image)
        draw_overlays(painter, review, frame, kinds, track_id, line_width=max(1.0, h / 540.0))
        painter.end()
    return image


class OverlayItem(QGraphicsItem):
    """One overlay kind over the frame item; hidden or shown on its own."""

    def __init__(self, kind: str, owner: OverlayHost) -> None:
        super().__init__()
        self.kind = kind
        self.owner = owner
        self.setZValue(9 if kind == "heatmap" else 10)  # heat maps under the landmarks

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        return self.owner.image_rect()

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        # Every face is drawn; the track selector only chooses whose values the status bar shows.
        draw_overlays(painter, self.owner.review, self.owner.frame_index, (self.kind,), None)


class OverlayHost:
    """What overlay items read: the review, the frame shown and the chosen face track."""

    review: Review | None = None
    frame_index: int = 0
    track_filter: int | None = None

    def image_rect(self) -> QRectF:  # pragma: no cover - overridden by the player
        return QRectF()
