"""Tables of the case store and the migrations between schema versions.

The schema version lives in `PRAGMA user_version`. `MIGRATIONS[k]` brings a file from version k
to k + 1; opening a file runs every missing step in one transaction each, so an old case file
is upgraded in place and a half-done upgrade never stays behind. A file written by a newer
Verity (user_version > len(MIGRATIONS)) is refused rather than guessed at.

Version 2 marks the file as Verity's (`PRAGMA application_id`, so another application's SQLite
file is never mistaken for an empty case file) and puts the results of older files under the
audit chain: one audit row per case records every stored object as found at the upgrade
(core/cases/integrity.py), so later edits are detected and reports can say which results were
recorded before result hashing.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from core.errors import VerityError


def _v1(db: sqlite_utils.Database) -> None:
    db["cases"].create(
        {
            "id": int, "number": str, "title": str, "examiner": str, "request_id": str, "description": str,
            "created_at": str, "created_by": str,
            # head of this case's audit chain, moved in the same transaction as each audit row:
            # removing the newest audit rows then also needs this edited to go unnoticed
            "audit_head_seq": int, "audit_head_hash": str,
        },
        pk="id",
        not_null={"number", "created_at"},
        defaults={"audit_head_seq": 0},
    )
    db["cases"].create_index(["number"], unique=True)
    db["evidence"].create(
        {
            "id": int, "case_id": int, "name": str, "path": str, "sha256": str, "size_bytes": int, "probe": str,
            "imported_at": str, "imported_by": str, "label": str,
        },
        pk="id",
        foreign_keys=[("case_id", "cases", "id")],
        not_null={"case_id", "path", "sha256", "imported_at"},
    )
    db["evidence"].create_index(["case_id", "path"], unique=True)
    db["runs"].create(
        {
            "id": int, "case_id": int, "evidence_id": int, "status": str, "started_at": str, "finished_at": str,
            "actor": str, "software_name": str, "software_version": str, "parameters": str, "detectors_asked": str,
            "evidence_sha256": str,  # hash measured when this run started
            "pid": int, "host": str, "proc_start": str,  # who runs it: to tell a live run from a dead one
            "facepass_path": str, "facepass_sha256": str, "analysis": str, "finding": str, "error": str,
        },
        pk="id",
        foreign_keys=[("case_id", "cases", "id"), ("evidence_id", "evidence", "id")],
        not_null={"case_id", "evidence_id", "status", "started_at"},
    )
    db["runs"].create_index(["evidence_id"])
    db["runs"].create_index(["status"])
    db["results"].create(
        {
            "id": int, "run_id": int, "detector": str, "status": str, "prediction": str, "confidence": float,
            "assessment": str, "weights_sha256": str, "result": str, "stored_at": str,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
        not_null={"run_id", "detector", "status", "result"},
    )
    db["results"].create_index(["run_id", "detector"], unique=True)
    db["segments"].create(
        {
            "id": int, "run_id": int, "detector": str, "track_id": int, "start_frame": int, "end_frame": int,
            "score": float, "reason": str,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
        not_null={"run_id", "detector", "start_frame", "end_frame"},
    )
    db["segments"].create_index(["run_id"])
    db["bookmarks"].create(
        {
            "id": int, "case_id": int, "evidence_id": int, "frame": int, "track_id": int, "note": str,
            "created_at": str, "author": str,
        },
        pk="id",
        foreign_keys=[("case_id", "cases", "id"), ("evidence_id", "evidence", "id")],
        not_null={"case_id", "evidence_id", "frame", "created_at"},
    )
    db["bookmarks"].create_index(["evidence_id", "frame"])
    # The audit log is written with plain SQL: AUTOINCREMENT (ids are never reused) and triggers
    # that refuse UPDATE and DELETE. The triggers stop accidents; the hash chain detects the rest.
    db.execute(
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            case_id INTEGER REFERENCES cases(id),
            seq INTEGER NOT NULL,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            object_type TEXT,
            object_id INTEGER,
            details TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )"""
    )
    db.execute("CREATE UNIQUE INDEX idx_audit_case_seq ON audit(case_id, seq)")
    db.execute("CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END")
    db.execute("CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END")


APPLICATION_ID = 0x56524954  # "VRIT" in the SQLite header: this file is a Verity case file


def _v2(db: sqlite_utils.Database) -> None:
    from core.cases.audit import append_row, os_user
    from core.cases.integrity import SEAL_ACTION, case_records

    conn = db.conn
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    for (case_id,) in conn.execute("SELECT id FROM cases ORDER BY id").fetchall():
        details = {
            "reason": "case file upgraded from schema 1: these objects were stored before results were hashed into the audit "
            "chain; from this row on an edit of any of them is detected, an edit made before it is not",
            "stored": case_records(conn, case_id),
        }
        append_row(conn, case_id, SEAL_ACTION, "case", case_id, details, f"{os_user()} (schema upgrade)")



def _v3_references(db: sqlite_utils.Database) -> None:
    """Known exemplars (core/cases/references.py): reference footage or photos of a named person,
    hashed at intake like evidence and never modified."""
    db["reference_items"].create(
        {
            "id": int, "case_id": int, "person": str, "name": str, "path": str, "kind": str, "sha256": str,
            "size_bytes": int, "probe": str, "imported_at": str, "imported_by": str, "note": str,
        },
        pk="id",
        foreign_keys=[("case_id", "cases", "id")],
        not_null={"case_id", "person", "path", "kind", "sha256", "imported_at"},
    )
    db["reference_items"].create_index(["case_id", "path"], unique=True)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1, _v2, _v3_references]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite_utils.Database) -> int:
    """Bring the file to SCHEMA_VERSION; returns the version it had before."""
    before = int(db.execute("PRAGMA user_version").fetchone()[0])
    if before > SCHEMA_VERSION:
        raise VerityError(
            f"{db.conn.execute('PRAGMA database_list').fetchone()[2]}: case file has schema version {before}, "
            f"this Verity knows up to {SCHEMA_VERSION}; open it with a newer Verity"
        )
    for version in range(before, SCHEMA_VERSION):
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            # someone else may have migrated while we waited for the write lock
            if int(db.conn.execute("PRAGMA user_version").fetchone()[0]) == version:
                MIGRATIONS[version](db)
                db.conn.execute(f"PRAGMA user_version = {version + 1}")
            db.conn.execute("COMMIT")
        except BaseException:
            db.conn.execute("ROLLBACK")
            raise
    return before
