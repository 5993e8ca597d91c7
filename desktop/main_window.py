"""The main window: case tree and results in docks, the player in the centre, the timeline below.

State shown: one case file (CaseStore), the selected evidence, the run shown and its review.
All work that touches the evidence (hashing, analysis, exports) runs as a `Task` in a thread.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QFileDialog,
    QFormLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QWidget,
)

from core.errors import VerityError
from desktop.case_tree import CaseTree
from desktop.exhibits import export_frame_png, export_segment_mp4
from desktop.panels import BookmarksPanel, ResultsPanel
from desktop.player import Player
from desktop.review import Review, build_review
from desktop.timecode import format_timecode
from desktop.timeline import Timeline
from desktop.worker import Task

VIDEO_FILTER = "Video files (*.mp4 *.mov *.mkv *.avi *.mpg *.mpeg *.m4v *.webm *.wmv *.ts);;All files (*)"
MAX_RECENT = 8


def analysis_from_store(store: Any, run_id: int) -> dict[str, Any]:
    """A stored run back as the pipeline's analysis dict (results live in their own table)."""
    run = store.get_run(run_id)
    analysis = dict(run.get("analysis") or {})
    analysis["detectors"] = {r["detector"]: r["result"] for r in store.results_for(run_id)}
    if run.get("finding") and "finding" not in analysis:
        analysis["finding"] = run["finding"]
    if run.get("facepass_path"):
        analysis.setdefault("facepass", {})["path"] = run["facepass_path"]
    analysis["case"] = {"case_id": run["case_id"], "evidence_id": run["evidence_id"], "run_id": run_id, "status": run["status"]}
    return analysis


class NewCaseDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New case")
        self.number = QLineEdit(self)
        self.title = QLineEdit(self)
        self.examiner = QLineEdit(self)
        self.request = QLineEdit(self)
        form = QFormLayout(self)
        form.addRow("Case number*", self.number)
        form.addRow("Title", self.title)
        form.addRow("Examiner", self.examiner)
        form.addRow("Request / lab id", self.request)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, parent=self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)


