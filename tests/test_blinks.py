"""Blink events on synthetic EAR series (core.signals.blinks)."""

from __future__ import annotations

import numpy as np
import pytest

from core.signals.blinks import BlinkEvent, BlinkParams, blink_rate_per_min, detect_blinks, mean_ear

FPS = 25.0
FIXED = BlinkParams(mode="fixed", fixed_threshold=0.2)

# one blink at 25 fps: lids fall over 2 frames, closed 2, rise over 3 (onset..offset = 7 frames)
SHAPE = np.array([0.7, 0.4, 0.25, 0.25, 0.45, 0.7, 0.9])


def series(n: int, open_ear: float, blinks: list[int], noise: float = 0.004, seed: int = 0, shape: np.ndarray = SHAPE) -> np.ndarray:
    """Mean-EAR series: open level with noise, a blink starting at each given row."""
    rng = np.random.default_rng(seed)
    x = open_ear + noise * rng.standard_normal(n)
    for b in blinks:
        x[b : b + shape.size] = open_ear * shape[: max(0, min(shape.size, n - b))] + noise * rng.standard_normal(min(shape.size, n - b))
    return x


def both(x: np.ndarray) -> np.ndarray:
    return np.stack([x, x], axis=1)


def spans(events: list[BlinkEvent]) -> list[tuple[int, int, int]]:
    return [(e.start_frame, e.apex_frame, e.end_frame) for e in events]


def test_known_blinks_have_right_start_apex_end() -> None:
    starts = [30, 90, 160]
    x = series(220, 0.30, starts)
    events, thr = detect_blinks(np.arange(220), both(x), FPS)
    assert len(events) == 3
    for ev, b in zip(events, starts):
        assert abs(ev.start_frame - b) <= 1  # onset: first frame the lids come down
        assert b + 2 <= ev.apex_frame <= b + 3  # apex inside the closed frames
        assert b + 5 <= ev.end_frame <= b + 6  # back up within a frame of the offset
        assert ev.duration_s == pytest.approx((ev.end_frame - ev.start_frame + 1) / FPS)
        assert ev.min_ear == pytest.approx(x[ev.apex_frame])
        assert ev.min_ear < 0.1
        assert ev.closed_left and ev.closed_right
    assert thr.shape == (220,) and np.isfinite(thr).all()


def test_low_open_ear_person_adaptive_finds_blinks_fixed_card_does_not() -> None:
    starts = [25, 70, 120, 170]
    x = series(220, 0.18, starts)  # open-eye EAR 0.18: below the card's 0.2 all the time
    events, _ = detect_blinks(np.arange(220), both(x), FPS)
    assert [e.start_frame for e in events] == pytest.approx(starts, abs=1)
    fixed, thr = detect_blinks(np.arange(220), both(x), FPS, FIXED)
    assert np.all(thr == 0.2)
    # the card's threshold calls the whole track one "closure"
    assert len(fixed) == 1 and fixed[0].end_frame - fixed[0].start_frame + 1 == 220


def test_wide_eyes_shallow_blink_found_by_adaptive_missed_by_card() -> None:
    x = series(150, 0.42, [60], shape=np.array([0.8, 0.6, 0.55, 0.55, 0.6, 0.8, 0.95]))  # apex 0.23
    assert len(detect_blinks(np.arange(150), both(x), FPS)[0]) == 1
    assert detect_blinks(np.arange(150), both(x), FPS, FIXED)[0] == []


@pytest.mark.parametrize("seed", range(5))
def test_noise_and_slow_gaze_change_give_no_blinks(seed: int) -> None:
    n = 500
    rng = np.random.default_rng(seed)
    level = np.interp(np.arange(n), [0, 150, 200, 350, 400, n], [0.30, 0.30, 0.22, 0.22, 0.31, 0.31])  # looks down and back up
    x = level + 0.012 * rng.standard_normal(n)
    events, _ = detect_blinks(np.arange(n), both(x), FPS)
    assert events == []


def test_wink_sets_only_that_eyes_flag() -> None:
    n = 150
    left = series(n, 0.30, [70], seed=1)
    right = series(n, 0.30, [], seed=2)
    events, _ = detect_blinks(np.arange(n), np.stack([left, right], axis=1), FPS)
    assert len(events) == 1
    assert events[0].closed_left and not events[0].closed_right
    events, _ = detect_blinks(np.arange(n), np.stack([right, left], axis=1), FPS)
    assert len(events) == 1
    assert events[0].closed_right and not events[0].closed_left


