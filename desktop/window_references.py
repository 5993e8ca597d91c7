"""The main window's known exemplars (reference footage or photos of a named person, for
`identity_reference`): chosen in a dialog, hashed and recorded in a `Task` like evidence intake.
A mixin of `desktop.main_window.MainWindow`."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QFileDialog, QInputDialog

from desktop.worker import Task

EXEMPLAR_FILTER = (
    "Videos and photos (*.jpg *.jpeg *.png *.bmp *.tif *.tiff *.webp *.mp4 *.mov *.mkv *.avi *.mpg *.mpeg *.m4v *.webm *.wmv *.ts);;"
    "All files (*)"
)


class WindowReferences:
    def add_reference_dialog(self, case_id: int) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add known exemplars", "", EXEMPLAR_FILTER)
        if not paths:
            return
        person, ok = QInputDialog.getText(self, "Known exemplars", "Person these files show (as the questioned video names them):")
        if ok and person.strip():
            self.add_references(case_id, person.strip(), paths)

    def add_references(self, case_id: int, person: str, paths: list[str]) -> Task | None:
        """Hash and record known exemplars in a worker (like evidence intake)."""
        if self.store is None:
            return None
        from core.cases.references import add_reference

        store = self.store

        def job(progress: Any, cancel: Any, on_result: Any) -> Any:
            return [add_reference(store, case_id, person, p, progress=progress, cancel=cancel) for p in paths]

        def done(refs: list[dict[str, Any]]) -> None:
            self.case_tree.populate(self.store)
            self.statusBar().showMessage(f"{len(refs)} known exemplar(s) of {person} recorded", 15000)

        return self.start_task(f"Adding known exemplars of {person}", job, done)
