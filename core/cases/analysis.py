"""Analyse evidence into a case: intake, re-hash, run the pipeline, store every result as it lands."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.cases.store import CaseStore
from core.detectors.base import DetectorResult
from core.errors import CancelledError, EvidenceError
from core.progress import CancelToken, ProgressCallback, no_progress


def case_work_dir(store: CaseStore, case_id: int) -> Path:
    """Derived data (face passes) of a case, in a folder beside the case file."""
    return store.path.parent / f"{store.path.stem}-work" / f"case-{case_id}"


def _file_sha256(path: Path) -> str | None:
    try:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        return h.hexdigest()
    except OSError:
        return None


def _keep_for_run(path: str | None, work_dir: Path, run_id: int) -> str | None:
    """The run's own face pass file: a hard link (or copy) that a later recomputation cannot replace."""
    if not path or not Path(path).is_file():
        return path
    target = Path(work_dir) / "runs" / f"run-{run_id}-facepass.npz"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(path, target)  # the pipeline replaces its cache file atomically, so the link keeps this version
    except OSError:
        shutil.copyfile(path, target)
    return str(target)


def analyze_evidence(
    store: CaseStore,
    evidence_id: int,
    options: Any = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    on_result: Callable[[str, DetectorResult], None] | None = None,
    actor: str | None = None,
    rehash: bool = True,
) -> dict[str, Any]:
    """Re-hash, run the pipeline on one evidence item and store the run; returns the analysis dict
    with `case` = {case_id, evidence_id, run_id} added. Refuses (EvidenceError) a changed file."""
    from core.pipeline import AnalysisOptions, analyze

    options = options or AnalysisOptions()
    ev = store.get_evidence(evidence_id)
    if options.work_dir is None:
        options.work_dir = case_work_dir(store, ev["case_id"])
    if rehash:
        sha = store.verify_evidence(evidence_id, "analysis", actor, progress, cancel)  # audit row either way
    else:
        sha = ev["sha256"]  # hashed at intake a moment ago
    detectors = options.detectors if options.detectors is not None else None
    if detectors is None:
        from core import detectors as registry

        detectors = list(registry.available())
    if "identity_reference" in detectors:
        from core.cases.references import exemplars_for_analysis

        # the case's known exemplars, re-hashed (audited) now; a changed one comes with its problem
        options.references = exemplars_for_analysis(store, ev["case_id"], actor, cancel)
    run_id = store.start_run(evidence_id, options.parameters(), detectors, sha, actor)

    def store_result(name: str, result: DetectorResult) -> None:
        store.add_result(run_id, name, result)
        store.add_segments(run_id, name, result.segments)
        if on_result is not None:
            on_result(name, result)

    try:
        analysis = analyze(ev["path"], options, progress, cancel, on_result=store_result, expected_sha256=ev["sha256"], verified_sha256=sha)
    except (CancelledError, KeyboardInterrupt):
        store.finish_run(run_id, "cancelled", error="cancelled by the examiner", actor=actor)
        raise
    except EvidenceError as exc:
        # a file the pipeline cannot read, or (for other callers) a hash mismatch, lands here
        store.audit(ev["case_id"], "analysis refused", "evidence", evidence_id, {"reason": str(exc), "run_id": run_id}, actor)
        store.finish_run(run_id, "failed", error=str(exc), actor=actor)
        raise
    except BaseException as exc:
        store.finish_run(run_id, "failed", error=f"{type(exc).__name__}: {exc}", actor=actor)
        raise
    fp_path = _keep_for_run(analysis.get("facepass", {}).get("path"), options.work_dir, run_id)
    if fp_path and isinstance(analysis.get("facepass"), dict):
        analysis["facepass"]["path"] = fp_path  # the run's own copy, not the shared cache entry
    summary = {k: v for k, v in analysis.items() if k != "detectors"}  # results live in their own table
    store.finish_run(
        run_id, "done", analysis=summary, finding=analysis.get("finding"),
        facepass_path=fp_path, facepass_sha256=_file_sha256(Path(fp_path)) if fp_path else None, actor=actor,
    )
    analysis["case"] = {"case_id": ev["case_id"], "evidence_id": evidence_id, "run_id": run_id}
    return analysis


def analyze_into_case(
    db_path: str | os.PathLike[str] | None,
    case_id: int,
    video: str | os.PathLike[str],
    options: Any = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    on_result: Callable[[str, DetectorResult], None] | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """`verity analyze VIDEO --case ID`: import the file if new (hash at intake), then analyse it."""
    with CaseStore(db_path) as store:
        store.get_case(case_id)
        known = store.find_evidence(case_id, video)
        if known is not None:
            return analyze_evidence(store, known["id"], options, progress, cancel, on_result, actor)
        ev = store.import_evidence(case_id, video, actor=actor, progress=progress, cancel=cancel)
        return analyze_evidence(store, ev["id"], options, progress, cancel, on_result, actor, rehash=False)
