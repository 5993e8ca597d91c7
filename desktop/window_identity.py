"""The questioned face beside the known exemplars' faces (identity_reference), as the report shows
them: the faces are read from the files in a worker, then shown in a non-modal dialog with the
distances and the frames each used. A mixin of `desktop.main_window.MainWindow`."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

DETECTOR = "identity_reference"


class IdentityDialog(QDialog):
    """Face tiles in a row (questioned first), each with its caption; the reading above them."""

    def __init__(self, parent: QWidget | None, faces: list[tuple[bytes, str]], heading: str) -> None:
        super().__init__(parent)
        self.setWindowTitle("Questioned face and known exemplars")
        layout = QVBoxLayout(self)
        top = QLabel(heading, self)
        top.setWordWrap(True)
        layout.addWidget(top)
        row = QWidget(self)
        tiles = QHBoxLayout(row)
        self.captions: list[str] = []
        for png, caption in faces:
            tile = QVBoxLayout()
            picture = QLabel(row)
            pixmap = QPixmap()
            pixmap.loadFromData(png, "PNG")
            picture.setPixmap(pixmap)
            picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
            text = QLabel(caption, row)
            text.setWordWrap(True)
            text.setMaximumWidth(max(pixmap.width(), 160))
            tile.addWidget(picture)
            tile.addWidget(text)
            tile.addStretch(1)
            tiles.addLayout(tile)
            self.captions.append(caption)
        if not faces:
            tiles.addWidget(QLabel("No face image could be read from the files (see the log).", row))
        scroll = QScrollArea(self)
        scroll.setWidget(row)
        scroll.setWidgetResizable(True)
        layout.addWidget(scroll, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.close)
        layout.addWidget(buttons)
        self.resize(760, 420)


def heading(result: dict[str, Any]) -> str:
    """The reading and its basis in one paragraph (the detector's own note)."""
    reading = result.get("assessment") or "no reading"
    return f"{DETECTOR}: {reading}. {result.get('note') or ''}".strip()


class WindowIdentity:
    def identity_result(self) -> dict[str, Any] | None:
        """The shown analysis's identity_reference result, when it compared faces."""
        d = ((getattr(self, "analysis", None) or {}).get("detectors") or {}).get(DETECTOR)
        return d if isinstance(d, dict) and d.get("status") == "ok" else None

    def show_identity(self) -> None:
        result = self.identity_result()
        if result is None:
            self.show_error(
                "No identity comparison",
                "The shown analysis has no identity_reference result. Add known exemplars of the person to the case "
                "(Case ▸ case tree ▸ Add known exemplars), then run the analysis again.",
            )
            return
        path = ((self.analysis or {}).get("evidence") or {}).get("path") or self.clip_path
        from core.report.identity import identity_faces

        def job(progress: Any, cancel: Any, on_result: Any) -> list[tuple[bytes, str]]:
            return identity_faces(str(path), result)

        def done(faces: list[tuple[bytes, str]]) -> None:
            self.identity_dialog = IdentityDialog(self, faces, heading(result))
            self.identity_dialog.show()

        self.start_task("Reading the faces to compare", job, done, quiet=True)
