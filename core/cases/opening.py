"""Opening a case file: never create one by mistake, never write into another application's file.

Before anything is written (not even the switch to WAL, which rewrites the file header) the file
is identified from read-only queries:

- no file: created only when the caller may create one (`verity case new`, the desktop
  application); a command that reads cases refuses a mistyped `--db` path instead;
- an empty SQLite file (no tables) or a 0-byte file: a new case file;
- `PRAGMA application_id` = Verity's: a case file; application id 0 with Verity's tables: a case
  file from before the id was set (schema 1);
- anything else: another application's file, or not SQLite at all: refused, untouched.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from core.cases.faults import StoreForeignError, StoreNotFoundError, raise_fault
from core.cases.schema import APPLICATION_ID

VERITY_TABLES = {"cases", "evidence", "runs", "results", "segments", "bookmarks", "audit"}
BUSY_TIMEOUT_S = 30.0


def _connect(path: Path) -> sqlite3.Connection:
    """The one place a case file's connection is made (tests swap it to simulate faults)."""
    return sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None)


def _identify(conn: sqlite3.Connection, path: Path) -> None:
    """Raise StoreForeignError unless the file is empty or a Verity case file."""
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()} - {"sqlite_sequence"}
    if app_id == APPLICATION_ID or (app_id == 0 and not tables) or (app_id == 0 and VERITY_TABLES <= tables):
        return
    shown = ", ".join(sorted(tables)[:6]) + (", ..." if len(tables) > 6 else "") if tables else "none"
    who = f"application id {app_id:#x}" if app_id else "no application id"
    raise StoreForeignError(f"{path}: not a Verity case file (an SQLite file of another application: {who}, tables {shown}); left untouched")


def open_case_file(path: Path, create: bool) -> sqlite3.Connection:
    """A connection to a Verity case file (WAL, foreign keys on), created only when `create`."""
    if path.is_dir():
        raise StoreForeignError(f"{path}: a folder, not a case file")
    if not path.exists():
        if not create:
            raise StoreNotFoundError(f"{path}: no case file there; check the --db path ('verity case new' creates a case file)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise_fault(exc, path, "creating its folder")
    try:
        conn = _connect(path)
    except sqlite3.Error as exc:
        raise_fault(exc, path, "opening it")
    try:
        _identify(conn, path)
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints, never corrupt
    except BaseException as exc:
        conn.close()
        if isinstance(exc, sqlite3.Error):
            raise_fault(exc, path, "opening it")
        raise
    return conn
