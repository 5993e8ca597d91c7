"""The audit log's hash chain: each row's hash covers its content and the previous row's hash.

Every case has its own chain (rows numbered `seq` = 1, 2, ... within the case; rows without a
case form one more chain). A row's hash is the SHA-256 of a canonical JSON of
(case_id, seq, at, actor, action, object_type, object_id, details, prev_hash); the first row's
prev_hash is 64 zeros. Editing a row changes its hash; deleting one leaves a gap in `seq` and a
prev_hash that no longer matches; removing the newest rows leaves the case's recorded head
(cases.audit_head_seq / audit_head_hash) pointing past the end. The chain is tamper-evident, not
tamper-proof: someone who rewrites every later row and the head can hide an edit, which an
exported report's head hash (printed in every report) then exposes.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

GENESIS = "0" * 64
HASHED_FIELDS = ("case_id", "seq", "at", "actor", "action", "object_type", "object_id", "details", "prev_hash")


def row_hash(row: dict[str, Any]) -> str:
    """Hash of one audit row; `details` is hashed as the stored JSON text, byte for byte."""
    canonical = json.dumps({k: row.get(k) for k in HASHED_FIELDS}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def details_json(details: dict[str, Any] | None) -> str:
    return json.dumps(details or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def now_iso() -> str:
    """Local time with its UTC offset, e.g. 2026-11-21T10:32:29.123+00:00."""
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return "unknown"


def append_row(
    conn: sqlite3.Connection, case_id: int | None, action: str, object_type: str | None, object_id: int | None,
    details: dict[str, Any] | None, actor: str,
) -> dict[str, Any]:
    """Append one row to the case's chain and move the case's head; call inside a write
    transaction so the row and what it records commit together."""
    if case_id is None:
        last = conn.execute("SELECT seq, hash FROM audit WHERE case_id IS NULL ORDER BY seq DESC LIMIT 1").fetchone()
    else:
        last = conn.execute("SELECT seq, hash FROM audit WHERE case_id = ? ORDER BY seq DESC LIMIT 1", (case_id,)).fetchone()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    row: dict[str, Any] = {
        "case_id": case_id, "seq": seq, "at": now_iso(), "actor": actor, "action": action,
        "object_type": object_type, "object_id": object_id, "details": details_json(details), "prev_hash": prev,
    }
    row["hash"] = row_hash(row)
    cur = conn.execute(
        "INSERT INTO audit (case_id, seq, at, actor, action, object_type, object_id, details, prev_hash, hash) "
        "VALUES (:case_id, :seq, :at, :actor, :action, :object_type, :object_id, :details, :prev_hash, :hash)",
        row,
    )
    row["id"] = cur.lastrowid
    if case_id is not None:
        conn.execute("UPDATE cases SET audit_head_seq = ?, audit_head_hash = ? WHERE id = ?", (seq, row["hash"], case_id))
    return row


@dataclass
class VerifyResult:
    ok: bool
    rows_checked: int
    message: str
    broken_seq: int | None = None  # the first row (its seq within the case) where the chain breaks
    broken_id: int | None = None  # its database id, when the row still exists
    head_hash: str | None = None  # hash of the newest row (what a report prints)
    # the stored results against what the chain recorded (core/cases/integrity.py)
    content_problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. objects recorded before result hashing


def verify_chain(rows: list[dict[str, Any]], head_seq: int | None, head_hash: str | None) -> VerifyResult:
    """Check rows (one case's audit rows in seq order) against each other and the recorded head."""
    prev, expected_seq = GENESIS, 1
    for row in rows:
        seq = row["seq"]
        if seq != expected_seq:
            if seq > expected_seq:
                missing = f"row {expected_seq}" if seq == expected_seq + 1 else f"rows {expected_seq}-{seq - 1}"
                msg = f"audit {missing} missing (deleted): row {seq} (id {row['id']}) follows row {expected_seq - 1}"
                return VerifyResult(False, expected_seq - 1, msg, expected_seq, None)
            return VerifyResult(False, expected_seq - 1, f"audit row {seq} (id {row['id']}) is out of order or duplicated", seq, row["id"])
        if row["prev_hash"] != prev:
            msg = f"audit row {seq} (id {row['id']}): its link to row {seq - 1} does not match; row {seq - 1} or this row was changed"
            return VerifyResult(False, seq - 1, msg, seq, row["id"])
        if row_hash(row) != row["hash"]:
            return VerifyResult(False, seq - 1, f"audit row {seq} (id {row['id']}) was changed after it was written", seq, row["id"])
        prev, expected_seq = row["hash"], seq + 1
    n = expected_seq - 1
    if head_seq is not None and head_seq != n:
        if head_seq > n:
            missing = f"row {n + 1}" if head_seq == n + 1 else f"rows {n + 1}-{head_seq}"
            return VerifyResult(False, n, f"audit {missing} missing (deleted from the end of the log)", n + 1, None)
        return VerifyResult(False, n, f"audit log holds {n} rows but its recorded head says {head_seq}", head_seq + 1, None)
    if head_hash is not None and n and head_hash != prev:
        return VerifyResult(False, n, f"audit row {n}: does not match the recorded head of the log", n, rows[-1]["id"])
    return VerifyResult(True, n, f"audit log intact: {n} rows, head {prev[:16]}", head_hash=prev if n else None)
