"""The weights manifest: which checkpoint files exist, where they come from, what they expect.

Two sources, merged by entry name:
- `weights/manifest.toml` in the project (in git; the files themselves are git-ignored);
- `manifest.local.json` in the user weights folder, written by `register_local` (a head trained
  here, or a sha256 the examiner confirmed on import). A local entry overrides the project one,
  field by field.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

from core.errors import VerityError

KINDS = ("backbone", "head", "full")
LOCAL_MANIFEST = "manifest.local.json"


class WeightsError(VerityError):
    """A checkpoint is missing, fails its sha256 check, or cannot be loaded safely."""


@dataclass
class WeightEntry:
    name: str
    detector: str
    file: str  # a file name, looked up in the project weights/ folder, then the user folder
    sha256: str | None = None
    size: int | None = None
    kind: str = "full"  # "backbone" | "head" | "full"
    architecture: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    url: str | None = None
    licence: str = ""
    description: str = ""
    # False: the detector still analyses without it (e.g. a backbone only needed to train a head
    # whose full checkpoint already contains it); it does not disable the detector.
    required: bool = True
    # A known prefix of the sha256 (torchvision puts the first 8 hex digits in its file names):
    # not enough to trust a file, enough to refuse a wrong one on import.
    sha256_prefix: str | None = None
    # Entries sharing a group are alternatives: the detector needs any one of them verified
    # (e.g. the upstream LipFD checkpoint or one trained here).
    group: str | None = None
    upstream_file: str | None = None  # the name the file has where it is published (recognised on import)
    origin: str = "project"  # "project" (weights/manifest.toml) or "local" (user manifest)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any], origin: str) -> WeightEntry:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known and k not in ("name", "origin")}
        if "detector" not in kw or "file" not in kw:
            raise WeightsError(f"weights manifest entry {name!r} lacks 'detector' or 'file'")
        entry = cls(name=name, origin=origin, **kw)
        if entry.kind not in KINDS:
            raise WeightsError(f"weights manifest entry {name!r}: kind {entry.kind!r} is not one of {', '.join(KINDS)}")
        if entry.sha256 is not None:
            entry.sha256 = entry.sha256.lower()
        return entry


def project_dir() -> Path:
    """The project's weights/ folder (beside core/), holding manifest.toml.

    VERITY_PROJECT_WEIGHTS_DIR replaces it: a packaged build that keeps the manifest elsewhere,
    and tests that must not depend on files a developer dropped into weights/.
    """
    return Path(os.environ.get("VERITY_PROJECT_WEIGHTS_DIR") or Path(__file__).resolve().parents[2] / "weights")


def user_dir() -> Path:
    """The user weights folder; VERITY_WEIGHTS_DIR replaces it (scripts, tests)."""
    return Path(os.environ.get("VERITY_WEIGHTS_DIR") or Path(platformdirs.user_data_dir("verity")) / "weights")


def project_manifest_path() -> Path:
    return project_dir() / "manifest.toml"


def local_manifest_path() -> Path:
    return user_dir() / LOCAL_MANIFEST


def _read_project() -> dict[str, dict[str, Any]]:
    path = project_manifest_path()
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise WeightsError(f"cannot read the weights manifest {path}: {exc}") from exc
    return {k: v for k, v in data.get("weights", {}).items() if isinstance(v, dict)}


def read_local() -> dict[str, dict[str, Any]]:
    path = local_manifest_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsError(f"cannot read the local weights manifest {path}: {exc}") from exc
    return {k: v for k, v in data.get("weights", {}).items() if isinstance(v, dict)}


def write_local(entries: dict[str, dict[str, Any]]) -> None:
    path = local_manifest_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"format": 1, "weights": entries}, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def manifest() -> dict[str, WeightEntry]:
    """Every known entry by name: the project manifest with the user's local entries laid over it."""
    project = _read_project()
    local = read_local()
    out: dict[str, WeightEntry] = {}
    for name in [*project, *(n for n in local if n not in project)]:
        if name in local:
            merged = {**project.get(name, {}), **local[name]}
            out[name] = WeightEntry.from_dict(name, merged, "local")
        else:
            out[name] = WeightEntry.from_dict(name, project[name], "project")
    return out


def entry(name: str) -> WeightEntry:
    entries = manifest()
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise WeightsError(f"no weights entry named {name!r} in the manifest (known: {known})")
    return entries[name]
