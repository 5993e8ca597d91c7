"""Stored results under the audit hash chain: what each audit row says was stored, and whether
the tables still hold it.

Every write of a covered object appends its audit row in the same transaction, and that row's
`details.stored` lists a digest of what the object holds right after the write:

    {"table": "results", "key": [3, "av_sync"], "v": 1, "n": 1, "sha256": "...", "fields": {"assessment": "1f0c...", ...}}

`sha256` covers every column below, of every row of the object, as stored (JSON columns as their
stored text); `fields` holds a 16-hex digest per column, so a check can name the changed field;
`n` = 0 records a deletion. The row's hash covers `details`, so editing a result means editing
its audit row too, which breaks the chain. `check` recomputes every object of a case and compares
it with its latest record: a changed field, a deleted object, or an object that no Verity write
recorded (inserted by hand) is named with its table, row and field.

Objects (`COVERED`): the case row, evidence items, runs (their finding, analysis summary, face
pass path and sha256, status...), detector results, the segments of one detector in one run, and
bookmarks. Case files written before result hashing (schema 1) are sealed at the upgrade: one
audit row per case records every object as found then (`SEAL_ACTION`); `check` reports those
objects as recorded before result hashing rather than as verified from the start.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DIGEST_VERSION = 1  # bump when a table's covered columns change; old records keep their version's columns
SEAL_ACTION = "stored results sealed at upgrade"

# table -> (key columns, covered columns). The row id of results/segments is not covered: a
# result replaced by a newer one of the same run and detector gets a new id.
COVERED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "cases": (("id",), ("number", "title", "examiner", "request_id", "description", "created_at", "created_by")),
    "evidence": (("id",), ("case_id", "name", "path", "sha256", "size_bytes", "probe", "imported_at", "imported_by", "label")),
    "runs": (
        ("id",),
        (
            "case_id", "evidence_id", "status", "started_at", "finished_at", "actor", "software_name", "software_version",
            "parameters", "detectors_asked", "evidence_sha256", "pid", "host", "proc_start", "facepass_path",
            "facepass_sha256", "analysis", "finding", "error",
        ),
    ),
    "results": (
        ("run_id", "detector"),
        ("run_id", "detector", "status", "prediction", "confidence", "assessment", "weights_sha256", "result", "stored_at"),
    ),
    "segments": (("run_id", "detector"), ("run_id", "detector", "track_id", "start_frame", "end_frame", "score", "reason")),
    "bookmarks": (("id",), ("case_id", "evidence_id", "frame", "track_id", "note", "created_at", "author")),
    "reference_items": (
        ("id",), ("case_id", "person", "name", "path", "kind", "sha256", "size_bytes", "probe", "imported_at", "imported_by", "note"),
    ),
}

# the keys of each table's objects that belong to one case
_CASE_KEYS = {
    "cases": "SELECT id FROM cases WHERE id = ?",
    "evidence": "SELECT id FROM evidence WHERE case_id = ?",
    "runs": "SELECT id FROM runs WHERE case_id = ?",
    "results": "SELECT run_id, detector FROM results WHERE run_id IN (SELECT id FROM runs WHERE case_id = ?)",
    "segments": "SELECT DISTINCT run_id, detector FROM segments WHERE run_id IN (SELECT id FROM runs WHERE case_id = ?)",
    "bookmarks": "SELECT id FROM bookmarks WHERE case_id = ?",
    "reference_items": "SELECT id FROM reference_items WHERE case_id = ?",  # known exemplars (schema 3)
}


def _case_keys(conn: sqlite3.Connection) -> dict[str, str]:
    """_CASE_KEYS of the tables this file has (a file being upgraded may not have the newer ones yet)."""
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {t: sql for t, sql in _CASE_KEYS.items() if t in have}


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")).hexdigest()


def _fetch(conn: sqlite3.Connection, table: str, key: tuple[Any, ...]) -> list[dict[str, Any]]:
    keys, cols = COVERED[table]
    where = " AND ".join(f"{k} = ?" for k in keys)
    cur = conn.execute(f"SELECT id, {', '.join(cols)} FROM {table} WHERE {where} ORDER BY id", key)  # noqa: S608 - fixed names
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def digest(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> dict[str, Any]:
    values = [[r[c] for c in columns] for r in rows]
    out: dict[str, Any] = {"n": len(rows), "sha256": _sha(values)}
    if rows:
        out["fields"] = {c: _sha([v[i] for v in values])[:16] for i, c in enumerate(columns)}
    return out


def record(conn: sqlite3.Connection, table: str, *key: Any) -> dict[str, Any]:
    """What `table`'s object `key` holds now, for the `stored` list of the audit row of its write."""
    return {"table": table, "key": list(key), "v": DIGEST_VERSION, **digest(_fetch(conn, table, tuple(key)), COVERED[table][1])}


def case_records(conn: sqlite3.Connection, case_id: int) -> list[dict[str, Any]]:
    """Records of every object of one case as it is now (the seal of a pre-hashing case file)."""
    return [record(conn, table, *k) for table, sql in _case_keys(conn).items() for k in conn.execute(sql, (case_id,)).fetchall()]


