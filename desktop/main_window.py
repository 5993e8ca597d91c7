"""The main window: case tree and results in docks, the player in the centre, the timeline below.

State shown: one case file (CaseStore), the selected evidence, the run shown; the frame, the face
track and the review live in one `GuiState` (desktop/state.py) that the player, the timeline and
the panels observe. All work that touches the evidence (hashing, analysis, exports) runs as a
`Task` in a thread; work that ends in what is on screen is fenced: only the latest shows.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QMainWindow,
    QMessageBox,
    QSplitter,
)

from core.errors import VerityError
from desktop.case_tree import CaseTree
from desktop.dialogs import NewCaseDialog
from desktop.panels import BookmarksPanel, ResultsPanel
from desktop.player import Player
from desktop.review import Review, build_review
from desktop.state import GuiState
from desktop.timecode import format_timecode
from desktop.timeline import Timeline
from desktop.window_exhibits import WindowExhibits
from desktop.window_identity import WindowIdentity
from desktop.window_references import WindowReferences
from desktop.window_setup import WindowSetup
from desktop.worker import Task

VIDEO_FILTER = "Video files (*.mp4 *.mov *.mkv *.avi *.mpg *.mpeg *.m4v *.webm *.wmv *.ts);;All files (*)"


class MainWindow(WindowSetup, WindowExhibits, WindowReferences, WindowIdentity, QMainWindow):
    def __init__(self, db_path: str | Path | None = None, settings: QSettings | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Verity — deepfake forensics")
        self.settings = settings or QSettings("Verity", "Verity")
        self.store: Any = None
        self.case_id: int | None = None
        self.evidence: dict[str, Any] | None = None
        self.clip_path: Path | None = None
        self.run_id: int | None = None
        self.analysis: dict[str, Any] | None = None
        self.state = GuiState()
        self.review_loader = build_review  # analysis dict -> Review, run in a worker (tests slow it down)
        self.task: Task | None = None
        self.tasks: list[Task] = []
        self.last_error: str | None = None
        self.last_export: dict[str, Any] | None = None
        self._partial: dict[str, Any] = {}
        self._load_task: Task | None = None

        self.player = Player(self)
        self.timeline = Timeline(self)
        split = QSplitter(Qt.Orientation.Vertical, self)
        split.addWidget(self.player)
        split.addWidget(self.timeline)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setObjectName("centralSplit")
        self.splitter = split
        self.setCentralWidget(split)

        self.case_tree = CaseTree(self)
        self.results = ResultsPanel(self)
        self.bookmarks = BookmarksPanel(self)
        self.case_dock = self._dock("Cases", "casesDock", self.case_tree, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.bookmark_dock = self._dock("Bookmarks", "bookmarksDock", self.bookmarks, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.results_dock = self._dock("Results", "resultsDock", self.results, Qt.DockWidgetArea.RightDockWidgetArea)

        for w in (self.player, self.timeline, self.results):
            w.bind_state(self.state)
        self._build_status()
        self._build_actions()
        self._connect()
        self._restore_settings()
        self.open_store(db_path)
        self._update_actions()
        self.models_ready = False
        QTimer.singleShot(0, self.warm_up)

    # -- case store -------------------------------------------------------------------------
    def open_store(self, db_path: str | Path | None) -> bool:
        from core.cases import CaseStore

        try:
            store = CaseStore(db_path if db_path is not None else (self.settings.value("cases/last_db") or None))
        except VerityError as exc:
            self.show_error("Cannot open the case file", str(exc))
            return False
        if self.store is not None:
            self.store.close()
        self.store = store
        self.case_id = None
        self.case_tree.populate(store)
        self.statusBar().showMessage(f"case file {store.path}", 5000)
        if store.interrupted_on_open:
            self.show_info("Interrupted analyses", f"Run(s) {', '.join(map(str, store.interrupted_on_open))} ended without finishing; marked interrupted.")
        self._update_actions()
        return True

    def choose_store(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open case file", str(self.store.path.parent if self.store else ""), "Case files (*.sqlite *.db);;All files (*)")
        if path:
            self.open_store(path)

    def new_case_dialog(self) -> None:
        dlg = NewCaseDialog(self)
        if dlg.exec() != QDialog.DialogCode.Accepted:
            return
        self.create_case(dlg.number.text(), dlg.title.text(), dlg.examiner.text(), dlg.request.text())

    def create_case(self, number: str, title: str = "", examiner: str = "", request_id: str = "") -> int | None:
        if self.store is None:
            return None
        try:
            cid = self.store.create_case(number, title, examiner, request_id)
        except VerityError as exc:
            self.show_error("Cannot create the case", str(exc))
            return None
        self.case_tree.populate(self.store)
        self.select_case(cid)
        self.case_tree.select("case", cid)
        return cid

    def select_case(self, case_id: int) -> None:
        self.case_id = case_id
        self._remember_case(case_id)
        case = self.store.get_case(case_id)
        self.setWindowTitle(f"Verity — case {case['number']} {case.get('title') or ''}".rstrip())
        self._update_actions()

    def import_dialog(self) -> None:
        if self.case_id is None:
            self.show_error("No case", "Create or choose a case first (Case ▸ New case…).")
            return
        path, _ = QFileDialog.getOpenFileName(self, "Import evidence", "", VIDEO_FILTER)
        if path:
            self.import_evidence(path)

    def import_evidence(self, path: str | Path) -> Task | None:
        """Hash and probe in a worker; the tree shows the hash when done."""
        if self.store is None or self.case_id is None:
            return None
        store, cid = self.store, self.case_id

        def job(progress: Any, cancel: Any, on_result: Any) -> Any:
            return store.import_evidence(cid, path, progress=progress, cancel=cancel)

        def done(ev: dict[str, Any]) -> None:
            self.case_tree.populate(self.store)
            self.case_tree.select("evidence", ev["id"])
            self.statusBar().showMessage(f"imported {ev['name']}: SHA-256 {ev['sha256']}", 15000)
            self.select_evidence(ev["id"])

        return self.start_task(f"Importing {Path(path).name}", job, done)

    # -- evidence and runs ------------------------------------------------------------------
    def select_evidence(self, evidence_id: int) -> None:
        ev = self.store.get_evidence(evidence_id)
        if self.case_id != ev["case_id"]:
            self.select_case(ev["case_id"])
        same = self.evidence is not None and self.evidence["id"] == evidence_id
        self.evidence = ev
        if not same:
            self.open_clip(ev["path"])
            self.refresh_bookmarks()
        run = self.store.latest_run(evidence_id)
        if run is not None:
            self.select_run(evidence_id, run["id"])
        elif not same:
            self.set_analysis(None)
        self._update_actions()

    def select_run(self, evidence_id: int, run_id: int) -> None:
        if self.evidence is None or self.evidence["id"] != evidence_id:
            self.evidence = None
            ev = self.store.get_evidence(evidence_id)
            self.evidence = ev
            if self.case_id != ev["case_id"]:
                self.select_case(ev["case_id"])
            self.open_clip(ev["path"])
            self.refresh_bookmarks()
        self.run_id = run_id
        store = self.store
        self.load_analysis(lambda: store.stored_analysis(run_id))  # hashes the run's face pass: in the worker

    def open_clip_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open video (not stored in a case)", "", VIDEO_FILTER)
        if path:
            self.evidence = None
            self.run_id = None
            self.set_analysis(None)
            self.open_clip(path)
            self.bookmarks.set_bookmarks([])
            self._update_actions()

    def open_clip(self, path: str | Path) -> None:
        self.clip_path = Path(path)
        self.timeline.set_clip(None, None)
        self.player.open(self.clip_path)

    def _on_clip_opened(self) -> None:
        assert self.player.index is not None
        self.timeline.set_clip(self.clip_path, self.player.index.times_s)
        self.timeline.set_review(self.review)

    @property
    def review(self) -> Review | None:
        return self.state.review

    def load_analysis(self, analysis: dict[str, Any] | Callable[[], dict[str, Any]]) -> Task | None:
        """Read the analysis (a dict, or a function giving one: e.g. from the store) and its face
        pass in a worker, then show everything. A later load (or analysis) fences this one: if it
        finishes late, its review is dropped, never shown over the newer one."""
        ticket = self.state.fence.take("view")
        if self._load_task is not None and self._load_task.running:
            self._load_task.cancel()  # its result would be dropped anyway

        def job(progress: Any, cancel: Any, on_result: Any) -> tuple[dict[str, Any], Review]:
            a = analysis() if callable(analysis) else analysis
            cancel.raise_if_cancelled()
            return a, self.review_loader(a)

        def done(out: tuple[dict[str, Any], Review]) -> None:
            if self.state.fence.current("view", ticket):
                self._show_review(*out)

        self._load_task = self.start_task("Loading analysis", job, done, quiet=True)
        return self._load_task

    def _show_review(self, analysis: dict[str, Any], review: Review) -> None:
        self.analysis = analysis
        stream = (analysis.get("parameters") or {}).get("video_stream")
        if self.clip_path is not None and stream != self.player.stream_index:
            self.player.open(self.clip_path, stream_index=stream)  # show the stream the run analysed
        self.state.set("review", review)  # the player, the timeline and the results panel observe it
        fpi = analysis.get("facepass") or {}
        if review.facepass is None and analysis.get("faces"):
            why = "changed since this run (sha256 differs)" if fpi.get("verified") is False else "not found"
            self.statusBar().showMessage(f"face pass at {fpi.get('path')} {why}: no overlays (run the analysis again)", 15000)
        self._update_actions()

    def set_analysis(self, analysis: dict[str, Any] | None) -> None:
        self.state.fence.take("view")  # whatever was loading is no longer wanted
        self.analysis = analysis
        self.run_id = None if analysis is None else self.run_id
        self.state.set("review", None)
        self.results.set_analysis(analysis)

    # -- analysis ---------------------------------------------------------------------------
    def run_analysis(self, options: Any = None) -> Task | None:
        if self.task is not None and self.task.running:
            self.show_error("Busy", f"{self.task.title} is still running.")
            return None
        if self.clip_path is None:
            self.show_error("Nothing to analyse", "Select evidence in the case tree (or open a video) first.")
            return None
        from core import detectors as registry
        from core.pipeline import AnalysisOptions

        options = options or AnalysisOptions()
        names = options.detectors if options.detectors is not None else list(registry.available())
        if self.store is not None and self.evidence is not None:
            from core.cases import analyze_evidence

            store, eid = self.store, self.evidence["id"]
            fn: Any = functools.partial(analyze_evidence, store, eid, options)
        else:
            from core.pipeline import analyze

            fn = functools.partial(analyze, self.clip_path, options)
        self.results.set_running(names)
        self._partial = {"detectors": {}, "faces": []}
        ticket = self.state.fence.take("view")  # selecting another run meanwhile fences this one off the screen

        def shown(fn: Callable[..., None]) -> Callable[..., None]:
            return lambda *a: fn(*a) if self.state.fence.current("view", ticket) else None

        task = self.start_task(f"Analysing {self.clip_path.name}", lambda progress, cancel, on_result: fn(progress=progress, cancel=cancel, on_result=on_result), shown(self._on_analysis_done))
        if task is not None:
            task.partial.connect(shown(self._on_partial))
            task.ended.connect(self._refresh_tree)
        return task

    def analysis_dialog(self) -> None:
        from desktop.dialogs import AnalysisDialog

        dlg = AnalysisDialog(self)
        if dlg.exec() == QDialog.DialogCode.Accepted:
            self.run_analysis(dlg.options())

    def verify_evidence(self) -> Task | None:
        """Re-hash in a worker; a mismatch is refused, audit-logged and shown."""
        if self.store is None or self.evidence is None:
            return None
        store, ev = self.store, self.evidence

        def job(progress: Any, cancel: Any, on_result: Any) -> str:
            return store.verify_evidence(ev["id"], "examiner check", progress=progress, cancel=cancel)

        def done(sha: str) -> None:
            self.show_info("Evidence verified", f"{ev['name']}: SHA-256 {sha}\nmatches the hash recorded at intake (checked and audit-logged).")

        return self.start_task(f"Verifying {ev['name']}", job, done)

    def show_weights(self) -> Task | None:
        """Weights status is read (and may hash files) in a worker, then shown."""
        from desktop.dialogs import WeightsDialog

        def job(progress: Any, cancel: Any, on_result: Any) -> list[dict[str, Any]]:
            from core.weights.verify import status_table

            return status_table()

        def done(rows: list[dict[str, Any]]) -> None:
            dlg = WeightsDialog(rows, self)
            dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            self.weights_dialog = dlg
            dlg.open()

        return self.start_task("Checking weights", job, done, quiet=True)

    def show_audit_log(self) -> None:
        if self.store is None or self.case_id is None:
            return
        from desktop.dialogs import AuditDialog

        dlg = AuditDialog(self.store, self.case_id, self)
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.open()

    def _on_partial(self, name: str, d: dict[str, Any]) -> None:
        """A detector finished: its row, segments and curves show before the run ends."""
        self.results.add_result(name, d)
        self._partial["detectors"][name] = d
        partial = build_review({**self._partial, "evidence": {"video": {"frame_count": self.player.frame_count}}}, facepass=None)
        partial.tracks = self.review.tracks if self.review is not None else []
        partial.facepass = self.review.facepass if self.review is not None else None
        partial.complete = False  # the results panel keeps its "running" rows
        self.state.set("review", partial)

    def _on_analysis_done(self, analysis: dict[str, Any]) -> None:
        self.run_id = (analysis.get("case") or {}).get("run_id")
        self.load_analysis(analysis)

    def _refresh_tree(self) -> None:
        if self.store is not None:
            self.case_tree.populate(self.store)

    def warm_up(self) -> Task | None:
        """Import the detectors (torch) and load dlib's models in a worker, once, right after start.

        Both hold Python's lock for a second or two; done here, that pause does not land in the
        middle of the examiner's first analysis or on the GUI thread (importing on first use would).
        """

        def job(progress: Any, cancel: Any, on_result: Any) -> bool:
            from core import detectors
            from core.face import dlib_models as models

            detectors.available()
            models.shape_predictor()
            models.frontal_detector()
            return True

        def done(_ok: object) -> None:
            self.models_ready = True

        return self.start_task("Loading models", job, done, quiet=True)

    # -- tasks ------------------------------------------------------------------------------
    def start_task(self, title: str, fn: Any, on_done: Any = None, quiet: bool = False) -> Task | None:
        task = Task(title, fn, self)
        if not quiet:
            if self.task is not None and self.task.running:
                self.show_error("Busy", f"{self.task.title} is still running; wait or cancel it.")
                return None
            self.task = task
            task.progress.connect(self._on_progress)
            task.cancelled.connect(lambda: self.statusBar().showMessage(f"{title}: cancelled", 8000))
            task.ended.connect(self._on_task_ended)
            self.stage_label.setText(title)
            self.progress.setValue(0)
            self.progress.setFormat("%p%")
            for w in (self.stage_label, self.progress, self.cancel_button):
                w.show()
        if on_done is not None:
            task.finished.connect(on_done)
        task.failed.connect(lambda msg, details: self.show_error(title, msg, details))
        task.ended.connect(lambda: self.tasks.remove(task) if task in self.tasks else None)
        self.tasks.append(task)
        task.start()
        self._update_actions()
        return task

    def _on_progress(self, stage: str, fraction: float, message: str, overall: float, eta: object) -> None:
        self.progress.setValue(int(overall * 1000))
        eta_txt = f", about {format_timecode(float(eta))[:-4]} left" if isinstance(eta, float) else ""
        self.progress.setFormat(f"%p% ({stage}){eta_txt}")
        if self.task is not None:
            self.stage_label.setText(f"{self.task.title}: {stage}" + (f" ({message})" if message else ""))

    def _on_task_ended(self) -> None:
        for w in (self.stage_label, self.progress, self.cancel_button):
            w.hide()
        self._update_actions()

    def cancel_task(self) -> None:
        if self.task is not None and self.task.running:
            self.task.cancel()
            self.stage_label.setText(f"{self.task.title}: cancelling…")

    def _update_actions(self) -> None:
        busy = self.task is not None and self.task.running
        has_store = self.store is not None
        self.act_new_case.setEnabled(has_store)
        self.act_import.setEnabled(has_store and self.case_id is not None and not busy)
        self.act_analyse.setEnabled(self.clip_path is not None and not busy)
        self.act_analyse_opts.setEnabled(self.clip_path is not None and not busy)
        self.act_verify.setEnabled(self.evidence is not None and not busy)
        self.act_audit.setEnabled(has_store and self.case_id is not None)
        self.act_cancel.setEnabled(busy)
        self.act_report.setEnabled(has_store and self.case_id is not None and not busy)
        for a in (self.act_png, self.act_png_raw):
            a.setEnabled(self.clip_path is not None)
        self.act_mp4.setEnabled(self.review is not None and bool(self.review.segments))
        self.act_bookmark.setEnabled(self.evidence is not None)
        self.act_identity.setEnabled(self.identity_result() is not None)

    # -- navigation -------------------------------------------------------------------------
    def jump_to(self, frame: int) -> None:
        self.player.pause()
        self.state.request_frame(frame)
        self.timeline.set_cursor(frame)  # at once; the state's frame follows when it is painted

    # -- messages ---------------------------------------------------------------------------
    def show_error(self, title: str, message: str, details: str = "") -> None:
        """Non-blocking message box: the window keeps working behind it."""
        self.last_error = message
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        if details:
            box.setDetailedText(details)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def show_info(self, title: str, message: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, title, message, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        if self.task is not None and self.task.running:
            self.task.cancel()
            self.task.wait(10000)
        for t in list(self.tasks):
            t.wait(10000)
        self.save_settings()
        self.player.shutdown()
        if self.store is not None:
            self.store.close()
            self.store = None
        super().closeEvent(event)

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Tests and scripts: process events until no task runs."""
        from PySide6.QtWidgets import QApplication

        end = time.monotonic() + timeout_s
        while self.tasks and time.monotonic() < end:
            QApplication.processEvents()
            QTimer.singleShot(0, lambda: None)
            time.sleep(0.005)
        return not self.tasks
