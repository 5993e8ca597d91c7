"""The case store: one SQLite file (sqlite-utils, WAL) holding cases, evidence, runs, detector
results, flagged segments, examiner bookmarks and an append-only, hash-chained audit log.

Default file: `core.paths.data_dir() / "cases.sqlite"` (VERITY_DATA_DIR overrides the folder;
the CLI's global `--db PATH` and `CaseStore(path)` pick another file).

API (every row comes back as a plain dict; JSON columns are decoded):

    store = CaseStore(db_path=None, actor=None)    # opens/creates, migrates, marks dead runs `interrupted`
    store = CaseStore(path, create=False)          # an existing case file only (StoreNotFoundError otherwise)
    cid = store.create_case(number, title, examiner, request_id="", description="")
    store.list_cases() / store.get_case(cid) / store.find_case(number)
    ev = store.import_evidence(cid, path, label="")        # sha256 + probe + audit row; the file is only read
    store.evidence_for(cid) / store.get_evidence(eid) / store.find_evidence(cid, path)
    sha = store.verify_evidence(eid, "export")             # re-hash; EvidenceError + audit row on mismatch
    ev = store.relink_evidence(eid, new_path)               # a moved file with the intake sha256; audited
    rid = store.start_run(eid, parameters, detectors, evidence_sha256)   # status `running`, pid + host
    store.add_result(rid, detector, DetectorResult | dict, segments=None)  # as each detector lands (+ its segments)
    store.add_segments(rid, detector, segments)
    store.finish_run(rid, "done" | "failed" | "cancelled", analysis=..., finding=..., facepass_path=...)
    store.runs_for(case_id=cid) / runs_for(evidence_id=eid) / get_run(rid) / latest_run(eid)
    store.results_for(rid) / store.segments_for(rid, detector=None)
    bid = store.add_bookmark(eid, frame, note, track_id=None); update_bookmark / delete_bookmark
    store.list_bookmarks(case_id=cid) / list_bookmarks(evidence_id=eid)
    store.audit(cid, action, object_type, object_id, details)   # e.g. an exhibit export
    store.audit_log(cid); store.verify_audit(cid) -> VerifyResult(ok, message, broken_seq, content_problems, notes, ...)
    store.integrity_check() -> ["ok"] or SQLite's findings

    analyze_evidence(store, eid, options, progress, cancel, on_result)   # re-hash, run, store
    analyze_into_case(db_path, cid, video, options, progress, cancel, on_result)  # + import if new

Every write of a stored object records a digest of it in its audit row, and `verify_audit`
recomputes them: an edit made with sqlite3 is named by table, row and field (core/cases/integrity.py).
Faults of the file itself (read-only, full, damaged, foreign, missing, locked) raise the
StoreError subclasses of core/cases/faults.py, each with its CLI exit code.

Run statuses: running / done / failed / cancelled / interrupted. A run whose process died
(SIGKILL, power loss) stays `running` in the file; the next `CaseStore(...)` finds its pid gone
(same host) and marks it `interrupted` with an audit row (see core/cases/liveness.py).
Actor of every audit row: the explicit `actor=`, else the store's, else the case's examiner,
else the OS user. Times are ISO 8601 with the local UTC offset.
The store is thread-safe (one connection, writes serialised) and multi-process safe (WAL,
BEGIN IMMEDIATE, 30 s busy timeout).
"""

from core.cases.analysis import analyze_evidence, analyze_into_case, case_work_dir
from core.cases.audit import VerifyResult
from core.cases.schema import SCHEMA_VERSION
from core.cases.store import RUN_STATUSES, CaseStore, default_db_path, now_iso

__all__ = [
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "CaseStore",
    "VerifyResult",
    "analyze_evidence",
    "analyze_into_case",
    "case_work_dir",
    "default_db_path",
    "now_iso",
]
