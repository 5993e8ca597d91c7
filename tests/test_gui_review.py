"""Review data, overlays and the timeline on a synthetic two-face pass (no video decoding)."""

from __future__ import annotations

import numpy as np
import pytest

from core.face.facepass import FacePass, FaceTrack

pytest.importorskip("pytestqt")


def _track(tid: int, x0: float, n: int = 60, blink_at: int = 30) -> FaceTrack:
    frames = np.arange(n, dtype=np.int32)
    # a crude face: 68 points spread over a 40x40 box, the eyes as horizontal hexagons
    base = np.zeros((68, 2), np.float32)
    base[:, 0] = x0 + np.linspace(0, 40, 68)
    base[:, 1] = 20 + np.linspace(0, 40, 68) % 40
    eye = np.array([[0, 0], [3, -2], [6, -2], [9, 0], [6, 2], [3, 2]], np.float32)
    base[36:42] = eye + (x0 + 8, 30)
    base[42:48] = eye + (x0 + 24, 30)
    lm = np.repeat(base[None], n, axis=0)
    ear = np.full((n, 2), 0.33, np.float32)
    ear[blink_at - 1 : blink_at + 2] = 0.08  # a 3-frame blink
    boxes = np.repeat(np.array([[x0, 15, x0 + 40, 65]], np.float32), n, axis=0)
    return FaceTrack(tid, frames, boxes, lm, ear, np.linspace(0.0, 0.3, n).astype(np.float32), np.ones(n, bool))


@pytest.fixture
def review():
    from desktop.review import build_review

    fp = FacePass(60, 25.0, np.arange(60) / 25.0, 160, 80, [_track(0, 10), _track(1, 100, blink_at=45)])
    analysis = {
        "parameters": {"blinks": {"mode": "fixed", "fixed_threshold": 0.2}},
        "detectors": {
            "d": {"status": "ok", "segments": [{"start_frame": 5, "end_frame": 9, "score": 0.8, "reason": "r", "track_id": 1}],
                  "curves": {"w": {"track_id": [0, 1], "start_frame": [0, 20], "end_frame": [19, 39], "score": [0.2, 0.9]}}},
        },
    }
    return build_review(analysis, facepass=fp)


def test_eyes_closed_inside_blinks_and_below_threshold(review):
    t0, t1 = review.tracks
    assert [b["apex_frame"] for b in t0.blinks] and t0.blinks[0]["start_frame"] <= 30 <= t0.blinks[0]["end_frame"]
    assert t0.eyes_closed(t0.row(30)) == (True, True)
    assert t0.eyes_closed(t0.row(10)) == (False, False)
    assert t1.eyes_closed(t1.row(45)) == (True, True) and t1.eyes_closed(t1.row(30)) == (False, False)


def test_overlays_burn_into_the_frame(qtbot, review):
    from desktop.exhibits import _qimage_rgb
    from desktop.overlays import render_frame

    rgb = np.zeros((80, 160, 3), np.uint8)
    plain = _qimage_rgb(render_frame(rgb, review, 30, ()))
    assert np.array_equal(plain, rgb)  # no overlays: the frame untouched
    eyes = _qimage_rgb(render_frame(rgb, review, 30, ("eyes",)))
    red = (eyes[..., 0] > 150) & (eyes[..., 1] < 120)
    green = (eyes[..., 1] > 150) & (eyes[..., 0] < 120)
    assert red[:, :60].any() and not green[:, :60].any()  # face 0 blinks at frame 30: red eyes
    assert green[:, 90:].any() and not red[:, 90:].any()  # face 1 has its eyes open
    boxes = _qimage_rgb(render_frame(rgb, review, 30, ("boxes",)))
    assert boxes[15:66, 8:13].any() and not boxes[70:, :].any()


def test_timeline_track_selector_filters_curves(qtbot, review):
    from desktop.timeline import Timeline

    tl = Timeline()
    qtbot.addWidget(tl)
    tl.set_clip(None, np.arange(60) / 25.0)
    tl.set_review(review)
    assert tl.track_box.count() == 2 and tl.track_box.isEnabled()
    got: list[object] = []
    tl.trackChanged.connect(got.append)
    tl.track_box.setCurrentIndex(1)
    assert got == [1] and tl.track_id == 1
    assert review.window_scores(25, 1) == {"d:w": pytest.approx(0.9)}
    assert review.window_scores(25, 0) == {}
    requested: list[int] = []
    tl.frameRequested.connect(requested.append)
    tl.click_frame(7)  # inside the flagged segment 5..9
    assert requested == [5] and tl.cursor_frame == 5
