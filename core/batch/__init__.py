"""Many files at once: in this process, or one Ray task per file on a cluster; one writer to the case store.

    from core.batch import run_batch, LocalRunner, RayRunner
    report = run_batch([folder_or_manifest, ...], out_dir, AnalysisOptions(...),
                       runner=RayRunner("local"),      # or an address; default LocalRunner()
                       db=None, case_id=None,          # with case_id: every result into that case
                       redo=False, cancel=CancelToken(), on_row=callback)
    report.rows          # per file: status done/skipped/failed/refused/cancelled/not run, finding, reason
    print(table(report.rows))

Modules: inputs (folders, manifests -> items and their JSON names), task (what a worker runs for one
file: custody re-hash, resumability check, the pipeline, the JSON), local / ray_runner (the two
runners, same interface: `run(jobs, cancel)` yields one Outcome per job it took), store_writer (the
driver's case-store writes, as `verity analyze --case`), summary (progress bar and table), run (the
driver). Ray is imported only by RayRunner: without the `lab` extra everything else works.
"""

from core.batch.local import LocalRunner
from core.batch.ray_runner import RayRunner
from core.batch.run import BatchReport, run_batch
from core.batch.summary import Row, table
from core.batch.task import Job, Outcome, run_job, run_key

__all__ = ["BatchReport", "Job", "LocalRunner", "Outcome", "RayRunner", "Row", "run_batch", "run_job", "run_key", "table"]
