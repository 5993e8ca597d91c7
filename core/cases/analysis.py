"""Analyse evidence into a case: intake, re-hash, run the pipeline, store every result as it lands."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.cases.faults import StoreError
from core.cases.store import CaseStore
from core.detectors.base import DetectorResult
from core.digest import sha256_file
from core.errors import CancelledError, EvidenceError, TerminatedError
from core.progress import CancelToken, ProgressCallback, no_progress, sub_progress


def case_work_dir(store: CaseStore, case_id: int) -> Path:
    """Derived data (face passes) of a case, in a folder beside the case file."""
    return store.path.parent / f"{store.path.stem}-work" / f"case-{case_id}"


def _file_sha256(path: Path) -> str | None:
    try:
        return sha256_file(path)
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
    from core import detectors as registry
    from core.pipeline import AnalysisOptions, analyze, check_detector_params, hash_share

    options = options or AnalysisOptions()
    detectors = options.detectors if options.detectors is not None else list(registry.available())
    check_detector_params(detectors, options.detector_params)  # a typo: no run recorded, no re-hash
    ev = store.get_evidence(evidence_id)
    if options.work_dir is None:
        options.work_dir = case_work_dir(store, ev["case_id"])
    if rehash:  # the custody hash is the pipeline's hash stage: the same share of the bar
        sha = store.verify_evidence(evidence_id, "analysis", actor, sub_progress(progress, 0.0, hash_share()), cancel)  # audit row either way
        progress = sub_progress(progress, hash_share(), 1.0)
    else:
        sha = ev["sha256"]  # hashed at intake a moment ago
    if "identity_reference" in detectors:
        from core.cases.references import exemplars_for_analysis

        # the case's known exemplars, re-hashed (audited) now; a changed one comes with its problem
        options.references = exemplars_for_analysis(store, ev["case_id"], actor, cancel)
    run_id = store.start_run(evidence_id, options.parameters(), detectors, sha, actor)

    def stored(name: str, result: DetectorResult) -> None:
        store_result(store, run_id, name, result)
        if on_result is not None:
            on_result(name, result)

    def end(cause: BaseException, status: str, error: str) -> None:
        """Record how the run ended. When the store fails too (a full disk) the first error is
        what the examiner must see: `cause` is raised, saying what became of the run."""
        try:
            store.finish_run(run_id, status, error=error, actor=actor)
        except StoreError as fault:
            note = (f"; run {run_id} could not be marked {status} either ({fault}), so it stays 'running' until the case "
                    "file is next opened, which marks it 'interrupted'")
            if isinstance(cause, StoreError):
                cause.args = (f"{cause}{note}",)
                raise cause from None
            raise type(fault)(f"{type(cause).__name__}: {cause}{note}") from cause

    try:
        analysis = analyze(ev["path"], options, progress, cancel, on_result=stored, expected_sha256=ev["sha256"], verified_sha256=sha)
    except (CancelledError, KeyboardInterrupt) as exc:
        end(exc, "cancelled", str(exc) if isinstance(exc, TerminatedError) else "cancelled by the examiner")
        raise
    except EvidenceError as exc:
        # a file the pipeline cannot read, or (for other callers) a hash mismatch, lands here
        try:
            store.audit(ev["case_id"], "analysis refused", "evidence", evidence_id, {"reason": str(exc), "run_id": run_id}, actor)
        except StoreError:
            pass  # end() below reports the store's fault with the refusal
        end(exc, "failed", str(exc))
        raise
    except StoreError as exc:  # the case file failed mid-run (disk full, read-only...): the cause goes in the run
        end(exc, "failed", str(exc)[:500])
        raise
    except BaseException as exc:
        end(exc, "failed", f"{type(exc).__name__}: {exc}")
        raise
    try:
        finish_done_run(store, run_id, analysis, options.work_dir, actor)
    except StoreError as exc:  # e.g. no room for the summary: record the failure, if anything can be written
        end(exc, "failed", str(exc)[:500])
        raise
    analysis["case"] = {"case_id": ev["case_id"], "evidence_id": evidence_id, "run_id": run_id}
    return analysis


def store_result(store: CaseStore, run_id: int, name: str, result: DetectorResult | dict[str, Any]) -> None:
    """One detector's result with its segments: one write, one audit row."""
    segments = result.segments if isinstance(result, DetectorResult) else (result.get("segments") or [])
    store.add_result(run_id, name, result, segments=segments)


def finish_done_run(store: CaseStore, run_id: int, analysis: dict[str, Any], work_dir: Path, actor: str | None) -> None:
    """Close a run whose results are stored: its own face-pass copy (path and sha256), the
    analysis summary and the finding. `analysis["facepass"]["path"]` becomes the run's copy.
    The same steps for `analyze --case` and `verity batch --case`."""
    fp_path = _keep_for_run(analysis.get("facepass", {}).get("path"), work_dir, run_id)
    if fp_path and isinstance(analysis.get("facepass"), dict):
        analysis["facepass"]["path"] = fp_path  # the run's own copy, not the shared cache entry
    summary = {k: v for k, v in analysis.items() if k != "detectors"}  # results live in their own table
    store.finish_run(
        run_id, "done", analysis=summary, finding=analysis.get("finding"),
        facepass_path=fp_path, facepass_sha256=_file_sha256(Path(fp_path)) if fp_path else None, actor=actor,
    )


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
    with CaseStore(db_path, create=False) as store:  # a case must exist already: never create a file here
        store.get_case(case_id)
        known = store.find_evidence(case_id, video)
        if known is not None:
            return analyze_evidence(store, known["id"], options, progress, cancel, on_result, actor)
        from core.pipeline import hash_share

        ev = store.import_evidence(case_id, video, actor=actor, progress=sub_progress(progress, 0.0, hash_share()), cancel=cancel)
        return analyze_evidence(store, ev["id"], options, sub_progress(progress, hash_share(), 1.0), cancel, on_result, actor, rehash=False)
