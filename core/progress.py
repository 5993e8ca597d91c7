"""Progress reporting and cancellation in plain Python (the GUI adapts them to Qt signals)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from core.errors import CancelledError


class ProgressCallback(Protocol):
    """`fraction` (0..1) is of the whole work the callback was handed for; `stage` names the part
    running now (for the label), `message` says where in it."""

    def __call__(self, stage: str, fraction: float, message: str = "") -> None: ...


def no_progress(stage: str, fraction: float, message: str = "") -> None:
    """Default progress sink: ignore."""


def sub_progress(parent: ProgressCallback, start: float, end: float) -> ProgressCallback:
    """A callback for one part of the work: its 0..1 lands on start..end of the parent's range
    (Orange3's wrap_callback idea), so a long part moves the bar while it runs."""
    if parent is no_progress:
        return no_progress
    span = end - start

    def child(stage: str, fraction: float, message: str = "") -> None:
        parent(stage, start + span * min(max(float(fraction), 0.0), 1.0), message)

    return child


def shares(weights: dict[str, float]) -> dict[str, tuple[float, float]]:
    """Consecutive ranges of 0..1 in proportion to the weights (in their order)."""
    total = sum(weights.values()) or 1.0
    out: dict[str, tuple[float, float]] = {}
    at = 0.0
    for name, w in weights.items():
        out[name] = (at, at + w / total)
        at += w / total
    return out


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
