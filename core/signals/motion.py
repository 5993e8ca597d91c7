"""Landmark motion of one face track after removing rigid head motion.

1. Normalise: every frame's 68 landmarks are mapped by a similarity transform (Procrustes:
   translation, rotation, uniform scale) onto a canonical face, fitted on anchor points that do
   not move with speech or expression (nose 27-35, the four eye corners). The canonical face is
   the track's own mean shape (two rounds of generalised Procrustes), scaled so that the outer
   eye corners (36, 45) are 1 apart: every distance below is in units of that inter-ocular
   distance (IOD); "‰ IOD" is a thousandth of it.
2. Per region (brows, eyes, nose, mouth, jaw) and frame:
   velocity = mean point speed in IOD/s, and flicker = mean distance of each point from the
   midpoint of its previous and next positions (‰ IOD): zero for steady or uniform motion,
   large when a point jumps back and forth from frame to frame.
3. Head motion = speed of the rigid transform itself (anchor centroid in IOD/s plus rotation).
   Landmark noise grows with head motion (blur, out-of-plane turns the 2D transform cannot
   remove), so the flicker expected for a window is predicted from its head speed by a robust
   Theil-Sen line over the track's windows; what is left is flicker "not explained by head
   motion".
4. Per window (1 s, hop 0.5 s):
   - irregularity = max over regions of observed / expected flicker: 1 means as steady as the
     rest of this clip at this head speed, 2 means twice as jittery. It is relative to the same
     face in the same clip, so it finds stretches that differ from the rest (a spliced or
     regenerated segment, a shimmering boundary); a clip manipulated uniformly from start to
     end shows no irregular window by this measure.
   - mouth-jaw coupling = correlation of lip opening (62-66) with chin drop (33-8) while the
     mouth is moving; speech moves both together. `jaw_ratio` = chin-drop spread / lip-opening
     spread. A lip-sync generator that regenerates the lips on a rigid jaw gives a jaw ratio near
     0 (and a coupling near 0); a window is "decoupled" when the mouth moves (lip-opening spread
     >= `mouth_moving_std`) and the jaw ratio is below `rigid_jaw_ratio`.
   These are measurements with the scales above, not probabilities: no data set calibrated them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import theilslopes

from core.signals.geometry import BROWS, EYES, JAW, LEFT_EYE_INNER, LEFT_EYE_OUTER, MOUTH, NOSE, RIGHT_EYE_INNER, RIGHT_EYE_OUTER

ANCHORS = np.r_[NOSE, LEFT_EYE_OUTER, LEFT_EYE_INNER, RIGHT_EYE_INNER, RIGHT_EYE_OUTER]
MIN_FLICKER = 0.1  # permille IOD
REGIONS: dict[str, np.ndarray] = {
    "brows": np.r_[BROWS],
    "eyes": np.r_[EYES],
    "nose": np.r_[NOSE],
    "mouth": np.r_[MOUTH],
    "jaw": np.r_[JAW],
}


@dataclass
class MotionParams:
    window_s: float = 1.0
    hop_s: float = 0.5
    irregular_above: float = 2.0  # window flicker this many times what head motion explains
    mouth_moving_std: float = 0.02  # lip-opening spread (IOD) that counts as a moving mouth
    rigid_jaw_ratio: float = 0.3  # the mouth moves and the chin moves less than this share of it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# bounded memory: scipy's theilslopes forms every pair of points at once (n x n float64 arrays:
# 1.5 GB for the 7200 windows of an hour), and the alignment of a whole track held several float64
# copies of its landmarks; both now work in blocks that give the same values bit for bit

_FRAMES_AT_ONCE = 2048  # landmark rows aligned at once
_PAIRS_AT_ONCE = 1 << 18  # Theil-Sen slopes formed at once
_SCIPY_PAIRS = 1 << 18  # up to this many pairs (n = 512), scipy's theilslopes itself (~8 MB)


def _slope_blocks(y: np.ndarray, x: np.ndarray) -> Iterator[np.ndarray]:
    """Every slope (y_i - y_j) / (x_i - x_j) with x_i > x_j, as scipy's theilslopes forms them, in blocks of rows."""
    rows = max(1, _PAIRS_AT_ONCE // max(x.size, 1))
    for a in range(0, x.size, rows):
        dx = x[a:a + rows, None] - x
        dy = y[a:a + rows, None] - y
        pos = dx > 0
        yield dy[pos] / dx[pos]


def _order_statistics(y: np.ndarray, x: np.ndarray, ks: tuple[int, int], nt: int) -> tuple[float, float]:
    """The ks-th smallest slopes (0-based) of all nt pairs, without holding them all: a sample of
    pairs brackets them, one pass counts the slopes below the bracket and keeps those inside."""
    rng = np.random.default_rng(0)
    i, j = rng.integers(x.size, size=(2, 200_000))
    keep = x[i] > x[j]
    sample = np.sort((y[i[keep]] - y[j[keep]]) / (x[i[keep]] - x[j[keep]]))
    width = 0.005
    while True:
        q0, q1 = ks[0] / nt - width, ks[1] / nt + width
        lo = sample[int(np.floor(q0 * (sample.size - 1)))] if q0 > 0 and sample.size else -np.inf
        hi = sample[int(np.ceil(q1 * (sample.size - 1)))] if q1 < 1 and sample.size else np.inf
        below, inside = 0, []
        for block in _slope_blocks(y, x):
            below += int(np.count_nonzero(block < lo))
            inside.append(block[(block >= lo) & (block <= hi)])
        kept = np.concatenate(inside)
        if below <= ks[0] and ks[1] < below + kept.size:
            part = np.partition(kept, [ks[0] - below, ks[1] - below])
            return float(part[ks[0] - below]), float(part[ks[1] - below])
        width *= 4  # the sample missed: a wider bracket (at the end: every slope)


def theil_sen(y: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """`scipy.stats.theilslopes(y, x)`'s slope and intercept (method "separate"), bit for bit, in
    memory linear in n (scipy's is quadratic). Finite values, at least two distinct x."""
    y = np.array(y, dtype=float, copy=True).ravel()
    x = np.array(x, dtype=float, copy=True).ravel()
    if x.size * x.size <= _SCIPY_PAIRS or not (np.isfinite(x).all() and np.isfinite(y).all()):
        res = theilslopes(y, x)
        return float(res[0]), float(res[1])
    xs = np.sort(x)
    nt = int(np.searchsorted(xs, x, side="left").sum())  # pairs with x_i > x_j
    a, b = _order_statistics(y, x, ((nt - 1) // 2, nt // 2), nt)
    medslope = np.mean(np.array([a, b])) if nt % 2 == 0 else np.float64(a)  # as np.median takes the middle
    return float(medslope), float(np.median(y) - medslope * np.median(x))


def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares similarity (Umeyama) mapping each src (M, K, 2) onto dst (K, 2):
    scale (M,), rotation (M, 2, 2), translation (M, 2), so that dst ~ scale * R @ src + t."""
    ms, md = src.mean(axis=1), dst.mean(axis=0)
    s, d = src - ms[:, None], dst - md
    u, sig, vt = np.linalg.svd(np.einsum("kd,mke->mde", d, s))
    sign = np.sign(np.linalg.det(u @ vt))
    sign[sign == 0] = 1.0
    rot = u @ (np.stack([np.ones_like(sign), sign], axis=1)[:, :, None] * vt)
    var = (s**2).sum(axis=(1, 2))
    scale = np.where(var > 0, (sig[:, 0] + sig[:, 1] * sign) / np.where(var > 0, var, 1.0), 1.0)
    return scale, rot, md - scale[:, None] * np.einsum("mij,mj->mi", rot, ms)


def _canonical(shape: np.ndarray) -> np.ndarray:
    out = shape - shape[ANCHORS].mean(0)
    iod = np.linalg.norm(out[45] - out[36])
    return out / iod if iod > 0 else out


def _align_rows(landmarks: np.ndarray, a: int, b: int, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows a..b-1 aligned onto ref: (b-a, 68, 2) and their transforms (b-a, 4). Each row's
    transform is its own, so any split into blocks gives the same values."""
    lm = np.asarray(landmarks[a:b], np.float64)
    c, rot, t = similarity(lm[:, ANCHORS], ref[ANCHORS])
    return c[:, None, None] * np.einsum("mkj,mij->mki", lm, rot) + t[:, None, :], np.c_[c, np.arctan2(rot[:, 1, 0], rot[:, 0, 0]), t]


def _last_reference(landmarks: np.ndarray, rounds: int) -> np.ndarray:
    """The reference shape the last of `rounds` alignment rounds aligns onto: the median shape,
    then the mean of each round's aligned shapes, without holding a round's aligned landmarks
    (the mean is summed row after row, as numpy sums along axis 0, so its value is the same)."""
    m = len(landmarks)
    flat = np.asarray(landmarks).reshape(m, -1)
    med = np.empty(flat.shape[1])
    cols = max(1, (1 << 21) // max(m, 1))
    for a in range(0, flat.shape[1], cols):  # each coordinate's median is its own
        med[a:a + cols] = np.median(np.asarray(flat[:, a:a + cols], np.float64), axis=0)
    ref = _canonical(med.reshape(68, 2))
    for _ in range(rounds - 1):
        total: np.ndarray | None = None
        for a in range(0, m, _FRAMES_AT_ONCE):
            rows, _ = _align_rows(landmarks, a, a + _FRAMES_AT_ONCE, ref)
            total = np.add.reduce(rows if total is None else np.concatenate([total[None], rows]), axis=0)
        assert total is not None
        ref = _canonical(total / m)
    return ref


def align(landmarks: np.ndarray, rounds: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks (M, 68, 2) -> aligned (M, 68, 2) in IOD units, and the transforms (M, 4):
    scale (canonical units per pixel), rotation angle (rad), translation x, y (canonical units)."""
    if rounds <= 0:
        return np.array(landmarks, np.float64), np.zeros((len(landmarks), 4))
    m = len(landmarks)
    ref = _last_reference(landmarks, rounds)
    aligned, params = np.empty((m, 68, 2)), np.empty((m, 4))
    for a in range(0, m, _FRAMES_AT_ONCE):
        aligned[a:a + _FRAMES_AT_ONCE], params[a:a + _FRAMES_AT_ONCE] = _align_rows(landmarks, a, a + _FRAMES_AT_ONCE, ref)
    return aligned, params


@dataclass
class TrackMotion:
    frames: np.ndarray  # (M,) frame numbers
    velocity: dict[str, np.ndarray]  # region -> (M,) IOD/s (NaN where the previous frame is missing)
    flicker: dict[str, np.ndarray]  # region -> (M,) ‰ IOD (NaN at gaps and ends)
    head_speed: np.ndarray  # (M,) IOD/s of the anchor centroid plus rotation (rad/s ~ IOD/s)
    lip_opening: np.ndarray  # (M,) IOD
    chin_drop: np.ndarray  # (M,) IOD
    windows: list[dict[str, Any]]


def measure_motion(frames: np.ndarray, landmarks: np.ndarray, fps: float, params: MotionParams | None = None) -> TrackMotion:
    p = params or MotionParams()
    frames = np.asarray(frames)
    m = frames.size
    ref = _last_reference(landmarks, 2) if m else np.zeros((68, 2))  # the alignment's (align): in blocks below
    tf = np.empty((m, 4))
    prev_ok = np.r_[False, np.diff(frames) == 1]  # row k-1 is frame k's predecessor
    next_ok = np.r_[np.diff(frames) == 1, False]
    velocity: dict[str, np.ndarray] = {}
    flicker: dict[str, np.ndarray] = {}
    for name in REGIONS:
        velocity[name], flicker[name] = np.empty(m), np.empty(m)
    flicker["anchors"] = np.empty(m)
    lip, chin = np.empty(m), np.empty(m)
    both_ok = prev_ok & next_ok
    # blocks of frames, aligned with one row of context on each side (the same rows as aligning the
    # whole track): step from the previous frame, deviation from the neighbours' midpoint
    for a in range(0, m, _FRAMES_AT_ONCE):
        b = min(a + _FRAMES_AT_ONCE, m)
        c0, c1 = max(a - 1, 0), min(b + 1, m)
        al, rows_tf = _align_rows(landmarks, c0, c1, ref)
        tf[a:b] = rows_tf[a - c0:b - c0]
        cur = al[a - c0:b - c0]
        step = np.full((b - a, 68), np.nan)
        lo = max(a, 1)
        step[lo - a:] = np.linalg.norm(al[lo - c0:b - c0] - al[lo - 1 - c0:b - 1 - c0], axis=2)
        step[~prev_ok[a:b]] = np.nan
        dev = np.full((b - a, 68), np.nan)
        hi = min(b, m - 1)
        if m >= 3 and hi > lo:
            dev[lo - a:hi - a] = np.linalg.norm(al[lo - c0:hi - c0] - (al[lo - 1 - c0:hi - 1 - c0] + al[lo + 1 - c0:hi + 1 - c0]) / 2, axis=2)
        dev[~both_ok[a:b]] = np.nan
        for name, idx in REGIONS.items():
            velocity[name][a:b] = step[:, idx].mean(axis=1) * fps
            flicker[name][a:b] = dev[:, idx].mean(axis=1) * 1000.0
        flicker["anchors"][a:b] = dev[:, ANCHORS].mean(axis=1) * 1000.0
        lip[a:b] = np.linalg.norm(cur[:, 62] - cur[:, 66], axis=1)
        chin[a:b] = np.linalg.norm(cur[:, 8] - cur[:, 33], axis=1)
    # head motion in canonical units: image displacement of the anchor centroid divided by the
    # face's image scale (1 / transform scale = IOD in pixels), plus rotation speed
    centroid = np.einsum("mkd->md", np.asarray(np.asarray(landmarks)[:, ANCHORS], np.float64)) / ANCHORS.size
    head = np.full(m, np.nan)
    if m >= 2:
        move = np.linalg.norm(np.diff(centroid, axis=0), axis=1) * tf[1:, 0]
        turn = np.abs(np.angle(np.exp(1j * np.diff(tf[:, 1]))))
        head[1:] = (move + turn) * fps
    head[~prev_ok] = np.nan
    windows = _windows(frames, flicker, head, lip, chin, fps, p)
    return TrackMotion(frames, velocity, flicker, head, lip, chin, windows)


def _nanmedian(x: np.ndarray) -> float:
    return float(np.nanmedian(x)) if np.isfinite(x).any() else float("nan")


def _windows(
    frames: np.ndarray, flicker: dict[str, np.ndarray], head: np.ndarray, lip: np.ndarray, chin: np.ndarray, fps: float, p: MotionParams
) -> list[dict[str, Any]]:
    w = max(3, int(round(p.window_s * fps)))
    hop = max(1, int(round(p.hop_s * fps)))
    out: list[dict[str, Any]] = []
    for a in range(0, max(frames.size - w + 1, 0), hop):
        b = a + w
        if frames[b - 1] - frames[a] != w - 1:  # the window spans a gap in the track
            continue
        row: dict[str, Any] = {"start_frame": int(frames[a]), "end_frame": int(frames[b - 1]), "head_speed": _nanmedian(head[a:b])}
        row["flicker"] = {r: _nanmedian(v[a:b]) for r, v in flicker.items()}
        ls, cs = float(np.std(lip[a:b])), float(np.std(chin[a:b]))
        row["lip_std"] = ls
        row["jaw_ratio"] = cs / ls if ls > 0 else None
        row["coupling"] = float(np.corrcoef(lip[a:b], chin[a:b])[0, 1]) if ls >= p.mouth_moving_std and cs > 0 else None
        out.append(row)
    _irregularity(out, p)
    return out


def _irregularity(windows: list[dict[str, Any]], p: MotionParams) -> None:
    """Observed / expected flicker per region and window, expected from head speed (Theil-Sen)."""
    if not windows:
        return
    head = np.array([w["head_speed"] for w in windows])
    for w in windows:
        w["irregularity"] = {}
    for region in REGIONS:
        f = np.array([w["flicker"][region] for w in windows])
        ok = np.isfinite(f) & np.isfinite(head)
        if ok.sum() >= 4 and np.ptp(head[ok]) > 0:
            slope, icpt = theil_sen(f[ok], head[ok])
            slope = max(slope, 0.0)  # more head motion never predicts less noise
            if slope == 0.0:
                icpt = float(np.median(f[ok]))
        else:
            slope, icpt = 0.0, float(np.median(f[ok])) if ok.any() else float("nan")
        # expected flicker never below 0.1 permille IOD (a hundredth of a pixel at 100 px): a still
        # face must not turn rounding noise into a large ratio
        floor = max(float(np.median(f[ok])) * 0.25, MIN_FLICKER) if ok.any() else MIN_FLICKER
        for k, w in enumerate(windows):
            expected = max(icpt + slope * head[k], floor) if np.isfinite(head[k]) else max(icpt, floor)
            w["irregularity"][region] = float(f[k] / expected) if np.isfinite(f[k]) else None
    for w in windows:
        vals = {r: v for r, v in w["irregularity"].items() if v is not None}
        w["score"] = max(vals.values()) if vals else None
        w["region"] = max(vals, key=vals.__getitem__) if vals else None
        w["irregular"] = w["score"] is not None and w["score"] >= p.irregular_above
        # the mouth moves (coupling is only computed then) while the chin barely does
        w["decoupled"] = w["coupling"] is not None and w["jaw_ratio"] is not None and w["jaw_ratio"] < p.rigid_jaw_ratio
