"""What a batch analyses: folders (searched recursively), manifests and single files, each to one
JSON name in the output folder."""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from core.errors import VerityError

# Containers a seized drive or a platform queue holds; anything else in a folder is not evidence video.
VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".avi", ".mpg", ".mpeg", ".m4v", ".webm", ".wmv", ".ts", ".3gp", ".flv"}
PATH_COLUMNS = ("path", "file")  # validation manifests say `path`, ../shared/media/MANIFEST.tsv says `file`


@dataclass(frozen=True)
class Item:
    """One file of the batch and the name of its JSON in the output folder."""

    index: int
    path: Path  # absolute
    out_name: str


def read_manifest(path: Path) -> list[Path]:
    """A TSV/CSV with a `path` (or `file`) column, or a plain list of paths one a line (`#` comments).
    Relative paths are relative to the manifest's folder."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise VerityError(f"manifest {path}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from exc
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return []
    delim = "\t" if "\t" in lines[0] else ("," if "," in lines[0] else None)
    header = [h.strip().lower() for h in lines[0].split(delim)] if delim else []
    column = next((c for c in PATH_COLUMNS if c in header), None)
    if delim and column is not None:
        rows = csv.DictReader(lines[1:], fieldnames=header, delimiter=delim)
        names = [(r.get(column) or "").strip() for r in rows]
    elif delim:
        raise VerityError(f"manifest {path}: a table needs a 'path' or 'file' column (header: {lines[0].strip()[:80]})")
    else:
        names = [ln.strip() for ln in lines]
    return [(p if p.is_absolute() else path.parent / p) for p in map(Path, filter(None, names))]


def expand(args: list[Path]) -> list[Path]:
    """Folders -> their video files (recursive, sorted); video files as given; other files are manifests.
    A path given on the command line that does not exist is an error; one listed in a manifest is kept
    (it is then reported as a failed file, the rest of the batch goes on)."""
    out: list[Path] = []
    for arg in args:
        if arg.is_dir():
            out += sorted(p for p in arg.rglob("*") if p.suffix.lower() in VIDEO_EXTS and p.is_file())
        elif arg.suffix.lower() in VIDEO_EXTS:
            if not arg.exists():
                raise VerityError(f"{arg}: file not found")
            out.append(arg)
        elif arg.is_file():
            out += read_manifest(arg)
        else:
            raise VerityError(f"{arg}: no such file or folder")
    seen: set[Path] = set()
    unique = []
    for p in out:
        r = p.resolve()  # as the analysis JSON and the case store record it
        if r not in seen:  # the same file named twice is analysed once
            seen.add(r)
            unique.append(r)
    return unique


def items(paths: list[Path]) -> list[Item]:
    """`<name>.json` as `verity analyze --json DIR` names it; files of one name from different folders
    get `<name>.<hash of the path>.json`, a name that does not depend on the order or on other inputs."""
    counts = Counter(p.name for p in paths)
    out = []
    for i, p in enumerate(paths):
        if counts[p.name] > 1:
            name = f"{p.name}.{hashlib.sha256(str(p).encode()).hexdigest()[:8]}.json"
        else:
            name = f"{p.name}.json"
        out.append(Item(i, p, name))
    return out
