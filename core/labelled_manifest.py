"""A labelled set of files: a TSV or CSV manifest (path, label, kind, group), for `verity validate` and training.

Columns by header name: `path` (relative to the manifest's folder, or absolute), `label`
(`real` or `fake`; `genuine`/`manipulated` are accepted), and optional `kind` (face-swap,
lip-sync, talking-head, reenactment, genuine, ...) and `group` (e.g. the source identity), and for
identity_reference `person` (who the clip claims to show) and `reference` (';'-separated known
exemplars of that person: videos or photos, relative like `path`). Other columns are not used. A row that cannot be used is an error naming its line: a
validation silently run on part of a set would misstate its n.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from core.errors import VerityError

LABELS = {"real": "real", "genuine": "real", "fake": "fake", "manipulated": "fake"}


@dataclass(frozen=True)
class Item:
    path: Path
    label: str  # "real" / "fake"
    kind: str  # "genuine" for real items without a kind
    group: str
    line: int  # line of the manifest (1 = header)
    person: str = ""  # who the clip claims to show (for its references)
    references: tuple[Path, ...] = ()  # known exemplars of that person

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Manifest:
    path: Path
    sha256: str
    items: tuple[Item, ...]


def _resolve(manifest: Path, entry: str) -> Path:
    p = Path(entry).expanduser()
    return p if p.is_absolute() else manifest.parent / p


def read_manifest(path: str | Path) -> Manifest:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise VerityError(f"{path}: cannot read the manifest ({exc.strerror or exc})") from exc
    text = raw.decode("utf-8-sig", errors="replace")
    lines = text.splitlines()
    dialect = "excel-tab" if lines and "\t" in lines[0] else "excel"  # TSV when the header has a tab, else CSV
    rows = list(csv.DictReader(lines, dialect=dialect))
    if not rows or not {"path", "label"} <= {(k or "").strip().lower() for k in rows[0]}:
        raise VerityError(f"{path}: a manifest needs a header with at least the columns 'path' and 'label'")
    items: list[Item] = []
    seen: dict[Path, int] = {}
    for line, row in enumerate(rows, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if not row.get("path"):
            continue  # blank line
        label = LABELS.get(row.get("label", "").lower())
        if label is None:
            raise VerityError(f"{path}, line {line}: label {row.get('label')!r} is not real/fake")
        p = _resolve(path, row["path"])
        if p in seen:
            raise VerityError(f"{path}, line {line}: {row['path']} is listed twice (first on line {seen[p]})")
        seen[p] = line
        kind = row.get("kind") or ("genuine" if label == "real" else "manipulated")
        refs = tuple(_resolve(path, r.strip()) for r in row.get("reference", "").split(";") if r.strip())
        missing = [r for r in refs if not r.is_file()]
        if missing:
            raise VerityError(f"{path}, line {line}: reference {missing[0]} not found")
        person = row.get("person") or row.get("group", "") or ("the person shown" if refs else "")
        items.append(Item(p, label, kind, row.get("group", ""), line, person, refs))
    if not items:
        raise VerityError(f"{path}: the manifest lists no files")
    return Manifest(path.resolve(), hashlib.sha256(raw).hexdigest(), tuple(items))
