"""Report export from the GUI: the case store's own report code, run in a worker thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.progress import no_progress


def export_report(store: Any, case_id: int, out: Path, progress: Any = no_progress, cancel: Any = None, **_: Any) -> dict[str, Any]:
    """A .pdf target also writes the JSON report beside it (same name, .json); a .json target only JSON."""
    from core.report import export_report as core_export

    out = Path(out)
    if out.suffix.lower() == ".json":
        json_path, pdf_path = out, None
    else:
        pdf_path = out if out.suffix.lower() == ".pdf" else out.with_suffix(".pdf")
        json_path = pdf_path.with_suffix(".json")
    core_export(store, case_id, json_path=json_path, pdf_path=pdf_path, progress=progress)
    return {"files": [str(p) for p in (pdf_path, json_path) if p is not None]}
