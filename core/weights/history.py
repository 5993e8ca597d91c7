"""The examiner's decisions about weights, one JSON line each, hash-chained: which sha256 was
recorded on confirmation, and which recorded sha256 was replaced by which (and by whom).

File: `user_dir() / "weights-audit.jsonl"`, beside the local manifest it explains. Each line
carries `prev_hash` (the previous line's `hash`; 64 zeros for the first) and `hash`, the SHA-256
of the canonical JSON of the line without `hash`: an edited or deleted line breaks the chain.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from core.weights.manifest import WeightsError, user_dir

AUDIT_FILE = "weights-audit.jsonl"
GENESIS = "0" * 64


def _actor() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return "unknown"


def audit_path() -> Path:
    return user_dir() / AUDIT_FILE


def _hash(row: dict[str, Any]) -> str:
    body = {k: v for k, v in row.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")).hexdigest()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise appends between processes where the OS allows (POSIX flock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except ImportError:  # Windows: appends are rare and made by one examiner
            pass
        yield


def read_log() -> list[dict[str, Any]]:
    path = audit_path()
    if not path.is_file():
        return []
    rows = []
    for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            rows.append({"seq": None, "line": k, "unreadable": line[:80]})
    return rows


def verify_log(rows: list[dict[str, Any]] | None = None) -> tuple[bool, str]:
    rows = read_log() if rows is None else rows
    prev = GENESIS
    for k, row in enumerate(rows, 1):
        if "unreadable" in row or row.get("prev_hash") != prev or row.get("hash") != _hash(row):
            return False, f"{audit_path()}: line {k} was changed, or a line before it was removed"
        prev = row["hash"]
    return True, f"{len(rows)} lines, chain intact"


def record(action: str, name: str, **details: Any) -> dict[str, Any]:
    """Append one line; refuses to append to a log whose chain is already broken."""
    path = audit_path()
    with _locked(path):
        rows = read_log()
        ok, message = verify_log(rows)
        if not ok:
            raise WeightsError(f"the weights audit log is broken ({message}); nothing was recorded")
        row: dict[str, Any] = {
            "seq": len(rows) + 1, "at": datetime.now().astimezone().isoformat(timespec="milliseconds"), "actor": _actor(), "action": action, "name": name,
            **details, "prev_hash": rows[-1]["hash"] if rows else GENESIS,
        }
        row["hash"] = _hash(row)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    return row
