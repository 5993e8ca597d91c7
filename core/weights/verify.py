"""Finding a checkpoint file and checking its sha256 against the manifest.

Hashes are cached by (path, size, mtime) in the user cache folder so a 1.7 GB checkpoint is not
re-hashed on every start; any change to the file's size or mtime forces a fresh hash.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.digest import sha256_file
from core.paths import cache_dir
from core.weights.manifest import WeightEntry, WeightsError, entry, manifest, project_dir, user_dir

log = logging.getLogger("verity.weights")

CACHE_FILE = "weights_sha256.json"
STATES = ("found", "missing", "bad_hash", "unverified")


@dataclass
class WeightStatus:
    name: str
    state: str  # "found" | "missing" | "bad_hash" | "unverified"
    path: Path | None
    sha256: str | None  # the file's actual sha256 (None when missing)
    reason: str  # examiner-readable

    @property
    def ok(self) -> bool:
        """Found and its sha256 matches the manifest."""
        return self.state == "found"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "state": self.state, "path": str(self.path) if self.path else None, "sha256": self.sha256, "reason": self.reason}


def _hash_file(path: Path) -> str:
    """Streamed sha256 (the one place that reads a checkpoint's bytes for hashing)."""
    return sha256_file(path)


def _cache_path() -> Path:
    return cache_dir() / CACHE_FILE


def _read_cache() -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(_cache_path().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, json.JSONDecodeError):
        return {}


def _write_cache(cache: dict[str, dict[str, Any]]) -> None:
    path = _cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache only costs a re-hash next time
        log.debug("cannot write the weights hash cache %s: %s", path, exc)


def file_sha256(path: str | os.PathLike[str], rehash: bool = False) -> str:
    """sha256 of a file, from the cache when its size, mtime and inode are unchanged
    (`rehash`: ignore the cache and read the whole file again)."""
    path = Path(path).resolve()
    st = path.stat()
    key = str(path)
    cache = _read_cache()
    hit = cache.get(key)
    if not rehash and hit and hit.get("stamp") == _stamp(st) and isinstance(hit.get("sha256"), str):
        return hit["sha256"]
    digest = _hash_file(path)
    cache = _read_cache()  # re-read: another process may have added entries while we hashed
    cache[key] = {"stamp": _stamp(st), "sha256": digest}
    _write_cache(cache)
    return digest


def _stamp(st: os.stat_result) -> list[int]:
    """What must be unchanged for a cached hash to stand: size, mtime, and the inode (a file
    replaced by another of the same size within one clock tick still gets a new inode)."""
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def remember_sha256(path: Path, digest: str) -> None:
    """Prime the cache for a file we have just written (its hash is already known)."""
    path = path.resolve()
    st = path.stat()
    cache = _read_cache()
    cache[str(path)] = {"stamp": _stamp(st), "sha256": digest}
    _write_cache(cache)


def candidates(e: WeightEntry) -> list[Path]:
    """Where the entry's file may lie, in lookup order: project weights/, then the user folder."""
    p = Path(e.file).expanduser()
    if p.is_absolute():
        return [p]
    return [project_dir() / p, user_dir() / p]


def judge(name: str, digest: str, expected: str | None, prefix: str | None, label: str) -> tuple[str, str]:
    """(state, reason) of a file with this sha256 against what the manifest knows; logs a refusal."""
    if expected is not None:
        if digest == expected.lower():
            return "found", f"sha256 verified ({label})"
        reason = f"{label}: sha256 {digest} does not match the expected {expected.lower()}; refused"
    elif prefix and not digest.startswith(prefix.lower()):
        reason = f"{label}: sha256 {digest} does not start with the published prefix {prefix.lower()}; refused"
    else:
        return "unverified", f"{label} found but no sha256 is recorded for it"
    log.error("weights %s refused: %s", name, reason)
    return "bad_hash", reason


def check_file(name: str, path: Path, expected: str | None, prefix: str | None = None, rehash: bool = False) -> WeightStatus:
    """Status of one file against an expected sha256 (None: nothing to compare with)."""
    try:
        digest = file_sha256(path, rehash)
    except OSError as exc:
        return WeightStatus(name, "missing", path, None, f"cannot read {path}: {exc}")
    state, reason = judge(name, digest, expected, prefix, str(path))
    if state == "unverified":
        reason += f"; if it is the right file, record it with 'verity weights import {path} --name {name} --confirm'"
    return WeightStatus(name, state, path, digest, reason)


def status(name: str, rehash: bool = False) -> WeightStatus:
    """Status of a manifest entry: the first verified file in lookup order, else the first problem.

    `rehash` re-reads every candidate file instead of trusting the hash cache."""
    e = entry(name)
    first: WeightStatus | None = None
    for path in candidates(e):
        if not path.is_file():
            continue
        st = check_file(name, path, e.sha256, e.sha256_prefix, rehash)
        if st.ok:
            return st
        first = first or st
    if first is not None:
        return first
    where = " or ".join(str(p.parent) for p in candidates(e))
    return WeightStatus(
        name,
        "missing",
        None,
        None,
        f"{e.file} not found in {where}; bring it with 'verity weights import PATH' (see weights/README.md)",
    )


def verified_path(name: str) -> Path:
    """The entry's file, only when it is present and its sha256 matches; else WeightsError(reason)."""
    st = status(name)
    if not st.ok or st.path is None:
        raise WeightsError(f"weights {name!r} unavailable: {st.reason}")
    return st.path


def all_status(rehash: bool = False) -> dict[str, WeightStatus]:
    return {name: status(name, rehash) for name in manifest()}


def status_table(rehash: bool = False) -> list[dict[str, Any]]:
    """One plain dict per entry (status plus what the manifest says): for reports, the GUI and --json."""
    out = []
    for name, e in manifest().items():
        st = status(name, rehash)
        out.append({**st.to_dict(), "detector": e.detector, "kind": e.kind, "required": e.required, "file": e.file, "expected_sha256": e.sha256, "origin": e.origin})
    return out


def detectors_disabled() -> dict[str, list[str]]:
    """Detector -> names of its required entries that are missing, unverified or fail their hash.

    An entry in a `group` does not count while another entry of that group is verified."""
    entries = manifest()
    ok = {name: status(name).ok for name in entries}
    satisfied = {e.group for name, e in entries.items() if e.group and ok[name]}
    out: dict[str, list[str]] = {}
    for name, e in entries.items():
        if e.required and not ok[name] and not (e.group and e.group in satisfied):
            out.setdefault(e.detector, []).append(name)
    return out
