"""Progress reporting and cancellation in plain Python (the GUI adapts them to Qt signals)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from core.errors import CancelledError


class ProgressCallback(Protocol):
    def __call__(self, stage: str, fraction: float, message: str = "") -> None: ...


def no_progress(stage: str, fraction: float, message: str = "") -> None:
    """Default progress sink: ignore."""


class CancelToken:
    """Thread-safe flag a worker polls; `raise_if_cancelled` ends the work cleanly."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise CancelledError()


class Throttle:
    """Calls `fn` at most every `interval` seconds (progress from tight loops)."""

    def __init__(self, fn: Callable[..., None], interval: float = 0.1) -> None:
        self.fn = fn
        self.interval = interval
        self._last = 0.0

    def __call__(self, *args: object, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            self.fn(*args)
