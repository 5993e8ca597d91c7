"""Blink physiology on synthetic landmark series: each measure and flag reacts to what it claims."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.face.facepass import FaceTrack
from core.signals.blinks import detect_blinks
from core.signals.physiology import PhysiologyParams, assess, measure_track, poisson_rate_ci
from tests.factories import FPS, every, face_template, make_context, make_facepass, make_track, render_eyes  # noqa: F401 - also imported from here


def measure(track: FaceTrack, params: PhysiologyParams | None = None):  # noqa: ANN201
    events, _ = detect_blinks(track.frames, track.ear, FPS)
    return measure_track(track.track_id, track.frames, track.ear, track.landmarks, events, FPS, params)




# ------------------------------------------------------------------------------------------


def test_poisson_interval_matches_exact_values() -> None:
    lo, hi = poisson_rate_ci(2, 8 / 60)
    assert lo == pytest.approx(1.82, abs=0.02) and hi == pytest.approx(54.2, abs=0.2)
    lo0, hi0 = poisson_rate_ci(0, 1.0)
    assert lo0 == 0.0 and hi0 == pytest.approx(3.69, abs=0.01)


def test_known_rate_over_a_minute_is_measured_and_consistent() -> None:
    n = int(60 * FPS)
    track = make_track(n, every(4.0, n))  # one full blink every 4 s: 15/min
    tp = measure(track)
    assert tp.n_blinks == 15
    assert tp.rate_per_min == pytest.approx(15.0, abs=0.5)
    assert tp.ibi_mean_s == pytest.approx(4.0, abs=0.05)
    assert tp.ibi_cv is not None and tp.ibi_cv < 0.05
    assert tp.rate_flag is None
    assert tp.flag_counts["incomplete"] == 0 and tp.flag_counts["one_eyed"] == 0
    value, reasons = assess(tp)
    assert value == "consistent", reasons


def test_rate_tracks_the_true_rate() -> None:
    n = int(60 * FPS)
    slow, fast = measure(make_track(n, every(6.0, n))), measure(make_track(n, every(2.0, n)))
    assert slow.rate_per_min == pytest.approx(10.0, abs=0.5)
    assert fast.rate_per_min == pytest.approx(30.0, abs=0.5)
    assert fast.longest_no_blink_s < slow.longest_no_blink_s


def test_no_blink_for_a_minute_is_inconsistent_with_the_norms() -> None:
    tp = measure(make_track(int(60 * FPS)))
    assert tp.n_blinks == 0 and tp.rate_flag == "low"
    value, reasons = assess(tp)
    assert value == "inconsistent"
    assert any("below even the reading rate" in r for r in reasons)
    assert tp.longest_no_blink_s == pytest.approx(60.0, abs=0.1)


def test_short_clip_gives_no_rate_and_is_inconclusive() -> None:
    n = int(3 * FPS)
    tp = measure(make_track(n, [(30, 7, 0.8, 0.8)]))
    assert tp.n_blinks == 1
    assert tp.rate_per_min is None and tp.observed_per_min == pytest.approx(20.0, abs=0.5)
    assert tp.rate_ci95_per_min is not None and tp.rate_ci95_per_min[1] > 100  # honest: no information
    value, reasons = assess(tp)
    assert value == "inconclusive"
    assert any("below 30 s" in r for r in reasons)


@pytest.mark.parametrize("dur", [4, 8, 12])
def test_known_duration_is_measured(dur: int) -> None:
    n = int(12 * FPS)
    tp = measure(make_track(n, every(3.0, n, dur=dur)))
    assert tp.n_blinks == 4
    true_ms = dur * 1000 / FPS
    # event edges sit where the lids are near open: within two frames of the true length
    assert abs(tp.mean_duration_ms - true_ms) <= 2 * 1000 / FPS, (tp.mean_duration_ms, true_ms)


def test_long_blink_is_flagged_too_long_and_normal_is_not() -> None:
    n = int(12 * FPS)
    tp = measure(make_track(n, [(40, 7, 0.8, 0.8), (150, 25, 0.8, 0.8)]))
    assert [("too_long" in b.flags) for b in tp.blinks] == [False, True]
    assert all(b.completeness > 0.6 for b in tp.blinks)


def test_one_eyed_blinks_are_flagged_and_repeated_ones_are_inconsistent() -> None:
    n = int(10 * FPS)
    tp = measure(make_track(n, every(2.0, n, ql=0.85, qr=0.05)))
    assert tp.n_blinks >= 4
    assert all("one_eyed" in b.flags for b in tp.blinks)
    assert all(b.closure_left > 0.7 and b.closure_right < 0.2 for b in tp.blinks)
    value, reasons = assess(tp)
    assert value == "inconsistent" and any("one-eyed" in r for r in reasons)
    # the same blinks with both eyes closing: no one-eyed flag
    both = measure(make_track(n, every(2.0, n, ql=0.85, qr=0.85)))
    assert not any("one_eyed" in b.flags for b in both.blinks)
    assert all(b.asymmetry < 0.1 for b in both.blinks)


def test_single_one_eyed_blink_is_reported_but_no_pattern() -> None:
    n = int(10 * FPS)
    tp = measure(make_track(n, [(40, 7, 0.85, 0.05)]))
    assert tp.flag_counts["one_eyed"] == 1
    value, reasons = assess(tp)
    assert value == "inconclusive" and any("too few blinks for a pattern" in r for r in reasons)


def test_incomplete_blinks_are_flagged() -> None:
    n = int(10 * FPS)
    tp = measure(make_track(n, every(2.0, n, ql=0.38, qr=0.38)))
    assert tp.n_blinks >= 4
    assert all("incomplete" in b.flags for b in tp.blinks)
    assert tp.mean_completeness == pytest.approx(0.38, abs=0.06)
    assert assess(tp)[0] == "inconsistent"
    full = measure(make_track(n, every(2.0, n, ql=0.8, qr=0.8)))
    assert full.flag_counts["incomplete"] == 0
    assert assess(full)[0] == "inconclusive"  # normal blinks, but 10 s is thin evidence


def test_eyes_out_of_step_are_flagged() -> None:
    n = int(6 * FPS)
    blinks = [(40, 8, 0.8, 0.0), (44, 8, 0.0, 0.8)]  # left eye closes 4 frames (160 ms) before the right
    tp = measure(make_track(n, blinks))
    assert tp.n_blinks == 1
    assert tp.blinks[0].lag_ms == pytest.approx(-160, abs=45)
    assert "out_of_step" in tp.blinks[0].flags


def test_small_eyes_are_not_judged() -> None:
    n = int(10 * FPS)
    tp = measure(make_track(n, every(2.0, n, ql=0.38, qr=0.38), eye_w=12.0))
    assert tp.judged_blinks == 0 and tp.flag_counts["incomplete"] == 0
    value, reasons = assess(tp)
    assert value == "inconclusive" and any("not judged" in r for r in reasons)


def test_detector_result_shape_and_segments(tmp_path: Path) -> None:
    from core.detectors.blink_physiology import BlinkPhysiology

    n = int(10 * FPS)
    fp = make_facepass([make_track(n, every(2.0, n, ql=0.85, qr=0.05)), make_track(n, every(2.5, n), track_id=1, seed=1)])
    res = BlinkPhysiology()(make_context(fp, video=render_eyes(fp, tmp_path / "eyes.mp4")))
    assert res.status == "ok", res.note
    assert res.assessment == "inconsistent"  # one face with lopsided blinks makes the evidence so
    assert res.per_track["0"]["assessment"] == "inconsistent"
    assert res.per_track["1"]["assessment"] == "inconclusive"
    assert res.segments and all(s.track_id == 0 and "one-eyed" in s.reason for s in res.segments)
    assert "norms" in res.metrics and "Bentivoglio" in str(res.metrics["norms"])
    d = res.to_dict()
    assert d["curves"]["blink completeness (track 0)"]["start_frame"]
    assert len(d["curves"]["lid closure, image-left eye (track 1)"]["values"]) == n


def test_detector_parameters_are_honoured() -> None:
    from core.detectors.blink_physiology import BlinkPhysiology

    n = int(10 * FPS)
    fp = make_facepass([make_track(n, every(2.0, n, ql=0.85, qr=0.85))])
    res = BlinkPhysiology()(make_context(fp, {"blink_physiology": {"min_rate_s": 5.0}}))
    assert res.metrics["blink_rate_per_min"] == pytest.approx(30.0, abs=1.0)
    assert res.parameters["min_rate_s"] == 5.0


def test_lost_eyes_and_degenerate_tracks_do_not_crash() -> None:
    from core.detectors.blink_physiology import BlinkPhysiology

    n = int(10 * FPS)
    t = make_track(n, every(2.0, n))
    t.ear[100:140] = np.nan  # eyes lost for 1.6 s
    tp = measure(t)
    assert tp.visible_s == pytest.approx((n - 40) / FPS)
    assert all(b.start_frame >= 140 or b.end_frame < 100 for b in tp.blinks)
    blind = make_track(n)
    blind.ear[:] = np.nan
    tp = measure(blind)
    assert tp.visible_s == 0 and tp.n_blinks == 0 and tp.rate_ci95_per_min is None
    assert assess(tp)[0] == "inconclusive"
    res = BlinkPhysiology()(make_context(make_facepass([make_track(1), blind])))
    assert res.status == "ok" and res.assessment == "inconclusive"


def test_zero_frame_rate_is_unavailable() -> None:
    from core.detectors.blink_physiology import BlinkPhysiology
    from core.detectors.landmark_motion import LandmarkMotion

    fp = make_facepass([make_track(100)])
    fp.fps = 0.0
    ctx = make_context(fp)
    for det in (BlinkPhysiology(), LandmarkMotion()):
        res = det(ctx)
        assert res.status == "unavailable" and "frame rate" in res.note


def test_structured_flags_carry_value_norm_and_source() -> None:
    from core.detectors.blink_physiology import BlinkPhysiology

    n = int(12 * FPS)
    fp = make_facepass([make_track(n, [(40, 7, 0.8, 0.8), (150, 25, 0.8, 0.8)])])
    res = BlinkPhysiology()(make_context(fp))
    flags = res.per_track["0"]["flags"]
    assert [f["kind"] for f in flags] == ["too_long"]
    assert flags[0]["measured"]["duration_ms"] > 400 and flags[0]["norm"]["range_ms"] == [100.0, 400.0]
    assert "Caffier" in flags[0]["source"] and flags[0]["start_frame"] <= 162 <= flags[0]["end_frame"]
    still = BlinkPhysiology()(make_context(make_facepass([make_track(int(60 * FPS))])))
    (rate,) = still.per_track["0"]["flags"]
    assert rate["kind"] == "rate_low" and rate["measured"]["ci95_per_min"][1] < 8 and "Doughty" in rate["source"]


def test_turned_head_is_time_without_eyes(tmp_path: Path) -> None:
    """One-eyed blinks while the head is turned (EAR there is not a lid measure) do not count, and
    the time turned away is not visible-eye time."""
    from core.detectors.blink_physiology import BlinkPhysiology
    from core.pipeline import eye_checks

    n = int(16 * FPS)
    half = n // 2
    lm = np.repeat(face_template()[None], n, axis=0)
    lm[half:, 30, 0] += 0.8 * 110  # nose tip 80% of the way to the jaw end: yaw proxy 0.8
    blinks = every(2.0, half, ql=0.8, qr=0.8) + [(s + half, 7, 0.9, 0.0) for s in range(20, half - 12, 50)]
    t = make_track(n, blinks, landmarks=lm)
    fp = make_facepass([t])
    ok = eye_checks(fp)[0].assessable
    assert ok[: half - 3].all() and not ok[half + 3 :].any()

    unmasked = make_context(fp)  # events found without the mask: the one-eyed ones among them
    assert any(e.start_frame >= half for e in unmasked.blinks[0])
    for ctx in (unmasked, make_context(fp)):
        if ctx is not unmasked:
            ctx.blinks = {0: detect_blinks(t.frames, t.ear, FPS, mask=ok)[0]}
        res = BlinkPhysiology()(ctx)
        tr = res.per_track["0"]
        assert all(b["end_frame"] < half for b in tr["blinks"])
        assert tr["flag_counts"]["one_eyed"] == 0 and res.assessment != "inconsistent"
        assert tr["visible_s"] == pytest.approx(int(ok.sum()) / FPS) and tr["not_assessable_s"] > 7.5
        assert tr["eyes_assessable_frames"] == int(ok.sum()) and tr["eyes_not_assessable"]["head_turned"] > 0
        assert any("not assessable" in r for r in tr["reasons"])
        closure = res.to_dict()["curves"]["lid closure, image-left eye (track 0)"]["values"]
        assert closure[half + 10] is None and closure[10] is not None

    # the control: on a frontal face the same one-eyed blinks are measured and flagged
    frontal = make_facepass([make_track(n, blinks)])
    res = BlinkPhysiology()(make_context(frontal, video=render_eyes(frontal, tmp_path / "frontal.mp4")))
    assert res.per_track["0"]["flag_counts"]["one_eyed"] >= 3 and res.per_track["0"]["visible_s"] == pytest.approx(n / FPS)


# --- blink depth: judged only on eyes resolved well enough (issue: genuine footage read inconsistent)


def test_shallow_blinks_on_small_noisy_eyes_do_not_read_inconsistent(tmp_path: Path) -> None:
    from core.detectors.blink_physiology import BlinkPhysiology

    n = int(12 * FPS)
    # a distant face: 22 px eyes with 0.6 px of landmark jitter, every blink measuring ~40 % deep
    fp = make_facepass([make_track(n, every(2.0, n, ql=0.4, qr=0.4), eye_w=22.0, noise_px=0.6)])
    res = BlinkPhysiology()(make_context(fp, video=render_eyes(fp, tmp_path / "small.mp4")))
    tr = res.per_track["0"]
    assert tr["n_blinks"] >= 4 and tr["judged_blinks"] == 0
    assert res.assessment != "inconsistent" and tr["flag_counts"]["incomplete"] == 0
    assert not tr["depth"]["measurable"] and "px wide (< 30 px)" in " ".join(tr["depth"]["reasons"])
    assert any("blink depth not measurable" in r for r in tr["reasons"])
    # the completeness is still reported as a measurement, per blink
    assert all(0.2 < b["completeness"] < 0.6 for b in tr["blinks"])


def test_shallow_blinks_on_large_blurred_eyes_do_not_read_inconsistent(tmp_path: Path) -> None:
    from core.detectors.blink_physiology import BlinkPhysiology

    n = int(12 * FPS)
    fp = make_facepass([make_track(n, every(2.0, n, ql=0.38, qr=0.38))])  # 40 px eyes
    blurred = BlinkPhysiology()(make_context(fp, video=render_eyes(fp, tmp_path / "blurred.mp4", blur_sigma=2.5)))
    tr = blurred.per_track["0"]
    assert blurred.assessment == "inconclusive" and tr["judged_blinks"] == 0
    assert tr["depth"]["blur_px"] > 1.5 and "blurred" in " ".join(tr["depth"]["reasons"])
    # the same landmarks on sharp frames: the depth is judged and the pattern reads
    sharp = BlinkPhysiology()(make_context(fp, video=render_eyes(fp, tmp_path / "sharp.mp4")))
    assert sharp.per_track["0"]["depth"]["blur_px"] < 1.5
    assert sharp.assessment == "inconsistent" and sharp.per_track["0"]["flag_counts"]["incomplete"] >= 4


def test_clearly_incomplete_blinks_on_large_clean_eyes_still_read_inconsistent(tmp_path: Path) -> None:
    from core.detectors.blink_physiology import BlinkPhysiology

    n = int(12 * FPS)
    fp = make_facepass([make_track(n, every(2.0, n, ql=0.3, qr=0.3), eye_w=44.0, noise_px=0.05)])
    res = BlinkPhysiology()(make_context(fp, video=render_eyes(fp, tmp_path / "clean.mp4")))
    tr = res.per_track["0"]
    assert tr["depth"]["measurable"], tr["depth"]
    assert res.assessment == "inconsistent" and tr["judged_blinks"] == tr["n_blinks"] >= 4
    assert any("blinks incomplete" in r for r in tr["reasons"])


def test_noisy_ear_on_large_eyes_is_not_a_depth_measure() -> None:
    n = int(12 * FPS)
    noisy = measure(make_track(n, every(2.0, n, ql=0.4, qr=0.4), noise_px=1.5), PhysiologyParams())
    assert noisy.depth is not None and noisy.depth.closure_noise is not None and noisy.depth.closure_noise > 0.1
    assert not noisy.depth.measurable and noisy.judged_blinks == 0
    assert assess(noisy)[0] != "inconsistent"
    clean = measure(make_track(n, every(2.0, n, ql=0.4, qr=0.4), noise_px=0.05))
    assert clean.depth is not None and clean.depth.measurable and assess(clean)[0] == "inconsistent"


def test_undecodable_frames_leave_depth_unjudged() -> None:
    """Without frames the eyes' sharpness is unknown: the detector does not judge depth."""
    from core.detectors.blink_physiology import BlinkPhysiology

    n = int(12 * FPS)
    fp = make_facepass([make_track(n, every(2.0, n, ql=0.3, qr=0.3))])
    res = BlinkPhysiology()(make_context(fp))  # its path does not exist
    tr = res.per_track["0"]
    assert res.assessment == "inconclusive" and tr["judged_blinks"] == 0
    assert "could not be measured" in " ".join(tr["depth"]["reasons"])


def test_edge_blur_measure_follows_a_known_blur() -> None:
    import cv2

    from core.signals.eye_quality import edge_blur_px

    img = np.full((80, 80), 200.0)
    img[:, 40:] = 40.0  # a vertical step edge
    sharp = edge_blur_px(img.astype(np.uint8), (10, 10, 70, 70))
    assert sharp is not None and sharp < 1.0
    for sigma in (2.0, 3.0):
        blurred = cv2.GaussianBlur(img, (0, 0), sigma).astype(np.uint8)
        est = edge_blur_px(blurred, (10, 10, 70, 70))
        assert est is not None and est == pytest.approx(sigma, rel=0.25)
    assert edge_blur_px(np.full((80, 80), 128, np.uint8), (10, 10, 70, 70)) is None  # flat: nothing to measure
