"""The "eyes assessable" mask (core.signals.eyes) on synthetic 68-point landmark series.

A rigid 3-D face (orthographic camera) is turned about the vertical axis, so the yaw proxy is
known: (nose depth / jaw half-width) x tan(yaw) = 90/70 x tan(yaw).
"""

from __future__ import annotations

import numpy as np
import pytest

from core.face.facepass import FacePass
from core.pipeline import eye_checks, faces_summary
from core.signals.blinks import detect_blinks
from core.signals.eyes import EyeParams, check_eyes, eyes_assessable, track_blinks, yaw_proxy
from core.signals.physiology import measure_track
from tests.factories import FPS, SIZE, blink_ear, head, project, track  # noqa: F401 - also imported from here
from tests.factories import OPEN_EAR as OPEN


def test_yaw_proxy_follows_the_turn() -> None:
    for deg in (0, 10, 20, 30, 45, 60):  # beyond 38 degrees the nose tip passes the jaw end: > 1
        got = float(yaw_proxy(project(head(), deg)))
        assert got == pytest.approx(90 / 70 * np.tan(np.radians(deg)), abs=1e-6)
    mirrored = project(head(), 0)
    mirrored[[0, 16]] = mirrored[[16, 0]]
    assert np.isnan(yaw_proxy(mirrored))
    assert float(yaw_proxy(project(head(), -25))) < 0 < float(yaw_proxy(project(head(), 25)))  # + = nose to the image right


def test_frontal_face_is_assessable() -> None:
    t = track(np.zeros(60), np.full(60, OPEN))
    ok = eyes_assessable(t, SIZE, SIZE, FPS)
    assert ok.dtype == bool and ok.shape == (60,) and ok.all()
    # a moderate turn (10 degrees: proxy 0.23) still is
    assert eyes_assessable(track(np.full(60, 10.0), np.full(60, OPEN)), SIZE, SIZE, FPS).all()


def test_strongly_turned_face_is_not() -> None:
    t = track(np.full(60, 35.0), np.full(60, OPEN))  # proxy 0.90
    check = check_eyes(t.frames, t.landmarks, SIZE, SIZE, FPS, t.ear)
    assert not check.assessable.any()
    assert check.reason_counts() == {"head_turned": 60, "eyes_small": 0, "outside_frame": 0, "landmarks_implausible": 0}
    assert not eyes_assessable(track(np.full(60, -35.0), np.full(60, OPEN)), SIZE, SIZE, FPS).any()


def test_one_frame_landmark_jump_is_not_a_turn() -> None:
    yaw = np.zeros(40)
    yaw[20] = 40.0  # one frame's fit jumps: the running median ignores it
    assert eyes_assessable(track(yaw, np.full(40, OPEN)), SIZE, SIZE, FPS).all()
    yaw[18:24] = 40.0  # six frames: a turn
    ok = eyes_assessable(track(yaw, np.full(40, OPEN)), SIZE, SIZE, FPS)
    assert not ok[19:23].any() and ok[:17].all() and ok[25:].all()


def test_small_eyes_outside_frame_and_implausible_landmarks() -> None:
    small = track(np.zeros(30), np.full(30, OPEN), scale=0.2)  # eyes 6 px wide
    assert check_eyes(small.frames, small.landmarks, SIZE, SIZE, FPS, small.ear).reason_counts()["eyes_small"] == 30
    t = track(np.zeros(30), np.full(30, OPEN))
    lm = t.landmarks.copy()
    lm[:10] += np.float32([SIZE / 2 + 20, 0])  # the face half out of the picture
    c = check_eyes(t.frames, lm, SIZE, SIZE, FPS, t.ear)
    assert not c.assessable[:10].any() and c.assessable[10:].all() and c.failed["outside_frame"][:10].all()
    assert check_eyes(t.frames, lm, 0, 0, FPS, t.ear).assessable.all()  # frame size unknown: not checked
    wide = t.ear.copy()
    wide[5] = [0.8, 0.7]  # an "eye" taller than half its width
    assert check_eyes(t.frames, t.landmarks, SIZE, SIZE, FPS, wide).failed["landmarks_implausible"].tolist() == [k == 5 for k in range(30)]


