"""Known exemplars: reference footage or photos of the person a questioned video claims to show.

An examiner compares a questioned item with known exemplars (a public figure's other recordings,
a suspect's footage on file). Each exemplar belongs to a case and a named person; a person can
have several. They are handled like evidence: hashed (SHA-256) and probed at intake, recorded
with an audit row, only ever opened for reading, and re-hashed (audited) before every analysis
and report export that uses them. A changed or missing file is never used.

    ref = add_reference(store, case_id, "Jane Doe", path)      # hash + probe + audit row
    references_for(store, case_id) / get_reference(store, ref_id)
    sha = verify_reference(store, ref_id, "analysis")          # EvidenceError + audit row on a change
    exemplars = exemplars_for_analysis(store, case_id)          # verified, for AnalysisOptions.references

Rows live in their own table `reference_items` (schema migration `_v2_references`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from core.cases.store import CaseStore, _dumps, now_iso
from core.detectors.base import Exemplar
from core.errors import EvidenceError, VerityError
from core.progress import CancelToken, ProgressCallback, no_progress


def _probe(p: Path) -> tuple[str, dict[str, Any]]:
    """("photo" | "video", probe dict); EvidenceError for anything else."""
    from core.face.exemplars import PHOTO_SUFFIXES, read_photo

    if p.suffix.lower() in PHOTO_SUFFIXES:
        img = read_photo(p)
        return "photo", {"format": p.suffix.lower().lstrip("."), "width": int(img.shape[1]), "height": int(img.shape[0]), "size_bytes": p.stat().st_size}
    from core.evidence import probe

    return "video", probe(p).to_dict()


def add_reference(
    store: CaseStore, case_id: int, person: str, path: str | os.PathLike[str], note: str = "", actor: str | None = None,
    progress: ProgressCallback = no_progress, cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Hash, probe and record one exemplar of `person`; returns its row. Adding a path already in
    the case returns its row when unchanged (refused, with an audit row, when the file changed or
    when it is recorded for another person)."""
    from core.evidence import sha256_file

    person = (person or "").strip()
    if not person:
        raise VerityError("a known exemplar needs the name of the person it shows (--person NAME)")
    store.get_case(case_id)
    p = Path(path)
    resolved = str(p.resolve())
    try:
        if not p.is_file():
            raise EvidenceError(f"{p}: file not found")
        kind, info = _probe(p)
        sha = sha256_file(p, progress, cancel)
    except EvidenceError as exc:
        store.audit(case_id, "reference import refused", "reference", None, {"path": resolved, "person": person, "reason": str(exc)}, actor)
        raise
    existing = store._one("SELECT * FROM reference_items WHERE case_id = ? AND path = ?", (case_id, resolved))
    if existing is not None:
        if existing["sha256"] != sha:
            _mismatch(store, existing, sha, "reference import", actor)
        if existing["person"] != person:
            raise VerityError(f"{resolved} is already a known exemplar of {existing['person']!r} in this case (reference {existing['id']})")
        return existing
    with store._write() as db:
        rid = int(
            db["reference_items"].insert(
                {
                    "case_id": case_id, "person": person, "name": p.name, "path": resolved, "kind": kind, "sha256": sha,
                    "size_bytes": p.stat().st_size, "probe": _dumps(info), "imported_at": now_iso(),
                    "imported_by": store.actor_for(case_id, actor), "note": note,
                }
            ).last_pk
        )
        store._append_audit(
            case_id, "reference imported", "reference", rid,
            {"path": resolved, "name": p.name, "person": person, "kind": kind, "sha256": sha, "size_bytes": p.stat().st_size,
             "stored": [store._stored("reference_items", rid)]},  # the row under the audit chain (core/cases/integrity.py)
            actor,
        )
    return get_reference(store, rid)


def get_reference(store: CaseStore, ref_id: int) -> dict[str, Any]:
    row = store._one("SELECT * FROM reference_items WHERE id = ?", (int(ref_id),))
    if row is None:
        raise VerityError(f"no known exemplar with id {ref_id} in {store.path}")
    return row


def references_for(store: CaseStore, case_id: int) -> list[dict[str, Any]]:
    return store._all("SELECT * FROM reference_items WHERE case_id = ? ORDER BY person, id", (case_id,))


def _mismatch(store: CaseStore, ref: dict[str, Any], sha_now: str, when: str, actor: str | None) -> None:
    store.audit(
        ref["case_id"], f"{when} refused: reference hash mismatch", "reference", ref["id"],
        {"path": ref["path"], "sha256_intake": ref["sha256"], "sha256_now": sha_now}, actor,
    )
    raise EvidenceError(
        f"known exemplar {ref['id']} ({ref['name']}, {ref['person']}) has changed since intake: sha256 now {sha_now}, "
        f"at intake {ref['sha256']}; {when} refused (recorded in the audit log)"
    )


def verify_reference(
    store: CaseStore, ref_id: int, when: str, actor: str | None = None,
    progress: ProgressCallback = no_progress, cancel: CancelToken | None = None,
) -> str:
    """Re-hash one exemplar; audit the check; EvidenceError when it is missing or changed."""
    from core.evidence import sha256_file

    ref = get_reference(store, ref_id)
    p = Path(ref["path"])
    if not p.is_file():
        store.audit(ref["case_id"], f"{when} refused: reference file missing", "reference", ref["id"], {"path": ref["path"]}, actor)
        raise EvidenceError(f"known exemplar {ref['id']} ({ref['name']}): file not found at {ref['path']}; not used")
    sha = sha256_file(p, progress, cancel)
    if sha != ref["sha256"]:
        _mismatch(store, ref, sha, when, actor)
    store.audit(ref["case_id"], f"reference re-hashed before {when}", "reference", ref["id"], {"sha256": sha, "match": True}, actor)
    return sha


def exemplars_for_analysis(
    store: CaseStore, case_id: int, actor: str | None = None, cancel: CancelToken | None = None
) -> list[Exemplar]:
    """The case's exemplars, each re-hashed (audited) now. One that changed or went missing comes
    back with `problem` set, so the detector says why it was left out."""
    out = []
    for ref in references_for(store, case_id):
        problem = None
        try:
            verify_reference(store, ref["id"], "analysis", actor, cancel=cancel)
        except EvidenceError as exc:
            problem = str(exc)
        out.append(Exemplar(person=ref["person"], path=Path(ref["path"]), sha256=ref["sha256"], kind=ref["kind"],
                            id=ref["id"], name=ref["name"], problem=problem))
    return out
