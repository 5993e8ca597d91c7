"""One file of a batch, as a worker runs it: re-hash, reuse a matching result, else run the pipeline.

`run_job` is what a Ray task executes, and what the in-process runner calls: the same
`core.pipeline.analyze` as `verity analyze` and the GUI. It never touches the case store (only the
driver writes there); without a case it writes the file's JSON, atomically, so that a killed worker
never leaves half a JSON in the output folder.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import core
from core.errors import CancelledError, EvidenceError, VerityError
from core.progress import CancelToken

STATUSES = ("done", "skipped", "failed", "refused", "cancelled")

# Files this process has analysed: a Ray worker process serves many tasks, and the learned detectors'
# model caches (module level, e.g. core.detectors.lipfd) live as long as the process does.
_files_in_process = 0


@dataclass
class Job:
    index: int
    path: str
    out_json: str  # the file's JSON in the output folder (read to decide a skip)
    options: Any  # core.pipeline.AnalysisOptions, detectors resolved by the driver
    key: str  # run_key(options): a stored result with another key is not reused
    write_json: bool = True  # False with --case: the driver writes it once the run is in the store
    may_skip: bool = True
    expected_sha256: str | None = None  # the intake hash (--case): a file that differs is refused


@dataclass
class Outcome:
    index: int
    status: str  # one of STATUSES
    sha256: str | None = None
    analysis: dict[str, Any] | None = None
    error: str = ""  # one line, for the summary and the store
    evidence_error: bool = False  # the file could not be read or analysed as media (EvidenceError)
    seconds: float = 0.0
    hashed_at: str = ""  # when the worker's custody re-hash finished
    worker: dict[str, Any] = field(default_factory=dict)  # host, pid, files this process analysed


def run_key(parameters: dict[str, Any], detectors: list[str]) -> str:
    """The parameter part of the resumability key (evidence sha256 and software version are the rest)."""
    from core.digest import params_key

    # JSON round trip first: a key computed from options and one read back from a JSON must agree
    return params_key(json.loads(json.dumps({"parameters": parameters, "detectors": sorted(detectors)})))


def result_matches(stored: Any, sha256: str, key: str) -> bool:
    """Is this stored analysis JSON the result for this evidence, software version and key?"""
    from core.pipeline import SCHEMA

    try:
        return (
            stored["schema"] == SCHEMA
            and stored["evidence"]["sha256"] == sha256
            and stored["software"]["version"] == core.__version__
            and run_key(stored["parameters"], list(stored["detectors"])) == key
        )
    except (KeyError, TypeError):
        return False


def read_json(path: str | os.PathLike[str]) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # missing or unreadable: not a result to reuse


def write_json(path: str | os.PathLike[str], analysis: dict[str, Any]) -> None:
    """What `verity analyze --json` writes, via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(analysis, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def one_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:500]


def worker_info() -> dict[str, Any]:
    from core.cases.liveness import host_name

    return {"host": host_name(), "pid": os.getpid(), "files_in_process": _files_in_process}


def run_job(job: Job, cancel: CancelToken | None = None) -> Outcome:
    global _files_in_process
    from core.cases.store import now_iso
    from core.evidence import sha256_file

    t0 = time.perf_counter()
    out = Outcome(job.index, "failed")
    try:
        try:
            out.sha256 = sha256_file(job.path, cancel=cancel)  # the custody re-hash, here where the file is read
        except OSError as exc:
            out.error, out.evidence_error = f"{job.path}: cannot be read ({exc.strerror or exc})", True
            return out
        out.hashed_at = now_iso()
        if job.expected_sha256 is not None and out.sha256 != job.expected_sha256:
            out.status, out.error = "refused", f"sha256 {out.sha256} differs from the {job.expected_sha256} recorded at intake"
            return out
        if job.may_skip and result_matches(read_json(job.out_json), out.sha256, job.key):
            out.status = "skipped"
            return out
        from core import pipeline  # looked up at call time, like the CLI does

        out.analysis = pipeline.analyze(job.path, job.options, cancel=cancel, expected_sha256=job.expected_sha256, verified_sha256=out.sha256)
        _files_in_process += 1
        if job.write_json:
            write_json(job.out_json, out.analysis)
        out.status = "done"
    except (CancelledError, KeyboardInterrupt):  # Ray's cancel raises KeyboardInterrupt in the task
        out.status, out.error, out.analysis = "cancelled", "cancelled by the examiner", None
    except EvidenceError as exc:
        out.error, out.evidence_error = one_line(str(exc)), True
    except VerityError as exc:
        out.error = one_line(str(exc))
    except Exception as exc:  # noqa: BLE001 - one bad file is listed, the batch goes on
        out.error = one_line(f"internal error: {type(exc).__name__}: {exc}")
    finally:
        out.seconds = round(time.perf_counter() - t0, 3)
        out.worker = worker_info()
    return out
