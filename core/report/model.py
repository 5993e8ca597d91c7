"""The report's content as one JSON-ready dict, read only from the case store (schema report-1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

import core
from core.cases.store import CaseStore, now_iso
from core.validation_records import lookup as validation_lookup

SCHEMA_ID = "verity.report/1"
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "resources" / "schema" / "report-1.json"
FINDING_VALUES = ("consistent", "inconsistent", "inconclusive")
SEED_FIELDS = (
    "prediction", "confidence", "processing_time", "note", "frame_count", "frames_analyzed",
    "frame_predictions", "metrics", "visualization_path",
)


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def validate_report(report: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when the report does not follow the schema."""
    schema = load_schema()
    jsonschema.validators.validator_for(schema)(schema, format_checker=jsonschema.FormatChecker()).validate(report)


def _result(d: dict[str, Any]) -> dict[str, Any]:
    """A stored result in the seed-compatible shape (fields a detector left out get their defaults)."""
    out = {
        "prediction": None, "confidence": None, "processing_time": 0.0, "note": "", "frame_count": 0, "frames_analyzed": 0,
        "frame_predictions": [], "metrics": {}, "visualization_path": None, "status": "ok", "detector": "",
        "assessment": None, "weights_sha256": {}, "parameters": {}, "segments": [],
    }
    out.update({k: v for k, v in d.items() if v is not None or k in out})
    for k in ("processing_time", "frame_count", "frames_analyzed"):
        out[k] = out[k] or 0
    for k in ("frame_predictions", "segments"):
        out[k] = out[k] or []
    for k in ("metrics", "weights_sha256", "parameters"):
        out[k] = out[k] or {}
    return out


def _run(store: CaseStore, run: dict[str, Any]) -> dict[str, Any]:
    analysis = store.stored_analysis(run["id"])
    results = {name: _result(d) for name, d in analysis["detectors"].items()}
    finding = run.get("finding")
    if finding is not None and finding.get("value") not in FINDING_VALUES:
        finding = None  # never pass an off-scale value through as a finding
    return {
        "id": run["id"],
        "status": run["status"],
        "started_at": run["started_at"],
        "finished_at": run["finished_at"],
        "actor": run["actor"],
        "software": {"name": run["software_name"] or core.SOFTWARE_NAME, "version": run["software_version"] or ""},
        "parameters": run["parameters"] or {},
        "detectors_asked": run["detectors_asked"],
        "evidence_sha256": run["evidence_sha256"],
        "weights_sha256": {name: r["weights_sha256"] for name, r in results.items() if r["weights_sha256"]},
        "facepass": {k: analysis["facepass"][k] for k in ("path", "sha256", "verified")} if run["facepass_path"] else None,
        "faces": analysis.get("faces"),
        "results": results,
        "segments": [
            {k: s[k] for k in ("detector", "track_id", "start_frame", "end_frame", "score", "reason")} for s in store.segments_for(run["id"])
        ],
        "finding": finding,
        # looked up now, so that a record made after the run is cited too (same version and parameters)
        "validation": validation_lookup(results, run["parameters"] or {}, version=run["software_version"] or None),
        "error": run["error"],
        # what this run's read of the file found damaged (frames that did not decode, decoder errors)
        "evidence_warnings": list((analysis.get("evidence") or {}).get("warnings") or []),
        "undecodable_frames": list((analysis.get("evidence") or {}).get("undecodable_frames") or []),
    }


def evidence_warnings(probe: dict[str, Any], runs: list[dict[str, Any]]) -> list[str]:
    """Every warning about an item, once: the probe's at intake, then each run's read of it."""
    out: list[str] = []
    for w in [*(probe.get("warnings") or []), *(w for r in runs for w in r.get("evidence_warnings") or [])]:
        if w not in out:
            out.append(w)
    return out


def conclusion_for(evidence: dict[str, Any]) -> dict[str, Any]:
    """The three-value conclusion for one item: the fused finding of its latest finished run.

    Without a finished run or a fused finding the only honest value is `inconclusive`.
    """
    done = [r for r in evidence["runs"] if r["status"] == "done"]
    if not done:
        return {"evidence_id": evidence["id"], "value": "inconclusive", "run_id": None, "basis": "no analysis of this item finished"}
    run = done[-1]
    if run["finding"] is None:
        return {
            "evidence_id": evidence["id"], "value": "inconclusive", "run_id": run["id"],
            "basis": f"run {run['id']} recorded no fused finding, so the results do not support either other value",
        }
    return {"evidence_id": evidence["id"], "value": run["finding"]["value"], "run_id": run["id"], "basis": f"fused finding of run {run['id']}"}


def build_report(
    store: CaseStore, case_id: int, evidence_ids: list[int] | None = None, sha256_now: dict[int, str] | None = None,
    actor: str | None = None, references_now: dict[int, str] | None = None,
) -> dict[str, Any]:
    """Everything the JSON and PDF reports show. `sha256_now` / `references_now`: the hashes of
    the evidence items / known exemplars just measured at export."""
    from core.report.identity import report_references

    case = store.get_case(case_id)
    items = store.evidence_for(case_id)
    if evidence_ids:
        known = {e["id"] for e in items}
        missing = [i for i in evidence_ids if i not in known]
        if missing:
            from core.errors import VerityError

            raise VerityError(f"evidence {', '.join(map(str, missing))} not in case {case_id}")
        items = [e for e in items if e["id"] in evidence_ids]
    sha256_now = sha256_now or {}
    evidence = []
    for e in items:
        now = sha256_now.get(e["id"], e["sha256"])
        runs = [_run(store, r) for r in store.runs_for(evidence_id=e["id"])]
        evidence.append(
            {
                "id": e["id"], "name": e["name"], "path": e["path"], "label": e["label"], "size_bytes": e["size_bytes"],
                "sha256_intake": e["sha256"], "sha256_export": now, "hash_match": now == e["sha256"],
                "imported_at": e["imported_at"], "imported_by": e["imported_by"], "probe": e["probe"] or {},
                "runs": runs,
                "warnings": evidence_warnings(e["probe"] or {}, runs),
                "bookmarks": [
                    {k: b[k] for k in ("id", "frame", "track_id", "note", "created_at", "author")} for b in store.list_bookmarks(evidence_id=e["id"])
                ],
            }
        )
    verify = store.verify_audit(case_id)
    # details as the stored text: a reader can recompute every row's hash from the report alone
    rows = [
        {k: a[k] for k in ("case_id", "seq", "at", "actor", "action", "object_type", "object_id", "details", "prev_hash", "hash")}
        for a in store.audit_log(case_id, raw=True)
    ]
    return {
        "schema": SCHEMA_ID,
        "generated_at": now_iso(),
        "generated_by": store.actor_for(case_id, actor),
        "software": {"name": core.SOFTWARE_NAME, "version": core.__version__},
        "case": {k: case[k] for k in ("id", "number", "title", "examiner", "request_id", "description", "created_at", "created_by")},
        "evidence": evidence,
        "references": report_references(store, case_id, references_now),
        "conclusions": [conclusion_for(e) for e in evidence],
        "audit": {"verified": verify.ok, "message": verify.message, "head_hash": verify.head_hash if verify.ok else None, "rows": rows},
    }
