"""Evidence items of the case store: intake, custody re-hash, relinking a moved file.

A mixin of `CaseStore` (core/cases/store.py), kept apart for size; it uses the store's
transaction and audit plumbing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from core.cases.audit import now_iso
from core.errors import EvidenceError, VerityError
from core.progress import CancelToken, ProgressCallback, no_progress


def _dumps(obj: Any) -> str:
    """A JSON column's text as stored."""
    return json.dumps(obj, ensure_ascii=False, default=str)


class EvidenceMixin:
    """Evidence methods of CaseStore (see core/cases/__init__.py for the API)."""

    path: Path

    def import_evidence(
        self, case_id: int, path: str | os.PathLike[str], label: str = "", actor: str | None = None,
        progress: ProgressCallback = no_progress, cancel: CancelToken | None = None,
    ) -> dict[str, Any]:
        """Hash (SHA-256) and probe the file and record it; returns the evidence row.

        Importing a path already in the case returns its row when the content is unchanged and
        refuses (EvidenceError + audit row) when the file changed since intake. The file is only read.
        """
        from core.evidence import probe, sha256_file

        self.get_case(case_id)
        p = Path(path)
        resolved = str(p.resolve())
        try:
            info = probe(p)
            sha = sha256_file(p, progress, cancel)
        except EvidenceError as exc:
            self.audit(case_id, "evidence import refused", "evidence", None, {"path": resolved, "reason": str(exc)}, actor)
            raise
        with self._write() as db:
            # looked up inside the write lock: two imports of one new file at once (two
            # `analyze --case` processes) both end with the one row, not a UNIQUE failure
            existing = self._one("SELECT * FROM evidence WHERE case_id = ? AND path = ?", (case_id, resolved))
            if existing is None:
                same = self._one("SELECT id FROM evidence WHERE case_id = ? AND sha256 = ? ORDER BY id LIMIT 1", (case_id, sha))
                eid = int(
                    db["evidence"].insert(
                        {
                            "case_id": case_id, "name": p.name, "path": resolved, "sha256": sha, "size_bytes": info.size_bytes,
                            "probe": _dumps(info.to_dict()), "imported_at": now_iso(), "imported_by": self.actor_for(case_id, actor),
                            "label": label,
                        }
                    ).last_pk
                )
                self._append_audit(
                    case_id, "evidence imported", "evidence", eid,
                    {"path": resolved, "name": p.name, "sha256": sha, "size_bytes": info.size_bytes, "format": info.format,
                     "frame_count": info.video.frame_count, "fps": round(info.video.fps, 4),
                     **({"same_content_as_evidence": same["id"]} if same else {}), "stored": [self._stored("evidence", eid)]},
                    actor,
                )
        if existing is not None:
            if existing["sha256"] != sha:
                self._hash_mismatch(existing, sha, "import", actor)
            return existing
        return self.get_evidence(eid)

    def relink_evidence(self, evidence_id: int, new_path: str | os.PathLike[str], actor: str | None = None) -> dict[str, Any]:
        """Point an item at its file's new place (a moved or re-mounted file) when the file there
        has the intake sha256; audited with both paths. Refuses (EvidenceError + audit row) a
        different file, and a path that is already another item of the case."""
        from core.evidence import sha256_file

        ev = self.get_evidence(evidence_id)
        p = Path(new_path)
        resolved = str(p.resolve())
        if not p.is_file():
            raise EvidenceError(f"cannot relink evidence {ev['id']} ({ev['name']}): {new_path} is not a file")
        sha = sha256_file(p)
        if sha != ev["sha256"]:
            self.audit(
                ev["case_id"], "relink refused: evidence hash mismatch", "evidence", ev["id"],
                {"old_path": ev["path"], "new_path": resolved, "sha256_intake": ev["sha256"], "sha256_now": sha}, actor,
            )
            raise EvidenceError(
                f"cannot relink evidence {ev['id']} ({ev['name']}) to {new_path}: its sha256 {sha} differs from the intake "
                f"{ev['sha256']}; it is another file (refusal recorded in the audit log)"
            )
        with self._write() as db:
            other = self._one("SELECT id FROM evidence WHERE case_id = ? AND path = ? AND id != ?", (ev["case_id"], resolved, ev["id"]))
            if other is not None:
                raise VerityError(f"cannot relink evidence {ev['id']}: {resolved} is already evidence {other['id']} of this case")
            db["evidence"].update(ev["id"], {"path": resolved, "name": p.name})
            self._append_audit(
                ev["case_id"], "evidence relinked", "evidence", ev["id"],
                {"old_path": ev["path"], "new_path": resolved, "sha256": sha, "old_path_exists": Path(ev["path"]).is_file(),
                 "stored": [self._stored("evidence", ev["id"])]},
                actor,
            )
        return self.get_evidence(ev["id"])

    def _hash_mismatch(self, ev: dict[str, Any], sha_now: str, when: str, actor: str | None) -> None:
        self.audit(
            ev["case_id"], f"{when} refused: evidence hash mismatch", "evidence", ev["id"],
            {"path": ev["path"], "sha256_intake": ev["sha256"], "sha256_now": sha_now}, actor,
        )
        raise EvidenceError(
            f"evidence {ev['id']} ({ev['name']}) has changed since intake: sha256 now {sha_now}, "
            f"at intake {ev['sha256']}; {when} refused (recorded in the audit log)"
        )

    def verify_evidence(
        self, evidence_id: int, when: str, actor: str | None = None,
        progress: ProgressCallback = no_progress, cancel: CancelToken | None = None,
    ) -> str:
        """Re-hash the file; audit the check; refuse (EvidenceError) when missing or changed."""
        from core.evidence import sha256_file

        ev = self.get_evidence(evidence_id)
        p = Path(ev["path"])
        if not p.is_file():
            self.audit(ev["case_id"], f"{when} refused: evidence file missing", "evidence", ev["id"], {"path": ev["path"]}, actor)
            raise EvidenceError(f"evidence {ev['id']} ({ev['name']}): file not found at {ev['path']}; {when} refused (recorded in the audit log)")
        sha = sha256_file(p, progress, cancel)
        if sha != ev["sha256"]:
            self._hash_mismatch(ev, sha, when, actor)
        self.audit(ev["case_id"], f"evidence re-hashed before {when}", "evidence", ev["id"], {"sha256": sha, "match": True}, actor)
        return sha

    def get_evidence(self, evidence_id: int) -> dict[str, Any]:
        row = self._one("SELECT * FROM evidence WHERE id = ?", (int(evidence_id),))
        if row is None:
            raise VerityError(f"no evidence with id {evidence_id} in {self.path}")
        return row

    def find_evidence(self, case_id: int, path: str | os.PathLike[str]) -> dict[str, Any] | None:
        """The case's evidence item at this path, or None."""
        return self._one("SELECT * FROM evidence WHERE case_id = ? AND path = ?", (case_id, str(Path(path).resolve())))

    def evidence_for(self, case_id: int) -> list[dict[str, Any]]:
        return self._all("SELECT * FROM evidence WHERE case_id = ? ORDER BY id", (case_id,))

