"""The validation record (`verity.validation/1`): one JSON with everything needed to trace and
judge the figures — software version, every parameter, every weights sha256, the manifest's and
each file's sha256, the figures, the date — written with its plots and a one-page PDF summary.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import core
from core.labelled_manifest import Manifest
from core.pipeline import AnalysisOptions
from core.validation.figures import all_figures
from core.validation.run import Outcome
from core.validation_records import SCHEMA

DEVELOPMENT_NOTE = (
    "Development set: the thresholds of the weight-free detectors were chosen looking at these clips, so the figures "
    "describe this set and are not independent evidence of the methods' error rates."
)


def build_record(
    name: str, manifest: Manifest, outcomes: list[Outcome], options: AnalysisOptions, independent: bool, timing: dict[str, Any]
) -> dict[str, Any]:
    figures = all_figures(outcomes)
    base = manifest.path.parent
    def rel(p: Path) -> str:
        """As the manifest names it (relative to its folder, symlinks kept), else absolute."""
        for candidate in (p.absolute(), p.resolve()):
            try:
                return str(candidate.relative_to(base))
            except ValueError:
                continue
        return str(p)

    files = []
    for o in outcomes:
        refs = ((o.analysis or {}).get("parameters") or {}).get("references") or []
        files.append({
            # the known exemplars it was compared with: their paths, and the sha256s the analysis recorded
            **({"person": o.item.person, "references": {"paths": [rel(r) for r in o.item.references], "sha256": refs}} if o.item.references else {}),
            "path": rel(o.item.path), "sha256": o.sha256, "label": o.item.label, "kind": o.item.kind, "group": o.item.group,
            "analysed": o.analysis is not None, "error": o.error,
            "finding": (o.analysis or {}).get("finding", {}).get("value") if o.analysis else None,
        })
    params = options.parameters()
    return {
        "schema": SCHEMA,
        "name": name,
        "independent": independent,
        "purpose": "independent validation set" if independent else "development set",
        "note": None if independent else DEVELOPMENT_NOTE,
        "created": datetime.now().astimezone().isoformat(timespec="seconds"),
        "software": {"name": core.SOFTWARE_NAME, "version": core.__version__},
        "manifest": {"path": str(manifest.path), "sha256": manifest.sha256, "items": len(manifest.items)},
        "analysis_parameters": {k: params[k] for k in ("facepass", "blinks", "eyes")},
        "detectors_asked": options.detectors,
        "n": figures["n"],
        "detectors": figures["detectors"],
        "finding": figures["finding"],
        "failed": figures["failed"],
        "files": files,
        "timing": timing,
    }


def write_record(record: dict[str, Any], out: Path) -> dict[str, Path]:
    """record.json, the PNG plots and summary.pdf in `out`; returns what was written."""
    from core.validation.plots import plot_coverage, plot_roc, summary_pdf

    out.mkdir(parents=True, exist_ok=True)
    paths = {"record": out / "record.json"}
    tmp = paths["record"].with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, paths["record"])
    paths["coverage"] = plot_coverage(record, out / "coverage_by_kind.png")
    roc = plot_roc(record, out / "roc.png")
    if roc is not None:
        paths["roc"] = roc
    paths["summary"] = summary_pdf(record, out / "summary.pdf", paths["coverage"])
    return paths