def _label(table: str, key: tuple[Any, ...], rows: list[dict[str, Any]]) -> str:
    ids = [r["id"] for r in rows]
    if table == "results":
        where = f" {ids[0]}" if ids else ""
        return f"results row{where} (run {key[0]}, detector {key[1]})"
    if table == "segments":
        span = f" {ids[0]}-{ids[-1]}" if len(ids) > 1 else f" {ids[0]}" if ids else ""
        return f"segments row{'s' if len(ids) > 1 else ''}{span} (run {key[0]}, detector {key[1]})"
    return f"{table} row {key[0]}"


@dataclass
class ContentCheck:
    problems: list[str] = field(default_factory=list)  # one line each: table, row, field
    checked: int = 0  # objects compared with their record
    sealed: int = 0  # of which recorded only at the upgrade of a pre-hashing case file
    sealed_at: str | None = None  # when (the seal row's time)
    notes: list[str] = field(default_factory=list)  # not tampering: e.g. a face pass file gone missing

    @property
    def ok(self) -> bool:
        return not self.problems


def _recorded(audit_rows: list[dict[str, Any]]) -> tuple[dict[tuple[str, tuple[Any, ...]], tuple[dict[str, Any], dict[str, Any]]], list[str]]:
    """(table, key) -> (its latest record, the audit row holding it); plus unreadable rows."""
    out: dict[tuple[str, tuple[Any, ...]], tuple[dict[str, Any], dict[str, Any]]] = {}
    bad: list[str] = []
    for row in audit_rows:
        try:
            details = json.loads(row["details"]) if isinstance(row["details"], str) else row["details"]
        except ValueError:
            bad.append(f"audit row {row['seq']} (id {row['id']}): its details are not JSON")
            continue
        for rec in (details or {}).get("stored", []) if isinstance(details, dict) else []:
            if isinstance(rec, dict) and rec.get("table") in COVERED and isinstance(rec.get("key"), list):
                out[(rec["table"], tuple(rec["key"]))] = (rec, row)
    return out, bad


def _compare(table: str, key: tuple[Any, ...], rows: list[dict[str, Any]], rec: dict[str, Any], row: dict[str, Any]) -> str | None:
    now = digest(rows, COVERED[table][1])
    if now["sha256"] == rec.get("sha256"):
        return None
    what = _label(table, key, rows)
    when = f"audit row {row['seq']}"
    if rec.get("n", 0) == 0:
        return f"{what}: present, but {when} recorded it as deleted; it was added outside Verity"
    if not rows:
        return f"{_label(table, key, [])}: deleted outside Verity ({when} recorded {rec['n']} row{'s' if rec['n'] != 1 else ''})"
    changed = [c for c, d in now.get("fields", {}).items() if (rec.get("fields") or {}).get(c) != d]
    count = f"; {len(rows)} rows now, {rec['n']} when stored" if len(rows) != rec["n"] else ""
    fields = ", ".join(changed) if changed else "its content"
    return f"{what}: {fields} changed after it was stored (recorded in {when}){count}"


def check(conn: sqlite3.Connection, case_id: int, audit_rows: list[dict[str, Any]]) -> ContentCheck:
    """Compare every object of the case with its latest record in `audit_rows` (the case's rows,
    details as stored text). Call inside one read transaction so a concurrent write cannot show
    as a mismatch."""
    recorded, bad = _recorded(audit_rows)
    out = ContentCheck(problems=list(bad))
    keys: list[tuple[str, tuple[Any, ...]]] = [(t, tuple(k)) for t, sql in _case_keys(conn).items() for k in conn.execute(sql, (case_id,)).fetchall()]
    # objects the log recorded for this case that the tables no longer hold under it
    keys += [k for k in recorded if k not in set(keys)]
    seen: set[tuple[str, tuple[Any, ...]]] = set()
    for table, key in keys:
        if (table, key) in seen:
            continue
        seen.add((table, key))
        rows = _fetch(conn, table, key)
        hit = recorded.get((table, key))
        if hit is None:
            out.problems.append(f"{_label(table, key, rows)}: no audit row records it; it was added outside Verity")
            continue
        rec, row = hit
        if rec.get("v") != DIGEST_VERSION:
            out.problems.append(f"{_label(table, key, rows)}: recorded with digest version {rec.get('v')}, which this Verity does not know")
            continue
        problem = _compare(table, key, rows, rec, row)
        out.checked += 1
        if problem:
            out.problems.append(problem)
        elif row["action"] == SEAL_ACTION and rows:
            out.sealed += 1
            out.sealed_at = row["at"]
    return out


def facepass_notes(conn: sqlite3.Connection, case_id: int, file_sha256: Any) -> tuple[list[str], list[str]]:
    """(problems, notes) about each run's stored face pass file: changed is a problem (the report
    plots from it), missing is a note (derived data; the results themselves are in the store)."""
    problems, notes = [], []
    for run_id, path, sha in conn.execute(
        "SELECT id, facepass_path, facepass_sha256 FROM runs WHERE case_id = ? AND facepass_path IS NOT NULL ORDER BY id", (case_id,)
    ).fetchall():
        p = Path(path)
        if not p.is_file():
            notes.append(f"run {run_id}: its face pass file {p.name} is missing (plots from it are left out of reports)")
            continue
        now = file_sha256(p)
        if sha and now != sha:
            problems.append(f"runs row {run_id}: its face pass file {p.name} changed after the run (sha256 now {now}, stored {sha})")
    return problems, notes
