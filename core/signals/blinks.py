"""Blink events from the eye aspect ratio (EAR) of one face track.

The EyeBlink card calls an eye closed at EAR < 0.2. People whose open-eye EAR is low (narrow
eyes, looking down, low resolution) then "blink" all the time, and people with wide eyes hide
short blinks. The default is adaptive instead (docs/blinks.md has the measurements). On the mean
EAR of both eyes, per stretch of track without gaps:

1. open baseline: running median over `baseline_window_s` of the frames judged open (first
   guess: a running upper percentile; frames under `closed_ratio` x that guess are left out), so
   long closures do not drag it down while slow changes (gaze down, head pitch) are followed;
2. dips: a local minimum is a closure when it falls `min_depth` below its shoulders (the lower
   of the highest EARs on either side within `shoulder_window_s`: the dip's prominence) and
   under `max_ratio` x the baseline. Relative to the local shoulders, a person who looks down
   after a blink, or whose eyes are half-lidded, is judged against their own open level;
3. double blinks: neighbouring dips are one blink unless the EAR between them climbs at least
   `reopen_fraction` of the way back to the open level for `min_reopen_s` (the labelling rule
   "reopen to at least about half"; one-frame spikes are landmark noise);
4. extent: the frames below half-way up to the shoulder, widened while the EAR keeps rising
   until it is `edge_fraction` of the way back (start = lids begin to fall, end = back up).

Per-eye flags apply the dip rule to each eye's own EAR. The card's fixed threshold stays
available (mode="fixed": runs of frames with mean EAR < fixed_threshold, as the card counts).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import percentile_filter
from scipy.signal import find_peaks

from core.signals.timebase import usable_fps


@dataclass
class BlinkParams:
    mode: str = "adaptive"  # "adaptive" (relative to the open-eye baseline) or "fixed" (card)
    fixed_threshold: float = 0.2  # the card's EAR threshold, used when mode == "fixed"
    min_depth: float = 0.3  # adaptive: a dip must fall this fraction below its shoulders
    max_ratio: float = 0.8  # ... and below max_ratio * open baseline
    deep_ratio: float = 0.5  # a dip under deep_ratio * open baseline is a closure whatever its shoulders
    shoulder_window_s: float = 1.0  # how far to look for a dip's shoulders
    edge_fraction: float = 0.8  # event edges: where the EAR is back this far up to the shoulder
    reopen_fraction: float = 0.5  # two dips are two blinks when the EAR climbs this far back between
    min_reopen_s: float = 0.05  # ... for at least this long
    closed_ratio: float = 0.65  # baseline: frames under closed_ratio x first guess are not "open"
    baseline_window_s: float = 2.0  # running window of the open-eye baseline
    baseline_percentile: float = 80.0  # first guess of the open level (before closed frames are left out)
    min_frames: int = 1  # frames a closure must last (fixed: below threshold; adaptive: below half-way)
    min_segment_s: float = 0.5  # shorter stretches of track give no events (no baseline to trust)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BlinkEvent:
    start_frame: int
    apex_frame: int  # frame of minimum mean EAR
    end_frame: int
    duration_s: float  # (end - start + 1) frames at the track's fps
    min_ear: float  # mean EAR of both eyes at the apex
    closed_left: bool  # image-left eye (points 36-41) closed by the same rule, on its own EAR
    closed_right: bool  # image-right eye (points 42-47)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mean_ear(ear_lr: np.ndarray) -> np.ndarray:
    """Mean EAR of both eyes per row; the other eye's alone where one is missing (NaN)."""
    ear_lr = np.asarray(ear_lr, np.float64).reshape(-1, 2)
    out = np.full(ear_lr.shape[0], np.nan)
    ok = np.isfinite(ear_lr)
    n = ok.sum(axis=1)
    has = n > 0
    out[has] = np.where(ok, ear_lr, 0.0).sum(axis=1)[has] / n[has]
    return out


def _segments(frames: np.ndarray, valid: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges [a, b) of consecutive frame numbers with a valid EAR (gaps split the track)."""
    if frames.size == 0:
        return []
    cut = np.ones(frames.size + 1, bool)
    cut[1:-1] = (np.diff(frames) != 1) | ~valid[1:] | ~valid[:-1]
    out = []
    starts = np.flatnonzero(cut[:-1])
    for k, a in enumerate(starts):
        b = int(starts[k + 1]) if k + 1 < starts.size else frames.size
        if valid[a]:
            out.append((int(a), b))
    return out


def _window(n: int, fps: float, seconds: float) -> int:
    """Odd window length in frames, at least 3 and no longer than needed for n rows."""
    size = max(3, int(round(seconds * fps)) | 1)
    return min(size, max(3, (2 * n - 1) | 1))


def open_baseline(ear: np.ndarray, fps: float, params: BlinkParams) -> np.ndarray:
    """The eye's open level per row: running median of the EAR over the frames judged open.

    `ear` must be finite (one segment). A running upper percentile gives the first guess; frames
    below the closing threshold of that guess are then left out, so a closure of up to about half
    the window does not pull the baseline down.
    """
    ear = np.asarray(ear, np.float64)
    if ear.size == 0:
        return ear.copy()
    size = _window(ear.size, fps, params.baseline_window_s)
    first = percentile_filter(ear, params.baseline_percentile, size=size, mode="reflect")
    openish = np.where(ear >= params.closed_ratio * first, ear, np.nan)
    half = size // 2
    padded = np.pad(openish, half, mode="reflect")
    windows = sliding_window_view(padded, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows: fall back below
        base = np.nanmedian(windows, axis=1)
    return np.where(np.isfinite(base), base, first)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) index pairs of the runs of True."""
    if not mask.any():
        return []
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), (np.flatnonzero(d == -1) - 1).tolist()))


