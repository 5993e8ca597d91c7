"""Dialogs: a new case, analysis options (which detectors, blink threshold) and the case's audit log."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)


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


class AnalysisDialog(QDialog):
    """Choose the detectors and the blink threshold; `options()` gives the AnalysisOptions."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from core import detectors

        self.setWindowTitle("Run analysis")
        layout = QVBoxLayout(self)
        box = QGroupBox("Detectors", self)
        col = QVBoxLayout(box)
        self.checks: dict[str, QCheckBox] = {}
        for name, cls in detectors.available().items():
            c = QCheckBox(f"{cls.title or name}", box)
            c.setChecked(True)
            c.setToolTip(f"{name}" + ("; needs verified weights, otherwise reported as unavailable" if cls.needs_weights else ""))
            col.addWidget(c)
            self.checks[name] = c
        layout.addWidget(box)
        form = QFormLayout()
        self.fixed = QCheckBox("fixed EAR threshold (the EyeBlink card's) instead of the adaptive one", self)
        self.threshold = QDoubleSpinBox(self)
        self.threshold.setRange(0.05, 0.5)
        self.threshold.setSingleStep(0.01)
        self.threshold.setValue(0.2)
        self.threshold.setEnabled(False)
        self.fixed.toggled.connect(self.threshold.setEnabled)
        row = QHBoxLayout()
        row.addWidget(self.fixed)
        row.addWidget(self.threshold)
        form.addRow("Blinks", row)
        layout.addLayout(form)
        layout.addWidget(QLabel("The evidence is re-hashed first; the analysis is refused if it changed since intake.", self))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, parent=self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def options(self) -> Any:
        from core.pipeline import AnalysisOptions
        from core.signals.blinks import BlinkParams

        opts = AnalysisOptions(detectors=[n for n, c in self.checks.items() if c.isChecked()])
        if self.fixed.isChecked():
            opts.blinks = BlinkParams(mode="fixed", fixed_threshold=float(self.threshold.value()))
        return opts


class AuditDialog(QDialog):
    """The case's audit log, newest last, with the hash-chain check."""

    def __init__(self, store: Any, case_id: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        case = store.get_case(case_id)
        self.setWindowTitle(f"Audit log — case {case['number']}")
        self.resize(1000, 600)
        result = store.verify_audit(case_id)
        status = QLabel(
            ("<b style='color:#6ec878'>Hash chain intact</b>" if result.ok else "<b style='color:#e65a50'>Hash chain BROKEN</b>")
            + f" — {result.message} ({result.rows_checked} rows; head {str(result.head_hash or '')[:16]}…)",
            self,
        )
        self.ok = result.ok
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["#", "time", "actor", "action", "object", "details"])
        self.tree.setRootIsDecorated(False)
        for row in store.audit_log(case_id):
            obj = f"{row.get('object_type') or ''} {row.get('object_id') or ''}".strip()
            details = row.get("details")
            it = QTreeWidgetItem([str(row.get("seq")), str(row.get("at", ""))[:23], str(row.get("actor") or ""), str(row.get("action")), obj, str(details or "")])
            it.setToolTip(5, str(details or ""))
            self.tree.addTopLevelItem(it)
        for k in range(5):
            self.tree.resizeColumnToContents(k)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, parent=self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(status)
        layout.addWidget(self.tree, 1)
        layout.addWidget(buttons)


class WeightsDialog(QDialog):
    """Every checkpoint the detectors can use: state (verified / missing / ...), file, sha256, why."""

    def __init__(self, rows: list[dict[str, Any]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Detector weights")
        self.resize(1000, 420)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["entry", "detector", "state", "required", "file", "sha256", "reason"])
        self.tree.setRootIsDecorated(False)
        for r in rows:
            sha = r.get("sha256") or r.get("expected_sha256") or ""
            it = QTreeWidgetItem([str(r.get("name")), str(r.get("detector")), str(r.get("state")), "yes" if r.get("required") else "no",
                                  str(r.get("path") or r.get("file") or ""), f"{sha[:16]}…" if sha else "—", str(r.get("reason") or "")])
            it.setToolTip(5, sha)
            it.setToolTip(6, str(r.get("reason") or ""))
            self.tree.addTopLevelItem(it)
        for k in range(6):
            self.tree.resizeColumnToContents(k)
        note = QLabel("A learned detector runs only with verified weights (sha256 checked before loading); "
                      "bring files with <code>verity weights import PATH</code>.", self)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, parent=self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(note)
        layout.addWidget(self.tree, 1)
        layout.addWidget(buttons)
