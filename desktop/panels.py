"""Dock panels: detector results, bookmarks."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.validation_records import citation, lookup
from desktop.timecode import format_timecode

STATUS_COLOURS = {"ok": QColor(110, 200, 120), "unavailable": QColor(200, 170, 80), "failed": QColor(230, 90, 80), "running": QColor(140, 170, 230)}


def _fmt_conf(v: Any) -> str:
    return f"{float(v):.2f}" if isinstance(v, (int, float)) else "—"


def weights_text(d: dict[str, Any]) -> str:
    w = d.get("weights_sha256") or {}
    if w:
        return ", ".join(f"{k} {str(v)[:12]}…" for k, v in w.items())
    if d.get("status") == "unavailable":
        return "missing / not verified"
    return "none needed"


class ResultsPanel(QWidget):
    """Each detector: status, finding, confidence, weights, and why it is unavailable."""

    segmentActivated = Signal(int)  # start frame

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.finding = QLabel("No analysis yet.", self)
        self.finding.setObjectName("findingLabel")
        self.finding.setWordWrap(True)
        self.finding.setTextFormat(Qt.TextFormat.RichText)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["Detector", "Status", "Reading", "Confidence", "Weights"])
        self.tree.setRootIsDecorated(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.itemActivated.connect(self._on_item)
        self.tree.itemClicked.connect(self._on_item)
        scroll = QScrollArea(self)
        scroll.setWidget(self.finding)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.finding.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        split = QSplitter(Qt.Orientation.Vertical, self)
        split.addWidget(scroll)
        split.addWidget(self.tree)
        split.setSizes([220, 300])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(split, 1)
        self.results: dict[str, dict[str, Any]] = {}
        self.validation: dict[str, Any] = {}  # detector -> its validation summary (core.validation_records)

    def clear(self, message: str = "No analysis yet.") -> None:
        self.results.clear()
        self.tree.clear()
        self.finding.setText(message)

    def set_running(self, names: list[str]) -> None:
        self.clear("<b>Analysis running…</b> results appear as each detector finishes.")
        for n in names:
            item = QTreeWidgetItem([n, "running", "", "", ""])
            item.setForeground(1, QBrush(STATUS_COLOURS["running"]))
            self.tree.addTopLevelItem(item)

    def _item_for(self, name: str) -> QTreeWidgetItem:
        for k in range(self.tree.topLevelItemCount()):
            it = self.tree.topLevelItem(k)
            if it.text(0) == name:
                return it
        it = QTreeWidgetItem([name])
        self.tree.addTopLevelItem(it)
        return it

    def add_result(self, name: str, d: dict[str, Any]) -> None:
        """One detector's result dict (as it lands, or from the store)."""
        self.results[name] = d
        it = self._item_for(name)
        it.takeChildren()
        status = str(d.get("status", ""))
        reading = d.get("assessment") or d.get("prediction") or ("—" if status == "ok" else "")
        it.setText(1, status)
        it.setText(2, str(reading))
        it.setText(3, _fmt_conf(d.get("confidence")))
        it.setText(4, weights_text(d))
        it.setForeground(1, QBrush(STATUS_COLOURS.get(status, QColor(200, 200, 200))))
        note = str(d.get("note") or "")
        tip = (note or status) + "\n\nMeasured error rates: " + citation(self.validation.get(name))
        for col in range(5):
            it.setToolTip(col, tip)
        if note:
            QTreeWidgetItem(it, ["why" if status != "ok" else "note", note])
        if d.get("visualization_path"):
            QTreeWidgetItem(it, ["visualization", str(d["visualization_path"])])
        if d.get("prediction") and d.get("assessment"):
            QTreeWidgetItem(it, ["prediction", str(d["prediction"])])
        for s in d.get("segments") or []:
            child = QTreeWidgetItem(
                it, ["segment", f"frames {s.get('start_frame')}–{s.get('end_frame')}", str(s.get("reason", "")), _fmt_conf(s.get("score"))]
            )
            child.setData(0, Qt.ItemDataRole.UserRole, int(s.get("start_frame", 0)))
            child.setToolTip(2, str(s.get("reason", "")))
        for col in range(4):
            self.tree.resizeColumnToContents(col)

    def bind_state(self, state: Any) -> None:
        """Show the state's review (a partial one, while an analysis runs, is added row by row)."""
        state.observe("review", lambda r: self.set_analysis(None if r is None else r.analysis) if r is None or r.complete else None)

    def set_analysis(self, analysis: dict[str, Any] | None) -> None:
        if analysis is None:
            self.clear()
            return
        self.tree.clear()
        self.results.clear()
        self.validation = analysis.get("validation")
        if self.validation is None:  # a run stored before records were looked up: look them up now
            self.validation = lookup(analysis.get("detectors") or {}, analysis.get("parameters") or {})
        for name, d in (analysis.get("detectors") or {}).items():
            self.add_result(name, d)
        self.set_finding(analysis)

    def set_finding(self, analysis: dict[str, Any]) -> None:
        """The fused finding on the examiner's scale, its rule and the readings behind it."""
        from html import escape

        f = analysis.get("finding")
        faces = analysis.get("faces") or []
        face_txt = ", ".join(f"face {x['track_id']}: {len(x.get('blinks', []))} blinks" for x in faces) or "no face found"
        # damage, timing, streams not read: shown whatever the finding
        warn = "".join(
            f"<br><small style='color:#e07050'>⚠ evidence: {escape(str(w))}</small>" for w in (analysis.get("evidence") or {}).get("warnings") or []
        )
        if not isinstance(f, dict):
            self.finding.setText(f"<b>Finding:</b> not given by this analysis<br><small>{escape(face_txt)}</small>{warn}")
            return
        lines = [f"<b>Finding: {escape(str(f.get('value', '')))}</b>"]
        if f.get("statement"):
            lines.append(f"<small>{escape(str(f['statement']))}</small>")
        for r in f.get("reasons") or []:
            if isinstance(r, str):
                lines.append(f"<small><i>{escape(r)}</i></small>")
            elif isinstance(r, dict):
                head = escape(str(r.get("detector") or ""))
                if r.get("assessment"):
                    head += f": {escape(str(r['assessment']))}"
                if r.get("decisive") is False:  # an unvalidated reading: shown, not the finding
                    head += f" (observation, not decisive: {escape(str(r.get('validation', '')))})"
                lines.append(f"<small>• {head}" + (f" — {escape(str(r.get('text')))}" if r.get("text") else "") + "</small>")
        for u in f.get("unavailable") or []:
            if isinstance(u, dict):
                lines.append(f"<small style='color:#c8aa50'>• {escape(str(u.get('detector')))} not counted: {escape(str(u.get('reason', '')))}</small>")
        lines.append(f"<small>{escape(face_txt)}</small>")
        self.finding.setText("<br>".join(lines) + warn)

    def _on_item(self, item: QTreeWidgetItem, _col: int = 0) -> None:
        v = item.data(0, Qt.ItemDataRole.UserRole)
        if isinstance(v, int):
            self.segmentActivated.emit(v)


