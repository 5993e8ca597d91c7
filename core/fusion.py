"""Fusion: the detectors' readings -> the examiner's finding, per evidence and per face track.

The finding is on the three-value scale of the SWGDE-style wording and never "FAKE"/"REAL":

    consistent    the examined properties are consistent with an original recording
    inconsistent  the examined properties are inconsistent with an original recording
    inconclusive  the examination supports neither

Each detector contributes its own `assessment` (one of the three values, or None for a pure
measurement). The rules, applied in this order (version `RULES_VERSION`):

1. A detector whose status is not `ok` does not count; it is listed under `unavailable` with its
   reason.
2. A learned detector (the registry says it needs weights, or its result carries weight hashes)
   counts only when its status is `ok` and its result names the sha256 of the verified weights
   it ran with; otherwise it is listed under `unavailable` ("weights not verified").
3. A detector with no reading (assessment None) is listed under `measurements` and does not count.
   `inconclusive` readings count as "no evidence either way": they never tip the finding.
4. Disagreement: if at least one counted detector reads `inconsistent` and at least one reads
   `consistent`, the finding is `inconclusive`, and both sides are given as reasons.
5. `inconsistent` when at least `min_inconsistent` (1) counted detectors read `inconsistent`,
   each of them *validated*, and none reads `consistent`. Validated: an independent validation
   record (not the development set its thresholds were tuned on) measured its false-inconsistent
   rate on genuine footage with a 95% upper bound of at most `max_false_inconsistent` (5%). A
   weight-free rule can fire on genuine footage its author never saw (blink depth on compressed
   video did), so an unvalidated `inconsistent` reading is reported as an *observation* — with
   its reasons and segments, for the examiner to look at — and the finding stays `inconclusive`.
6. `consistent` when at least `min_consistent` (2) counted detectors read `consistent`, each of
   them validated the other way round — an independent record measured its false-consistent rate
   on manipulated footage with a 95% upper bound of at most `max_false_consistent` (5%) — and none
   reads `inconsistent`. One method finding no artefact is thin evidence of an original, and a
   method blind to a kind of manipulation reads `consistent` on it (lips in sync on a lip-sync
   fake; the same identity in a reenactment): on the development media av_sync read 13 of 33
   manipulated clips `consistent`. Unvalidated `consistent` readings are observations too.
7. Otherwise `inconclusive` (thin evidence), with the reason.

Per face track the same rules run on the readings detectors give for that track (their
`per_track[<id>]["assessment"]`); a detector that gives no per-track reading counts only at the
evidence level. At the evidence level a detector's reading is its `assessment`, or, when it gives
only per-track readings, the combination of those (any track inconsistent -> inconsistent; all
consistent -> consistent; else inconclusive).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from core.detectors.base import DetectorResult

RULES_VERSION = "verity.fusion/2"
VALUES = ("consistent", "inconsistent", "inconclusive")
STATEMENTS = {
    "consistent": "The examined properties are consistent with an original recording.",
    "inconsistent": "The examined properties are inconsistent with an original recording.",
    "inconclusive": "The examination is inconclusive: it supports neither an original nor a manipulated recording.",
}
MAX_SEGMENTS = 5  # segments quoted per reason (the full list stays in the detector's result)


@dataclass
class FusionRules:
    min_inconsistent: int = 1  # validated detectors reading inconsistent
    min_consistent: int = 2  # validated detectors reading consistent
    max_false_inconsistent: float = 0.05  # 95% upper bound on genuine footage for an inconsistent reading to decide
    max_false_consistent: float = 0.05  # 95% upper bound on manipulated footage for a consistent reading to count

    def to_dict(self) -> dict[str, Any]:
        return {"version": RULES_VERSION, **asdict(self)}


def _as_dict(result: DetectorResult | Mapping[str, Any]) -> dict[str, Any]:
    return result.to_dict() if isinstance(result, DetectorResult) else dict(result)


def learned_detectors() -> set[str]:
    """Names of registered detectors that need trained weights."""
    from core import detectors

    return {name for name, cls in detectors.available().items() if cls.needs_weights}


def _combine_tracks(per_track: Mapping[str, Any]) -> str | None:
    readings = [v.get("assessment") for v in per_track.values() if isinstance(v, Mapping)]
    readings = [r for r in readings if r in VALUES]
    if not readings:
        return None
    if "inconsistent" in readings:
        return "inconsistent"
    if all(r == "consistent" for r in readings):
        return "consistent"
    return "inconclusive"


def _segments(d: Mapping[str, Any], track_id: int | None) -> list[dict[str, Any]]:
    segs = [s for s in d.get("segments") or [] if isinstance(s, Mapping)]
    if track_id is not None:
        segs = [s for s in segs if s.get("track_id") in (track_id, None)]
    return [
        {k: s.get(k) for k in ("start_frame", "end_frame", "reason", "score", "track_id")} for s in segs[:MAX_SEGMENTS]
    ]


def _text(d: Mapping[str, Any], track_key: str | None) -> str:
    if track_key is not None:
        tr = (d.get("per_track") or {}).get(track_key) or {}
        reasons = tr.get("reasons") if isinstance(tr, Mapping) else None
        if isinstance(reasons, list) and reasons:
            return "; ".join(str(r) for r in reasons)
    parts = [str(d.get("note") or "")]
    if d.get("confidence") is not None:
        parts.append(f"score {d['confidence']}")
    return " ".join(p for p in parts if p)


# what a reading claims, what can make it wrong, and the record's figures that measure that
_ERROR = {
    "inconsistent": ("genuine", "false_inconsistent", "false_inconsistent_upper95", "genuine_n", "max_false_inconsistent"),
    "consistent": ("manipulated", "false_consistent", "false_consistent_upper95", "manipulated_n", "max_false_consistent"),
}


def qualifies(validation: Mapping[str, Any] | None, rules: FusionRules, reading: str = "inconsistent") -> tuple[bool, str]:
    """Whether a detector's validation summary lets its `reading` (inconsistent or consistent)
    decide, and why (or why not) in words: an `inconsistent` reading needs a low measured
    false-inconsistent rate on genuine footage, a `consistent` one a low false-consistent rate on
    manipulated footage, each on an independent record (core.validation_records.summary)."""
    if not validation:
        return False, "it has no validation record for these parameters"
    name = validation.get("record", "?")
    if not validation.get("independent"):
        return False, f"its only validation record ({name}) is the development set its thresholds were tuned on"
    clips, field_k, field_upper, field_n, limit_name = _ERROR[reading]
    upper, limit = validation.get(field_upper), getattr(rules, limit_name)
    if upper is None:
        return False, f"its validation record ({name}) has no {clips} clips"
    measured = f"{validation.get(field_k)} of {validation.get(field_n)} {clips} clips read {reading}, 95% upper bound {upper:.1%}"
    if upper > limit:
        return False, f"on {name} its {field_k.replace('_', '-')} rate is not shown to be low ({measured} > {limit:.0%})"
    return True, f"validated on {name}: {measured}"


def _decide(readings: list[tuple[str, str, dict[str, Any]]], rules: FusionRules) -> tuple[str, dict[str, Any]]:
    """readings: (detector, assessment, reason entry) of counted detectors -> value, rule reason.
    A consistent or inconsistent entry decides only when marked `decisive` (see `qualifies`)."""
    inc = [n for n, a, _ in readings if a == "inconsistent"]
    con = [n for n, a, _ in readings if a == "consistent"]
    decisive = {v: [n for n, a, e in readings if a == v and e.get("decisive")] for v in ("inconsistent", "consistent")}
    if inc and con:
        return "inconclusive", {
            "detector": "fusion", "rule": "disagreement",
            "text": f"detectors disagree: {', '.join(inc)} inconsistent, {', '.join(con)} consistent",
        }
    if inc and len(decisive["inconsistent"]) >= rules.min_inconsistent:
        return "inconsistent", {"detector": "fusion", "rule": "inconsistent", "text": f"inconsistent per {', '.join(decisive['inconsistent'])}; no detector reads consistent"}
    if con and len(decisive["consistent"]) >= rules.min_consistent:
        return "consistent", {"detector": "fusion", "rule": "consistent", "text": f"consistent per {', '.join(decisive['consistent'])}; no detector reads inconsistent"}
    for value, side, limit in (("inconsistent", inc, rules.max_false_inconsistent), ("consistent", con, rules.max_false_consistent)):
        undecided = [(n, e) for n, a, e in readings if a == value and not e.get("decisive")]
        if side and undecided:
            why = "; ".join(f"{n}: {e['validation']}" for n, e in undecided)
            clips = "genuine" if value == "inconsistent" else "manipulated"
            needed = f"{rules.min_inconsistent if value == 'inconsistent' else rules.min_consistent} validated reading(s) needed"
            return "inconclusive", {
                "detector": "fusion", "rule": "unvalidated",
                "text": (
                    f"{', '.join(side)} read(s) {value}: reported as an observation to examine, not as the finding, because a "
                    f"reading decides only where its rate of false {value} readings on {clips} footage is measured to be at most "
                    f"{limit:.0%} (95% upper bound) on an independent set; {needed} ({why})"
                ),
            }
    if con:
        why = f"only {len(con)} detector(s) read consistent ({', '.join(con)}); {rules.min_consistent} needed"
    elif readings:
        why = "no detector found evidence either way (" + ", ".join(f"{n}: {a}" for n, a, _ in readings) + ")"
    else:
        why = "no detector gave a reading"
    return "inconclusive", {"detector": "fusion", "rule": "thin evidence", "text": f"thin evidence: {why}"}


def _fuse_one(
    results: dict[str, dict[str, Any]],
    learned: Collection[str],
    rules: FusionRules,
    track_id: int | None,
    validation: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    key = None if track_id is None else str(track_id)
    unavailable: list[dict[str, Any]] = []
    measurements: list[str] = []
    counted: list[tuple[str, str, dict[str, Any]]] = []
    for name, d in results.items():
        status = d.get("status", "ok")
        if status != "ok":
            unavailable.append({"detector": name, "status": status, "reason": d.get("note") or status})
            continue
        if (name in learned or d.get("weights_sha256")) and not d.get("weights_sha256"):
            unavailable.append({"detector": name, "status": "unverified", "reason": "learned detector without verified weights: not counted"})
            continue
        if key is None:
            reading = d.get("assessment")
            if reading is None:
                reading = _combine_tracks(d.get("per_track") or {})
        else:
            tr = (d.get("per_track") or {}).get(key)
            reading = tr.get("assessment") if isinstance(tr, Mapping) else None
        if reading not in VALUES:
            if key is None or reading is not None:
                measurements.append(name)
            continue
        entry = {"detector": name, "assessment": reading, "text": _text(d, key), "segments": _segments(d, track_id)}
        if track_id is not None:
            entry["track_id"] = track_id
        if d.get("weights_sha256"):
            entry["weights_sha256"] = d["weights_sha256"]
        if reading in ("inconsistent", "consistent"):
            entry["decisive"], entry["validation"] = qualifies(validation.get(name), rules, reading)
        counted.append((name, reading, entry))
    value, rule_reason = _decide(counted, rules)
    # the rule first, then the decisive readings, then the rest
    order = {"inconsistent": 0, "consistent": 0, "inconclusive": 1}
    reasons = [rule_reason] + [e for _, _, e in sorted(counted, key=lambda c: order[c[1]])]
    out: dict[str, Any] = {"value": value, "statement": STATEMENTS[value], "reasons": reasons, "unavailable": unavailable}
    if measurements:
        out["measurements"] = measurements
    return out


def fuse(
    results: Mapping[str, DetectorResult | Mapping[str, Any]],
    track_ids: Iterable[int] = (),
    rules: FusionRules | None = None,
    learned: Collection[str] | None = None,
    validation: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The finding for the analysis JSON: evidence level, plus `per_track` for each face track.

    validation: detector name -> its validation summary for the parameters it ran with (see
    `qualifies`); a detector without one cannot decide `inconsistent` on its own."""
    rules = rules or FusionRules()
    dicts = {name: _as_dict(r) for name, r in results.items()}
    learned = learned_detectors() if learned is None else learned
    validation = validation or {}
    finding = _fuse_one(dicts, learned, rules, None, validation)
    finding["per_track"] = {str(t): _fuse_one(dicts, learned, rules, int(t), validation) for t in track_ids}
    finding["rules"] = rules.to_dict()
    return finding
