"""Analyse every file of a manifest on the batch engine: the work half of `verity validate`.

The files go through `core.batch.run_batch` — in this process, or on a Ray cluster — into
`OUT/analyses/`, one JSON per file with `verity analyze`'s content. A re-run (or a run resumed
after a kill) skips every file whose JSON holds the same evidence sha256, software version and
parameters (the batch's key), so only new work is done, and a changed parameter never reuses an
old result. A file that cannot be analysed is listed with its reason; the rest go on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.batch import run_batch
from core.batch.summary import Row
from core.detectors.base import Exemplar
from core.labelled_manifest import Item
from core.pipeline import AnalysisOptions
from core.progress import CancelToken

FILES = "files.txt"  # the batch's manifest: one absolute path a line


@dataclass
class Outcome:
    item: Item
    sha256: str | None
    analysis: dict[str, Any] | None  # None when the file could not be analysed
    error: str | None = None
    reused: bool = False


def _outcome(item: Item, row: Row | None) -> Outcome:
    if row is None:
        return Outcome(item, None, None, "not run: the validation was cancelled before this file")
    if row.status not in ("done", "skipped"):
        return Outcome(item, None, None, row.reason or row.status)
    try:
        analysis = json.loads(Path(row.json).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return Outcome(item, None, None, f"its analysis {row.json} cannot be read ({exc})")
    return Outcome(item, (analysis.get("evidence") or {}).get("sha256"), analysis, reused=row.status == "skipped")


def exemplars(items: list[Item]) -> dict[str, list[Exemplar]]:
    """Absolute path -> the known exemplars its manifest row names (hashed once each), for
    identity_reference; rows without a `reference` column are absent."""
    from core.digest import sha256_file

    hashes: dict[Path, str] = {}
    out: dict[str, list[Exemplar]] = {}
    for item in items:
        for r in item.references:
            if r not in hashes:
                hashes[r] = sha256_file(r)
        if item.references:
            out[str(item.path.resolve())] = [Exemplar.from_file(item.person, r, hashes[r]) for r in item.references]
    return out


def analyse_items(
    items: list[Item],
    out: Path,
    options: AnalysisOptions,
    on_item: Callable[[Outcome], None] | None = None,
    cancel: CancelToken | None = None,
    runner: Any = None,
) -> list[Outcome]:
    """One Outcome per item, in the manifest's order. runner: core.batch.LocalRunner (default) or
    RayRunner."""
    store = out / "analyses"
    store.mkdir(parents=True, exist_ok=True)
    files = store / FILES
    files.write_text("".join(f"{i.path.resolve()}\n" for i in items), encoding="utf-8")
    by_path = {str(i.path.resolve()): i for i in items}
    rows: dict[str, Row] = {}

    def on_row(row: Row) -> None:
        rows[row.file] = row
        item = by_path.get(row.file)
        if item is not None and on_item is not None:
            on_item(_outcome(item, row))

    run_batch([files], store, options, runner=runner, cancel=cancel, on_row=on_row, references=exemplars(items))
    return [_outcome(i, rows.get(str(i.path.resolve()))) for i in items]