class BookmarksPanel(QWidget):
    """The examiner's notes at frames of the shown evidence; click one to go there."""

    activated = Signal(int)  # frame
    addRequested = Signal()
    deleteRequested = Signal(int)  # bookmark id

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["Frame", "Time", "Note", "Author"])
        self.tree.setRootIsDecorated(False)
        self.tree.itemClicked.connect(self._on_item)
        self.tree.itemActivated.connect(self._on_item)
        add = QPushButton("Add at current frame…", self)
        add.clicked.connect(self.addRequested)
        delete = QPushButton("Delete", self)
        delete.clicked.connect(self._delete)
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(delete)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(row)
        layout.addWidget(self.tree, 1)

    def set_bookmarks(self, rows: list[dict[str, Any]], times: Any = None) -> None:
        self.tree.clear()
        for b in rows:
            f = int(b["frame"])
            t = ""
            if times is not None and 0 <= f < len(times):
                t = format_timecode(float(times[f] - times[0]))
            it = QTreeWidgetItem([str(f), t, str(b.get("note") or ""), str(b.get("author") or "")])
            it.setData(0, Qt.ItemDataRole.UserRole, f)
            it.setData(1, Qt.ItemDataRole.UserRole, int(b["id"]))
            it.setToolTip(2, str(b.get("note") or ""))
            self.tree.addTopLevelItem(it)

    def _on_item(self, item: QTreeWidgetItem, _col: int = 0) -> None:
        self.activated.emit(int(item.data(0, Qt.ItemDataRole.UserRole)))

    def _delete(self) -> None:
        it = self.tree.currentItem()
        if it is not None:
            self.deleteRequested.emit(int(it.data(1, Qt.ItemDataRole.UserRole)))
