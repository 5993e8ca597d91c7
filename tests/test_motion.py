"""Landmark motion on synthetic landmark series: alignment, flicker, head-motion model, coherence."""

from __future__ import annotations

import numpy as np
import pytest

from core.signals.motion import MotionParams, align, measure_motion
from tests.factories import FPS, face_template, make_context, make_facepass, make_track

LOWER_LIP = np.r_[55:60, 65:68]
CHIN = np.arange(5, 12)
MOUTH = np.arange(48, 68)


def transform(lm: np.ndarray, angle: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    centre = lm.mean(axis=0)
    return (lm - centre) @ rot.T * scale + centre + np.asarray(shift)


def talking_face(
    n: int, jaw_follows: bool, freq_hz: float = 4.0, amp_px: float = 13.0, head: bool = True
) -> np.ndarray:
    """(n, 68, 2): the mouth opens and closes; the chin drops with it or stays rigid."""
    base = face_template()
    t = np.arange(n) / FPS
    opening = amp_px * (1 - np.cos(2 * np.pi * freq_hz * t)) / 2
    out = np.repeat(base[None], n, axis=0)
    out[:, LOWER_LIP, 1] += opening[:, None]
    if jaw_follows:
        out[:, CHIN, 1] += 0.8 * opening[:, None]
    if head:
        for i in range(n):
            out[i] = transform(out[i], 0.08 * np.sin(t[i]), 1 + 0.05 * np.sin(0.7 * t[i]), (20 * np.sin(0.5 * t[i]), 5 * t[i]))
    return out


def test_alignment_removes_similarity_motion() -> None:
    rng = np.random.default_rng(0)
    base = face_template()
    lm = np.stack([transform(base, rng.uniform(-0.3, 0.3), rng.uniform(0.5, 2.0), tuple(rng.uniform(-80, 80, 2))) for _ in range(50)])
    aligned, params = align(lm)
    assert np.abs(aligned - aligned[0]).max() < 1e-6
    # canonical units: outer eye corners one apart
    assert np.linalg.norm(aligned[0, 45] - aligned[0, 36]) == pytest.approx(1.0, abs=1e-6)
    tm = measure_motion(np.arange(50), lm, FPS)
    assert np.nanmax(tm.flicker["mouth"]) < 1e-3  # nothing moves once the head motion is removed
    assert np.nanmedian(tm.head_speed) > 1.0  # ... and the head motion itself is measured


def test_velocity_is_in_iod_per_second() -> None:
    n = 60
    lm = np.repeat(face_template()[None], n, axis=0)
    lm[:, MOUTH, 0] += np.arange(n)[:, None] * 1.3  # mouth slides 1.3 px/frame; IOD is 130 px
    tm = measure_motion(np.arange(n), lm, FPS)
    assert np.nanmedian(tm.velocity["mouth"]) == pytest.approx(1.3 / 130 * FPS, rel=0.05)
    assert np.nanmedian(tm.velocity["nose"]) < 0.01
    assert np.nanmax(tm.flicker["mouth"]) < 1e-3  # uniform motion is not flicker


def test_jittered_mouth_segment_is_irregular_and_located() -> None:
    from core.detectors.landmark_motion import LandmarkMotion

    n = int(12 * FPS)
    rng = np.random.default_rng(1)
    lm = talking_face(n, jaw_follows=True) + rng.normal(0, 0.3, (n, 68, 2))
    lm[100:150, MOUTH] += rng.normal(0, 2.5, (50, MOUTH.size, 2))  # the mouth shimmers for 2 s
    tm = measure_motion(np.arange(n), lm, FPS)
    flagged = [w for w in tm.windows if w["irregular"]]
    assert flagged and all(w["region"] == "mouth" for w in flagged)
    assert all(w["end_frame"] >= 100 and w["start_frame"] <= 149 for w in flagged)
    quiet = [w["score"] for w in tm.windows if w["end_frame"] < 95 or w["start_frame"] > 155]
    assert max(quiet) < 1.6  # the rest of the clip stays near 1 (as steady as itself)

    fp = make_facepass([make_track(n, landmarks=lm)])
    res = LandmarkMotion()(make_context(fp))
    assert res.status == "ok" and res.assessment == "inconclusive"
    segs = [s for s in res.segments if "flicker" in s.reason]
    assert len(segs) == 1 and segs[0].start_frame <= 100 <= segs[0].end_frame and "mouth" in segs[0].reason
    assert res.per_track["0"]["irregular_windows"] == len(flagged)
    curve = res.to_dict()["curves"]["landmark irregularity (track 0)"]
    assert len(curve["start_frame"]) == len(curve["score"]) == len(tm.windows)


def test_flicker_that_head_motion_explains_is_not_irregular() -> None:
    n = int(12 * FPS)
    rng = np.random.default_rng(2)
    base = face_template()
    t = np.arange(n) / FPS
    speed = 0.2 + np.sin(2 * np.pi * t / 6) ** 2  # the head speeds up and slows down
    pos = np.cumsum(speed) * 8.0
    lm = np.stack([transform(base, 0.0, 1.0, (pos[i], 0.0)) for i in range(n)])
    lm += rng.normal(0, 1, (n, 68, 2)) * (0.05 + 1.5 * speed[:, None, None])  # blur-like noise with speed
    tm = measure_motion(np.arange(n), lm, FPS)
    raw = np.array([w["flicker"]["mouth"] for w in tm.windows])
    assert raw.max() / raw.min() > 3  # the raw flicker does change a lot ...
    assert max(w["score"] for w in tm.windows) < MotionParams().irregular_above  # ... but head motion explains it


def test_mouth_moving_on_rigid_jaw_is_decoupled() -> None:
    from core.detectors.landmark_motion import LandmarkMotion

    n = int(8 * FPS)
    rng = np.random.default_rng(3)
    rigid = talking_face(n, jaw_follows=False) + rng.normal(0, 0.3, (n, 68, 2))
    natural = talking_face(n, jaw_follows=True) + rng.normal(0, 0.3, (n, 68, 2))
    tr, tn = measure_motion(np.arange(n), rigid, FPS), measure_motion(np.arange(n), natural, FPS)
    cr = [w["coupling"] for w in tr.windows if w["coupling"] is not None]
    cn = [w["coupling"] for w in tn.windows if w["coupling"] is not None]
    assert len(cr) == len(tr.windows) and len(cn) == len(tn.windows)  # the mouth moves throughout
    assert np.median(cn) > 0.9 and abs(np.median(cr)) < 0.3
    assert all(w["decoupled"] for w in tr.windows) and not any(w["decoupled"] for w in tn.windows)
    assert np.median([w["jaw_ratio"] for w in tn.windows]) == pytest.approx(0.8, abs=0.15)

    res = LandmarkMotion()(make_context(make_facepass([make_track(n, landmarks=rigid)])))
    segs = [s for s in res.segments if "rigid jaw" in s.reason]
    assert len(segs) == 1 and segs[0].start_frame == 0
    assert res.per_track["0"]["decoupled_windows"] == len(tr.windows)
    assert res.assessment == "inconclusive"  # uncalibrated: a measurement, not a reading


def test_short_track_is_unavailable() -> None:
    from core.detectors.landmark_motion import LandmarkMotion

    res = LandmarkMotion()(make_context(make_facepass([make_track(20)])))
    assert res.status == "unavailable" and "too short" in res.per_track["0"]["reasons"][0]


def test_gaps_in_the_track_are_not_bridged() -> None:
    n = 100
    lm = np.repeat(face_template()[None], n, axis=0)
    lm[50:, MOUTH] += 5.0  # a jump across a gap in the track must not count as motion
    frames = np.r_[np.arange(50), np.arange(80, 130)]
    tm = measure_motion(frames, lm, FPS)
    assert np.isnan(tm.velocity["mouth"][50]) and np.nanmax(tm.velocity["mouth"]) < 1e-6
    assert all(w["end_frame"] < 50 or w["start_frame"] >= 80 for w in tm.windows)


def test_still_face_has_no_irregular_window() -> None:
    n = 100
    lm = np.repeat(face_template()[None], n, axis=0)
    lm[50:75, MOUTH] += np.random.default_rng(4).normal(0, 1e-4, (25, MOUTH.size, 2))  # rounding-level noise
    tm = measure_motion(np.arange(n), lm, FPS)
    assert not any(w["irregular"] for w in tm.windows)


def test_blocks_give_the_same_motion(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounded memory (issue 13): alignment and flicker run in blocks of frames and the Theil-Sen
    slope over blocks of pairs; tiny blocks give the same values as whole arrays, to the bit."""
    import core.signals.motion as motion

    rng = np.random.default_rng(5)
    lm = talking_face(700, jaw_follows=False) + rng.normal(0, 0.4, (700, 68, 2))
    frames = np.r_[np.arange(300), np.arange(303, 703)]  # a gap
    whole, whole_al = measure_motion(frames, lm, FPS), align(lm)
    monkeypatch.setattr(motion, "_FRAMES_AT_ONCE", 7)
    monkeypatch.setattr(motion, "_PAIRS_AT_ONCE", 100)
    monkeypatch.setattr(motion, "_SCIPY_PAIRS", 0)
    blocks, blocks_al = measure_motion(frames, lm, FPS), align(lm)
    assert all(np.array_equal(a, b) for a, b in zip(whole_al, blocks_al))
    for name in whole.flicker:
        assert np.array_equal(whole.flicker[name], blocks.flicker[name], equal_nan=True)
    for name in whole.velocity:
        assert np.array_equal(whole.velocity[name], blocks.velocity[name], equal_nan=True)
    assert np.array_equal(whole.head_speed, blocks.head_speed, equal_nan=True)
    assert whole.windows == blocks.windows


def test_theil_sen_is_scipys(monkeypatch: pytest.MonkeyPatch) -> None:
    from scipy.stats import theilslopes

    import core.signals.motion as motion

    monkeypatch.setattr(motion, "_SCIPY_PAIRS", 0)  # always the bounded selection
    monkeypatch.setattr(motion, "_PAIRS_AT_ONCE", 1000)
    rng = np.random.default_rng(1)
    for n in (2, 3, 4, 51, 800):
        for ties in (False, True):
            x = rng.normal(size=n)
            y = 2 * x + rng.standard_t(2, size=n)
            if ties:
                x, y = np.round(x, 1), np.round(y)
            if np.ptp(x) == 0:
                continue
            r = theilslopes(y, x)
            assert motion.theil_sen(y, x) == (r[0], r[1])
