"""Entries the user registers locally: a head trained here, or a hash the examiner confirmed."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from core.weights.manifest import KINDS, WeightEntry, WeightsError, entry, project_dir, read_local, user_dir, write_local
from core.weights.verify import file_sha256


def _stored_name(path: Path) -> str:
    """Relative to a weights folder when it lies in one (the folder can move), else absolute."""
    for base in (user_dir(), project_dir()):
        try:
            return path.relative_to(base.resolve()).as_posix()
        except ValueError:
            continue
    return str(path)


def _project_sha256(name: str) -> str | None:
    from core.weights.manifest import _read_project

    sha = _read_project().get(name, {}).get("sha256")
    return sha.lower() if isinstance(sha, str) else None


def register_local(
    name: str,
    path: str | Path,
    *,
    detector: str,
    kind: str = "head",
    sha256: str | None = None,
    **extra: Any,
) -> WeightEntry:
    """Record (or replace) `name` in the user's local manifest with the file's sha256.

    When `sha256` is given the file must match it. Fields not given (architecture, source...)
    are inherited from the project manifest entry of the same name, if any.
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise WeightsError(f"cannot register {name!r}: {path} is not a file")
    if kind not in KINDS:
        raise WeightsError(f"cannot register {name!r}: kind {kind!r} is not one of {', '.join(KINDS)}")
    known = {f.name for f in fields(WeightEntry)} - {"name", "detector", "file", "sha256", "kind", "size", "origin"}
    unknown = sorted(set(extra) - known)
    if unknown:
        raise WeightsError(f"cannot register {name!r}: unknown field(s) {', '.join(unknown)}")
    digest = file_sha256(path)
    if sha256 is not None and digest != sha256.lower():
        raise WeightsError(f"cannot register {name!r}: {path.name} has sha256 {digest}, not the expected {sha256.lower()}")
    record: dict[str, Any] = {
        **{k: v for k, v in extra.items() if v is not None},
        "detector": detector,
        "kind": kind,
        "file": _stored_name(path),
        "sha256": digest,
        "size": path.stat().st_size,
    }
    published = _project_sha256(name)
    if published is not None and published != digest:
        raise WeightsError(f"cannot register {name!r}: the project manifest publishes sha256 {published} for it, and {path.name} has {digest}")
    local = read_local()
    local[name] = record
    write_local(local)
    return entry(name)
