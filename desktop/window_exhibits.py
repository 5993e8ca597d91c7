"""The main window's bookmarks, exhibits (PNG frames, MP4 segments) and report export: each a
`Task`, audit-logged when the evidence is in a case. A mixin of `desktop.main_window.MainWindow`."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from desktop.exhibits import export_frame_png, export_segment_mp4
from desktop.worker import Task


class WindowExhibits:
    # -- bookmarks --------------------------------------------------------------------------
    def refresh_bookmarks(self) -> None:
        if self.store is None or self.evidence is None:
            self.bookmarks.set_bookmarks([])
            return
        times = self.player.index.times_s if self.player.index is not None else None
        self.bookmarks.set_bookmarks(self.store.list_bookmarks(evidence_id=self.evidence["id"]), times)

    def add_bookmark_dialog(self) -> None:
        if self.evidence is None:
            self.show_error("No evidence", "Bookmarks belong to evidence in a case: select it in the case tree.")
            return
        note, ok = QInputDialog.getMultiLineText(self, "Bookmark", f"Note at frame {self.player.frame_index}:")
        if ok:
            self.add_bookmark(note)

    def add_bookmark(self, note: str, frame: int | None = None) -> int | None:
        if self.store is None or self.evidence is None:
            return None
        frame = self.player.frame_index if frame is None else frame
        bid = self.store.add_bookmark(self.evidence["id"], frame, note, track_id=self.state.track_id)
        self.refresh_bookmarks()
        return bid

    def delete_bookmark(self, bookmark_id: int) -> None:
        if self.store is None:
            return
        if QMessageBox.question(self, "Delete bookmark", "Delete this bookmark? (The audit log keeps a record.)") == QMessageBox.StandardButton.Yes:
            self.store.delete_bookmark(bookmark_id)
            self.refresh_bookmarks()

    # -- exhibits ---------------------------------------------------------------------------
    def _exhibit_name(self, suffix: str) -> str:
        stem = self.clip_path.stem if self.clip_path else "frame"
        return f"{stem}_{suffix}"

    def export_png_dialog(self, overlays: bool) -> None:
        name = self._exhibit_name(f"frame{self.player.frame_index:06d}{'_overlays' if overlays else ''}.png")
        path, _ = QFileDialog.getSaveFileName(self, "Export frame", name, "PNG image (*.png)")
        if path:
            self.export_png(Path(path), overlays)

    def export_png(self, out: Path, overlays: bool = True) -> Task | None:
        if self.clip_path is None:
            return None
        kinds = self.player.visible_overlays() if overlays else ()
        fn = functools.partial(export_frame_png, self.clip_path, self.player.frame_index, out, self.review, kinds)
        return self.start_task(f"Exporting {out.name}", fn, self._on_exported)

    def current_or_next_segment(self) -> Any:
        if self.review is None:
            return None
        i = self.player.frame_index
        return self.review.segment_at(i) or self.review.next_segment(i) or self.review.previous_segment(i)

    def export_segment_dialog(self) -> None:
        seg = self.current_or_next_segment()
        if seg is None:
            self.show_error("No flagged segment", "This analysis flagged no segment.")
            return
        name = self._exhibit_name(f"{seg.detector}_frames{seg.start_frame}-{seg.end_frame}.mp4")
        path, _ = QFileDialog.getSaveFileName(self, "Export flagged segment", name, "MP4 video (*.mp4)")
        if path:
            self.export_segment(Path(path), seg.start_frame, seg.end_frame, seg.detector)

    def export_segment(self, out: Path, start: int, end: int, detector: str = "") -> Task | None:
        if self.clip_path is None:
            return None
        kinds = self.player.visible_overlays()
        fn = functools.partial(export_segment_mp4, self.clip_path, start, end, out, self.review, kinds)
        task = self.start_task(f"Exporting {out.name}", fn, lambda info: self._on_exported({**info, "detector": detector}))
        return task

    def _on_exported(self, info: dict[str, Any]) -> None:
        self.last_export = info
        if self.store is not None and self.evidence is not None:
            details = {**info, "evidence_sha256": self.evidence["sha256"], "run_id": self.run_id}
            self.store.audit(self.evidence["case_id"], f"exhibit exported ({info['kind']})", "evidence", self.evidence["id"], details)
            where = "recorded in the audit log"
        else:
            where = "not recorded (no case)"
        self.statusBar().showMessage(f"exported {info['file']} (sha256 {info['sha256'][:16]}…), {where}", 15000)

    # -- report -----------------------------------------------------------------------------
    def export_report_dialog(self) -> None:
        if self.store is None or self.case_id is None:
            return
        case = self.store.get_case(self.case_id)
        path, _ = QFileDialog.getSaveFileName(self, "Export report", f"verity_case_{case['number']}.pdf", "PDF report (*.pdf);;JSON report (*.json)")
        if path:
            self.export_report(Path(path))

    def export_report(self, out: Path) -> Task | None:
        from desktop import reporting

        store, cid = self.store, self.case_id
        fn = functools.partial(reporting.export_report, store, cid, out)
        return self.start_task(f"Report {out.name}", fn, lambda info: self.statusBar().showMessage(f"report written: {', '.join(map(str, info.get('files', [out])))}", 15000))
