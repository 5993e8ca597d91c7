"""Fusion rules: conservative, explicit, generic over detectors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from core.detectors.base import DetectorResult, Segment
from core.fusion import STATEMENTS, FusionRules, fuse
from tests.factories import FPS, every, make_context, make_facepass, make_track, render_eyes


def res(assessment: str | None, status: str = "ok", per_track: dict[str, Any] | None = None, sha: dict[str, str] | None = None, note: str = "") -> DetectorResult:
    return DetectorResult(
        status=status, assessment=assessment, note=note or f"reading {assessment}", per_track=per_track or {}, weights_sha256=sha or {},
        segments=[Segment(10, 20, 0.9, "something odd", 0), Segment(30, 40, 0.8, "odd on track 1", 1)],
    )


def validated(k: int = 0, n: int = 80, independent: bool = True, k_consistent: int = 0, n_manipulated: int = 80) -> dict[str, Any]:
    """A validation summary as core.validation_records.summary gives it (Wilson 95% upper bounds)."""
    from core.validation.stats import wilson_interval

    return {
        "record": "lab set 2026", "independent": independent, "genuine_n": n, "false_inconsistent": k,
        "false_inconsistent_upper95": wilson_interval(k, n)[1], "manipulated_n": n_manipulated, "false_consistent": k_consistent,
        "false_consistent_upper95": wilson_interval(k_consistent, n_manipulated)[1],
    }


VALID = ("a", "b", "c", "d", "physio", "cnn")


def fused(results: dict[str, Any], tracks: tuple[int, ...] = (), learned: tuple[str, ...] = (), valid: tuple[str, ...] = VALID) -> dict[str, Any]:
    """Fusion with the detectors `valid` validated both ways (0 of 80 clips wrong: upper bound 4.6%)."""
    return fuse(results, tracks, learned=set(learned), validation={name: validated() for name in valid})


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
    stricter = fuse({"a": res("inconsistent")}, rules=FusionRules(min_inconsistent=2), learned=set(), validation={"a": validated()})
    assert stricter["value"] == "inconclusive"


def test_unvalidated_inconsistent_reading_is_an_observation_not_the_finding() -> None:
    """A single reading decides only with a low measured false-inconsistent rate on genuine footage."""
    f = fused({"a": res("inconsistent", note="4 of 4 blinks incomplete"), "b": res("inconclusive")}, tracks=(0,), valid=())
    assert f["value"] == "inconclusive"
    assert f["reasons"][0]["rule"] == "unvalidated" and "observation" in f["reasons"][0]["text"]
    first = f["reasons"][1]
    assert first["detector"] == "a" and first["assessment"] == "inconsistent" and first["decisive"] is False
    assert "no validation record" in first["validation"] and first["segments"]  # still shown, with where to look
    # a development-set record, or one whose bound is too wide, does not qualify either
    dev = fuse({"a": res("inconsistent")}, learned=set(), validation={"a": validated(independent=False)})
    assert dev["value"] == "inconclusive" and "development set" in dev["reasons"][1]["validation"]
    wide = fuse({"a": res("inconsistent")}, learned=set(), validation={"a": validated(0, 20)})  # 0 of 20: upper 16.1%
    assert wide["value"] == "inconclusive" and "not shown to be low" in wide["reasons"][1]["validation"]
    ok = fuse({"a": res("inconsistent")}, learned=set(), validation={"a": validated(0, 80)})
    assert ok["value"] == "inconsistent" and ok["reasons"][1]["decisive"] is True
    assert "validated on lab set 2026" in ok["reasons"][1]["validation"]


def test_two_consistent_readings_make_consistent() -> None:
    f = fused({"a": res("consistent"), "b": res("consistent"), "c": res("inconclusive")})
    assert f["value"] == "consistent"
    assert f["value"] in ("consistent", "inconsistent", "inconclusive")


def test_unvalidated_consistent_readings_do_not_make_an_original() -> None:
    """A method blind to a manipulation reads consistent on it: without a measured low
    false-consistent rate two such readings are observations, not a finding."""
    two = {"a": res("consistent"), "b": res("consistent")}
    f = fused(two, valid=())
    assert f["value"] == "inconclusive" and f["reasons"][0]["rule"] == "unvalidated"
    assert "false consistent" in f["reasons"][0]["text"] and all(r["decisive"] is False for r in f["reasons"][1:])
    blind = fused(two, valid=("b",))
    assert blind["value"] == "inconclusive"  # one validated reading, two needed
    lipsync_blind = fuse(two, learned=set(), validation={"a": validated(k_consistent=13, n_manipulated=33), "b": validated()})
    assert lipsync_blind["value"] == "inconclusive" and "not shown to be low" in lipsync_blind["reasons"][1]["validation"]


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


def test_physiology_detectors_fuse_to_inconclusive_on_a_short_clip(tmp_path: Any) -> None:
    """End to end on synthetic tracks: 10 s of normal blinks is thin evidence, not an original."""
    from core.detectors.blink_physiology import BlinkPhysiology
    from core.detectors.landmark_motion import LandmarkMotion

    n = int(10 * FPS)
    ctx = make_context(make_facepass([make_track(n, every(3.0, n), noise_px=0.3)]))
    results = {"blink_physiology": BlinkPhysiology()(ctx), "landmark_motion": LandmarkMotion()(ctx)}
    assert results["blink_physiology"].assessment == "inconclusive"
    f = fuse(results, [0])
    assert f["value"] == "inconclusive" and f["per_track"]["0"]["value"] == "inconclusive"

    fp = make_facepass([make_track(n, every(2.0, n, ql=0.85, qr=0.05), noise_px=0.3)])
    lopsided = make_context(fp, video=render_eyes(fp, tmp_path / "lopsided.mp4"))
    results = {"blink_physiology": BlinkPhysiology()(lopsided), "landmark_motion": LandmarkMotion()(lopsided)}
    assert results["blink_physiology"].assessment == "inconsistent"
    f = fuse(results, [0])  # no validation record: an observation, the finding stays inconclusive
    assert f["value"] == "inconclusive" and f["reasons"][0]["rule"] == "unvalidated"
    assert f["reasons"][1]["detector"] == "blink_physiology" and "one-eyed" in f["reasons"][1]["text"]
    f = fuse(results, [0], validation={"blink_physiology": validated()})
    assert f["value"] == "inconsistent"


@pytest.mark.parametrize("clip", ["real/grid_brbk7n.mpg"])
def test_analysis_json_carries_the_finding(media: Any, clip: str) -> None:
    from core.pipeline import AnalysisOptions, analyze

    a = analyze(media / clip, AnalysisOptions(detectors=["blink_physiology", "landmark_motion"]))
    f = a["finding"]
    assert f["value"] in ("consistent", "inconsistent", "inconclusive")
    assert set(f["per_track"]) == {str(x["track_id"]) for x in a["faces"]}
    assert f["value"] == "inconclusive"  # 3 s of a real face: thin evidence
    assert np.isfinite(a["detectors"]["landmark_motion"]["metrics"]["median_irregularity"])


@pytest.mark.parametrize("clip", ["real/ffpp_youtube_c40_469.mp4", "real/voxceleb2_pcavs_audiosrc_681100216.mp4"])
def test_genuine_compressed_or_small_eyed_footage_is_not_called_inconsistent(media: Any, clip: str) -> None:
    """Genuine clips whose blinks measure shallow (c40 compression blur, 21 px eyes): version 1 of
    the rules read each of them inconsistent through blink completeness."""
    from core.pipeline import AnalysisOptions, analyze

    a = analyze(media / clip, AnalysisOptions(detectors=["blink_physiology", "landmark_motion", "av_sync"]))
    bp = a["detectors"]["blink_physiology"]
    main = bp["per_track"][str(bp["metrics"]["main_track"])]
    assert main["n_blinks"] >= 3 and main["judged_blinks"] == 0 and not main["depth"]["measurable"]
    assert all(d.get("assessment") != "inconsistent" for d in a["detectors"].values())
    assert a["finding"]["value"] != "inconsistent"
