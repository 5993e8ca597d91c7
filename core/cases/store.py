"""`CaseStore`: the one SQLite case file (see core/cases/__init__.py for the API overview)."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

import core
from core.cases import integrity
from core.cases.audit import VerifyResult, append_row, now_iso, os_user, verify_chain
from core.cases.custody import EvidenceMixin, _dumps
from core.cases.faults import StoreReadOnlyError, raise_fault
from core.cases.liveness import host_name, process_start, run_alive
from core.cases.opening import open_case_file
from core.cases.schema import migrate
from core.errors import VerityError
from core.paths import data_dir

log = logging.getLogger("verity.cases")

RUN_STATUSES = ("running", "done", "failed", "cancelled", "interrupted")
__all__ = ["RUN_STATUSES", "CaseStore", "default_db_path", "now_iso", "os_user"]
_JSON_COLUMNS = {"probe", "parameters", "detectors_asked", "analysis", "finding", "weights_sha256", "result", "details"}


def default_db_path() -> Path:
    return data_dir() / "cases.sqlite"


def _decode(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    out = dict(row)
    for k in _JSON_COLUMNS & out.keys():
        if isinstance(out[k], str):
            out[k] = json.loads(out[k])
    return out


class CaseStore(EvidenceMixin):
    """One case file. Safe to share between threads (writes are serialised by a lock) and between
    processes (SQLite WAL, `BEGIN IMMEDIATE` for every write, 30 s busy timeout)."""

    def __init__(
        self, db_path: str | os.PathLike[str] | None = None, *, actor: str | None = None, recover: bool = True, create: bool = True
    ) -> None:
        """Open (migrating it) or, with `create`, create the case file. `create=False` is for commands
        that read existing cases: a missing file is a StoreNotFoundError, not a new empty file."""
        self.path = Path(db_path) if db_path is not None else default_db_path()
        self.default_actor = actor
        self._lock = threading.RLock()
        conn = open_case_file(self.path, create)
        self.db = sqlite_utils.Database(conn)
        try:
            self.schema_version_before = migrate(self.db)
        except sqlite3.Error as exc:
            conn.close()
            raise_fault(exc, self.path, "upgrading it to this Verity's schema")
        except BaseException:
            conn.close()
            raise
        self.interrupted_on_open: list[int] = []
        if recover:
            try:
                self.interrupted_on_open = self.recover_interrupted()
            except StoreReadOnlyError as exc:  # a read-only file can still be read; its dead runs stay `running`
                log.warning("%s", exc)

    # -- plumbing -----------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self.db.conn.close()

    def __enter__(self) -> CaseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite_utils.Database]:
        """One write transaction; IMMEDIATE so the read-then-write of the audit head cannot race."""
        with self._lock:
            conn = self.db.conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise_fault(exc, self.path, "starting a write")
            try:
                yield self.db
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass  # SQLite already rolled back (e.g. after a full disk)
                raise_fault(exc, self.path, "writing")

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: every query inside sees the same committed state."""
        with self._lock:
            conn = self.db.conn
            try:
                conn.execute("BEGIN")
                yield conn
            except sqlite3.Error as exc:
                raise_fault(exc, self.path, "reading")
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    def _query(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor:
        try:
            return self.db.conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise_fault(exc, self.path, "reading")

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> dict[str, Any] | None:
        with self._lock:
            cur = self._query(sql, params)
            row = cur.fetchone()
            if row is None:
                return None
            return _decode(dict(zip([d[0] for d in cur.description], row)))

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._query(sql, params)
            cols = [d[0] for d in cur.description]
            try:
                rows = cur.fetchall()
            except sqlite3.Error as exc:
                raise_fault(exc, self.path, "reading")
            return [_decode(dict(zip(cols, r))) for r in rows]  # type: ignore[misc]

    def _stored(self, table: str, *key: Any) -> dict[str, Any]:
        """The integrity record of one object as it is now (inside the write that changed it)."""
        return integrity.record(self.db.conn, table, *key)

    def actor_for(self, case_id: int | None, actor: str | None = None) -> str:
        """Who acts: the explicit actor, else the store's, else the case's examiner, else the OS user."""
        if actor:
            return actor
        if self.default_actor:
            return self.default_actor
        if case_id is not None:
            row = self._one("SELECT examiner FROM cases WHERE id = ?", (case_id,))
            if row and row["examiner"]:
                return str(row["examiner"])
        return os_user()

    # -- audit log ----------------------------------------------------------------------------
    def _append_audit(
        self, case_id: int | None, action: str, object_type: str | None, object_id: int | None,
        details: dict[str, Any] | None, actor: str | None,
    ) -> dict[str, Any]:
        """Append one row; call inside `_write()` so the row and what it records commit together."""
        return append_row(self.db.conn, case_id, action, object_type, object_id, details, self.actor_for(case_id, actor))

    def audit(
        self, case_id: int | None, action: str, object_type: str | None = None, object_id: int | None = None,
        details: dict[str, Any] | None = None, actor: str | None = None,
    ) -> dict[str, Any]:
        """Record one event (e.g. the GUI's exhibit export) in the case's audit log."""
        with self._write():
            return _decode(self._append_audit(case_id, action, object_type, object_id, details, actor))  # type: ignore[return-value]

    def audit_log(self, case_id: int | None, raw: bool = False) -> list[dict[str, Any]]:
        """The case's audit rows in order; raw=True keeps `details` as the stored (hashed) JSON text."""
        if case_id is None:
            sql, params = "SELECT * FROM audit WHERE case_id IS NULL ORDER BY seq, id", ()
        else:
            sql, params = "SELECT * FROM audit WHERE case_id = ? ORDER BY seq, id", (case_id,)
        if not raw:
            return self._all(sql, params)
        with self._lock:
            cur = self.db.conn.execute(sql, params)
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r)) for r in cur.fetchall()]

    def verify_audit(self, case_id: int) -> VerifyResult:
        """Check the case's hash chain and every stored object against what the chain recorded
        (core/cases/integrity.py); the result names the first broken row and each changed
        table, row and field. `ok` only when both hold."""
        from core.evidence import sha256_file

        self.get_case(case_id)
        with self._snapshot() as conn:
            case = self._one("SELECT * FROM cases WHERE id = ?", (int(case_id),)) or {}
            rows = self.audit_log(case_id, raw=True)  # details hashed as the stored text
            chain = verify_chain(rows, case.get("audit_head_seq"), case.get("audit_head_hash"))
            content = integrity.check(conn, case_id, rows)
            fp_problems, fp_notes = integrity.facepass_notes(conn, case_id, sha256_file)
        problems = content.problems + fp_problems
        notes = list(fp_notes)
        if content.sealed:
            notes.insert(0, f"{content.sealed} stored objects were recorded before result hashing (covered from the upgrade of "
                            f"the case file on {content.sealed_at}; an edit made before then cannot be detected)")
        chain.content_problems, chain.notes = problems, notes
        if chain.ok and problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            chain.ok, chain.head_hash = False, None
            chain.message = f"stored results changed: {problems[0]}{more}"
        elif chain.ok:
            chain.message += f"; {content.checked} stored objects match their audit records"
        return chain

    def integrity_check(self) -> list[str]:
        """SQLite's own check of the file's structure: ["ok"] when sound, else its findings."""
        with self._lock:
            try:
                return [r[0] for r in self.db.conn.execute("PRAGMA integrity_check(20)").fetchall()]
            except sqlite3.DatabaseError as exc:
                return [str(exc)]

    # -- cases --------------------------------------------------------------------------------
    def create_case(
        self, number: str, title: str = "", examiner: str = "", request_id: str = "", description: str = "", actor: str | None = None
    ) -> int:
        number = (number or "").strip()
        if not number:
            raise VerityError("a case needs a number")
        with self._write() as db:
            # checked inside the write lock: two processes creating the same number cannot both pass
            if self._one("SELECT id FROM cases WHERE number = ?", (number,)):
                raise VerityError(f"case number {number!r} already exists in {self.path}")
            case_id = int(
                db["cases"].insert(
                    {
                        "number": number, "title": title, "examiner": examiner, "request_id": request_id, "description": description,
                        "created_at": now_iso(), "created_by": actor or examiner or os_user(), "audit_head_seq": 0, "audit_head_hash": None,
                    }
                ).last_pk
            )
            self._append_audit(
                case_id, "case created", "case", case_id,
                {"number": number, "title": title, "examiner": examiner, "request_id": request_id,
                 "software": f"{core.SOFTWARE_NAME} {core.__version__}", "stored": [self._stored("cases", case_id)]},
                actor,
            )
        return case_id

    def get_case(self, case_id: int) -> dict[str, Any]:
        row = self._one("SELECT * FROM cases WHERE id = ?", (int(case_id),))
        if row is None:
            raise VerityError(f"no case with id {case_id} in {self.path}")
        return row

    def find_case(self, number: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM cases WHERE number = ?", (number,))

    def list_cases(self) -> list[dict[str, Any]]:
        return self._all(
            "SELECT c.*, (SELECT COUNT(*) FROM evidence e WHERE e.case_id = c.id) AS evidence_count, "
            "(SELECT COUNT(*) FROM runs r WHERE r.case_id = c.id) AS run_count FROM cases c ORDER BY c.id"
        )

    # -- runs -----------------------------------------------------------------------------------
    def start_run(
        self, evidence_id: int, parameters: dict[str, Any], detectors: list[str] | None, evidence_sha256: str, actor: str | None = None
    ) -> int:
        ev = self.get_evidence(evidence_id)
        with self._write() as db:
            run_id = int(
                db["runs"].insert(
                    {
                        "case_id": ev["case_id"], "evidence_id": evidence_id, "status": "running", "started_at": now_iso(),
                        "actor": self.actor_for(ev["case_id"], actor), "software_name": core.SOFTWARE_NAME, "software_version": core.__version__,
                        "parameters": _dumps(parameters), "detectors_asked": _dumps(detectors), "evidence_sha256": evidence_sha256,
                        "pid": os.getpid(), "host": host_name(), "proc_start": process_start(),
                    }
                ).last_pk
            )
            self._append_audit(
                ev["case_id"], "analysis started", "run", run_id,
                {"evidence_id": evidence_id, "sha256": evidence_sha256, "detectors": detectors, "software_version": core.__version__,
                 "stored": [self._stored("runs", run_id)]},
                actor,
            )
        return run_id

    def finish_run(
        self, run_id: int, status: str, *, analysis: dict[str, Any] | None = None, finding: dict[str, Any] | None = None,
        facepass_path: str | None = None, facepass_sha256: str | None = None, error: str | None = None, actor: str | None = None,
    ) -> None:
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"bad final run status {status!r}")
        run = self.get_run(run_id)
        fields: dict[str, Any] = {"status": status, "finished_at": now_iso(), "error": error}
        if analysis is not None:
            fields["analysis"] = _dumps(analysis)
        if finding is not None:
            fields["finding"] = _dumps(finding)
        if facepass_path is not None:
            fields["facepass_path"], fields["facepass_sha256"] = facepass_path, facepass_sha256
        with self._write() as db:
            db["runs"].update(run_id, fields)
            details: dict[str, Any] = {"status": status}
            if finding is not None:
                details["finding"] = finding.get("value")
            if error:
                details["error"] = error
            details["stored"] = [self._stored("runs", run_id)]
            self._append_audit(run["case_id"], f"analysis {status}", "run", run_id, details, actor)

    def get_run(self, run_id: int) -> dict[str, Any]:
        row = self._one("SELECT * FROM runs WHERE id = ?", (int(run_id),))
        if row is None:
            raise VerityError(f"no run with id {run_id} in {self.path}")
        return row

    def runs_for(self, *, case_id: int | None = None, evidence_id: int | None = None) -> list[dict[str, Any]]:
        if evidence_id is not None:
            return self._all("SELECT * FROM runs WHERE evidence_id = ? ORDER BY id", (evidence_id,))
        if case_id is not None:
            return self._all("SELECT * FROM runs WHERE case_id = ? ORDER BY id", (case_id,))
        return self._all("SELECT * FROM runs ORDER BY id")

    def latest_run(self, evidence_id: int, status: str = "done") -> dict[str, Any] | None:
        return self._one("SELECT * FROM runs WHERE evidence_id = ? AND status = ? ORDER BY id DESC LIMIT 1", (evidence_id, status))

    def stored_analysis(self, run_id: int) -> dict[str, Any]:
        """A stored run back as the pipeline's analysis dict (verity.analysis/1): what the GUI shows
        and the report reads. `detectors` come from the results table, `finding` from the run, and
        `facepass` is the run's own copy with `verified`: True when the file still has the sha256
        recorded with the run, False when it changed or is gone (no view may then show it as this
        run's landmarks), None for a run that recorded no sha256. `case` says where it is stored."""
        from core.digest import sha256_file

        run = self.get_run(run_id)
        analysis = dict(run.get("analysis") or {})
        analysis["detectors"] = {r["detector"]: r["result"] for r in self.results_for(run_id)}
        if run.get("finding") and "finding" not in analysis:
            analysis["finding"] = run["finding"]
        if run.get("facepass_path"):
            path, expected = Path(run["facepass_path"]), run.get("facepass_sha256")
            try:
                verified = None if not expected else sha256_file(path) == expected
            except OSError:
                verified = False
            analysis["facepass"] = {**(analysis.get("facepass") or {}), "path": str(path), "sha256": expected, "verified": verified}
        analysis["case"] = {"case_id": run["case_id"], "evidence_id": run["evidence_id"], "run_id": run_id, "status": run["status"]}
        return analysis

    def recover_interrupted(self) -> list[int]:
        """Mark `running` runs whose process is gone as `interrupted` (see core/cases/liveness.py)."""
        marked = []
        for run in self._all("SELECT id, case_id, pid, host, proc_start FROM runs WHERE status = 'running'"):
            if run_alive(run["pid"], run["host"], run["proc_start"]) is not False:
                continue
            with self._write() as db:
                # re-check inside the write lock: another process may have finished or marked it
                still = db.conn.execute("SELECT status FROM runs WHERE id = ?", (run["id"],)).fetchone()
                if not still or still[0] != "running":
                    continue
                db["runs"].update(run["id"], {"status": "interrupted", "finished_at": now_iso(), "error": "the analysis process ended without finishing"})
                self._append_audit(
                    run["case_id"], "analysis interrupted", "run", run["id"],
                    {"pid": run["pid"], "host": run["host"], "found_by_pid": os.getpid(), "stored": [self._stored("runs", run["id"])]}, None,
                )
            marked.append(run["id"])
        return marked

    # -- results and segments ------------------------------------------------------------------
    def add_result(self, run_id: int, detector: str, result: Any, segments: list[Any] | None = None) -> int:
        """Store one detector's result (a DetectorResult or its dict) as it lands; replaces a previous
        one. With `segments` (e.g. `result.segments`) its flagged segments are stored in the same
        write. One audit row records the digest of what was stored (core/cases/integrity.py)."""
        d = result.to_dict() if hasattr(result, "to_dict") else dict(result)
        conf = d.get("confidence")
        run = self.get_run(run_id)
        with self._write() as db:
            rid = int(
                db["results"].insert(
                    {
                        "run_id": run_id, "detector": detector, "status": d.get("status", "ok"), "prediction": d.get("prediction"),
                        "confidence": float(conf) if isinstance(conf, (int, float)) else None, "assessment": d.get("assessment"),
                        "weights_sha256": _dumps(d.get("weights_sha256") or {}), "result": _dumps(d), "stored_at": now_iso(),
                    },
                    replace=True,
                ).last_pk
            )
            stored = [self._stored("results", run_id, detector)]
            if segments is not None:
                self._put_segments(run_id, detector, segments)
                stored.append(self._stored("segments", run_id, detector))
            self._append_audit(
                run["case_id"], "detector result stored", "result", rid,
                {"run_id": run_id, "detector": detector, "status": d.get("status", "ok"), "assessment": d.get("assessment"),
                 **({"segments": len(segments)} if segments is not None else {}), "stored": stored},
                None,
            )
        return rid

    def add_segments(self, run_id: int, detector: str, segments: list[Any]) -> None:
        """Store (replace) one detector's flagged segments of a run, with an audit row."""
        run = self.get_run(run_id)
        with self._write():
            self._put_segments(run_id, detector, segments)
            self._append_audit(
                run["case_id"], "segments stored", "run", run_id,
                {"detector": detector, "segments": len(segments), "stored": [self._stored("segments", run_id, detector)]}, None,
            )

    def _put_segments(self, run_id: int, detector: str, segments: list[Any]) -> None:
        rows = []
        for s in segments:
            s = s.to_dict() if hasattr(s, "to_dict") else dict(s)
            score = s.get("score")
            rows.append(
                {
                    "run_id": run_id, "detector": detector, "track_id": s.get("track_id"), "start_frame": int(s["start_frame"]),
                    "end_frame": int(s["end_frame"]), "score": float(score) if isinstance(score, (int, float)) else None,
                    "reason": s.get("reason", ""),
                }
            )
        self.db.conn.execute("DELETE FROM segments WHERE run_id = ? AND detector = ?", (run_id, detector))
        if rows:
            self.db["segments"].insert_all(rows)

    def results_for(self, run_id: int) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM results WHERE run_id = ? ORDER BY detector", (run_id,))

    def segments_for(self, run_id: int, detector: str | None = None) -> list[dict[str, Any]]:
        if detector is not None:
            return self._all("SELECT * FROM segments WHERE run_id = ? AND detector = ? ORDER BY start_frame, id", (run_id, detector))
        return self._all("SELECT * FROM segments WHERE run_id = ? ORDER BY start_frame, detector, id", (run_id,))

    # -- bookmarks ------------------------------------------------------------------------------
    def add_bookmark(self, evidence_id: int, frame: int, note: str = "", track_id: int | None = None, actor: str | None = None) -> int:
        """A note at a frame of the item; refuses a frame outside the item's frames."""
        ev = self.get_evidence(evidence_id)
        frame = int(frame)
        n = int(((ev.get("probe") or {}).get("video") or {}).get("frame_count") or 0)
        if frame < 0 or (n and frame >= n):
            span = f"frames 0-{n - 1}" if n else "frames from 0"
            raise VerityError(f"frame {frame} is not a frame of evidence {ev['id']} ({ev['name']}: {n} frames, {span})")
        author = self.actor_for(ev["case_id"], actor)
        with self._write() as db:
            bid = int(
                db["bookmarks"].insert(
                    {"case_id": ev["case_id"], "evidence_id": evidence_id, "frame": frame, "track_id": track_id, "note": note,
                     "created_at": now_iso(), "author": author}
                ).last_pk
            )
            self._append_audit(
                ev["case_id"], "bookmark added", "bookmark", bid,
                {"evidence_id": evidence_id, "frame": frame, "note": note, "stored": [self._stored("bookmarks", bid)]}, actor,
            )
        return bid

    def update_bookmark(self, bookmark_id: int, note: str, actor: str | None = None) -> None:
        bm = self._get_bookmark(bookmark_id)
        with self._write() as db:
            db["bookmarks"].update(bookmark_id, {"note": note})
            self._append_audit(
                bm["case_id"], "bookmark edited", "bookmark", bookmark_id,
                {"old_note": bm["note"], "note": note, "stored": [self._stored("bookmarks", bookmark_id)]}, actor,
            )

    def delete_bookmark(self, bookmark_id: int, actor: str | None = None) -> None:
        bm = self._get_bookmark(bookmark_id)
        with self._write() as db:
            db.conn.execute("DELETE FROM bookmarks WHERE id = ?", (bookmark_id,))
            self._append_audit(
                bm["case_id"], "bookmark deleted", "bookmark", bookmark_id,
                {"frame": bm["frame"], "note": bm["note"], "stored": [self._stored("bookmarks", bookmark_id)]}, actor,
            )

    def _get_bookmark(self, bookmark_id: int) -> dict[str, Any]:
        row = self._one("SELECT * FROM bookmarks WHERE id = ?", (int(bookmark_id),))
        if row is None:
            raise VerityError(f"no bookmark with id {bookmark_id}")
        return row

    def list_bookmarks(self, *, case_id: int | None = None, evidence_id: int | None = None) -> list[dict[str, Any]]:
        if evidence_id is not None:
            return self._all("SELECT * FROM bookmarks WHERE evidence_id = ? ORDER BY frame, id", (evidence_id,))
        if case_id is not None:
            return self._all("SELECT * FROM bookmarks WHERE case_id = ? ORDER BY evidence_id, frame, id", (case_id,))
        return self._all("SELECT * FROM bookmarks ORDER BY id")
