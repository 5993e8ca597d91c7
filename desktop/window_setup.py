"""The main window's construction: docks, status bar, actions and menus, signal wiring, and the
settings it keeps (geometry, recent cases). A mixin of `desktop.main_window.MainWindow`."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QLabel, QProgressBar, QPushButton, QWidget

MAX_RECENT = 8


class WindowSetup:
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
        self.act_identity = self._act("Questioned face vs known exemplars…", self.show_identity,
                                      tip="The questioned face beside the known exemplars' faces, with the distances (identity_reference)")
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
        m.addAction(self.act_identity)
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
        self.player.statusText.connect(self.status_label.setText)
        self.player.opened.connect(self._on_clip_opened)
        self.player.failed.connect(lambda msg: self.show_error("Cannot show the video", msg))
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
