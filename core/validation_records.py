"""Validation records on disk, and the one a detector's result may cite.

A record (`verity.validation/1`, one JSON file) holds what `verity validate` measured on a
labelled set: per detector, the parameters it ran with and its error rates. A result may cite a
record only when the record was made with the same software version and the same parameters
(the detector's own and the pipeline's face-pass / blink / eye parameters): a threshold changed
after validation is an unvalidated threshold.

Records are read from the folders in `VERITY_VALIDATION_DIRS` (os.pathsep-separated), the user's
`<data dir>/validation/` (where `verity validate --register` puts a lab's own record), and
`resources/validation/` (shipped with Verity), in that order.
A record says whether it is `independent`: a development set (the one the thresholds were tuned
on) is not, and fusion never lets it make a reading decisive (core.fusion.qualifies).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import core
from core.paths import data_dir

SCHEMA = "verity.validation/1"
SHIPPED = Path(__file__).resolve().parents[1] / "resources" / "validation"
PIPELINE_KEYS = ("facepass", "blinks", "eyes")  # analysis parameters every detector's result depends on

log = logging.getLogger(__name__)


def user_dir() -> Path:
    return data_dir() / "validation"


def record_dirs() -> list[Path]:
    """Extra folders (VERITY_VALIDATION_DIRS), the user's, then the records shipped with Verity
    (left out with VERITY_NO_SHIPPED_VALIDATION=1: the tests' own records must be the only ones)."""
    extra = [Path(p) for p in os.environ.get("VERITY_VALIDATION_DIRS", "").split(os.pathsep) if p]
    shipped = [] if os.environ.get("VERITY_NO_SHIPPED_VALIDATION") == "1" else [SHIPPED]
    return [*extra, user_dir(), *shipped]


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


@lru_cache(maxsize=8)
def _load_dir(folder: str, stamp: tuple[tuple[str, float], ...]) -> tuple[dict[str, Any], ...]:
    out = []
    for name, _ in stamp:
        path = Path(folder) / name
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("validation record %s cannot be read (%s): ignored", path, exc)
            continue
        if isinstance(rec, dict) and rec.get("schema") == SCHEMA:
            rec["_path"] = str(path)
            out.append(rec)
    return tuple(out)


def load_records(dirs: list[Path] | None = None) -> list[dict[str, Any]]:
    """Every readable record in the folders (newest first within a folder)."""
    out: list[dict[str, Any]] = []
    for d in dirs if dirs is not None else record_dirs():
        if not d.is_dir():
            continue
        files = sorted(((p.name, p.stat().st_mtime) for p in d.glob("*.json")), key=lambda x: -x[1])
        out += _load_dir(str(d), tuple(files))
    return out


def matches(record: Mapping[str, Any], detector: str, parameters: Mapping[str, Any], analysis_parameters: Mapping[str, Any], version: str) -> bool:
    """Same software version, the detector's own parameters and the pipeline's."""
    if (record.get("software") or {}).get("version") != version:
        return False
    entry = (record.get("detectors") or {}).get(detector)
    if not isinstance(entry, Mapping) or _canonical(entry.get("parameters")) != _canonical(parameters):
        return False
    rec_params = record.get("analysis_parameters") or {}
    return all(_canonical(rec_params.get(k)) == _canonical(analysis_parameters.get(k)) for k in PIPELINE_KEYS)


def summary(record: Mapping[str, Any], detector: str) -> dict[str, Any]:
    """What fusion and the report need of a record for one detector."""
    entry = record["detectors"][detector]
    fi = entry.get("false_inconsistent") or {}
    det = entry.get("detection") or {}
    fc = entry.get("false_consistent") or {}
    return {
        "record": record.get("name"),
        "path": record.get("_path"),
        "independent": bool(record.get("independent")),
        "created": record.get("created"),
        "genuine_n": fi.get("n"),
        "false_inconsistent": fi.get("k"),
        "false_inconsistent_rate": fi.get("rate"),
        "false_inconsistent_ci95": fi.get("ci95"),
        "false_inconsistent_upper95": (fi.get("ci95") or [None, None])[1],
        "manipulated_n": det.get("n"),
        "detected": det.get("k"),
        "detection_ci95": det.get("ci95"),
        "false_consistent": fc.get("k"),
        "false_consistent_ci95": fc.get("ci95"),
        "false_consistent_upper95": (fc.get("ci95") or [None, None])[1],
    }


def lookup(
    results: Mapping[str, Mapping[str, Any]],
    analysis_parameters: Mapping[str, Any],
    records: list[dict[str, Any]] | None = None,
    version: str | None = None,
) -> dict[str, dict[str, Any]]:
    """detector name -> the summary of the first matching record (independent ones preferred);
    detectors without a matching record are absent. version: the software version the results
    were made with (default: this one)."""
    records = load_records() if records is None else records
    records = sorted(records, key=lambda r: not r.get("independent"))  # stable: folder order kept otherwise
    version = version or core.__version__
    out: dict[str, dict[str, Any]] = {}
    for name, d in results.items():
        for rec in records:
            if matches(rec, name, d.get("parameters") or {}, analysis_parameters, version):
                out[name] = summary(rec, name)
                break
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f} %"


def citation(s: Mapping[str, Any] | None) -> str:
    """The one line a report's Methods section and the GUI give for a detector's validation."""
    if not s:
        return "No validation record matches this method's software version and parameters: its error rates are not measured."
    fi_lo, fi_hi = s.get("false_inconsistent_ci95") or (None, None)
    de_lo, de_hi = s.get("detection_ci95") or (None, None)
    n_g, n_m = s.get("genuine_n") or 0, s.get("manipulated_n") or 0
    k_g, k_m = s.get("false_inconsistent") or 0, s.get("detected") or 0
    text = (
        f"Validation record {s.get('record')!r}: n = {n_g} genuine / {n_m} manipulated; inconsistent on {k_g} of {n_g} genuine "
        f"(false-inconsistent rate {_pct(k_g / n_g if n_g else None)}, 95 % CI {_pct(fi_lo)}–{_pct(fi_hi)}) and on {k_m} of {n_m} "
        f"manipulated (detection rate {_pct(k_m / n_m if n_m else None)}, 95 % CI {_pct(de_lo)}–{_pct(de_hi)})."
    )
    if not s.get("independent"):
        text += " Development set: the method's thresholds were tuned on it, so these figures are not independent evidence of its error rates."
    return text
