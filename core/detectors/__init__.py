"""Detector registry. Every module in this package that defines a `@register`ed Detector is found
automatically, so adding a detector is adding one file."""

from __future__ import annotations

import importlib
import pkgutil

from core.detectors.base import AnalysisContext, Detector, DetectorResult, Segment

_REGISTRY: dict[str, type[Detector]] = {}
_loaded = False


def register(cls: type[Detector]) -> type[Detector]:
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in pkgutil.iter_modules(__path__):
        if mod.name != "base" and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


def available() -> dict[str, type[Detector]]:
    """All registered detectors by name, in a stable order."""
    _load_all()
    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> Detector:
    reg = available()
    if name not in reg:
        raise KeyError(f"unknown detector {name!r} (known: {', '.join(reg) or 'none'})")
    return reg[name]()


__all__ = ["AnalysisContext", "Detector", "DetectorResult", "Segment", "available", "get", "register"]
