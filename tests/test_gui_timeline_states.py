"""Window states on the timeline: "not measurable" windows are grey bands (no bar, no score), red
comes only from flagged segments. Synthetic analysis dict, no face pass, offscreen Qt."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import gradient_frames

pytest.importorskip("pytestqt")

N = 60
# av_sync-style columnar windows, one per state (not overlapping, so each is its own band)
WINDOWS = [
    (0, 9, "no speech", None, False),
    (10, 19, "face not tracked", None, False),
    (20, 29, "not measurable", None, False),
    (30, 39, "lips follow", 0.2, True),
    (40, 49, "flagged", 1.0, True),
    (50, 59, "not measurable", None, False),
]


def _analysis() -> dict:
    return {
        "evidence": {"video": {"frame_count": N}},
        "detectors": {
            "av_sync": {
                "status": "ok",
                "segments": [{"start_frame": 40, "end_frame": 49, "score": 1.0, "reason": "lips do not follow", "track_id": 0}],
                "frame_predictions": [
                    {"start_frame": a, "end_frame": b, "score": s, "state": st, "measurable": m} for a, b, st, s, m in WINDOWS
                ],
                "curves": {
                    "windows": {
                        "start_frame": [w[0] for w in WINDOWS],
                        "end_frame": [w[1] for w in WINDOWS],
                        "score": [w[3] for w in WINDOWS],
                        "state": [w[2] for w in WINDOWS],
                        "flagged": [w[2] == "flagged" for w in WINDOWS],
                    },
                    "measurable": {
                        "start_frame": [w[0] for w in WINDOWS],
                        "end_frame": [w[1] for w in WINDOWS],
                        "values": [1.0 if w[4] else 0.0 for w in WINDOWS],
                    },
                },
            },
            # another detector, seed-style (no curves): `measurable: false` with a number that must
            # not be shown as a score
            "other": {
                "status": "ok",
                "segments": [],
                "frame_predictions": [
                    {"start_frame": 0, "end_frame": 29, "score": 0.4, "measurable": True},
                    {"start_frame": 30, "end_frame": 59, "score": 0.0, "measurable": False},
                ],
            },
            # no states at all: bars only, nothing grey
            "plain": {"status": "ok", "curves": {"w": {"start_frame": [0, 30], "end_frame": [29, 59], "score": [0.1, 0.7]}}},
        },
    }


def _regions(plot, rgba) -> set[tuple[float, float]]:
    import pyqtgraph as pg

    out = set()
    for item in plot.items:
        if isinstance(item, pg.LinearRegionItem) and item.brush.color().getRgb() == rgba:
            out.add(tuple(item.getRegion()))
    return out


def test_review_reads_window_states():
    from desktop.review import build_review

    review = build_review(_analysis())
    windows = next(s for s in review.series if s.detector == "av_sync" and s.name == "windows")
    assert windows.unmeasurable.tolist() == [w[2] == "not measurable" for w in WINDOWS]
    assert windows.unmeasurable_runs() == [(20, 29), (50, 59)]
    other = next(s for s in review.series if s.detector == "other")
    assert other.unmeasurable.tolist() == [False, True] and other.is_score
    assert next(s for s in review.series if s.detector == "plain").unmeasurable is None
    # the status bar's sources: no score where a window is not measurable, the state instead
    assert review.unmeasurable_at(25) == ["av_sync"] and "av_sync:windows" not in review.window_scores(25)
    assert review.unmeasurable_at(45) == ["other"] and "other:score per window" not in review.window_scores(45)
    assert review.window_scores(45)["av_sync:windows"] == 1.0 and review.window_scores(5)["other:score per window"] == 0.4
    for f in (5, 15):  # no speech, face not tracked: not grey either
        assert review.unmeasurable_at(f) == []
    assert review.unmeasurable_at(35) == ["other"]  # av_sync's lips-follow window is measurable


def test_overlapping_windows_grey_where_the_shown_window_is_not_measurable():
    from desktop.review import parse_curve

    # av_sync windows overlap (2 s every 0.5 s): per frame the later window is the one shown
    (s,) = parse_curve("d", "w", [
        {"start_frame": 0, "end_frame": 19, "score": None, "state": "not measurable"},
        {"start_frame": 10, "end_frame": 29, "score": 0.3, "state": "lips follow"},
        {"start_frame": 20, "end_frame": 39, "score": None, "state": "not measurable"},
    ], 40)
    assert s.unmeasurable_runs() == [(0, 9), (20, 39)]
    assert s.value_at(5) is None and not s.measurable_at(5)
    assert s.value_at(15) == pytest.approx(0.3) and s.measurable_at(15)
    assert s.value_at(25) is None and not s.measurable_at(25)


def test_timeline_grey_for_not_measurable_red_only_for_segments(qtbot):
    from desktop.review import build_review
    from desktop.timeline import SEGMENT, UNASSESSABLE, Timeline

    review = build_review(_analysis())
    tl = Timeline()
    qtbot.addWidget(tl)
    tl.set_clip(None, np.arange(N) / 25.0)
    tl.set_review(review)

    assert [d for _, d in tl.unmeasurable_items] == [("av_sync", 20, 29), ("av_sync", 50, 59), ("other", 30, 59)]
    for item, (det, a, b) in tl.unmeasurable_items:
        assert item.getRegion() == (a - 0.5, b + 0.5)
        assert f"{det}: not measurable (weak signal)" in item.toolTip()
    grey = {(a - 0.5, b + 0.5) for _, (_, a, b) in tl.unmeasurable_items}
    assert _regions(tl.p_det, UNASSESSABLE) == grey
    assert not _regions(tl.p_ear, UNASSESSABLE) and not _regions(tl.p_mouth, UNASSESSABLE)  # the detectors' row only
    red = {(39.5, 49.5)}  # the one flagged segment, on every row; no other red
    for p in tl.plots:
        assert _regions(p, SEGMENT) == red
    assert "grey: not measurable" in tl.p_det.titleLabel.text

    # no score bar on a not-measurable window, even when the detector gave a number there
    import pyqtgraph as pg

    bars = {}
    for item in tl.p_det.items:
        if isinstance(item, pg.BarGraphItem):
            bars[item.name()] = sorted(float(x) for x in item.opts["x0"])
    assert bars["av_sync: windows"] == [29.5, 39.5]
    assert bars["other: score per window"] == [-0.5]
    assert bars["plain: w"] == [-0.5, 29.5]


def test_status_bar_says_not_measurable(qtbot, make_video):
    from desktop.player import Player
    from desktop.review import build_review

    player = Player()
    qtbot.addWidget(player)
    player.open(make_video("clip.mp4", gradient_frames(N, 64, 48)))
    qtbot.waitUntil(lambda: player.index is not None, timeout=20000)
    player.set_review(build_review(_analysis()))

    def at(i: int) -> str:
        player.seek(i)
        qtbot.waitUntil(lambda: player.frame_index == i, timeout=10000)
        return player.status_line()

    s = at(25)
    assert "av_sync: not measurable" in s and "av_sync:windows" not in s and "other:score per window 0.40" in s
    s = at(35)
    assert "av_sync: not measurable" not in s and "av_sync:windows 0.20" in s and "other: not measurable" in s
    s = at(45)
    assert "other: not measurable" in s and "other:score per window" not in s and "av_sync:windows 1.00" in s
    assert "FLAGGED by av_sync" in s
    player.shutdown()


def test_undecodable_frames_are_dark_bands_on_every_row_and_warnings_show(qtbot):
    """Issue 13, items 3-4: the examiner sees where nothing could be read, and why."""
    from desktop.panels import ResultsPanel
    from desktop.review import build_review
    from desktop.timeline import Timeline

    analysis = _analysis()
    warning = "11 of 60 frames cannot be decoded (damaged or missing data): frames 20-30"
    analysis["evidence"].update(undecodable_frames=[[20, 30], [45, 45]], warnings=[warning])
    review = build_review(analysis)
    assert review.undecodable == [(20, 30), (45, 45)]
    tl = Timeline()
    qtbot.addWidget(tl)
    tl.set_clip(None, np.arange(N) / 25.0)
    tl.set_review(review)
    assert sorted(d for _, d in tl.damaged_items) == [(20, 30)] * 3 + [(45, 45)] * 3  # one band per row
    assert all("cannot be decoded" in r.toolTip() for r, _ in tl.damaged_items)
    for plot in tl.plots:
        assert {tuple(r.getRegion()) for r, _ in tl.damaged_items if r in plot.items} == {(19.5, 30.5), (44.5, 45.5)}
    tl.set_review(build_review(_analysis()))
    assert tl.damaged_items == []
    panel = ResultsPanel()
    qtbot.addWidget(panel)
    panel.set_analysis(analysis)
    assert "cannot be decoded" in panel.finding.text()
