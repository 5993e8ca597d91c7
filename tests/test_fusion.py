"""Fusion rules: conservative, explicit, generic over detectors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core.detectors.base import DetectorResult, Segment
from core.fusion import STATEMENTS, FusionRules, fuse
from tests.factories import FPS, every, make_context, make_facepass, make_track


def res(assessment: str | None, status: str = "ok", per_track: dict[str, Any] | None = None, sha: dict[str, str] | None = None, note: str = "") -> DetectorResult:
    return DetectorResult(
        status=status, assessment=assessment, note=note or f"reading {assessment}", per_track=per_track or {}, weights_sha256=sha or {},
        segments=[Segment(10, 20, 0.9, "something odd", 0), Segment(30, 40, 0.8, "odd on track 1", 1)],
    )


def fused(results: dict[str, Any], tracks: tuple[int, ...] = (), learned: tuple[str, ...] = ()) -> dict[str, Any]:
    return fuse(results, tracks, learned=set(learned))


def test_thin_evidence_is_inconclusive() -> None:
    assert fused({})["value"] == "inconclusive"
    f = fused({"a": res("consistent"), "b": res("inconclusive"), "c": res(None)})
    assert f["value"] == "inconclusive"  # one consistent reading is not enough for an original
    assert f["reasons"][0]["rule"] == "thin evidence" and "1 detector(s) read consistent" in f["reasons"][0]["text"]
    assert f["measurements"] == ["c"]
    assert fused({"a": res("inconclusive"), "b": res("inconclusive")})["value"] == "inconclusive"


def test_disagreement_is_inconclusive_with_both_sides() -> None:
    f = fused({"a": res("inconsistent"), "b": res("consistent"), "c": res("consistent")})
    assert f["value"] == "inconclusive"
    assert f["reasons"][0]["rule"] == "disagreement"
    sides = {r["detector"]: r["assessment"] for r in f["reasons"][1:]}
    assert sides == {"a": "inconsistent", "b": "consistent", "c": "consistent"}


def test_inconsistent_reading_without_contradiction() -> None:
    f = fused({"a": res("inconsistent", note="4 of 4 blinks incomplete"), "b": res("inconclusive")})
    assert f["value"] == "inconsistent"
    assert f["statement"] == STATEMENTS["inconsistent"]
    first = f["reasons"][1]
    assert first["detector"] == "a" and "incomplete" in first["text"]
    assert first["segments"][0]["start_frame"] == 10  # which segment
    stricter = fuse({"a": res("inconsistent")}, rules=FusionRules(min_inconsistent=2), learned=set())
    assert stricter["value"] == "inconclusive"


def test_two_consistent_readings_make_consistent() -> None:
    f = fused({"a": res("consistent"), "b": res("consistent"), "c": res("inconclusive")})
    assert f["value"] == "consistent"
    assert f["value"] in ("consistent", "inconsistent", "inconclusive")


def test_unavailable_and_failed_are_listed_with_reason_and_not_counted() -> None:
    f = fused({
        "a": res("inconsistent"),
        "b": DetectorResult.unavailable("b", "no audio track"),
        "c": DetectorResult.failed("c", "ValueError: broken"),
        "d": res("consistent", status="failed"),  # a failed detector's reading never counts
    })
    assert f["value"] == "inconsistent"
    assert {u["detector"]: u["reason"] for u in f["unavailable"]} == {"b": "no audio track", "c": "ValueError: broken", "d": "reading consistent"}


def test_learned_detector_counts_only_with_verified_weights() -> None:
    results = {"physio": res("consistent"), "cnn": res("consistent")}
    f = fused(results, learned=("cnn",))
    assert f["value"] == "inconclusive"
    assert f["unavailable"] == [{"detector": "cnn", "status": "unverified", "reason": "learned detector without verified weights: not counted"}]
    results["cnn"] = res("consistent", sha={"head": "ab" * 32})
    f = fused(results, learned=("cnn",))
    assert f["value"] == "consistent"
    assert any(r.get("weights_sha256") == {"head": "ab" * 32} for r in f["reasons"])


def test_registry_knows_learned_detectors() -> None:
    from core import detectors
    from core.fusion import learned_detectors

    names = learned_detectors()
    assert names == {n for n, c in detectors.available().items() if c.needs_weights}
    assert "blink_physiology" not in names and "landmark_motion" not in names


def test_per_track_findings() -> None:
    results = {
        "a": res("inconsistent", per_track={"0": {"assessment": "inconsistent", "reasons": ["lopsided blinks"]}, "1": {"assessment": "consistent"}}),
        "b": res("consistent", per_track={"1": {"assessment": "consistent"}}),
        "c": res("inconclusive"),  # no per-track reading: counts at the evidence level only
    }
    f = fused(results, tracks=(0, 1, 2))
    assert f["value"] == "inconclusive"  # a says inconsistent, b consistent at the evidence level
    t0, t1, t2 = (f["per_track"][k] for k in ("0", "1", "2"))
    assert t0["value"] == "inconsistent" and t0["reasons"][1]["text"] == "lopsided blinks"
    assert all(s["track_id"] in (0, None) for s in t0["reasons"][1]["segments"])
    assert t1["value"] == "consistent"
    assert t2["value"] == "inconclusive" and t2["reasons"][0]["rule"] == "thin evidence"


def test_detector_with_only_per_track_readings_counts_at_evidence_level() -> None:
    f = fused({"a": res(None, per_track={"0": {"assessment": "inconsistent"}, "1": {"assessment": "consistent"}})})
    assert f["value"] == "inconsistent"


def test_finding_never_says_fake_or_real() -> None:
    import json

    f = fused({"a": res("inconsistent"), "b": res("consistent")}, tracks=(0,))
    text = json.dumps(f)
    assert "FAKE" not in text and "REAL" not in text
    assert f["rules"]["version"].startswith("verity.fusion/")


def test_physiology_detectors_fuse_to_inconclusive_on_a_short_clip() -> None:
    """End to end on synthetic tracks: 10 s of normal blinks is thin evidence, not an original."""
    from core.detectors.blink_physiology import BlinkPhysiology
    from core.detectors.landmark_motion import LandmarkMotion

    n = int(10 * FPS)
    ctx = make_context(make_facepass([make_track(n, every(3.0, n), noise_px=0.3)]))
    results = {"blink_physiology": BlinkPhysiology()(ctx), "landmark_motion": LandmarkMotion()(ctx)}
    assert results["blink_physiology"].assessment == "inconclusive"
    f = fuse(results, [0])
    assert f["value"] == "inconclusive" and f["per_track"]["0"]["value"] == "inconclusive"

    lopsided = make_context(make_facepass([make_track(n, every(2.0, n, ql=0.85, qr=0.05), noise_px=0.3)]))
    results = {"blink_physiology": BlinkPhysiology()(lopsided), "landmark_motion": LandmarkMotion()(lopsided)}
    f = fuse(results, [0])
    assert f["value"] == "inconsistent"
    assert f["reasons"][1]["detector"] == "blink_physiology" and "one-eyed" in f["reasons"][1]["text"]


@pytest.mark.parametrize("clip", ["real/grid_brbk7n.mpg"])
def test_analysis_json_carries_the_finding(media: Any, clip: str) -> None:
    from core.pipeline import AnalysisOptions, analyze

    a = analyze(media / clip, AnalysisOptions(detectors=["blink_physiology", "landmark_motion"]))
    f = a["finding"]
    assert f["value"] in ("consistent", "inconsistent", "inconclusive")
    assert set(f["per_track"]) == {str(x["track_id"]) for x in a["faces"]}
    assert f["value"] == "inconclusive"  # 3 s of a real face: thin evidence
    assert np.isfinite(a["detectors"]["landmark_motion"]["metrics"]["median_irregularity"])