def test_gap_in_track_splits_segments_and_keeps_frame_numbers() -> None:
    # rows 0..99 are frames 0..99, rows 100..199 are frames 140..239 (the face was lost 100..139)
    frames = np.concatenate([np.arange(100), np.arange(140, 240)])
    x = series(200, 0.30, [40, 96, 100, 150], seed=3)  # the blinks at rows 96 and 100 touch the gap
    events, thr = detect_blinks(frames, both(x), FPS)
    got = [(e.start_frame, e.end_frame) for e in events]
    for s, e in got:
        assert (s < 100) == (e < 100), f"event {s}-{e} spans the gap"
    assert any(abs(s - 40) <= 1 for s, _ in got)
    assert any(abs(s - 190) <= 1 for s, _ in got)  # row 150 is frame 190
    assert any(s <= 98 and e == 99 for s, e in got)  # cut by the gap: still a closure
    assert any(s == 140 for s, _ in got)  # closure running into the track's restart
    assert thr.shape == (200,)


def test_missing_ear_rows_split_and_one_missing_eye_uses_the_other() -> None:
    x = series(200, 0.30, [40, 140], seed=4)
    ear = both(x)
    ear[100:105] = np.nan  # no landmarks: a gap
    ear[138:150, 1] = np.nan  # one eye unknown during the second blink
    events, thr = detect_blinks(np.arange(200), ear, FPS)
    assert [abs(e.start_frame - b) <= 1 for e, b in zip(events, [40, 140])] == [True, True]
    assert events[1].closed_left and not events[1].closed_right
    assert np.isnan(thr[100:105]).all() and np.isfinite(thr[:100]).all()
    np.testing.assert_allclose(mean_ear(ear)[138:150], ear[138:150, 0])


def test_double_blink_is_two_events_long_noisy_closure_is_one() -> None:
    n = 260
    x = series(n, 0.30, [40, 47], seed=5)  # lids back to ~0.8 of open between: two blinks
    rng = np.random.default_rng(6)
    long = 0.09 + 0.01 * rng.standard_normal(20)
    long[[5, 12]] = 0.22  # one-frame landmark spikes inside a 0.8 s closure
    x[150:152] = [0.2, 0.13]
    x[152:172] = long
    x[172:174] = [0.15, 0.25]
    events, _ = detect_blinks(np.arange(n), both(x), FPS)
    assert len(events) == 3
    assert abs(events[0].start_frame - 40) <= 1 and abs(events[1].start_frame - 47) <= 1
    assert events[0].end_frame < events[1].start_frame
    assert events[2].start_frame <= 151 and events[2].end_frame >= 172
    assert events[2].duration_s >= 0.8


def test_long_closure_does_not_pull_the_open_baseline_down() -> None:
    n = 220
    x = series(n, 0.28, [140], seed=7)
    x[60:90] = 0.08  # 1.2 s closure: more than half the baseline window
    events, thr = detect_blinks(np.arange(n), both(x), FPS)
    assert len(events) == 2 and events[0].start_frame <= 60 and events[0].end_frame >= 89
    assert abs(events[1].start_frame - 140) <= 1
    # the threshold (a fraction of the open baseline) stays where it is with open eyes
    np.testing.assert_allclose(thr[60:90], thr[20], rtol=0.1)


def test_clip_starting_with_closed_eyes() -> None:
    x = series(150, 0.25, [], seed=8)
    x[:6] = [0.08, 0.07, 0.08, 0.09, 0.15, 0.22]
    events, _ = detect_blinks(np.arange(150), both(x), FPS)
    assert len(events) == 1 and events[0].start_frame == 0 and events[0].apex_frame <= 3


def test_variable_frame_rate_fps_and_duration() -> None:
    fps = 22.131
    x = series(135, 0.30, [80], seed=9)
    events, _ = detect_blinks(np.arange(135), both(x), fps)
    assert len(events) == 1
    assert events[0].duration_s == pytest.approx((events[0].end_frame - events[0].start_frame + 1) / fps)


def test_bad_input() -> None:
    events, thr = detect_blinks(np.zeros(0, int), np.zeros((0, 2)), FPS)
    assert events == [] and thr.shape == (0,)
    events, thr = detect_blinks(np.arange(50), np.full((50, 2), np.nan), FPS)
    assert events == [] and np.isnan(thr).all()
    with pytest.raises(ValueError):
        detect_blinks(np.arange(10), np.zeros((9, 2)), FPS)
    with pytest.raises(ValueError):
        detect_blinks(np.arange(10), np.zeros((10, 2)), FPS, BlinkParams(mode="magic"))
    with pytest.raises(ValueError):
        detect_blinks(np.arange(10), np.zeros((10, 2)), float("nan"))
    x = series(60, 0.3, [30])
    assert [e.duration_s for e in detect_blinks(np.arange(60), both(x), 0.0)[0]] == [0.0]  # unknown rate: no crash
    # too short a stretch of track to know the open level: no events, no crash
    x = series(8, 0.3, [0])
    assert detect_blinks(np.arange(8), both(x), FPS)[0] == []


