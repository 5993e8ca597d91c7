"""The picture of the player: the frame image item (1 scene unit per pixel, no smoothing) and the
zoomable, pannable view it sits in."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QImage, QPainter, QWheelEvent
from PySide6.QtWidgets import QGraphicsItem, QGraphicsScene, QGraphicsView, QStyleOptionGraphicsItem, QWidget


class FrameItem(QGraphicsItem):
    """Paints the current frame image at 1 scene unit per pixel, without smoothing."""

    def __init__(self) -> None:
        super().__init__()
        self.image: QImage | None = None
        self._array: np.ndarray | None = None  # keeps the QImage's buffer alive
        self.index = -1
        self.on_painted: Callable[[int], None] | None = None

    def set_frame(self, index: int, rgb: np.ndarray) -> None:
        h, w = rgb.shape[:2]
        if self.image is None or self.image.width() != w or self.image.height() != h:
            self.prepareGeometryChange()
        self._array = rgb
        self.image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)
        self.index = index
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        if self.image is None:
            return QRectF(0, 0, 1, 1)
        return QRectF(0, 0, self.image.width(), self.image.height())

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if self.image is None:
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        # Paint only the exposed part: a zoomed-in view touches a few source pixels.
        exposed = option.exposedRect.intersected(self.boundingRect()).toAlignedRect()
        painter.drawImage(exposed, self.image, exposed)
        if self.on_painted is not None:
            self.on_painted(self.index)


class FrameView(QGraphicsView):
    """Zoom with the wheel (about the cursor), pan by dragging; 'fit' follows the window size."""

    def __init__(self, scene: QGraphicsScene, parent: QWidget | None = None) -> None:
        super().__init__(scene, parent)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        self.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.FullViewportUpdate)
        self.setBackgroundBrush(Qt.GlobalColor.black)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.fit = True

    def fit_to(self, rect: QRectF) -> None:
        self.fit = True
        self.setSceneRect(rect)
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)

    def zoom(self, factor: float) -> None:
        self.fit = False
        self.scale(factor, factor)

    def actual_size(self) -> None:
        self.fit = False
        self.resetTransform()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt API
        self.zoom(1.25 if event.angleDelta().y() > 0 else 0.8)

    def resizeEvent(self, event: object) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)  # type: ignore[arg-type]
        if self.fit and not self.sceneRect().isEmpty():
            self.fitInView(self.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def keyPressEvent(self, event: object) -> None:  # noqa: N802 - arrows belong to the player
        event.ignore()  # type: ignore[attr-defined]
