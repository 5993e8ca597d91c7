"""The statistics behind av_sync: correlation by lag, its peak, the null model (the same mouth
against the audio rotated far away, where no true sync exists), empirical p-values, Bonferroni
flag lines, and the jackknife of the offset margin. Pure numpy; no av_sync rule lives here."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from core.signals.avsync_records import AVSyncParams

def rotations(span: int, min_shift: int, count: int) -> np.ndarray:
    """Up to `count` distinct rotations of an envelope of `span` samples, each at least `min_shift`
    from no rotation (so no true sync survives them); none when the envelope is too short."""
    if span <= 2 * min_shift:
        return np.zeros(0, int)
    return np.unique(np.linspace(min_shift, span - min_shift, count).astype(int))


# lag x frame cells correlated at once: each row is correlated on its own, so blocks of rows give
# the same values, and a long recording's temporaries stay ~2 MB each (31 lags x 1 hour: 22 MB each)
_CELLS_AT_ONCE = 1 << 18


def pearson_rows(x: np.ndarray, y: np.ndarray, min_n: int) -> np.ndarray:
    """Pearson correlation of x (N,) with each row of y (L, N) over positions valid in both."""
    if y.ndim == 2 and y.shape[0] > 1 and y.size > _CELLS_AT_ONCE:
        rows = max(1, _CELLS_AT_ONCE // y.shape[1])
        return np.concatenate([pearson_rows(x, y[a:a + rows], min_n) for a in range(0, y.shape[0], rows)])
    valid = np.isfinite(x)[None, :] & np.isfinite(y)
    n = valid.sum(axis=1)
    xs = np.where(valid, x[None, :], 0.0)
    ys = np.where(valid, y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = xs.sum(1) / n
        my = ys.sum(1) / n
        dx = np.where(valid, xs - mx[:, None], 0.0)
        dy = np.where(valid, ys - my[:, None], 0.0)
        r = (dx * dy).sum(1) / np.sqrt((dx * dx).sum(1) * (dy * dy).sum(1))
    r[(n < min_n) | ~np.isfinite(r)] = np.nan
    return r


def correlation_peak(lags: np.ndarray, r: np.ndarray) -> tuple[float | None, float | None, float | None]:
    """(offset in frames with parabolic refinement, confidence = peak - median, peak value)."""
    if not np.isfinite(r).any() or np.isfinite(r).sum() < 3:
        return None, None, None
    k = int(np.nanargmax(r))
    peak = float(r[k])
    off = float(lags[k])
    if 0 < k < r.size - 1 and np.isfinite(r[k - 1]) and np.isfinite(r[k + 1]):
        den = r[k - 1] - 2 * r[k] + r[k + 1]
        if den < 0:
            off += float(np.clip(0.5 * (r[k - 1] - r[k + 1]) / den, -0.5, 0.5)) * float(lags[1] - lags[0])
    conf = peak - float(np.nanmedian(r))
    return off, conf, peak


def null_rows(x: np.ndarray, env_t: np.ndarray, hp_env: np.ndarray, times_s: np.ndarray, lags: np.ndarray, fps: float,
               min_n: int, shifts: np.ndarray, frames: slice) -> np.ndarray:
    """Correlation by lag of x against the envelope rotated by each far shift (no true sync): (S, L)."""
    out = np.full((shifts.size, lags.size), np.nan)
    t = times_s[frames]
    xs = x[frames]
    rows = max(1, _CELLS_AT_ONCE // max(t.size, 1))  # lags at once (all of them for a window)
    for k, sh in enumerate(shifts):
        rolled = np.roll(hp_env, int(sh))
        for a in range(0, lags.size, rows):
            y = np.interp(t[None, :] + lags[a:a + rows, None] / fps, env_t, rolled, left=np.nan, right=np.nan)
            out[k, a:a + rows] = pearson_rows(xs, y, min_n)
    return out


def null_confidences(x: np.ndarray, env_t: np.ndarray, hp_env: np.ndarray, times_s: np.ndarray, lags: np.ndarray, fps: float,
                      min_n: int, shifts: np.ndarray, frames: slice) -> np.ndarray:
    """Confidence of x against the envelope rotated by each far shift (no true sync): the null."""
    return confidences(lags, null_rows(x, env_t, hp_env, times_s, lags, fps, min_n, shifts, frames))


def confidences(lags: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = np.full(rows.shape[0], np.nan)
    for k, r in enumerate(rows):
        _, c, _ = correlation_peak(lags, r)
        if c is not None:
            out[k] = c
    return out


def span_test_count(spans: list[tuple[int, int, list[int]]], windows: Sequence[Any]) -> int:
    """Effective number of span tests: per span length, the disjoint spans that fit in the judged frames.

    Spans of one length overlap by up to 75 % (hop 0.5 s, window 2 s) and their statistics move
    together; counting every overlapping span would make Bonferroni needlessly blind.
    """
    judged_frames = len({f for _, _, ks in spans if len(ks) == 1 for k in ks for f in range(windows[k].start_frame, windows[k].end_frame + 1)})
    win = max((b - a for a, b, ks in spans if len(ks) == 1), default=1)
    total = 0
    powers = [k for k in sorted({len(ks) for _, _, ks in spans}) if k & (k - 1) == 0]
    for k in powers:
        length = max(b - a for a, b, ks in spans if len(ks) == k)
        total += max(judged_frames // max(length, 1), 1)
    # change-point spans (run start to a window, a window to run end): one pair per window length
    if any(len(ks) & (len(ks) - 1) != 0 for _, _, ks in spans):
        total += 2 * max(judged_frames // max(win, 1), 1)
    return total


def z_crit_for(n_windows: int, family_alpha: float) -> float:
    """One-sided normal quantile with Bonferroni over n_windows tests (overlap makes it conservative)."""
    return float(NormalDist().inv_cdf(1.0 - family_alpha / max(n_windows, 1)))


def p_value(conf: float, null: np.ndarray) -> float | None:
    null = null[np.isfinite(null)]
    if null.size < 5:
        return None
    return float((1 + np.sum(null >= conf)) / (1 + null.size))


def offset_evidence(x: np.ndarray, shifted: np.ndarray, lags: np.ndarray, r: np.ndarray, fps: float, p: AVSyncParams,
                    min_n: int) -> tuple[float | None, float | None, float | None]:
    """How surely the correlation peak beats every in-sync lag: (best in-sync lag, margin, margin z).

    Speech has a syllable rhythm, so the correlation by lag of genuine, in-sync footage has side
    lobes ~4-6 frames from its true lag, and over a few seconds a side lobe can win. Rotated audio
    is no null for that (it has no sync at any lag). The margin (r at the peak minus the best r
    within +/-flag_offset_frames) is instead judged against its own variability over time: a
    delete-one-block jackknife over blocks of `margin_block_s` (r recomputed without each block).
    A real offset wins in every stretch of speech; a side lobe wins by the luck of a few syllables.
    """
    fin = np.isfinite(r)
    near = fin & (np.abs(lags) <= p.flag_offset_frames)
    if not fin.any() or not near.any():
        return None, None, None
    k = int(np.nanargmax(r))
    near_idx = np.flatnonzero(near)
    j = int(near_idx[np.argmax(r[near_idx])])
    margin = float(r[k] - r[j])
    if k in near_idx:
        return float(lags[j]), margin, None  # the peak is in sync: nothing to test
    valid = np.flatnonzero(np.isfinite(x))
    # at most 200 blocks: longer blocks on a long recording keep the cost linear (still a valid jackknife)
    block = max(int(round(p.margin_block_s * fps)), -(-int(np.isfinite(x).sum()) // 200), 1)
    if valid.size == 0:
        return float(lags[j]), margin, None
    # blocks of the frames that carry the correlation (speech with a face), in time order
    groups = [valid[i:i + block] for i in range(0, valid.size, block)]
    if len(groups) < 3:
        return float(lags[j]), margin, None
    rows = np.concatenate([[k], near_idx])
    reps = []
    for g in groups:
        xb = x.copy()
        xb[g] = np.nan
        rb = pearson_rows(xb, shifted[rows], min_n)
        if not np.isfinite(rb).all():
            return float(lags[j]), margin, None
        reps.append(rb[0] - np.max(rb[1:]))
    reps_a = np.asarray(reps)
    b = reps_a.size
    se = float(np.sqrt((b - 1) / b * np.sum((reps_a - reps_a.mean()) ** 2)))
    return float(lags[j]), margin, (float(min(margin / se, 99.0)) if se > 0 else 99.0)
