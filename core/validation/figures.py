"""Error rates of each detector, and of the fused finding, against a manifest's labels.

A detector's reading of a clip is its `assessment` (`consistent` / `inconsistent` /
`inconclusive`), `measurement` when it gives none, or `unavailable` when its status is not ok;
the finding's reading is its value. At the operating point Verity uses in casework — a reading of
`inconsistent` — over every analysed clip of each label:

- false-inconsistent rate: genuine clips read `inconsistent` (what must stay low);
- detection rate: manipulated clips read `inconsistent`;
- false-consistent rate: manipulated clips read `consistent`;

each with its Wilson 95% interval, plus coverage (clips with a consistent/inconsistent reading),
the reading x label table overall and per kind, the clips read wrongly, and — where a detector
gives a continuous score (P(manipulated), from the learned detectors' seed-compatible `prediction` and
`confidence`: `p_manipulated`) — the ROC curve and
ROC-AUC with a bootstrap interval.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

from core.validation.run import Outcome
from core.validation.stats import auc_with_interval, wilson_interval

READINGS = ("consistent", "inconsistent", "inconclusive", "measurement", "unavailable")
FINDING = "finding"  # the fused finding's entry, beside the detectors'


def reading_of(analysis: dict[str, Any], name: str) -> str:
    if name == FINDING:
        return (analysis.get("finding") or {}).get("value") or "unavailable"
    d = (analysis.get("detectors") or {}).get(name)
    if not d or d.get("status") != "ok":
        return "unavailable"
    return d.get("assessment") or "measurement"


def _why(analysis: dict[str, Any], name: str) -> str:
    if name == FINDING:
        reasons = (analysis.get("finding") or {}).get("reasons") or []
        return "; ".join(str(r.get("text", "")) for r in reasons[:3] if isinstance(r, dict))
    return str(((analysis.get("detectors") or {}).get(name) or {}).get("note", ""))[:400]


def p_manipulated(d: dict[str, Any]) -> float | None:
    """A result's probability of manipulation, or None. The seed-compatible `confidence` is the
    confidence in the `prediction` (the model cards' "FAKE"/"REAL"), so P(manipulated) is it for
    FAKE and its complement for REAL; results without a FAKE/REAL prediction give no score."""
    conf, pred = d.get("confidence"), d.get("prediction")
    if d.get("status") != "ok" or not isinstance(conf, (int, float)) or pred not in ("FAKE", "REAL"):
        return None
    return float(conf) if pred == "FAKE" else 1.0 - float(conf)


def rate(k: int, n: int) -> dict[str, Any]:
    lo, hi = wilson_interval(k, n)
    return {"k": k, "n": n, "rate": round(k / n, 4) if n else None, "ci95": [round(lo, 4), round(hi, 4)]}


def _parameters(done: list[Outcome], name: str) -> tuple[dict[str, Any] | None, bool]:
    """The detector's parameters (the same on every clip), or (None, True) when they varied."""
    seen = {
        json.dumps(d["parameters"], sort_keys=True)
        for o in done
        if (d := (o.analysis or {}).get("detectors", {}).get(name)) and d.get("parameters")
    }
    if len(seen) == 1:
        return json.loads(seen.pop()), False
    return None, len(seen) > 1


def detector_figures(done: list[Outcome], name: str) -> dict[str, Any]:
    labels = [o.item.label for o in done]
    readings = [reading_of(o.analysis or {}, name) for o in done]
    n_real, n_fake = labels.count("real"), labels.count("fake")
    count = Counter(zip(readings, labels))
    table: dict[str, Any] = {"overall": {r: {"real": count[(r, "real")], "fake": count[(r, "fake")]} for r in READINGS}}
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for o, r in zip(done, readings):
        by_kind[o.item.kind][r] += 1
    table["by_kind"] = {k: {"n": sum(c.values()), **{r: c[r] for r in READINGS}} for k, c in sorted(by_kind.items())}
    out: dict[str, Any] = {
        "coverage": {
            lab: rate(sum(count[(r, lab)] for r in ("consistent", "inconsistent")), n) for lab, n in (("real", n_real), ("fake", n_fake))
        },
        "false_inconsistent": rate(count[("inconsistent", "real")], n_real),
        "detection": rate(count[("inconsistent", "fake")], n_fake),
        "false_consistent": rate(count[("consistent", "fake")], n_fake),
        "detection_by_kind": {
            k: rate(c["inconsistent"], sum(c.values())) for k, c in sorted(by_kind.items()) if k != "genuine"
        },
        "table": table,
        "wrong": [
            {"path": o.item.path.name, "label": o.item.label, "kind": o.item.kind, "reading": r, "why": _why(o.analysis or {}, name)}
            for o, r in zip(done, readings)
            if (o.item.label, r) in (("real", "inconsistent"), ("fake", "consistent"))
        ],
    }
    if name != FINDING:
        out["parameters"], out["parameters_varied"] = _parameters(done, name)
        weights = {json.dumps(d.get("weights_sha256"), sort_keys=True) for o in done if (d := (o.analysis or {}).get("detectors", {}).get(name)) and d.get("weights_sha256")}
        out["weights_sha256"] = [json.loads(w) for w in sorted(weights)]
        scores = [p_manipulated((o.analysis or {}).get("detectors", {}).get(name) or {}) for o in done]
        pairs = [(s, lab == "fake") for s, lab in zip(scores, labels) if s is not None]
        out["auc"] = auc_with_interval([p[0] for p in pairs], [p[1] for p in pairs])
    return out


def all_figures(outcomes: list[Outcome]) -> dict[str, Any]:
    done = [o for o in outcomes if o.analysis is not None]
    names = sorted({n for o in done for n in (o.analysis or {}).get("detectors", {})})
    return {
        "n": {"listed": len(outcomes), "analysed": len(done), "real": sum(o.item.label == "real" for o in done), "fake": sum(o.item.label == "fake" for o in done)},
        "detectors": {n: detector_figures(done, n) for n in names},
        "finding": detector_figures(done, FINDING),
        "failed": [{"path": str(o.item.path), "line": o.item.line, "reason": o.error} for o in outcomes if o.analysis is None],
    }
