"""The case browser: cases → evidence (with its intake hash) → analysis runs, and each case's
known exemplars (reference footage or photos of named persons; right-click a case to add one)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QMenu, QTreeWidget, QTreeWidgetItem, QWidget

from desktop.panels import STATUS_COLOURS

ROLE = Qt.ItemDataRole.UserRole
RUN_COLOURS = {"done": STATUS_COLOURS["ok"], "failed": STATUS_COLOURS["failed"], "cancelled": QColor(160, 160, 160),
               "interrupted": STATUS_COLOURS["unavailable"], "running": STATUS_COLOURS["running"]}


class CaseTree(QTreeWidget):
    caseSelected = Signal(int)
    evidenceSelected = Signal(int)
    runSelected = Signal(int, int)  # evidence id, run id
    addReferenceRequested = Signal(int)  # case id

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(["Case / evidence / run", "Details"])
        self.setColumnWidth(0, 210)
        self.itemClicked.connect(self._on_item)
        self.itemActivated.connect(self._on_item)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._context_menu)

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
            self._add_references(ci, store, case["id"])
            if expand_case is None or expand_case == case["id"]:
                ci.setExpanded(True)
                for k in range(ci.childCount()):
                    ci.child(k).setExpanded(True)
        if selected is not None:
            self.select(*selected)

    def _add_references(self, ci: QTreeWidgetItem, store: Any, case_id: int) -> None:
        from core.cases.references import references_for

        refs = references_for(store, case_id)
        if not refs:
            return
        ki = QTreeWidgetItem(ci, ["Known exemplars", f"{len(refs)} item(s), {len({r['person'] for r in refs})} person(s)"])
        ki.setData(0, ROLE, ("references", case_id, None))
        for r in refs:
            ri = QTreeWidgetItem(ki, [f"{r['person']}: {r['name']}", f"{r['kind']}, sha256 {r['sha256'][:16]}…"])
            ri.setData(0, ROLE, ("reference", r["id"], case_id))
            tip = f"{r['path']}\nknown exemplar of {r['person']} ({r['kind']})\nSHA-256 at intake: {r['sha256']}\nimported {r.get('imported_at')} by {r.get('imported_by')}"
            ri.setToolTip(0, tip)
            ri.setToolTip(1, tip)

    def _context_menu(self, pos: Any) -> None:
        it = self.itemAt(pos)
        data = it.data(0, ROLE) if it is not None else None
        if not data:
            return
        case_id = data[1] if data[0] in ("case", "references") else data[2] if data[0] == "reference" else None
        if case_id is None:
            return
        menu = QMenu(self)
        menu.addAction("Add known exemplar…", lambda: self.addReferenceRequested.emit(case_id))
        menu.exec(self.viewport().mapToGlobal(pos))

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
        if kind in ("references", "reference"):
            kind, oid = "case", oid if kind == "references" else parent
        if kind == "case":
            self.caseSelected.emit(oid)
        elif kind == "evidence":
            self.evidenceSelected.emit(oid)
        elif kind == "run":
            self.runSelected.emit(parent, oid)
