"""Frame serving for the player, without a window: exact pixels under a bounded cache."""

from __future__ import annotations

import random

import numpy as np
import pytest

from core.video import VideoReader
from desktop.frame_server import FrameServer, frame_bytes
from desktop.review import build_review, parse_curve
from desktop.timecode import format_timecode, parse_position
from tests.conftest import gradient_frames


@pytest.fixture
def long_gop_clip(make_video):
    # 60 frames, a keyframe every 12 (write_video): random access decodes from a keyframe
    return make_video("gop.mp4", gradient_frames(60, 64, 48))


def test_random_access_is_exact_and_cache_bounded(long_gop_clip):
    ref = VideoReader(long_gop_clip)
    expected = [ref.frame(i) for i in range(ref.frame_count)]
    one = frame_bytes(FrameServer(long_gop_clip).raw(0))
    server = FrameServer(long_gop_clip, budget_bytes=one * 10)  # room for 10 frames only
    order = list(range(ref.frame_count)) * 2
    random.Random(3).shuffle(order)
    for i in order:
        assert np.array_equal(server.rgb(i), expected[i]), f"frame {i} differs from VideoReader.frame"
        assert server.cached_bytes <= server.budget
    assert server.hits > 0 and server.misses > 0


def test_prefetch_fills_whole_clip_then_serves_from_cache(long_gop_clip):
    server = FrameServer(long_gop_clip)
    steps = 0
    while server.prefetch_step(around=0):
        steps += 1
        assert steps < 500
    assert all(server.is_cached(i) for i in range(server.frame_count))
    misses = server.misses
    ref = VideoReader(long_gop_clip)
    for i in (59, 3, 31, 0):
        assert np.array_equal(server.rgb(i), ref.frame(i))
    assert server.misses == misses  # all hits


def test_out_of_range_frame_is_an_error(long_gop_clip):
    server = FrameServer(long_gop_clip)
    with pytest.raises(IndexError):
        server.rgb(60)


def test_timecodes():
    assert format_timecode(62.5) == "01:02.500"
    assert parse_position("120") == ("frame", 120.0)
    assert parse_position("1:02.5") == ("time", 62.5)
    assert parse_position("0:01:02.5") == ("time", 62.5)
    assert parse_position("4.5s") == ("time", 4.5)
    assert parse_position("abc") is None


def test_curves_are_read_generically():
    n = 50
    bars = parse_curve("d", "windows", {"start_frame": [0, 10], "end_frame": [9, 19], "score": [0.2, 0.9]}, n)
    assert bars[0].kind == "bars" and bars[0].value_at(12) == pytest.approx(0.9) and bars[0].value_at(30) is None
    line = parse_curve("d", "c", {"frames": [5, 3, 4], "values": [0.5, 0.3, 0.4], "track_id": 2}, n)
    assert line[0].kind == "line" and list(line[0].x0) == [3, 4, 5] and line[0].track_id == 2
    per_frame = parse_curve("d", "p", [0.1] * n, n)
    assert per_frame[0].kind == "line" and per_frame[0].x0.size == n
    mixed = parse_curve("d", "m", {"track_id": [0, 1], "start_frame": [0, 5], "end_frame": [4, 9], "score": [0.1, 0.7]}, n)
    assert mixed[0].for_track(1).y.tolist() == [0.7] and mixed[0].for_track(3) is None
    rows = parse_curve("d", "r", [{"start_frame": 0, "end_frame": 4, "score": 0.3}], n)
    assert rows[0].kind == "bars"
    assert parse_curve("d", "x", {"values": [1, 2]}, n) == []  # no frame axis: left out
    assert not parse_curve("d", "db", {"frames": [0, 1], "values": [-30.0, -12.0]}, n)[0].is_score
    assert not line[0].is_score  # "values" in 0..1 are a measure, not a probability
    assert bars[0].is_score and mixed[0].for_track(1).is_score


def test_review_segments_navigation():
    analysis = {
        "evidence": {"video": {"frame_count": 100}},
        "detectors": {
            "a": {"status": "ok", "segments": [{"start_frame": 40, "end_frame": 50, "score": 0.8, "reason": "late"}]},
            "b": {"status": "ok", "segments": [{"start_frame": 10, "end_frame": 12, "score": None, "reason": "early"}], "curves": {}},
        },
    }
    r = build_review(analysis)
    assert r.facepass is None and r.frame_count == 100
    assert r.next_segment(0).start_frame == 10
    assert r.next_segment(10).start_frame == 40
    assert r.previous_segment(40).start_frame == 10
    assert r.next_segment(40) is None
    assert r.segment_at(45).detector == "a" and r.segment_at(30) is None


def test_qt_signal_emit_keeps_reference_counts():
    """PySide6 6.12.0's Signal.emit returns True without a new reference: after a few hundred
    emits Python frees True and the application aborts. constraints.txt pins a good release."""
    import sys

    from PySide6.QtCore import QObject, Signal

    class Emitter(QObject):
        fired = Signal(object)

    e = Emitter()
    e.fired.connect(lambda _v: None)
    before = sys.getrefcount(True)
    for _ in range(200):
        e.fired.emit(1)
    assert sys.getrefcount(True) >= before - 5
