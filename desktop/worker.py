"""Background work: a pure `core` function run in a QThread, its progress callback, cancel token
and per-detector results turned into Qt signals (Orange3's pattern). The GUI thread only ever
receives signals; hashing, decoding and analysis never run on it.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from core.errors import CancelledError, VerityError
from core.progress import CancelToken


class JobProgress:
    """Overall fraction and ETA of a job. Core callbacks report the fraction of the whole job (the
    pipeline hands each stage and detector its sub-range, core.progress.sub_progress), so no stage
    weights are needed here; `done` keeps the latest fraction seen under each stage name."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.best = 0.0
        self.done: dict[str, float] = {}

    def update(self, stage: str, fraction: float) -> tuple[float, float | None]:
        """Returns (overall fraction 0..1, never lower than before; seconds left or None while unknown)."""
        f = min(max(float(fraction), 0.0), 1.0)
        self.done[stage] = f
        self.best = max(self.best, f)
        elapsed = time.monotonic() - self.t0
        eta = elapsed * (1 - self.best) / self.best if self.best > 0.02 and elapsed > 0.5 else None
        return self.best, eta


class _Job(QObject):
    progress = Signal(str, float, str)  # stage, fraction of the stage, message
    partial = Signal(str, object)  # detector name, result dict
    finished = Signal(object)
    failed = Signal(str, str)  # one-line message, details (traceback for unexpected errors)
    cancelled = Signal()

    def __init__(self, fn: Callable[..., Any], cancel: CancelToken) -> None:
        super().__init__()
        self.fn = fn
        self.cancel = cancel

    @Slot()
    def run(self) -> None:
        def progress(stage: str, fraction: float, message: str = "") -> None:
            self.progress.emit(stage, float(fraction), str(message))

        def on_result(name: str, result: Any) -> None:
            self.partial.emit(name, result.to_dict() if hasattr(result, "to_dict") else dict(result))

        try:
            out = self.fn(progress=progress, cancel=self.cancel, on_result=on_result)
        except CancelledError:
            self.cancelled.emit()
        except VerityError as exc:
            self.failed.emit(str(exc), "")
        except Exception as exc:  # noqa: BLE001 - shown in a dialog, never a crash
            self.failed.emit(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        else:
            self.finished.emit(out)
        finally:
            # End the thread's event loop from inside: a GUI thread blocked in wait() (closing
            # the window) could not deliver the queued signal that would otherwise quit it.
            QThread.currentThread().quit()


class Task(QObject):
    """Run `fn(progress=, cancel=, on_result=)` in its own thread. Signals arrive in the GUI thread."""

    progress = Signal(str, float, str, float, object)  # stage, fraction reported, message, overall (monotone), eta s
    partial = Signal(str, object)
    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()
    ended = Signal()  # after any of finished / failed / cancelled

    def __init__(self, title: str, fn: Callable[..., Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.token = CancelToken()
        self.stages = JobProgress()
        self.thread = QThread()
        self.thread.setObjectName(f"task: {title}")
        self.job = _Job(fn, self.token)
        self.job.moveToThread(self.thread)
        self.thread.started.connect(self.job.run)
        self.job.progress.connect(self._on_progress)
        self.job.partial.connect(self.partial)
        self.job.finished.connect(self._on_finished)
        self.job.failed.connect(self._on_failed)
        self.job.cancelled.connect(self._on_cancelled)
        self.running = False
        self.result: Any = None
        self.error: str | None = None

    def start(self) -> None:
        self.running = True
        self.stages = JobProgress()
        self.thread.start()

    def cancel(self) -> None:
        self.token.cancel()

    def _on_progress(self, stage: str, fraction: float, message: str) -> None:
        overall, eta = self.stages.update(stage, fraction)
        self.progress.emit(stage, fraction, message, overall, eta)

    def _end(self) -> None:
        self.running = False
        self.thread.quit()
        self.thread.wait()
        self.ended.emit()

    def _on_finished(self, out: object) -> None:
        self.result = out
        self.finished.emit(out)
        self._end()

    def _on_failed(self, message: str, details: str) -> None:
        self.error = message
        self.failed.emit(message, details)
        self._end()

    def _on_cancelled(self) -> None:
        self.cancelled.emit()
        self._end()

    def wait(self, ms: int = 30000) -> bool:
        return self.thread.wait(ms)
