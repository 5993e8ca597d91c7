"""The case browser: cases → evidence (with its intake hash) → analysis runs."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QWidget

from desktop.panels import STATUS_COLOURS

ROLE = Qt.ItemDataRole.UserRole
RUN_COLOURS = {"done": STATUS_COLOURS["ok"], "failed": STATUS_COLOURS["failed"], "cancelled": QColor(160, 160, 160),
               "interrupted": STATUS_COLOURS["unavailable"], "running": STATUS_COLOURS["running"]}


class CaseTree(QTreeWidget):
    caseSelected = Signal(int)
    evidenceSelected = Signal(int)
    runSelected = Signal(int, int)  # evidence id, run id

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(["Case / evidence / run", "Details"])
        self.setColumnWidth(0, 210)
        self.itemClicked.connect(self._on_item)
        self.itemActivated.connect(self._on_item)

    def populate(self, store: Any, expand_case: int | None = None) -> None:
        """Rebuild from the store (cheap: a few small queries)."""
        selected = self.selected_key()
        self.clear()
        if store is None:
            return
        for case in store.list_cases():
            ci = QTreeWidgetItem([f"{case['number']}  {case.get('title') or ''}".strip(), f"examiner {case.get('examiner') or '—'}"])
            ci.setData(0, ROLE, ("case", case["id"], None))
            ci.setToolTip(0, f"case {case['number']}: {case.get('title') or ''}\ncreated {case.get('created_at')} by {case.get('created_by')}")
            self.addTopLevelItem(ci)
            for ev in store.evidence_for(case["id"]):
                ei = QTreeWidgetItem(ci, [ev["name"], f"sha256 {ev['sha256'][:16]}…"])
                ei.setData(0, ROLE, ("evidence", ev["id"], None))
                tip = f"{ev['path']}\nSHA-256 at intake: {ev['sha256']}\nimported {ev.get('imported_at')} by {ev.get('imported_by')}"
                ei.setToolTip(0, tip)
                ei.setToolTip(1, tip)
                for run in store.runs_for(evidence_id=ev["id"]):
                    finding = (run.get("finding") or {}).get("value") if isinstance(run.get("finding"), dict) else None
                    ri = QTreeWidgetItem(ei, [f"run {run['id']}  {run['status']}", finding or (run.get("started_at") or "")[:19]])
                    ri.setData(0, ROLE, ("run", run["id"], ev["id"]))
                    ri.setForeground(0, QBrush(RUN_COLOURS.get(run["status"], QColor(200, 200, 200))))
                    ri.setToolTip(0, f"started {run.get('started_at')} by {run.get('actor')}\nstatus {run['status']}" + (f"\n{run['error']}" if run.get("error") else ""))
            if expand_case is None or expand_case == case["id"]:
                ci.setExpanded(True)
                for k in range(ci.childCount()):
                    ci.child(k).setExpanded(True)
        if selected is not None:
            self.select(*selected)

    def selected_key(self) -> tuple[str, int] | None:
        it = self.currentItem()
        if it is None:
            return None
        kind, oid, _ = it.data(0, ROLE)
        return kind, oid

    def select(self, kind: str, oid: int) -> bool:
        for it in self._walk():
            data = it.data(0, ROLE)
            if data and data[0] == kind and data[1] == oid:
                self.setCurrentItem(it)
                return True
        return False

    def _walk(self) -> list[QTreeWidgetItem]:
        out: list[QTreeWidgetItem] = []
        stack = [self.topLevelItem(k) for k in range(self.topLevelItemCount())]
        while stack:
            it = stack.pop()
            out.append(it)
            stack += [it.child(k) for k in range(it.childCount())]
        return out

    def _on_item(self, item: QTreeWidgetItem, _col: int = 0) -> None:
        kind, oid, parent = item.data(0, ROLE)
        if kind == "case":
            self.caseSelected.emit(oid)
        elif kind == "evidence":
            self.evidenceSelected.emit(oid)
        elif kind == "run":
            self.runSelected.emit(parent, oid)