def _longest_run(mask: np.ndarray) -> int:
    return max((e - s + 1 for s, e in _runs(mask)), default=0)


def _dips(seg: np.ndarray, base: np.ndarray, fps: float, params: BlinkParams) -> list[tuple[int, int, int]]:
    """Closures of one segment as (start, apex, end) row indices (adaptive mode).

    A local minimum of the EAR is a closure when it falls at least `min_depth` below the lower of
    its two shoulders (the highest EAR on each side before the EAR gets lower still, within
    `shoulder_window_s`: the dip's prominence) and below `max_ratio` x the open baseline. The
    segment is padded with its baseline so closures cut by the start or end of the track count.
    """
    x = np.concatenate([[base[0]], seg, [base[-1]]])
    bx = np.concatenate([[base[0]], base, [base[-1]]])
    wlen = max(3, int(round(params.shoulder_window_s * fps)) | 1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*prominence of 0")  # flat stretches: rejected below
        apexes, props = find_peaks(-x, prominence=0.0, wlen=wlen)
    dips: list[list[Any]] = []  # [start, apex, end, left shoulder, right shoulder] in x rows
    for k, apex in enumerate(apexes):
        apex = int(apex)
        if x[apex] > params.max_ratio * bx[apex]:
            continue
        lo_i, hi_i = max(int(props["left_bases"][k]), 0), min(int(props["right_bases"][k]), x.size - 1)
        left, right = float(x[lo_i : apex + 1].max()), float(x[apex : hi_i + 1].max())
        shoulder = min(left, right)
        if x[apex] > (1.0 - params.min_depth) * shoulder:
            # not deep against its surroundings: still a closure when deep against the open
            # level (a closure longer than the shoulder window has no shoulders inside it)
            if x[apex] > params.deep_ratio * bx[apex]:
                continue
            shoulder = left = right = max(shoulder, float(bx[apex]))
        # core: the frames around the apex that stay below half-way up to the shoulder
        mid = x[apex] + 0.5 * (max(shoulder, float(bx[apex])) - x[apex])
        s = e = apex
        while s - 1 > 0 and x[s - 1] < mid:
            s -= 1
        while e + 1 < x.size - 1 and x[e + 1] < mid:
            e += 1
        if e - s + 1 < params.min_frames:
            continue
        # edges: walk on while the EAR keeps rising, until it is back near the shoulder
        top = x[apex] + params.edge_fraction * (shoulder - x[apex])
        while s - 1 > 0 and x[s - 1] > x[s] and x[s - 1] < top:
            s -= 1
        while e + 1 < x.size - 1 and x[e + 1] > x[e] and x[e + 1] < top:
            e += 1
        dips.append([s, apex, e, left, right])
    # Two dips are one blink unless the lids reopen in between: the EAR climbs at least
    # `reopen_fraction` of the way from the shallower dip back to the open level (the lower of the
    # outer shoulders) and stays there for `min_reopen_s` (single-frame spikes are landmark noise).
    need = max(1, int(np.ceil(params.min_reopen_s * fps)))
    merged: list[list[Any]] = []
    for d in dips:
        if merged:
            p = merged[-1]
            shallow = max(x[p[1]], x[d[1]])
            level = min(p[3], d[4])
            between = x[p[1] + 1 : d[1]]
            if _longest_run(between >= shallow + params.reopen_fraction * (level - shallow)) < need:
                merged[-1] = [p[0], p[1] if x[p[1]] <= x[d[1]] else d[1], max(p[2], d[2]), p[3], d[4]]
                continue
            d[0] = max(d[0], p[2] + 1)
        merged.append(d)
    return [(s - 1, a - 1, e - 1) for s, a, e, _, _ in merged]


def detect_blinks(
    frames: np.ndarray,
    ear_lr: np.ndarray,
    fps: float,
    params: BlinkParams | None = None,
    mask: np.ndarray | None = None,
) -> tuple[list[BlinkEvent], np.ndarray]:
    """Blink events for one track. Returns the events and the per-row closing threshold used.

    frames: (M,) increasing frame numbers of the track; ear_lr: (M, 2) EAR of the image-left and
    image-right eye (NaN where unknown). mask: optional bool (M,), False where the eyes cannot
    be judged (`core.signals.eyes.eyes_assessable`: head turned, eyes too small...); those rows
    are treated like frames without a face: the track is split there and no event starts, ends
    or lies inside them. The threshold is NaN where no decision was made; in adaptive mode it is
    the level a dip from the open baseline must reach, (1 - min_depth) x baseline capped by
    max_ratio x baseline.
    """
    params = params or BlinkParams()
    if params.mode not in ("adaptive", "fixed"):
        raise ValueError(f"unknown blink mode {params.mode!r} (adaptive or fixed)")
    frames = np.asarray(frames).reshape(-1)
    ear_lr = np.asarray(ear_lr, np.float64).reshape(-1, 2)
    if frames.size != ear_lr.shape[0]:
        raise ValueError(f"{frames.size} frames but {ear_lr.shape[0]} EAR rows")
    if mask is not None:
        mask = np.asarray(mask, bool).reshape(-1)
        if mask.size != frames.size:
            raise ValueError(f"{frames.size} frames but {mask.size} mask rows")
    if not np.isfinite(fps):
        raise ValueError(f"frame rate {fps} is not a number")
    # fps <= 0 means an unknown rate (e.g. a one-frame video): windows then assume 25 fps and
    # durations are reported as 0
    known = float(fps) > 0
    fps = usable_fps(fps)
    avg = mean_ear(ear_lr)
    threshold = np.full(avg.shape, np.nan)
    events: list[BlinkEvent] = []
    min_rows = max(1, int(np.ceil(params.min_segment_s * fps)))
    valid = np.isfinite(avg) if mask is None else np.isfinite(avg) & mask
    for a, b in _segments(frames, valid):
        seg = avg[a:b]
        eyes = ear_lr[a:b]
        if params.mode == "fixed":
            thr = np.full(seg.shape, params.fixed_threshold)
            thr_eye = np.stack([thr, thr], axis=1)
            spans = [(s, s + int(np.argmin(seg[s : e + 1])), e) for s, e in _runs(seg < thr) if e - s + 1 >= params.min_frames]
        else:
            if seg.size < min_rows:
                continue
            base = open_baseline(seg, fps, params)
            ratio = min(1.0 - params.min_depth, params.max_ratio)
            thr = ratio * base
            thr_eye = np.stack([ratio * _eye_baseline(eyes[:, k], seg, fps, params) for k in (0, 1)], axis=1)
            spans = _dips(seg, base, fps, params)
        threshold[a:b] = thr
        for s, apex, e in spans:
            closed = _eyes_closed(eyes, s, e, thr_eye, fps, params)
            events.append(
                BlinkEvent(
                    start_frame=int(frames[a + s]),
                    apex_frame=int(frames[a + apex]),
                    end_frame=int(frames[a + e]),
                    duration_s=float((e - s + 1) / fps) if known else 0.0,
                    min_ear=float(seg[apex]),
                    closed_left=closed[0],
                    closed_right=closed[1],
                )
            )
    return events, threshold


def _eyes_closed(eyes: np.ndarray, s: int, e: int, thr_eye: np.ndarray, fps: float, params: BlinkParams) -> list[bool]:
    """Which eye (image-left, image-right) closed during rows [s, e] of a segment.

    Fixed mode: the eye's own EAR crossed the threshold. Adaptive: the eye's minimum fell
    `min_depth` below the lower of its own shoulders (its highest EAR within half the shoulder
    window before and after the event), the rule used for the mean of both eyes.
    """
    out = []
    w = max(1, int(round(params.shoulder_window_s * fps / 2)))
    for k in (0, 1):
        inside = eyes[s : e + 1, k]
        if not np.isfinite(inside).any():
            out.append(False)
            continue
        low = float(np.nanmin(inside))
        if params.mode == "fixed":
            out.append(low < float(thr_eye[s, k]))
            continue
        sides = [eyes[max(0, s - w) : s, k], eyes[e + 1 : e + 1 + w, k]]
        peaks = [float(np.nanmax(v)) for v in sides if np.isfinite(v).any()]
        shoulder = min(peaks) if peaks else float(np.nanmax(thr_eye[s : e + 1, k]))
        out.append(low <= (1.0 - params.min_depth) * shoulder)
    return out


def _eye_baseline(eye: np.ndarray, fallback: np.ndarray, fps: float, params: BlinkParams) -> np.ndarray:
    """One eye's open baseline; rows where that eye is unknown borrow the mean EAR."""
    filled = np.where(np.isfinite(eye), eye, fallback)
    return open_baseline(filled, fps, params)


def blink_rate_per_min(n_blinks: int, frames_with_face: int, fps: float) -> float | None:
    """Blinks per minute of visible face; None when under 1 s of face was seen.

    Pass the number of frames whose eyes were assessable (`core.signals.eyes`) when blinks were
    detected with a mask: time with the head turned is time in which no blink could be seen."""
    if fps <= 0 or frames_with_face < fps:
        return None
    return float(n_blinks / (frames_with_face / fps / 60.0))
