"""The in-process runner: one file after another, as `verity analyze A B C` does (nothing to install)."""

from __future__ import annotations

from collections.abc import Iterator

from core.batch.task import Job, Outcome, run_job
from core.progress import CancelToken


class LocalRunner:
    """Runs each job in this process. Pulls the next job only when the previous one is finished, so
    the driver's intake and run rows follow the work, not the length of the list."""

    description = "in this process"
    slots = 1

    def __init__(self) -> None:
        self.running = 0

    def run(self, jobs: Iterator[Job], cancel: CancelToken) -> Iterator[Outcome]:
        while not cancel.cancelled:
            job = next(jobs, None)
            if job is None:
                return
            self.running = 1
            try:
                out = run_job(job, cancel)
            finally:
                self.running = 0
            yield out

    def close(self) -> None:
        pass
