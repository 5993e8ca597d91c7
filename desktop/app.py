"""`verity` with no arguments: the desktop application."""

from __future__ import annotations

import sys
from pathlib import Path

RESOURCES = Path(__file__).resolve().parents[1] / "resources"


def style_sheet() -> str:
    qss = RESOURCES / "qss" / "verity.qss"
    return qss.read_text(encoding="utf-8") if qss.is_file() else ""


def make_app(argv: list[str] | None = None) -> object:
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setOrganizationName("Verity")
    app.setApplicationName("Verity")
    app.setApplicationDisplayName("Verity")
    icon = RESOURCES / "icons" / "verity.svg"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    app.setStyle("Fusion")
    app.setStyleSheet(style_sheet())
    return app


def main() -> int:
    app = make_app()
    from desktop.main_window import MainWindow

    window = MainWindow()
    window.show()
    return int(app.exec())  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
