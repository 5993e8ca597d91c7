"""The Ray runner: one Ray task per file on a local or existing cluster.

Each task declares its resources (CPU for the face pass; a GPU fraction when a learned detector
with verified weights is asked and the cluster has GPUs), so Ray places it. A task whose worker
process dies (killed, out of memory, node lost) is retried by Ray (`max_retries`); after the last
retry the file is listed as failed with the reason. Worker processes are kept between tasks
(`max_calls=0`; Ray's default for GPU tasks is a fresh process per task), so a learned detector's
model, cached at module level, is loaded once per worker process, not once per file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from core.batch.task import Job, Outcome, one_line, run_job
from core.errors import VerityError
from core.progress import CancelToken

CANCEL_GRACE_S = 10.0  # a cancelled task gets this long to stop by itself before its worker is killed


def ray_task(job: Job) -> Outcome:
    """What each Ray task runs: run_job, on the GPU Ray assigned it or on none.

    Ray leaves CUDA_VISIBLE_DEVICES alone for a task that reserved no GPU, so torch would still see
    (and use) every GPU of the node: hide them, so that a task only uses what it reserved."""
    import os

    import ray

    if not ray.get_runtime_context().get_accelerator_ids().get("GPU"):
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    return run_job(job)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise VerityError("--ray needs Ray, which is not installed: install the lab extra (pip install -e \".[lab]\")") from None
    return ray


class RayRunner:
    def __init__(self, address: str, *, cpus_per_file: float = 1.0, gpus_per_file: float = 0.0, retries: int = 2) -> None:
        self.ray = ray = import_ray()
        self.started_here = False
        if not ray.is_initialized():  # already connected (a test's cluster, or an embedding program): reuse
            kw: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
            try:
                if address == "local":
                    ray.init(include_dashboard=False, **kw)
                else:
                    ray.init(address=address, **kw)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise VerityError(f"--ray {address}: cannot start or join the Ray cluster ({one_line(str(exc))})") from None
            self.started_here = True
        resources = ray.cluster_resources()
        self.gpus_per_file = gpus_per_file if resources.get("GPU", 0) > 0 else 0.0  # never wait for a GPU that is not there
        self.cpus_per_file = cpus_per_file
        self.retries = retries
        self.slots = self._slots(resources)
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        gpu = f", {resources.get('GPU', 0):g} GPU ({self.gpus_per_file:g} per file)" if self.gpus_per_file else ""
        self.description = f"Ray ({address}): {nodes} node(s), {resources.get('CPU', 0):g} CPU{gpu}, {self.slots} file(s) at a time"
        # max_calls=0: keep the worker process (and the models it loaded) for the next file
        self._remote = ray.remote(max_calls=0)(ray_task)
        self.running = 0

    def _slots(self, resources: dict[str, float]) -> int:
        n = resources.get("CPU", 1) // max(self.cpus_per_file, 1e-6)
        if self.gpus_per_file:
            n = min(n, resources.get("GPU", 0) // self.gpus_per_file)
        return max(int(n), 1)

    def _submit(self, job: Job) -> Any:
        from pathlib import Path

        return self._remote.options(
            num_cpus=self.cpus_per_file, num_gpus=self.gpus_per_file, max_retries=self.retries, retry_exceptions=False,
            name=f"verity:{Path(job.path).name}",
        ).remote(job)

    def _collect(self, ref: Any, job: Job) -> Outcome:
        ray = self.ray
        try:
            return ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            return Outcome(job.index, "cancelled", error="cancelled by the examiner")
        except ray.exceptions.RayTaskError as exc:  # run_job catches its own errors; this is Ray's side
            return Outcome(job.index, "failed", error=one_line(f"task error: {exc.cause!r}" if exc.cause else str(exc)))
        except ray.exceptions.RayError as exc:  # worker or node died (after Ray's retries), OOM, lost object
            return Outcome(job.index, "failed", error=one_line(f"the worker died {self.retries + 1} time(s); last: {type(exc).__name__}: {exc}"))

    def run(self, jobs: Iterator[Job], cancel: CancelToken) -> Iterator[Outcome]:
        ray = self.ray
        pending: dict[Any, Job] = {}
        exhausted = False
        checked = time.monotonic()
        while True:
            while not exhausted and not cancel.cancelled and len(pending) < self.slots:
                job = next(jobs, None)
                if job is None:
                    exhausted = True
                else:
                    pending[self._submit(job)] = job
            self.running = len(pending)
            if not pending:
                return
            if cancel.cancelled:
                yield from self._cancel(pending)
                return
            try:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.25)
            except KeyboardInterrupt:
                cancel.cancel()
                continue
            for ref in ready:
                yield self._collect(ref, pending.pop(ref))
            if time.monotonic() - checked > 10:  # nodes join and leave: keep as many files in flight as fit
                checked = time.monotonic()
                self.slots = self._slots(ray.cluster_resources())

    def _cancel(self, pending: dict[Any, Job]) -> Iterator[Outcome]:
        """Cancel every task in flight; a task that finished meanwhile still gives its result."""
        ray = self.ray
        refs = list(pending)
        for ref in refs:
            ray.cancel(ref)  # a KeyboardInterrupt in the task: run_job stops at its next cancel check
        ready, stuck = ray.wait(refs, num_returns=len(refs), timeout=CANCEL_GRACE_S)
        for ref in stuck:
            ray.cancel(ref, force=True)  # kills that worker process
        if stuck:
            ready += ray.wait(stuck, num_returns=len(stuck), timeout=CANCEL_GRACE_S)[0]
        finished = set(ready)
        for ref in refs:
            job = pending.pop(ref)
            yield self._collect(ref, job) if ref in finished else Outcome(job.index, "cancelled", error="cancelled by the examiner")
        self.running = 0

    def close(self) -> None:
        if self.started_here:
            self.ray.shutdown()
