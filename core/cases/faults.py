"""Faults of the case file itself, each with one examiner-readable line and its own exit code.

SQLite reports a read-only file, a full disk, a damaged file or a lock held too long as
`sqlite3.Error`s; `store_fault` turns them into these so that the CLI prints one line and
exits with the code below instead of "internal error: OperationalError". The codes are
documented in docs/cases-and-reports.md and core/cli.py.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path
from typing import NoReturn

from core.errors import VerityError


class StoreError(VerityError):
    """A fault of the case file (not of the evidence, not of the examiner's input)."""

    exit_code = 2


class StoreNotFoundError(StoreError):
    """A command that reads an existing case file was given a path where none exists."""

    exit_code = 4


class StoreForeignError(StoreError):
    """The file is not a Verity case file (another application's SQLite file, or not SQLite)."""

    exit_code = 5


class StoreCorruptError(StoreError):
    """The case file is damaged (SQLite reports it malformed, or its integrity check fails)."""

    exit_code = 6


class StoreReadOnlyError(StoreError):
    """The case file (or its folder) cannot be written."""

    exit_code = 7


class StoreFullError(StoreError):
    """No space left for the case file to grow."""

    exit_code = 8


class StoreBusyError(StoreError):
    """Another process held the case file's write lock past the busy timeout."""

    exit_code = 9


class StoreTamperedError(StoreError):
    """Stored results no longer match what the audit chain recorded: a report is refused."""

    exit_code = 10


def _name(exc: sqlite3.Error) -> str:
    return (getattr(exc, "sqlite_errorname", "") or "").upper()


def store_fault(exc: BaseException, path: str | Path, doing: str = "") -> BaseException:
    """The StoreError for an sqlite3/OS error on the case file at `path`, or `exc` itself when it
    is not a fault of the file (e.g. a constraint our own code should have prevented)."""
    if isinstance(exc, StoreError):
        return exc
    what = f" while {doing}" if doing else ""
    text = str(exc)
    low = text.lower()
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return StoreFullError(f"{path}: no space left on the device{what}; free some space and run it again")
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return StoreReadOnlyError(f"{path}: cannot be written{what} ({exc.strerror}); check the file's permissions")
        return exc
    if not isinstance(exc, sqlite3.Error):
        return exc
    name = _name(exc)
    if name.startswith("SQLITE_FULL") or "database or disk is full" in low:
        return StoreFullError(f"{path}: the case file cannot grow, the disk is full{what}; free some space and run it again")
    if name.startswith("SQLITE_READONLY") or "readonly database" in low:
        return StoreReadOnlyError(f"{path}: the case file is read-only{what}; nothing was written (check its permissions, or copy it)")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in low:
        return StoreBusyError(f"{path}: the case file stayed locked by another process{what}; try again when that work has finished")
    if name.startswith("SQLITE_NOTADB") or "file is not a database" in low:
        return StoreForeignError(f"{path}: not a Verity case file (not an SQLite database)")
    if name.startswith("SQLITE_CORRUPT") or "malformed" in low:
        return StoreCorruptError(f"{path}: the case file is damaged ({text}); run 'verity case verify' and restore it from a copy")
    if name.startswith("SQLITE_CANTOPEN") or "unable to open database" in low:
        return StoreReadOnlyError(f"{path}: the case file cannot be opened{what} ({text}); check the path and the folder's permissions")
    if name.startswith("SQLITE_IOERR") or "disk i/o error" in low:
        return StoreCorruptError(f"{path}: input/output error on the case file{what} ({text})")
    return exc


def raise_fault(exc: BaseException, path: str | Path, doing: str = "") -> NoReturn:
    """Re-raise `exc` as its StoreError (chained), or unchanged when it is not a fault of the file.
    Call inside the `except` block that caught it."""
    fault = store_fault(exc, path, doing)
    if fault is exc:
        raise exc
    raise fault from exc