class MainWindow(QMainWindow):
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
        self.review: Review | None = None
        self.task: Task | None = None
        self.tasks: list[Task] = []
        self.last_error: str | None = None
        self.last_export: dict[str, Any] | None = None
        self._partial: dict[str, Any] = {}

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

        self._build_status()
        self._build_actions()
        self._connect()
        self._restore_settings()
        self.open_store(db_path)
        self._update_actions()
        self.models_ready = False
        QTimer.singleShot(0, self.warm_up)

    # -- construction -----------------------------------------------------------------------
    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(name)
        d.setWidget(widget)
        self.addDockWidget(area, d)
        return d

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.status_label = QLabel("", self)
        self.status_label.setObjectName("frameStatus")
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        sb.addWidget(self.status_label, 1)
        self.stage_label = QLabel("", self)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.cancel_task)
        for w in (self.stage_label, self.progress, self.cancel_button):
            sb.addPermanentWidget(w)
            w.hide()

    def _act(self, text: str, slot: Any, shortcut: str | None = None, tip: str = "", short: str = "") -> QAction:
        a = QAction(text, self)
        if short:
            a.setIconText(short)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setStatusTip(tip)
            a.setToolTip(tip)
        a.triggered.connect(lambda _checked=False: slot())
        return a

    def _build_actions(self) -> None:
        self.act_open_db = self._act("Open case file…", self.choose_store, tip="Open another case database (.sqlite)")
        self.act_new_case = self._act("New case…", self.new_case_dialog, "Ctrl+N", "Create a case in this case file", short="New case")
        self.act_import = self._act("Import evidence…", self.import_dialog, "Ctrl+I", "Hash (SHA-256) and record a video in the case", short="Import")
        self.act_open_clip = self._act("Open video without a case…", self.open_clip_dialog, "Ctrl+O", "Review a video; nothing is stored")
        self.act_analyse = self._act("Run analysis", self.run_analysis, "Ctrl+R", "Analyse the selected evidence (in the background)", short="Analyse")
        self.act_analyse_opts = self._act("Run analysis with options…", self.analysis_dialog, "Ctrl+Shift+R", "Choose the detectors and the blink threshold")
        self.act_verify = self._act("Verify evidence hash", self.verify_evidence, tip="Re-hash the evidence file and compare with its intake hash (audit-logged)")
        self.act_audit = self._act("Audit log…", self.show_audit_log, tip="The case's hash-chained audit log, checked")
        self.act_weights = self._act("Detector weights…", self.show_weights, tip="Which checkpoints are present and verified")
        self.act_cancel = self._act("Cancel", self.cancel_task, "Esc", "Cancel the running task")
        self.act_report = self._act("Export report…", self.export_report_dialog, "Ctrl+E", "PDF/JSON report of the case", short="Report")
        self.act_png = self._act("Export frame as PNG (with overlays)…", lambda: self.export_png_dialog(True), tip="Exhibit: this frame with the overlays shown", short="PNG")
        self.act_png_raw = self._act("Export frame as PNG (no overlays)…", lambda: self.export_png_dialog(False), tip="Exhibit: this frame as decoded")
        self.act_mp4 = self._act("Export flagged segment as MP4…", self.export_segment_dialog, tip="Exhibit: the flagged segment at (or after) the cursor, overlays burned in", short="MP4")
        self.act_bookmark = self._act("Add bookmark…", self.add_bookmark_dialog, "Ctrl+B", "Note at the current frame", short="Bookmark")
        self.act_quit = self._act("Quit", self.close, "Ctrl+Q")

        mb = self.menuBar()
        m = mb.addMenu("&Case")
        for a in (self.act_open_db, self.act_new_case, self.act_import, self.act_open_clip):
            m.addAction(a)
        self.recent_menu = m.addMenu("Recent cases")
        m.addSeparator()
        m.addAction(self.act_verify)
        m.addAction(self.act_audit)
        m.addAction(self.act_report)
        m.addSeparator()
        m.addAction(self.act_quit)
        m = mb.addMenu("&Analysis")
        m.addAction(self.act_analyse)
        m.addAction(self.act_analyse_opts)
        m.addAction(self.act_weights)
        m.addAction(self.act_cancel)
        m = mb.addMenu("&Playback")
        for a in self.player.playback_actions:
            m.addAction(a)
        m = mb.addMenu("&Exhibits")
        for a in (self.act_png, self.act_png_raw, self.act_mp4, self.act_bookmark):
            m.addAction(a)
        m = mb.addMenu("&View")
        for a in self.player.overlay_actions.values():
            m.addAction(a)
        m.addSeparator()
        for d in (self.case_dock, self.bookmark_dock, self.results_dock):
            m.addAction(d.toggleViewAction())

        tb = self.addToolBar("Main")
        tb.setObjectName("mainToolbar")
        for a in (self.act_new_case, self.act_import, self.act_analyse, self.act_cancel, self.act_report):
            tb.addAction(a)
        tb.addSeparator()
        for a in (self.act_png, self.act_mp4, self.act_bookmark):
            tb.addAction(a)
        tb.addSeparator()
        for a in self.player.overlay_actions.values():
            tb.addAction(a)
        self._rebuild_recent_menu()

    def _connect(self) -> None:
        self.case_tree.caseSelected.connect(self.select_case)
        self.case_tree.evidenceSelected.connect(self.select_evidence)
        self.case_tree.runSelected.connect(self.select_run)
        self.case_tree.addReferenceRequested.connect(self.add_reference_dialog)
        self.player.frameShown.connect(self._on_frame_shown)
        self.player.statusText.connect(self.status_label.setText)
        self.player.opened.connect(self._on_clip_opened)
        self.player.failed.connect(lambda msg: self.show_error("Cannot show the video", msg))
        self.timeline.frameRequested.connect(self.player.seek)
        self.timeline.trackChanged.connect(self.player.set_track_filter)
        self.results.segmentActivated.connect(self.jump_to)
        self.bookmarks.activated.connect(self.jump_to)
        self.bookmarks.addRequested.connect(self.add_bookmark_dialog)
        self.bookmarks.deleteRequested.connect(self.delete_bookmark)

    # -- settings ---------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        geo = self.settings.value("window/geometry")
        if isinstance(geo, QByteArray):
            self.restoreGeometry(geo)
        else:
            self.resize(1500, 920)
        state = self.settings.value("window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        else:
            self.resizeDocks([self.case_dock, self.results_dock], [290, 400], Qt.Orientation.Horizontal)
        split = self.settings.value("window/splitter")
        if isinstance(split, QByteArray):
            self.splitter.restoreState(split)

    def save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("window/splitter", self.splitter.saveState())
        if self.store is not None:
            self.settings.setValue("cases/last_db", str(self.store.path))
        self.settings.sync()

    def recent_cases(self) -> list[dict[str, Any]]:
        out = []
        for entry in self.settings.value("cases/recent", []) or []:
            try:
                db, cid, label = str(entry).split("|", 2)
                out.append({"db": db, "case_id": int(cid), "label": label})
            except ValueError:
                continue
        return out

    def _remember_case(self, case_id: int) -> None:
        if self.store is None:
            return
        case = self.store.get_case(case_id)
        key = f"{self.store.path}|{case_id}|{case['number']} {case.get('title') or ''}".strip()
        entries = [e for e in (self.settings.value("cases/recent", []) or []) if not str(e).startswith(f"{self.store.path}|{case_id}|")]
        self.settings.setValue("cases/recent", [key, *entries][:MAX_RECENT])
        self._rebuild_recent_menu()

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        recents = self.recent_cases()
        for r in recents:
            a = self.recent_menu.addAction(f"{r['label']}  ({Path(r['db']).name})")
            a.triggered.connect(functools.partial(self.open_recent, r["db"], r["case_id"]))
        self.recent_menu.setEnabled(bool(recents))

    def open_recent(self, db: str, case_id: int, _checked: bool = False) -> None:
        if self.store is None or str(self.store.path) != db:
            self.open_store(db)
        self.select_case(case_id)
        self.case_tree.select("case", case_id)

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

    def add_reference_dialog(self, case_id: int) -> None:
        """Known exemplars of one person (videos or photos) for identity_reference."""
        from PySide6.QtWidgets import QInputDialog

        paths, _ = QFileDialog.getOpenFileNames(self, "Add known exemplars", "", f"Videos and photos (*.jpg *.jpeg *.png *.bmp *.tif *.tiff *.webp {VIDEO_FILTER.split('(')[1].split(')')[0]});;All files (*)")
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
        self.load_analysis(analysis_from_store(self.store, run_id))

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

    def load_analysis(self, analysis: dict[str, Any]) -> Task | None:
        """Read the face pass in a worker (file I/O), then show everything."""

        def job(progress: Any, cancel: Any, on_result: Any) -> Review:
            return build_review(analysis)

        return self.start_task("Loading analysis", job, lambda review: self._show_review(analysis, review), quiet=True)

    def _show_review(self, analysis: dict[str, Any], review: Review) -> None:
        self.analysis = analysis
        self.review = review
        self.results.set_analysis(analysis)
        self.player.set_review(review)
        self.timeline.set_review(review)
        self.player.set_track_filter(self.timeline.track_id)
        fp = (analysis.get("facepass") or {}).get("path")
        if review.facepass is None and analysis.get("faces"):
            self.statusBar().showMessage(f"face pass not found at {fp}: no overlays (run the analysis again)", 15000)
        self._update_actions()

    def set_analysis(self, analysis: dict[str, Any] | None) -> None:
        self.analysis = analysis
        self.review = None
        self.run_id = None if analysis is None else self.run_id
        self.results.set_analysis(analysis)
        self.player.set_review(None)
        self.timeline.set_review(None)

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
        task = self.start_task(f"Analysing {self.clip_path.name}", lambda progress, cancel, on_result: fn(progress=progress, cancel=cancel, on_result=on_result), self._on_analysis_done)
        if task is not None:
            task.partial.connect(self._on_partial)
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
        self.player.set_review(partial)
        self.timeline.set_review(partial)

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
            from core.face import models

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
        self.progress.setFormat(f"{stage} {fraction * 100:.0f}%{eta_txt}")
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

    # -- navigation -------------------------------------------------------------------------
    def jump_to(self, frame: int) -> None:
        self.player.pause()
        self.player.seek(frame)
        self.timeline.set_cursor(frame)

    def _on_frame_shown(self, i: int) -> None:
        self.timeline.set_cursor(i)

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
        bid = self.store.add_bookmark(self.evidence["id"], frame, note, track_id=self.timeline.track_id)
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
