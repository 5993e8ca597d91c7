"""Report figures as PNG bytes in memory: EAR timeline (the pipeline's masked blinks, unassessable
eyes in grey), per-window score series, key frames (with a stored Grad-CAM map beside them).

matplotlib runs on the Agg backend through its object API (no pyplot state, thread-safe enough
for a worker thread); key frames are drawn with OpenCV on frames read by core.video.VideoReader.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from core.detectors.curves import Curve, is_typed
from core.face.facepass import FacePass, FaceTrack
from core.signals.blinks import BlinkParams
from core.signals.eyes import EyeParams, assessable_percent, track_blinks, unassessable_runs
from core.signals.geometry import OUTLINES
from core.video.reader import VideoReader

DPI = 150
SEGMENT_COLOUR = "#d62728"


def _png(fig: Figure, tight: bool = True) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight" if tight else None)
    return buf.getvalue()


def _shade(ax: Any, segments: list[dict[str, Any]], to_x: Any, label: bool = True) -> None:
    for k, s in enumerate(segments):
        ax.axvspan(to_x(s["start_frame"]), to_x(s["end_frame"] + 1), color=SEGMENT_COLOUR, alpha=0.15, lw=0,
                   label="flagged blink segment" if label and k == 0 else None)


def _shade_undecodable(ax: Any, fp: FacePass | None, to_x: Any, label: bool = True) -> None:
    """Frames that could not be decoded: hatched, so they read as "nothing there", not as a value."""
    for k, (a, b) in enumerate(fp.undecodable if fp is not None else []):
        ax.axvspan(to_x(a), to_x(b + 1), facecolor="none", edgecolor="#7a1f1f", hatch="////", lw=0,
                   label="frames that cannot be decoded" if label and k == 0 else None)


def frame_to_time(fp: FacePass) -> Any:
    """Frame index -> seconds from the first frame (frame_count maps to the end of the clip)."""
    t = np.asarray(fp.times_s, float)
    t0 = t[0] if t.size else 0.0
    step = 1.0 / fp.fps if fp.fps else 0.04

    def conv(i: float) -> float:
        i = int(i)
        if 0 <= i < t.size:
            return float(t[i] - t0)
        return float((t[-1] - t0) + (i - t.size + 1) * step) if t.size else i * step

    return conv


UNASSESSABLE_COLOUR = "#9e9e9e"  # neutral grey: eyes not judged, no verdict either way


@dataclass
class EarPlotData:
    """What the EAR figure of one face track shows, on the frame axis."""

    frames: np.ndarray  # (M,) frame of each track row
    ear: np.ndarray  # (M, 2) image-left, image-right
    mean: np.ndarray  # (M,)
    threshold: np.ndarray  # (M,) closing level; NaN where the eyes were not judged
    blinks: list[dict[str, Any]]  # the blink events drawn (start_frame, apex_frame, end_frame, min_ear...)
    unassessable: list[tuple[int, int, str]]  # (first, last frame, reason) of the stretches whose eyes cannot be judged
    assessable_fraction: float  # share of the track's frames whose eyes can be judged


def ear_plot_data(fp: FacePass, track: FaceTrack, params: BlinkParams, blinks: list[dict[str, Any]] | None,
                  eye_params: EyeParams | None = None) -> EarPlotData:
    """The EAR figure's data. Threshold, mask and (when `blinks` is None) the events come from
    `track_blinks`, the call `verity analyze` makes: pass the run's stored parameters (see
    `core.signals.eyes.stored_params`) and its stored events to draw exactly what the JSON reports."""
    events, threshold, check = track_blinks(track, fp.width, fp.height, fp.fps, params, eye_params)
    ear = np.asarray(track.ear, float)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row without any EAR: NaN, not a warning
        mean = np.nanmean(ear, axis=1) if ear.size else np.zeros(0)
    a = check.assessable
    return EarPlotData(
        frames=np.asarray(track.frames), ear=ear, mean=mean, threshold=np.asarray(threshold, float),
        blinks=[e.to_dict() for e in events] if blinks is None else list(blinks),
        unassessable=unassessable_runs(track.frames, check), assessable_fraction=float(a.mean()) if a.size else 0.0,
    )


def ear_timeline(fp: FacePass, track: FaceTrack, params: BlinkParams, blinks: list[dict[str, Any]] | None,
                 segments: list[dict[str, Any]], eye_params: EyeParams | None = None) -> bytes:
    """EAR (left, right, mean) of one track with the blink threshold, blink events, flagged
    segments, and the stretches whose eyes cannot be judged for blinks in grey."""
    d = ear_plot_data(fp, track, params, blinks, eye_params)
    to_t = frame_to_time(fp)
    x = np.array([to_t(f) for f in d.frames])
    fig = Figure(figsize=(7.2, 2.6))
    ax = fig.add_subplot()
    ax.plot(x, d.ear[:, 0], lw=0.6, color="#1f77b4", alpha=0.55, label="EAR image-left eye")
    ax.plot(x, d.ear[:, 1], lw=0.6, color="#2ca02c", alpha=0.55, label="EAR image-right eye")
    ax.plot(x, d.mean, lw=1.2, color="black", label="EAR mean")
    ax.plot(x, d.threshold, lw=1.0, ls="--", color="#ff7f0e", label=f"blink threshold ({params.mode})")
    for k, (a, b, _) in enumerate(d.unassessable):
        ax.axvspan(to_t(a), to_t(b + 1), color=UNASSESSABLE_COLOUR, alpha=0.3, lw=0,
                   label="eyes not assessable" if k == 0 else None)
    _shade(ax, segments, to_t)
    _shade_undecodable(ax, fp, to_t)
    for k, e in enumerate(d.blinks):
        ax.axvspan(to_t(e["start_frame"]), to_t(e["end_frame"] + 1), color="#9467bd", alpha=0.25, lw=0, label="blink" if k == 0 else None)
        ax.plot([to_t(e["apex_frame"])], [e["min_ear"]], "v", color="#9467bd", ms=4)
    ax.set_xlim(0, to_t(fp.frame_count))
    ax.set_xlabel("time from first frame (s)")
    ax.set_ylabel("eye aspect ratio")
    ax.set_title(f"Face track {track.track_id}: EAR, threshold and {len(d.blinks)} blink event(s); "
                 f"eyes assessable in {assessable_percent(d.assessable_fraction)}% of face frames", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.28), frameon=False)
    return _png(fig)


@dataclass
class Series:
    detector: str
    name: str
    start: np.ndarray  # first frame of each point (window)
    end: np.ndarray  # last frame (inclusive); == start for per-frame values
    values: np.ndarray
    probability: bool  # a score in 0..1 (1 = manipulated) rather than a measurement
    track_id: int | None = None


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan


def _numbers(v: Any) -> np.ndarray | None:
    """A list of numbers (None -> NaN) as floats, or None when it is anything else."""
    if not isinstance(v, list) or not all(isinstance(x, (int, float, type(None))) and not isinstance(x, bool) for x in v):
        return None
    return np.array([_num(x) for x in v], float)


def _typed(detector: str, name: str, curve: Curve, frame_count: int) -> Series | None:
    ys = np.array([_num(v) for v in curve.values], float)
    if not ys.size:
        return None
    tid = curve.track_id if isinstance(curve.track_id, int) else None
    if curve.axis == "windows":
        start, end = np.array(curve.start_frame, float), np.array(curve.end_frame, float)
    elif curve.frames is not None:
        start = end = np.array(curve.frames, float)
    elif ys.size == frame_count:
        start = end = np.arange(frame_count, dtype=float)
    else:
        return None  # per video frame, but not this video's frame count: cannot be placed
    return Series(detector, name, start, end, ys, curve.kind == "score", tid)


def _curve(detector: str, name: str, curve: Any, frame_count: int) -> Series | None:
    if is_typed(curve):
        try:
            return _typed(detector, name, Curve.from_dict(curve), frame_count)
        except ValueError:
            return None
    # below: the shapes of analyses stored before typed curves (core.detectors.curves)
    if isinstance(curve, list):
        ys = _numbers(curve)
        if ys is None or ys.size != frame_count:
            return None  # not per frame of the video: cannot be placed on the time axis
        x = np.arange(frame_count, dtype=float)
        return Series(detector, name, x, x, ys, False)
    if not isinstance(curve, dict):
        return None
    tid = curve.get("track_id") if isinstance(curve.get("track_id"), int) else None
    ys = next((v for k in ("values", "scores", "score", "y") if (v := _numbers(curve.get(k))) is not None), None)
    if ys is None or not ys.size:
        return None
    start, end = _numbers(curve.get("start_frame")), _numbers(curve.get("end_frame"))
    if start is not None and end is not None and start.size == end.size == ys.size:
        return Series(detector, name, start, end, ys, False, tid)
    x = next((v for k in ("frames", "frame", "x") if (v := _numbers(curve.get(k))) is not None), None)
    if x is not None and x.size == ys.size:
        return Series(detector, name, x, x, ys, False, tid)
    return None


def series_of(detector: str, result: dict[str, Any], frame_count: int) -> list[Series]:
    """Every time series a result carries that can be placed on the frame axis (windows first)."""
    out: list[Series] = []
    rows = [p for p in result.get("frame_predictions") or [] if isinstance(p, dict) and "score" in p]
    if rows:
        s = e = None
        if all(isinstance(p.get("start_frame"), int) and isinstance(p.get("end_frame"), int) for p in rows):
            s = np.array([p["start_frame"] for p in rows], float)
            e = np.array([p["end_frame"] for p in rows], float)
        elif all(isinstance(p.get("frame"), int) for p in rows):
            s = e = np.array([p["frame"] for p in rows], float)
        elif len(rows) == frame_count:
            s = e = np.arange(frame_count, dtype=float)
        if s is not None and e is not None:  # window indices without frame ranges cannot be placed
            v = np.array([_num(p["score"]) for p in rows])
            fin = v[np.isfinite(v)]
            prob = bool(fin.size) and bool((fin >= 0).all() and (fin <= 1).all())
            out.append(Series(detector, "score per window" if (s != e).any() else "score per frame", s, e, v, prob))
    for name, curve in (result.get("curves") or {}).items():
        ser = _curve(detector, str(name), curve, frame_count)
        if ser is None or not np.isfinite(ser.values).any():
            continue
        if any(o.values.shape == ser.values.shape and np.allclose(o.values, ser.values, equal_nan=True)
               and np.array_equal(o.start, ser.start) for o in out):
            continue  # the same numbers as the windows above
        out.append(ser)
    return out


def score_series(series: list[Series], segments: list[dict[str, Any]], fp: FacePass | None, frame_count: int, fps: float) -> bytes:
    """One panel per series on a shared time axis, flagged segments of that detector shaded."""
    if fp is not None:
        to_t = frame_to_time(fp)
    else:
        def to_t(i: float) -> float:
            return float(i) / fps if fps else float(i)
    n = len(series)
    fig = Figure(figsize=(7.2, 1.45 * n + 0.6))
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    for ax, s in zip(axes, series):
        valid = np.isfinite(s.values)
        if (s.start != s.end).any():
            # windows (they may overlap): a point at each window's centre, its span as a faint bar
            ax.hlines(s.values[valid], [to_t(a) for a in s.start[valid]], [to_t(b + 1) for b in s.end[valid]], color="#1f77b4", lw=1.0, alpha=0.3)
            centres = [(to_t(a) + to_t(b + 1)) / 2 for a, b in zip(s.start[valid], s.end[valid])]
            ax.plot(centres, s.values[valid], "-o", lw=0.9, ms=2.5, color="#1f77b4")
        else:
            ax.plot([to_t(f) for f in s.start[valid]], s.values[valid], lw=0.9, color="#1f77b4")
        _shade(ax, [g for g in segments if g["detector"] == s.detector and (s.track_id is None or g["track_id"] in (None, s.track_id))], to_t, label=False)
        _shade_undecodable(ax, fp, to_t, label=False)
        if s.probability:
            ax.set_ylim(-0.02, 1.02)
            ax.axhline(0.5, color="grey", lw=0.6, ls=":")
        ax.set_ylabel("score" if s.probability else "value", fontsize=7)
        ax.set_title(f"{s.detector}: {s.name}", fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[-1].set_xlim(0, to_t(frame_count))
    hatched = "; hatched: frames that cannot be decoded" if fp is not None and fp.undecodable else ""
    axes[-1].set_xlabel(f"time from first frame (s); shaded: flagged segments of that detector{hatched}", fontsize=7)
    fig.tight_layout()
    return _png(fig, tight=False)  # tight_layout already placed everything


def key_frame(
    reader: VideoReader, frame: int, fp: FacePass | None, track_id: int | None, max_side: int = 640,
    heat: tuple[np.ndarray, np.ndarray, int] | None = None,
) -> tuple[bytes, str]:
    """The evidence frame (read frame-exact) with the face's 68 landmarks drawn, cropped around a small face.

    The picture is cropped and scaled first and the landmarks drawn afterwards, in the scaled
    coordinates, so they stay thin lines and dots over the face whatever the frame size.
    `heat` = (frame -> crop affine, stored heat map, crop side): the crop the model saw on this
    frame with the map over it is put beside the frame, at the same height.
    """
    import cv2

    rgb = np.ascontiguousarray(reader.frame(frame))
    img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    h, w = img.shape[:2]
    caption = f"frame {frame}"
    faces: list[tuple[int, np.ndarray, np.ndarray]] = []  # (track id, box, landmarks) in frame pixels
    if fp is not None:
        for t in fp.tracks:
            if track_id is not None and t.track_id != track_id:
                continue
            row = t.row_of(frame)
            if row is not None:
                faces.append((t.track_id, np.asarray(t.boxes[row], float), np.asarray(t.landmarks[row], float)))
        if not faces:
            caption += " (no tracked face on this frame)"
    ox, oy = 0, 0
    if faces:
        b = np.array([f[1] for f in faces])
        x0, y0, x1, y1 = b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()
        side = max(x1 - x0, y1 - y0) * 1.8
        if side < 0.7 * max(h, w):  # small face in a large frame: crop around it
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            half = max(side / 2, 80)
            ox, c = int(max(cx - half, 0)), int(min(cx + half, w))
            oy, d = int(max(cy - half, 0)), int(min(cy + half, h))
            img = img[oy:d, ox:c]
            caption += f", crop x {ox}-{c}, y {oy}-{d} of {w}x{h}"
    scale = max_side / max(img.shape[:2])
    if abs(scale - 1) > 1e-3:
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        img = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)), interpolation=interp)
        if scale > 1:
            caption += f", enlarged {scale:.1f}x"
    img = np.ascontiguousarray(img)
    radius = max(1, round(max(img.shape[:2]) / 220))
    for tid, box, lm in faces:
        pts = (lm - [ox, oy]) * scale
        for part, closed in OUTLINES:
            poly = np.round(pts[part]).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(img, [poly], closed, (0, 255, 255), 1, cv2.LINE_AA)
        for x, y in pts:
            cv2.circle(img, (int(round(x)), int(round(y))), radius, (0, 0, 255), -1, cv2.LINE_AA)
        bx, by = (box[0] - ox) * scale, (box[1] - oy) * scale
        cv2.putText(img, f"face {tid}", (int(max(bx, 2)), int(max(by - 5, 12))), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 255), 1, cv2.LINE_AA)
    img = cv2.copyMakeBorder(img, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=(128, 128, 128))  # a white frame stays visible
    if heat is not None:
        img = np.concatenate([img, np.full((img.shape[0], 6, 3), 255, np.uint8), _heat_panel(rgb, *heat, side=img.shape[0])], axis=1)
        caption += "; right: Grad-CAM heat map on the face crop the model saw"
    ok, png = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return png.tobytes(), caption


def _heat_panel(rgb: np.ndarray, affine: np.ndarray, heat: np.ndarray, crop_size: int, side: int) -> np.ndarray:
    """BGR (side, side) picture: the model's crop of this frame with the coloured map over it."""
    import cv2

    from core.face.align import warp
    from core.heatmaps import blend

    crop = blend(warp(rgb, affine, crop_size), heat)
    crop = cv2.resize(crop, (side - 2, side - 2), interpolation=cv2.INTER_AREA if side < crop_size else cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=(128, 128, 128))
