"""The batch driver: files in, one job per file to a runner, results out (JSON folder, case store)."""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import core
from core.batch import inputs
from core.batch.local import LocalRunner
from core.batch.summary import Progress, Row, row_for
from core.batch.task import Job, Outcome, run_key, write_json
from core.errors import VerityError
from core.progress import CancelToken

SUMMARY_FILE = "batch-summary.json"
LOCK_FILE = ".verity-batch.lock"


@dataclass
class BatchReport:
    rows: list[Row]
    runner: str
    wall_s: float
    cancelled: bool

    def count(self, *statuses: str) -> int:
        return sum(r.status in statuses for r in self.rows)

    @property
    def files_per_min(self) -> float | None:
        done = self.count("done")
        return round(60.0 * done / self.wall_s, 2) if done and self.wall_s > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "software": {"name": core.SOFTWARE_NAME, "version": core.__version__}, "runner": self.runner,
            "wall_s": round(self.wall_s, 3), "files_per_min": self.files_per_min, "cancelled": self.cancelled,
            "counts": {s: self.count(s) for s in ("done", "skipped", "failed", "refused", "cancelled", "not run")},
            "files": [r.to_dict() for r in self.rows],
        }


def resolve_detectors(options: Any) -> list[str]:
    """The driver names the detectors, so that every worker runs the same ones (and the key says which)."""
    from core import detectors as registry

    known = registry.available()
    names = list(known) if options.detectors is None else list(options.detectors)
    unknown = [d for d in names if d not in known]
    if unknown:
        raise VerityError(f"unknown detector(s): {', '.join(unknown)} (known: {', '.join(known) or 'none'})")
    return names


def wants_gpu(detectors: list[str]) -> bool:
    """A learned detector is asked and its weights are verified here (else it reports `unavailable`)."""
    from core import detectors as registry
    from core.weights import detectors_disabled

    disabled = detectors_disabled()
    known = registry.available()
    return any(known[d].needs_weights and d not in disabled for d in detectors)


@contextmanager
def _folder_lock(out_dir: Path) -> Iterator[None]:
    """One driver per output folder: a second batch into it is refused, not interleaved."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock
        yield
        return
    with open(out_dir / LOCK_FILE, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise VerityError(f"{out_dir}: another batch is writing to this folder") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _remove_partial(out_dir: Path) -> None:
    """Temporary JSONs of workers killed mid-write (task.write_json); only called under the folder lock."""
    for tmp in out_dir.glob(".*.json.*.tmp"):
        tmp.unlink(missing_ok=True)


def run_batch(
    paths: list[Path],
    out_dir: Path,
    options: Any = None,
    *,
    runner: Any = None,
    db: str | os.PathLike[str] | None = None,
    case_id: int | None = None,
    redo: bool = False,
    cancel: CancelToken | None = None,
    actor: str | None = None,
    on_row: Callable[[Row], None] | None = None,
    references: Mapping[str, list[Any]] | None = None,
) -> BatchReport:
    """Analyse every file under `paths` (folders, manifests, videos) into `out_dir`, one JSON per file;
    with `case_id`, store every result in that case (this process is the store's only writer).
    `runner`: LocalRunner() (default) or RayRunner(...). Cancelling leaves every run closed and no
    partial JSON; a re-run skips the files whose result is already there. `references`: absolute
    path -> the known exemplars (core.detectors.base.Exemplar) that file is compared with."""
    from core.pipeline import AnalysisOptions

    t0 = time.perf_counter()
    options = copy.deepcopy(options) if options is not None else AnalysisOptions()
    options.detectors = resolve_detectors(options)
    items = inputs.items(inputs.expand(list(paths)))
    runner = runner or LocalRunner()
    cancel = cancel or CancelToken()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VerityError(f"--out {out_dir}: cannot create the folder ({exc.strerror or exc})") from exc
    rows: dict[int, Row] = {}
    jobs: dict[int, Job] = {}
    with _folder_lock(out_dir):
        _remove_partial(out_dir)
        store = writer = None
        if case_id is not None:
            from core.batch.store_writer import CaseWriter
            from core.cases.store import CaseStore

            store = CaseStore(db)
            writer = CaseWriter(store, case_id, actor)
            if options.work_dir is None:
                options.work_dir = writer.work_dir()
        key = run_key(options.parameters(), options.detectors)
        progress = Progress(len(items), runner)

        def finish(item: inputs.Item, out: Outcome) -> None:
            row = row_for(str(item.path), str(out_dir / item.out_name), out)
            rows[item.index] = row
            progress.update(row)
            if on_row is not None:
                on_row(row)

        def next_jobs() -> Iterator[Job]:
            for item in items:  # pulled by the runner only when it has room: intake and run rows follow the work
                refs = (references or {}).get(str(item.path))
                mine = replace(options, references=list(refs)) if refs else options  # its own exemplars: its own key
                job = Job(item.index, str(item.path), str(out_dir / item.out_name), mine,
                          run_key(mine.parameters(), mine.detectors) if refs else key, may_skip=not redo)
                if writer is not None:
                    refused = writer.intake(item)
                    if refused is not None:
                        finish(item, refused)
                        continue
                    writer.prepare(item, job, redo)
                jobs[item.index] = job
                progress.update()
                yield job

        try:
            for out in runner.run(next_jobs(), cancel):
                item = items[out.index]
                if writer is not None:
                    out = writer.record(item, jobs[out.index], out)
                finish(item, out)
        finally:
            if writer is not None:
                writer.close_open_runs("cancelled" if cancel.cancelled else "failed", "the batch stopped before this file's result came back")
            if store is not None:
                store.close()
            progress.close()
            _remove_partial(out_dir)
        for item in items:
            if item.index not in rows:
                rows[item.index] = Row(str(item.path), str(out_dir / item.out_name), "not run", reason="the batch was cancelled before it started")
        report = BatchReport([rows[i.index] for i in items], runner.description, time.perf_counter() - t0, cancel.cancelled)
        write_json(out_dir / SUMMARY_FILE, report.to_dict())
    return report
