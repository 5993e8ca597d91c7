"""Where a learned detector's model runs and the one copy of it kept in memory between runs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


def torch_device() -> str:
    """CUDA when a GPU is present, else the CPU (every model here also runs correctly there)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class OneModel(Generic[T]):
    """Keeps the last loaded model of one kind, by key (weights sha256, device). Thread-safe: the
    GUI's warm-up and an analysis may ask at once, and each must not load its own copy."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: Hashable | None = None
        self._value: T | None = None

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        with self._lock:
            if self._value is not None and self._key == key:
                return self._value
            # drop the old model first: two learned models (ViT-L/14 + ResNet-50 is ~1.7 GB) at once
            # could exhaust memory; a failed load leaves nothing behind
            self._key, self._value = None, None
            value = load()
            self._key, self._value = key, value
            return value

    def clear(self) -> None:
        with self._lock:
            self._key, self._value = None, None
