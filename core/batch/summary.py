"""What the examiner sees of a batch: a progress bar over files, and a table at the end."""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from tqdm import tqdm

from core.batch.task import Outcome, read_json


@dataclass
class Row:
    """One file in the summary (and in batch-summary.json)."""

    file: str
    json: str
    status: str
    finding: str | None = None
    detectors: dict[str, int] | None = None  # status -> how many detectors
    seconds: float = 0.0
    reason: str = ""
    worker: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def row_for(path: str, json_path: str, out: Outcome) -> Row:
    analysis = out.analysis if out.analysis is not None else (read_json(json_path) if out.status == "skipped" else None)
    row = Row(path, json_path, out.status, seconds=out.seconds, reason=out.error)
    if out.worker:
        row.worker = f"{out.worker.get('host')}:{out.worker.get('pid')}"
    if isinstance(analysis, dict):
        row.finding = (analysis.get("finding") or {}).get("value")
        row.detectors = dict(Counter(d.get("status", "?") for d in (analysis.get("detectors") or {}).values()))
    return row


class Progress:
    """A bar over files with tqdm's ETA, and the live count of done / skipped / failed / running."""

    def __init__(self, total: int, runner: Any, file: TextIO = sys.stderr) -> None:
        self.counts: Counter[str] = Counter()
        self.runner = runner
        self.bar = tqdm(total=total, unit="file", desc="batch", file=file, disable=None, dynamic_ncols=True)

    def update(self, row: Row | None = None) -> None:
        if row is not None:
            self.counts[row.status] += 1
            self.bar.update(1)
        c = self.counts
        self.bar.set_postfix_str(
            f"done {c['done']}, skipped {c['skipped']}, failed {c['failed'] + c['refused']}, running {getattr(self.runner, 'running', 0)}"
        )

    def close(self) -> None:
        self.bar.close()


def table(rows: list[Row]) -> str:
    """Per file: status, finding, detectors, time; failures with their one-line reason below."""
    name_w = min(max([len(r.file.rsplit("/", 1)[-1]) for r in rows] + [4]), 48)
    lines = [f"{'file':<{name_w}}  {'status':<9}  {'finding':<13}  {'detectors':<28}  {'time s':>7}"]
    for r in rows:
        name = r.file.rsplit("/", 1)[-1][:name_w]
        dets = ", ".join(f"{n} {s}" for s, n in sorted((r.detectors or {}).items())) or "-"
        lines.append(f"{name:<{name_w}}  {r.status:<9}  {r.finding or '-':<13}  {dets:<28}  {r.seconds:>7.1f}")
    bad = [r for r in rows if r.status in ("failed", "refused")]
    if bad:
        lines.append("")
        lines.append("failed:")
        lines += [f"  {r.file}: {r.reason}" for r in bad]
    c = Counter(r.status for r in rows)
    lines.append("")
    lines.append(", ".join(f"{c[s]} {s}" for s in ("done", "skipped", "failed", "refused", "cancelled", "not run") if c[s]) or "no files")
    return "\n".join(lines)