def test_fixed_mode_counts_runs_below_card_threshold() -> None:
    x = np.full(60, 0.3)
    x[10:13] = 0.15
    x[30] = 0.19
    events, _ = detect_blinks(np.arange(60), both(x), FPS, FIXED)
    assert [(e.start_frame, e.end_frame) for e in events] == [(10, 12), (30, 30)]
    events, _ = detect_blinks(np.arange(60), both(x), FPS, BlinkParams(mode="fixed", min_frames=2))
    assert [(e.start_frame, e.end_frame) for e in events] == [(10, 12)]


def test_blink_rate_per_minute_of_visible_face() -> None:
    assert blink_rate_per_min(10, 1500, 25.0) == pytest.approx(10.0)  # 60 s of face
    assert blink_rate_per_min(3, 375, 25.0) == pytest.approx(12.0)  # 15 s
    assert blink_rate_per_min(0, 750, 30.0) == 0.0
    assert blink_rate_per_min(2, 20, 25.0) is None  # under a second of face
    assert blink_rate_per_min(2, 100, 0.0) is None


def _bench():
    """tests/bench/blinks.py as a module (its event matching is tested here)."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).parent / "bench" / "blinks.py"
    spec = importlib.util.spec_from_file_location("bench_blinks", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_blinks"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_bench_matching_rules() -> None:
    bench = _bench()
    labels = {
        "blinks": [{"onset": 10, "offset": 15}, {"onset": 17, "offset": 20}, {"onset": 40, "offset": 45}],
        "partial": [{"onset": 60, "offset": 62}],
        "unusable": [[80, 90]],
        "other_events": [],
    }
    # one detection over the double blink 10-20, the 40-45 blink split in two, one on the partial,
    # one in unusable frames, one plainly false
    s = bench.score_events([(11, 19), (40, 41), (43, 45), (61, 61), (85, 86), (100, 101)], labels)
    assert (s.tp, s.fp, s.fn, s.neutral) == (2, 2, 1, 2)
    assert sorted(s.fp_spans) == [(43, 45), (100, 101)] or sorted(s.fp_spans) == [(40, 41), (100, 101)]
    assert s.precision == pytest.approx(0.5) and s.recall == pytest.approx(2 / 3)
    empty = bench.score_events([], {"blinks": [], "partial": [], "unusable": []})
    assert (empty.tp, empty.fp, empty.fn) == (0, 0, 0)


def test_blinks_on_a_labelled_clip(media) -> None:  # type: ignore[no-untyped-def]
    """End to end on a short real clip: face pass, adaptive blinks, the hand labels all found."""
    import json

    from core.evidence import sha256_file
    from core.pipeline import AnalysisOptions, load_or_run_facepass
    from core.progress import no_progress

    bench = _bench()
    labels = json.loads((media / "labels" / "grid_id2_swwp2s.mpg.json").read_text())
    clip = media / labels["clip"]
    fp, _ = load_or_run_facepass(clip, sha256_file(clip), AnalysisOptions(), no_progress, None)
    events = bench.clip_events(fp, BlinkParams())
    s = bench.score_events([(e.start_frame, e.end_frame) for e in events], labels)
    assert (s.tp, s.fp, s.fn) == (len(labels["blinks"]), 0, 0)


def test_mask_splits_the_track_like_a_missing_face() -> None:
    x = series(220, 0.30, [30, 100, 160])
    mask = np.ones(220, bool)
    mask[90:120] = False  # eyes not assessable (head turned) around the second blink
    for params in (BlinkParams(), FIXED):
        events, thr = detect_blinks(np.arange(220), both(x), FPS, params, mask=mask)
        assert [e.apex_frame // 10 for e in events] == [3, 16]  # the blink at 100 is not reported
        assert np.isnan(thr[90:120]).all() and np.isfinite(thr[:90]).all()
        for e in events:
            assert mask[e.start_frame : e.end_frame + 1].all()
        # the same as cutting the masked frames out of the track
        cut = np.r_[0:90, 120:220]
        assert spans(events) == spans(detect_blinks(cut, both(x[cut]), FPS, params)[0])
    # a blink cut by the start of a masked stretch ends where the assessable frames end, as at
    # the end of a track: it never runs into the masked frames
    mask = np.arange(220) < 104
    events = detect_blinks(np.arange(220), both(x), FPS, mask=mask)[0]
    assert [e.apex_frame // 10 for e in events] == [3, 10] and events[-1].end_frame == 103
    assert detect_blinks(np.arange(220), both(x), FPS, mask=np.zeros(220, bool))[0] == []
