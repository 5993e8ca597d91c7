"""The one writer to the case store during a batch: the driver.

Workers only compute. The driver takes each file in (hash at intake, as `verity case import`),
opens its run just before the file is handed to a worker, and, when the result arrives, compares
the worker's re-hash with the intake hash and stores the results with the same calls and audit
rows as `verity analyze --case` (core.cases.analysis.analyze_evidence):

    evidence imported             (new files; the driver's intake hash)
    analysis started              (run row, status running, the driver's pid and host)
    evidence re-hashed before analysis   (the worker's hash, compared here; or a refusal on mismatch)
    analysis done / failed / cancelled

The run opens when the file is handed to a worker, so "analysis started" precedes the re-hash
row here, while `analyze --case` re-hashes first; the re-hash row says where and when the worker
hashed the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import core
from core.batch.inputs import Item
from core.batch.task import Job, Outcome, read_json, result_matches, run_key, write_json
from core.cases.analysis import case_work_dir, finish_done_run, store_result
from core.cases.store import CaseStore
from core.errors import EvidenceError


class CaseWriter:
    def __init__(self, store: CaseStore, case_id: int, actor: str | None = None) -> None:
        self.store, self.case_id, self.actor = store, case_id, actor
        store.get_case(case_id)  # a clear error for a wrong id, before any work
        self.evidence: dict[int, dict[str, Any]] = {}  # item index -> evidence row
        self.runs: dict[int, int] = {}  # item index -> run id still open

    def work_dir(self) -> Path:
        """Where the case's face passes go (beside the case file: shared storage on a cluster)."""
        return case_work_dir(self.store, self.case_id)

    def intake(self, item: Item) -> Outcome | None:
        """Import the file if the case does not hold it; an Outcome when intake refuses it."""
        ev = self.store.find_evidence(self.case_id, item.path)
        if ev is None:
            try:
                ev = self.store.import_evidence(self.case_id, item.path, actor=self.actor)  # audits a refusal too
            except EvidenceError as exc:
                return Outcome(item.index, "failed", error=str(exc), evidence_error=True)
        self.evidence[item.index] = ev
        return None

    def has_result(self, item: Item, job: Job) -> bool:
        """A done run in the case for this evidence, software version and parameters, and its JSON in --out."""
        ev = self.evidence[item.index]
        for run in reversed(self.store.runs_for(evidence_id=ev["id"])):
            if (
                run["status"] == "done" and run["evidence_sha256"] == ev["sha256"] and run["software_version"] == core.__version__
                and run_key(run["parameters"], run["detectors_asked"] or []) == job.key
            ):
                return result_matches(read_json(job.out_json), ev["sha256"], job.key)
        return False

    def prepare(self, item: Item, job: Job, redo: bool) -> None:
        """Set the job's custody fields; open its run unless the case already holds the result."""
        ev = self.evidence[item.index]
        job.expected_sha256, job.write_json = ev["sha256"], False
        job.may_skip = not redo and self.has_result(item, job)
        if not job.may_skip:
            self._start(item.index, job)

    def _start(self, index: int, job: Job) -> int:
        ev = self.evidence[index]
        self.runs[index] = self.store.start_run(ev["id"], job.options.parameters(), job.options.detectors, ev["sha256"], self.actor)
        return self.runs[index]

    def record(self, item: Item, job: Job, out: Outcome) -> Outcome:
        """Store the outcome of one file; returns it (a done result refused here becomes failed)."""
        ev, store = self.evidence[item.index], self.store
        if out.status == "skipped" and out.sha256 == ev["sha256"]:
            return out
        if out.sha256 is not None and out.sha256 != ev["sha256"]:  # the driver's custody comparison
            try:
                store._hash_mismatch(ev, out.sha256, "analysis", self.actor)  # the audit row analyze --case writes
            except EvidenceError as exc:
                out = Outcome(out.index, "refused", sha256=out.sha256, error=str(exc), evidence_error=True, seconds=out.seconds, worker=out.worker)
            self._close(item.index, "failed", out.error)
            return out
        if out.status != "done" or out.analysis is None:
            if out.evidence_error:  # unreadable where the worker reads it (moved, a mount missing): audited as analyze --case does
                store.audit(self.case_id, "analysis refused", "evidence", ev["id"], {"reason": out.error, "run_id": self.runs.get(item.index)}, self.actor)
            self._close(item.index, "cancelled" if out.status == "cancelled" else "failed", out.error or "cancelled by the examiner")
            return out
        version = (out.analysis.get("software") or {}).get("version")
        if version != core.__version__:
            out = Outcome(out.index, "failed", sha256=out.sha256, error=f"the worker runs Verity {version}, this driver {core.__version__}; result not stored",
                          seconds=out.seconds, worker=out.worker)
            self._close(item.index, "failed", out.error)
            return out
        run_id = self.runs.get(item.index) or self._start(item.index, job)  # a predicted skip that had to run after all
        store.audit(
            self.case_id, "evidence re-hashed before analysis", "evidence", ev["id"],
            {"sha256": out.sha256, "match": True, "hashed_by": f"{out.worker.get('host')} pid {out.worker.get('pid')}", "hashed_at": out.hashed_at},
            self.actor,
        )
        analysis = out.analysis
        for name, result in analysis["detectors"].items():  # the calls analyze --case makes
            store_result(store, run_id, name, result)
        finish_done_run(store, run_id, analysis, job.options.work_dir or self.work_dir(), self.actor)
        self.runs.pop(item.index, None)
        analysis["case"] = {"case_id": self.case_id, "evidence_id": ev["id"], "run_id": run_id}
        write_json(job.out_json, analysis)  # what `verity analyze --case ID --json` writes
        return out

    def _close(self, index: int, status: str, error: str) -> None:
        run_id = self.runs.pop(index, None)
        if run_id is not None:
            self.store.finish_run(run_id, status, error=error, actor=self.actor)

    def close_open_runs(self, status: str, error: str) -> None:
        """Runs whose file never came back (the driver stopping): never left `running`."""
        for index in list(self.runs):
            self._close(index, status, error)
