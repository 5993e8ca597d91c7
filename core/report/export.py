"""Report export: re-hash every evidence file and re-check every stored result against the audit
chain; refuse on any change, then write JSON and/or PDF."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jsonschema

from core.cases.faults import StoreTamperedError
from core.cases.store import CaseStore
from core.errors import VerityError
from core.progress import ProgressCallback, no_progress
from core.report.model import build_report, validate_report


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)


def export_report(
    store: CaseStore,
    case_id: int,
    json_path: str | os.PathLike[str] | None = None,
    pdf_path: str | os.PathLike[str] | None = None,
    evidence_ids: list[int] | None = None,
    actor: str | None = None,
    progress: ProgressCallback = no_progress,
) -> dict[str, Any]:
    """Write the report(s); returns the report dict. Raises EvidenceError (and audits it) when any
    evidence file is missing or differs from its intake hash, and StoreTamperedError (audited)
    when a stored result, run or face pass file no longer matches what the audit chain recorded:
    nothing is written then. A broken chain alone is reported in the report (`audit.verified`)."""
    if json_path is None and pdf_path is None:
        raise VerityError("nothing to export: give a JSON and/or a PDF target")
    store.get_case(case_id)
    items = store.evidence_for(case_id)
    if evidence_ids:
        unknown = sorted(set(evidence_ids) - {e["id"] for e in items})
        if unknown:
            raise VerityError(f"evidence {', '.join(map(str, unknown))} not in case {case_id}")
        items = [e for e in items if e["id"] in evidence_ids]
    if not items:
        raise VerityError(f"case {case_id} holds no evidence to report on")
    check = store.verify_audit(case_id)
    if check.content_problems:
        # the report would state values the chain does not vouch for: name them and write nothing
        store.audit(case_id, "report export refused: stored results changed", "case", case_id,
                    {"problems": check.content_problems[:20], "count": len(check.content_problems)}, actor)
        more = f" (and {len(check.content_problems) - 1} more; see 'verity case verify {case_id}')" if len(check.content_problems) > 1 else ""
        raise StoreTamperedError(
            f"report refused: the case file's stored results differ from what its audit log recorded: "
            f"{check.content_problems[0]}{more}; nothing was written (recorded in the audit log)"
        )
    sha_now: dict[int, str] = {}
    for k, e in enumerate(items):
        progress("export", k / (len(items) + 1), f"re-hashing {e['name']}")
        sha_now[e["id"]] = store.verify_evidence(e["id"], "report export", actor)  # refuses + audits on mismatch
    from core.cases.references import references_for, verify_reference

    # the known exemplars are shown and hashed in the report like evidence: the same custody check
    refs_now = {r["id"]: verify_reference(store, r["id"], "report export", actor) for r in references_for(store, case_id)}
    targets = {"json": str(json_path) if json_path else None, "pdf": str(pdf_path) if pdf_path else None}
    store.audit(case_id, "report exported", "case", case_id, {"evidence_ids": [e["id"] for e in items], **targets}, actor)
    report = build_report(store, case_id, [e["id"] for e in items], sha_now, actor, refs_now)
    try:
        validate_report(report)  # never hand over a report that does not follow its own schema
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        store.audit(case_id, "report export failed", "case", case_id, {"reason": f"schema: {where}: {exc.message}"}, actor)
        raise VerityError(f"the report does not follow its schema {report['schema']} at {where}: {exc.message}; nothing was written") from exc
    written: dict[str, str] = {}
    if json_path is not None:
        data = json.dumps(report, indent=1, ensure_ascii=False).encode("utf-8")
        _write_atomic(Path(json_path), data)
        written["json_sha256"] = hashlib.sha256(data).hexdigest()
    if pdf_path is not None:
        from core.report.pdf import write_pdf

        progress("export", len(items) / (len(items) + 1), "writing the PDF")
        companion = (Path(json_path).name, written["json_sha256"]) if json_path is not None else None
        write_pdf(report, pdf_path, companion)
        written["pdf_sha256"] = hashlib.sha256(Path(pdf_path).read_bytes()).hexdigest()
    store.audit(case_id, "report written", "case", case_id, {**targets, **written}, actor)
    progress("export", 1.0, "done")
    return report
