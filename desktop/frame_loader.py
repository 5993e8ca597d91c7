"""The loader thread: opens the clip, serves only the newest frame request, prefetches when idle.

There is no queue: `request(i)` overwrites the pending request, and a decode towards an older
request stops at the next frame when a newer one arrives (what it decoded so far stays cached).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QThread, Signal

from desktop.frame_server import Aborted, FrameServer


class FrameLoader(QThread):
    opened = Signal(object)  # core.video.FrameIndex of the clip
    frameReady = Signal(int, object, float)  # index, RGB ndarray (H, W, 3), perf_counter of the request
    failed = Signal(str)

    def __init__(self, path: str | Path, budget_bytes: int | None = None, parent: object = None, stream_index: int | None = None) -> None:
        super().__init__(parent)
        self.path = Path(path)
        self.stream_index = stream_index  # the container's number of the video stream shown (None: the first)
        self.budget = budget_bytes
        self.server: FrameServer | None = None
        self._cv = threading.Condition()
        self._pending: tuple[int, float] | None = None
        self._stop = False
        self._around = 0
        self.prefetch = True

    # -- called from the GUI thread ---------------------------------------------------------
    def request(self, i: int) -> None:
        with self._cv:
            self._pending = (int(i), time.perf_counter())
            self._cv.notify()

    def stop(self, wait: bool = True) -> None:
        """End the thread; with wait=False it finishes on its own (e.g. while indexing a long file)."""
        with self._cv:
            self._stop = True
            self._cv.notify()
        if wait:
            self.wait()

    # -- the thread -------------------------------------------------------------------------
    def _newer_waiting(self) -> bool:
        return self._pending is not None or self._stop

    def run(self) -> None:
        try:
            self.server = FrameServer(self.path, self.budget, self.stream_index)
        except Exception as exc:  # noqa: BLE001 - shown to the examiner, never a crash
            if not self._stop:
                self.failed.emit(str(exc))
            return
        if self._stop:
            self.server.close()
            return
        self.opened.emit(self.server.reader.index)
        server = self.server
        try:
            while True:
                with self._cv:
                    idle_work = self.prefetch
                    while self._pending is None and not self._stop and not idle_work:
                        self._cv.wait()
                        idle_work = self.prefetch
                    if self._stop:
                        return
                    req, self._pending = self._pending, None
                if req is None:
                    # Idle: one prefetch step at a time, so a request is never kept waiting long.
                    try:
                        if not server.prefetch_step(self._around, self._newer_waiting):
                            self.prefetch = False
                    except Exception:  # noqa: BLE001 - prefetching is best effort
                        self.prefetch = False
                    continue
                i, t_req = req
                i = min(max(i, 0), server.frame_count - 1)
                try:
                    rgb = server.rgb(i, abort=self._newer_waiting)
                except Aborted:
                    continue
                except Exception as exc:  # noqa: BLE001
                    self.failed.emit(f"frame {i}: {exc}")
                    continue
                self._around = i
                self.prefetch = True
                self.frameReady.emit(i, np.ascontiguousarray(rgb), t_req)
        finally:
            server.close()
