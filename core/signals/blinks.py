"""Blink events from the eye aspect ratio of one face track.

The EyeBlink card closes an eye at EAR < 0.2. People whose open-eye EAR is low (narrow eyes,
looking down, glasses) then "blink" all the time, and people with wide eyes hide short blinks.
The default threshold is adaptive instead: a fraction of the track's own open-eye baseline
(a running upper percentile of EAR). The card's fixed 0.2 stays available (mode="fixed").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.ndimage import percentile_filter


@dataclass
class BlinkParams:
    mode: str = "adaptive"  # "adaptive" (relative to the open-eye baseline) or "fixed" (card)
    fixed_threshold: float = 0.2  # the card's EAR threshold, used when mode == "fixed"
    closed_ratio: float = 0.75  # adaptive: closed when EAR < closed_ratio * baseline
    baseline_window_s: float = 4.0  # running window of the open-eye baseline
    baseline_percentile: float = 80.0
    min_frames: int = 1  # frames below threshold needed to call a blink
    max_gap_frames: int = 1  # short rises above threshold inside one blink are merged
    edge_ratio: float = 0.9  # event start/end: where EAR recovers above edge_ratio * baseline

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BlinkEvent:
    start_frame: int
    apex_frame: int
    end_frame: int
    duration_s: float
    min_ear: float
    closed_left: bool  # the image-left eye crossed its own threshold
    closed_right: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _segments(frames: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges [a, b) over which the frame numbers are consecutive (no gap in the track)."""
    if frames.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(frames) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [frames.size]])
    return list(zip(starts.tolist(), ends.tolist()))


def open_baseline(ear: np.ndarray, fps: float, params: BlinkParams) -> np.ndarray:
    """Running upper percentile of EAR: the eye's open level, following head pose slowly."""
    size = max(3, int(round(params.baseline_window_s * fps)) | 1)
    clean = np.where(np.isfinite(ear), ear, np.nanmedian(ear) if np.isfinite(ear).any() else 0.0)
    return percentile_filter(clean, params.baseline_percentile, size=size, mode="nearest")


def _runs(mask: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """Inclusive runs of True, merging runs separated by at most max_gap False values."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    runs = []
    a = b = int(idx[0])
    for k in idx[1:]:
        k = int(k)
        if k - b - 1 <= max_gap:
            b = k
        else:
            runs.append((a, b))
            a = b = k
    runs.append((a, b))
    return runs


def detect_blinks(
    frames: np.ndarray, ear_lr: np.ndarray, fps: float, params: BlinkParams | None = None
) -> tuple[list[BlinkEvent], np.ndarray]:
    """Blink events for one track. Returns the events and the per-row threshold used."""
    params = params or BlinkParams()
    frames = np.asarray(frames)
    ear_lr = np.asarray(ear_lr, np.float64)
    avg = np.nanmean(ear_lr, axis=1) if ear_lr.size else np.zeros(0)
    threshold = np.full(avg.shape, params.fixed_threshold)
    events: list[BlinkEvent] = []
    for a, b in _segments(frames):
        seg = avg[a:b]
        if params.mode == "adaptive":
            base = open_baseline(seg, fps, params)
            thr = params.closed_ratio * base
            edge = params.edge_ratio * base
            base_l = open_baseline(ear_lr[a:b, 0], fps, params)
            base_r = open_baseline(ear_lr[a:b, 1], fps, params)
            thr_l, thr_r = params.closed_ratio * base_l, params.closed_ratio * base_r
        else:
            thr = np.full(seg.shape, params.fixed_threshold)
            edge = thr
            thr_l = thr_r = thr
        threshold[a:b] = thr
        below = np.nan_to_num(seg, nan=np.inf) < thr
        for s, e in _runs(below, params.max_gap_frames):
            if int(below[s : e + 1].sum()) < params.min_frames:
                continue
            # widen to where the lids are back near the open level
            while s > 0 and seg[s - 1] < edge[s - 1]:
                s -= 1
            while e < seg.size - 1 and seg[e + 1] < edge[e + 1]:
                e += 1
            apex = s + int(np.nanargmin(seg[s : e + 1]))
            left = ear_lr[a + s : a + e + 1, 0]
            right = ear_lr[a + s : a + e + 1, 1]
            events.append(
                BlinkEvent(
                    start_frame=int(frames[a + s]),
                    apex_frame=int(frames[a + apex]),
                    end_frame=int(frames[a + e]),
                    duration_s=float((e - s + 1) / fps) if fps else 0.0,
                    min_ear=float(seg[apex]),
                    closed_left=bool(np.nanmin(left) < np.min(thr_l[s : e + 1])),
                    closed_right=bool(np.nanmin(right) < np.min(thr_r[s : e + 1])),
                )
            )
    events = _merge_overlapping(events, fps)
    return events, threshold


def _merge_overlapping(events: list[BlinkEvent], fps: float) -> list[BlinkEvent]:
    out: list[BlinkEvent] = []
    for ev in sorted(events, key=lambda e: e.start_frame):
        if out and ev.start_frame <= out[-1].end_frame:
            prev = out[-1]
            apex = prev if prev.min_ear <= ev.min_ear else ev
            end = max(prev.end_frame, ev.end_frame)
            out[-1] = BlinkEvent(
                prev.start_frame, apex.apex_frame, end, (end - prev.start_frame + 1) / fps if fps else 0.0,
                apex.min_ear, prev.closed_left or ev.closed_left, prev.closed_right or ev.closed_right,
            )
        else:
            out.append(ev)
    return out


def blink_rate_per_min(n_blinks: int, frames_with_face: int, fps: float) -> float | None:
    """Blinks per minute of visible face; None when under 1 s of face was seen."""
    if fps <= 0 or frames_with_face < fps:
        return None
    return float(n_blinks / (frames_with_face / fps / 60.0))
