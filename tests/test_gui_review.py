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
    # jaw ends and nose tip of a frontal face (the eyes-assessable check reads the yaw from them)
    base[0], base[16], base[30] = (x0, 35), (x0 + 40, 35), (x0 + 20, 40)
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


def _turned_pass():
    """A frontal face with the head turned away for frames 70-129, blinks at 30, 100 (turned) and 160."""
    from tests.factories import FPS, SIZE, blink_ear, track

    n = 200
    yaw = np.zeros(n)
    yaw[70:130] = 35.0
    t = track(yaw, blink_ear(n, [30, 100, 160]))
    return FacePass(n, FPS, np.arange(n) / FPS, SIZE, SIZE, [t])


def _stored_run(fp: FacePass) -> dict:
    """What `verity analyze` stores for this pass: the pipeline's parameters and faces[] entries."""
    from core.pipeline import AnalysisOptions, faces_summary
    from core.signals.eyes import track_blinks

    options = AnalysisOptions()
    blinks, eyes = {}, {}
    for t in fp.tracks:
        blinks[t.track_id], _, eyes[t.track_id] = track_blinks(t, fp.width, fp.height, fp.fps, options.blinks, options.eyes)
    return {"parameters": options.parameters(), "faces": faces_summary(fp, blinks, eyes), "detectors": {}}


def test_blink_bands_equal_the_json_events_with_a_turned_stretch():
    from core.signals.blinks import detect_blinks
    from desktop.review import build_review

    fp = _turned_pass()
    t = fp.tracks[0]
    assert len(detect_blinks(t.frames, t.ear, fp.fps)[0]) == 3  # the control: unmasked, the turned blink is found
    run = _stored_run(fp)
    json_events = run["faces"][0]["blinks"]
    assert [e["apex_frame"] for e in json_events] == [32, 162]  # not the one at 100 (head turned)
    for stored in (run, {**run, "faces": []}):  # events read from the JSON, or recomputed when absent
        tv = build_review(stored, facepass=fp).tracks[0]
        assert [(e["start_frame"], e["end_frame"]) for e in tv.blinks] == [(e["start_frame"], e["end_frame"]) for e in json_events]
        assert not tv.in_blink[95:110].any()
        assert tv.eyes_closed(tv.row(102)) == (False, False)  # EAR is low there, but no verdict on a turned head
    # an analysis from before the mask (no parameters.eyes) with the unmasked events: the GUI shows the masked ones
    old = {**run, "parameters": {"blinks": run["parameters"]["blinks"]},
           "faces": [{**run["faces"][0], "blinks": [e.to_dict() for e in detect_blinks(t.frames, t.ear, fp.fps)[0]]}]}
    assert [e["apex_frame"] for e in build_review(old, facepass=fp).tracks[0].blinks] == [32, 162]


def test_stored_eye_parameters_are_used():
    from desktop.review import build_review

    fp = _turned_pass()
    run = _stored_run(fp)
    run["parameters"]["eyes"]["max_yaw"] = 5.0  # a run that let turned heads through
    run["faces"] = []
    tv = build_review(run, facepass=fp).tracks[0]
    assert tv.assessable.all() and [e["apex_frame"] for e in tv.blinks] == [32, 102, 162]


def test_timeline_greys_unassessable_stretches_with_the_reason(qtbot):
    from PySide6.QtCore import Qt

    from desktop.review import build_review
    from desktop.timeline import Timeline

    fp = _turned_pass()
    run = _stored_run(fp)
    review = build_review(run, facepass=fp)
    tv = review.tracks[0]
    stretches = tv.unassessable_stretches()
    assert len(stretches) == 1
    a, b, why = stretches[0]
    assert 68 <= a <= 72 and 127 <= b <= 131 and why == "head turned"
    assert tv.assessable_fraction == pytest.approx(run["faces"][0]["eyes_assessable_fraction"], abs=1e-4)
    tl = Timeline()
    qtbot.addWidget(tl)
    tl.set_clip(None, np.arange(fp.frame_count) / fp.fps)
    tl.set_review(review)
    assert [s for _, s in tl.unassessable_items] == stretches
    item = tl.unassessable_items[0][0]
    assert item.getRegion() == (a - 0.5, b + 0.5) and "head turned" in item.toolTip()
    pct = round(100 * run["faces"][0]["eyes_assessable_fraction"])
    assert f"eyes assessable in {pct}% of face frames" in tl.info.text()
    assert f"{pct}%" in tl.track_box.itemData(0, Qt.ItemDataRole.ToolTipRole)


def test_overlay_eyes_muted_where_not_assessable(qtbot):
    from desktop.exhibits import _qimage_rgb
    from desktop.overlays import render_frame
    from desktop.review import build_review

    fp = _turned_pass()
    review = build_review(_stored_run(fp), facepass=fp)
    rgb = np.zeros((fp.height, fp.width, 3), np.uint8)

    def colours(frame: int) -> tuple[bool, bool, bool]:
        img = _qimage_rgb(render_frame(rgb, review, frame, ("eyes",))).astype(int)
        r, g, b = img[..., 0], img[..., 1], img[..., 2]
        grey = (r > 60) & (abs(r - g) < 12) & (abs(g - b) < 12)
        return bool(((g > 150) & (r < 120)).any()), bool(((r > 150) & (g < 120)).any()), bool(grey.any())

    assert colours(10) == (True, False, False)  # frontal, open: green
    assert colours(32) == (False, True, False)  # frontal, blinking: red
    assert colours(100) == (False, False, True)  # turned (and the EAR dips): grey, no verdict