def test_bad_input_gives_unassessable_rows_not_a_crash() -> None:
    empty = check_eyes(np.zeros(0, int), np.zeros((0, 68, 2)), SIZE, SIZE, FPS)
    assert empty.assessable.shape == (0,)
    t = track(np.zeros(20), np.full(20, OPEN))
    lm = t.landmarks.copy()
    lm[3] = np.nan
    assert check_eyes(t.frames, lm, SIZE, SIZE, 0.0).assessable.tolist() == [k != 3 for k in range(20)]
    with pytest.raises(ValueError):
        check_eyes(t.frames, t.landmarks[:5], SIZE, SIZE, FPS)
    with pytest.raises(ValueError):
        detect_blinks(t.frames, t.ear, FPS, mask=np.ones(5, bool))


def test_blink_inside_an_unassessable_stretch_is_not_reported() -> None:
    n = 200
    yaw = np.zeros(n)
    yaw[70:130] = 35.0
    ear = blink_ear(n, [30, 100, 160])
    t = track(yaw, ear)
    unmasked, _ = detect_blinks(t.frames, t.ear, FPS)
    assert len(unmasked) == 3  # the control: the EAR dip at 100 is found without the mask
    events, threshold, check = track_blinks(t, SIZE, SIZE, FPS)
    assert [e.apex_frame for e in events] == [32, 162]
    assert not check.assessable[72:128].any()
    assert np.isnan(threshold[~check.assessable]).all()  # no decision where the eyes are not judged
    for e in events:  # no event starts, ends or runs inside the stretch
        assert check.assessable[e.start_frame : e.end_frame + 1].all()


def test_blink_rate_uses_assessable_time_only() -> None:
    n = 1500  # 60 s at 25 fps; the head is turned away for the second half
    yaw = np.where(np.arange(n) < 750, 0.0, 40.0)
    ear = blink_ear(n, list(range(40, 740, 70)) + list(range(790, 1490, 70)))  # 10 + 10 EAR dips
    t = track(yaw, ear)
    fp = FacePass(frame_count=n, fps=FPS, times_s=np.arange(n) / FPS, width=SIZE, height=SIZE, tracks=[t])
    eyes = eye_checks(fp)
    blinks = {0: detect_blinks(t.frames, t.ear, FPS, mask=eyes[0].assessable)[0]}
    face = faces_summary(fp, blinks, eyes)[0]
    assert len(face["blinks"]) == 10
    assert face["eyes_assessable_frames"] == pytest.approx(750, abs=3)
    assert face["eyes_assessable_fraction"] == pytest.approx(0.5, abs=0.01)
    assert face["eyes_not_assessable"]["head_turned"] == n - face["eyes_assessable_frames"]
    assert face["blink_rate_per_min"] == pytest.approx(20.0, rel=0.01)  # 10 blinks in 30 s, not 10 in 60 s
    assert face["frames_with_face"] == n

    # the physiology measures count the same assessable time
    tp = measure_track(0, t.frames, t.ear, t.landmarks, blinks[0], FPS, assessable=eyes[0].assessable)
    assert tp.visible_s == pytest.approx(30.0, abs=0.2)
    assert tp.not_assessable_s == pytest.approx(30.0, abs=0.2)
    assert tp.observed_per_min == pytest.approx(20.0, rel=0.01)


def test_parameters_move_the_gate() -> None:
    t = track(np.full(30, 20.0), np.full(30, OPEN))  # proxy 0.47
    assert eyes_assessable(t, SIZE, SIZE, FPS).all()
    assert not eyes_assessable(t, SIZE, SIZE, FPS, EyeParams(max_yaw=0.3)).any()
