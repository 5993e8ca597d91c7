"""Analyse every file of a manifest, reusing finished analyses: the work half of `verity validate`.

Each analysis is stored as `OUT/analyses/<evidence sha256>-<key>.json`, where the key hashes the
software version, the detectors asked and every analysis parameter: a re-run (or a run resumed
after a kill) only analyses what is new, and a changed parameter never reuses an old result.
A file that cannot be analysed is listed with its reason; the rest go on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import core
from core.digest import params_key, sha256_file
from core.errors import CancelledError, VerityError
from core.pipeline import AnalysisOptions, analyze
from core.progress import CancelToken
from core.validation.manifest import Item


@dataclass
class Outcome:
    item: Item
    sha256: str | None
    analysis: dict[str, Any] | None  # None when the file could not be analysed
    error: str | None = None
    reused: bool = False


def run_key(options: AnalysisOptions) -> str:
    from core import detectors as registry

    names = options.detectors if options.detectors is not None else sorted(registry.available())
    # JSON round trip: parameters exactly as an analysis JSON records them
    blob = json.loads(json.dumps({"version": core.__version__, "detectors": names, "parameters": options.parameters()}, default=str))
    return params_key(blob, length=16)


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)  # a killed run leaves no half-written analysis behind


def analyse_items(
    items: list[Item],
    out: Path,
    options: AnalysisOptions,
    on_item: Callable[[Outcome], None] | None = None,
    cancel: CancelToken | None = None,
) -> list[Outcome]:
    store = out / "analyses"
    store.mkdir(parents=True, exist_ok=True)
    key = run_key(options)
    outcomes = []
    for item in items:
        if cancel is not None:
            cancel.raise_if_cancelled()
        outcome = _one(item, store, key, options, cancel)
        outcomes.append(outcome)
        if on_item is not None:
            on_item(outcome)
    return outcomes


def _one(item: Item, store: Path, key: str, options: AnalysisOptions, cancel: CancelToken | None) -> Outcome:
    if not item.path.is_file():
        return Outcome(item, None, None, f"file not found: {item.path}")
    try:
        sha = sha256_file(item.path, cancel=cancel)
    except OSError as exc:
        return Outcome(item, None, None, f"cannot be read: {exc.strerror or exc}")
    cached = store / f"{sha}-{key}.json"
    if cached.is_file():
        try:
            return Outcome(item, sha, json.loads(cached.read_text(encoding="utf-8")), reused=True)
        except (OSError, ValueError):
            cached.unlink(missing_ok=True)  # damaged: analyse again
    try:
        analysis = analyze(item.path, options, cancel=cancel, verified_sha256=sha)
    except CancelledError:
        raise
    except VerityError as exc:
        return Outcome(item, sha, None, str(exc))
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop a validation of hundreds
        return Outcome(item, sha, None, f"internal error: {type(exc).__name__}: {exc}")
    _write_atomic(cached, analysis)
    return Outcome(item, sha, analysis)
