"""What the player and timeline show, read from one analysis dict (no Qt here).

Landmarks, EAR and mouth aperture come from the stored face pass (`facepass.path`); nothing is
recomputed from pixels. Blink events, the closing threshold and which frames' eyes can be judged
come from `core.signals.eyes.track_blinks` with the run's stored `parameters.blinks` and
`parameters.eyes`: the call `verity analyze` makes, so the GUI shows the blinks the JSON reports. Detector output is read generically from each result's `segments` and
`curves`, so a new detector appears on the timeline without GUI changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.face.facepass import FacePass, FaceTrack
from core.signals.blinks import BlinkParams
from core.signals.eyes import EyeCheck, stored_params, track_blinks, unassessable_runs


@dataclass
class TrackView:
    """One face track with the per-row values the GUI needs."""

    track: FaceTrack
    threshold: np.ndarray  # (M,) EAR threshold used per row
    blinks: list[dict[str, Any]]  # start_frame, apex_frame, end_frame, ...
    in_blink: np.ndarray  # (M,) bool: row inside a blink event
    eyes: EyeCheck | None = None  # which rows' eyes can be judged for blinks (None: all)

    @property
    def track_id(self) -> int:
        return self.track.track_id

    def row(self, frame: int) -> int | None:
        return self.track.row_of(frame)

    @property
    def assessable(self) -> np.ndarray:
        """(M,) bool: the eyes of this row can be judged for blinks."""
        return np.ones(len(self.track), bool) if self.eyes is None else self.eyes.assessable

    @property
    def assessable_fraction(self) -> float:
        """Share of this track's face frames whose eyes can be judged (the JSON's eyes_assessable_fraction)."""
        a = self.assessable
        return float(a.mean()) if a.size else 0.0

    def eyes_assessable(self, row: int) -> bool:
        return bool(self.assessable[row])

    def not_assessable_reason(self, row: int) -> str:
        """Why the eyes of this row cannot be judged, in words ("" when they can)."""
        return "" if self.eyes is None else self.eyes.reason(row)

    def unassessable_stretches(self) -> list[tuple[int, int, str]]:
        """(first frame, last frame inclusive, reason) of each run of consecutive frames whose eyes
        cannot be judged for the same reason."""
        return [] if self.eyes is None else unassessable_runs(self.track.frames, self.eyes)

    def eyes_closed(self, row: int) -> tuple[bool, bool]:
        """(image-left, image-right) eye closed: inside a blink, or EAR under the threshold."""
        ear = self.track.ear[row]
        thr = float(self.threshold[row])
        blink = bool(self.in_blink[row])
        return (blink or bool(ear[0] < thr), blink or bool(ear[1] < thr))


@dataclass
class SegmentView:
    detector: str
    start_frame: int
    end_frame: int  # inclusive
    score: float | None
    reason: str
    track_id: int | None = None


@dataclass
class Series:
    """A detector curve on the frame axis: bars (start/end per value) or a line (frame per value)."""

    detector: str
    name: str
    kind: str  # "bars" or "line"
    x0: np.ndarray  # start frame (bars) or frame (line)
    x1: np.ndarray  # end frame inclusive (bars); equal to x0 for lines
    y: np.ndarray
    track_id: int | None = None
    track_ids: np.ndarray | None = None  # per value, when one curve mixes tracks
    scored: bool = True  # the values came under a score-like key ("score", "probability", ...)
    # (N,) bool per value: the detector marked that window "not measurable" (a `state` of
    # "not measurable" or `measurable: false`): no reading there, neither score nor flag
    unmeasurable: np.ndarray | None = None

    @property
    def is_score(self) -> bool:
        """A score (named so, values in 0..1); other measures are shown scaled and hidden by default."""
        ok = self.y[np.isfinite(self.y)]
        return self.scored and bool(ok.size == 0 or (ok.min() >= 0.0 and ok.max() <= 1.0))

    def for_track(self, track_id: int | None) -> Series | None:
        """This series restricted to one face track (None: unchanged)."""
        if track_id is None:
            return self
        if self.track_id is not None:
            return self if self.track_id == track_id else None
        if self.track_ids is not None:
            m = self.track_ids == track_id
            if not m.any():
                return None
            um = None if self.unmeasurable is None else self.unmeasurable[m]
            return Series(self.detector, self.name, self.kind, self.x0[m], self.x1[m], self.y[m], track_id, None, self.scored, um)
        return self

    def index_at(self, frame: int) -> int | None:
        """The value shown at this frame: the last window covering it (bars), the frame's value (line)."""
        if self.kind == "bars":
            hit = np.flatnonzero((self.x0 <= frame) & (frame <= self.x1))
            return int(hit[-1]) if hit.size else None
        k = int(np.searchsorted(self.x0, frame))
        return k if k < self.x0.size and self.x0[k] == frame else None

    def measurable_at(self, frame: int) -> bool:
        """False where the window shown at this frame is marked not measurable."""
        k = self.index_at(frame)
        return k is None or self.unmeasurable is None or not bool(self.unmeasurable[k])

    def value_at(self, frame: int) -> float | None:
        k = self.index_at(frame)
        if k is None or not self.measurable_at(frame):
            return None  # a not-measurable window has no score, whatever number it carries
        v = self.y[k]
        return None if not np.isfinite(v) else float(v)

    def unmeasurable_runs(self) -> list[tuple[int, int]]:
        """(first, last frame inclusive) of each run of frames whose shown window is not measurable.

        Windows overlap (av_sync: 2 s every 0.5 s); per frame the window `value_at` reads decides,
        so the grey bands and the status bar agree.
        """
        if self.unmeasurable is None or not self.unmeasurable.any() or self.kind != "bars":
            return []
        ok = np.isfinite(self.x0) & np.isfinite(self.x1)
        if not ok.any():
            return []
        lo = int(np.min(self.x0[ok]))
        grey = np.zeros(int(np.max(self.x1[ok])) - lo + 1, np.int8)  # 0 no window, 1 measurable, 2 not
        for a, b, um in zip(self.x0, self.x1, self.unmeasurable):
            if np.isfinite(a) and np.isfinite(b) and b >= a:
                grey[int(a) - lo : int(b) - lo + 1] = 2 if um else 1  # later windows win, as in index_at
        on = np.concatenate([[False], grey == 2, [False]])
        edges = np.flatnonzero(np.diff(on.astype(np.int8)))
        return [(int(a) + lo, int(b) - 1 + lo) for a, b in zip(edges[::2], edges[1::2])]


_START = ("start_frame", "start", "frame_start", "starts", "start_frames")
_END = ("end_frame", "end", "frame_end", "ends", "end_frames")
_FRAME = ("frames", "frame", "frame_index", "x")
_VALUE = ("score", "scores", "value", "values", "y", "probability", "prob", "p_fake")
_SCORE = {"score", "scores", "probability", "prob", "p_fake"}


def _value_key(d: dict[str, Any]) -> str | None:
    return next((k for k in _VALUE if k in d and d[k] is not None), None)


def _first(d: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return None


def _array(v: Any) -> np.ndarray:
    return np.array([np.nan if x is None else x for x in v], dtype=np.float64)


NOT_MEASURABLE = "not measurable"


def _is_unmeasurable(state: Any, measurable: Any) -> bool:
    """A window the detector marked as unable to show anything (not a finding either way)."""
    if isinstance(state, str) and state.strip().lower() == NOT_MEASURABLE:
        return True
    return isinstance(measurable, (bool, int, float)) and not measurable


def _unmeasurable_mask(d: dict[str, Any], n: int) -> np.ndarray | None:
    """Per-window flags from a columnar curve's `state` / `measurable` lists (None: neither given)."""
    states, meas = d.get("state", d.get("states")), d.get("measurable")
    states = states if isinstance(states, list) and len(states) == n else None
    meas = meas if isinstance(meas, list) and len(meas) == n else None
    if states is None and meas is None:
        return None
    return np.array([_is_unmeasurable(states[k] if states else None, meas[k] if meas else None) for k in range(n)], bool)


def parse_curve(detector: str, name: str, value: Any, frame_count: int) -> list[Series]:
    """Turn one `curves` entry into series. Understood shapes:

    - {"start_frame": [...], "end_frame": [...], "score": [...]}  -> bars
    - [{"start_frame": a, "end_frame": b, "score": s}, ...]        -> bars
    - {"frames": [...], "values": [...]}                           -> line
    - [v0, v1, ...] with one value per frame                        -> line
    - {"<sub name>": <any of the above>, ...}                       -> one series per entry
    Anything else is skipped (it stays in the JSON report). Bars may carry a `state` (list, or key
    of each dict) and/or `measurable`; windows whose state is "not measurable" or whose
    `measurable` is false are kept as such (`Series.unmeasurable`): shown grey, never as a score.
    """
    if isinstance(value, dict):
        tid = value.get("track_id")
        track_id = tid if isinstance(tid, int) else None
        starts, ends, frames, ys = _first(value, _START), _first(value, _END), _first(value, _FRAME), _first(value, _VALUE)
        numeric = isinstance(ys, list) and bool(ys) and all(v is None or isinstance(v, (int, float)) for v in ys)
        scored = _value_key(value) in _SCORE
        tids = np.asarray(tid) if isinstance(tid, list) and isinstance(ys, list) and len(tid) == len(ys) else None
        if numeric and isinstance(starts, list) and len(starts) == len(ys):
            ends = ends if isinstance(ends, list) and len(ends) == len(ys) else starts
            um = _unmeasurable_mask(value, len(ys))
            return [Series(detector, name, "bars", _array(starts), _array(ends), _array(ys), track_id, tids, scored, um)]
        if numeric and isinstance(frames, list) and len(frames) == len(ys) and all(isinstance(f, (int, float)) for f in frames):
            order = np.argsort(_array(frames), kind="stable")
            x = _array(frames)[order]
            return [Series(detector, name, "line", x, x, _array(ys)[order], track_id, None if tids is None else tids[order], scored)]
        if numeric and len(ys) == frame_count and frames is None and starts is None:
            x = np.arange(frame_count, dtype=np.float64)
            return [Series(detector, name, "line", x, x, _array(ys), track_id, None, scored)]
        if numeric:
            return []  # values without a frame axis: left to the JSON report
        out: list[Series] = []
        for sub, v in value.items():
            if isinstance(v, (dict, list)):
                out += parse_curve(detector, f"{name}/{sub}", v, frame_count)
        return out
    if isinstance(value, list) and value:
        if all(isinstance(v, dict) for v in value):
            s = [_first(v, _START) for v in value]
            e = [_first(v, _END) for v in value]
            y = [_first(v, _VALUE) for v in value]
            if all(x is not None for x in s) and all(not isinstance(v, (list, dict)) for v in y):
                e = [b if b is not None else a for a, b in zip(s, e)]
                um = np.array([_is_unmeasurable(v.get("state"), v.get("measurable")) for v in value], bool)
                # a not-measurable window may carry no value: the other windows say what the values are
                scored = all(_value_key(v) in _SCORE if _value_key(v) is not None else bool(u) for v, u in zip(value, um))
                return [Series(detector, name, "bars", _array(s), _array(e), _array(y), scored=scored, unmeasurable=um if um.any() else None)]
            return []
        if all(v is None or isinstance(v, (int, float)) for v in value) and len(value) == frame_count:
            x = np.arange(frame_count, dtype=np.float64)
            return [Series(detector, name, "line", x, x, _array(value), scored="score" in name.lower() or "prob" in name.lower())]
    return []


@dataclass
class Review:
    """Everything shown for one analysed clip."""

    analysis: dict[str, Any]
    facepass: FacePass | None
    tracks: list[TrackView] = field(default_factory=list)
    segments: list[SegmentView] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    heatmaps: dict[str, Any] = field(default_factory=dict)  # detector -> core.heatmaps.HeatmapStore

    @property
    def frame_count(self) -> int:
        if self.facepass is not None:
            return self.facepass.frame_count
        return int(self.analysis.get("evidence", {}).get("video", {}).get("frame_count") or 0)

    def track(self, track_id: int) -> TrackView | None:
        return next((t for t in self.tracks if t.track_id == track_id), None)

    def sorted_segments(self) -> list[SegmentView]:
        return sorted(self.segments, key=lambda s: (s.start_frame, s.end_frame))

    def next_segment(self, frame: int) -> SegmentView | None:
        return next((s for s in self.sorted_segments() if s.start_frame > frame), None)

    def previous_segment(self, frame: int) -> SegmentView | None:
        before = [s for s in self.sorted_segments() if s.start_frame < frame]
        return before[-1] if before else None

    def segment_at(self, frame: int) -> SegmentView | None:
        hits = [s for s in self.segments if s.start_frame <= frame <= s.end_frame]
        return max(hits, key=lambda s: s.score if s.score is not None else -1.0) if hits else None

    def window_scores(self, frame: int, track_id: int | None = None) -> dict[str, float]:
        """Values of the 0..1 score series at this frame (what the status bar shows)."""
        out: dict[str, float] = {}
        for s0 in self.series:
            s = s0.for_track(track_id)
            if s is None or not s.is_score or s.kind != "bars":
                continue
            v = s.value_at(frame)
            if v is not None:
                out[f"{s.detector}:{s.name}"] = v
        return out

    def unmeasurable_at(self, frame: int, track_id: int | None = None) -> list[str]:
        """Detectors whose window at this frame is marked not measurable (the status bar says so
        instead of a score)."""
        out: list[str] = []
        for s0 in self.series:
            s = s0.for_track(track_id)
            if s is not None and s.unmeasurable is not None and s.kind == "bars" and s.index_at(frame) is not None \
                    and not s.measurable_at(frame) and s.detector not in out:
                out.append(s.detector)
        return out


def blink_params(analysis: dict[str, Any]) -> BlinkParams:
    return stored_params(analysis.get("parameters"))[0]


def build_review(analysis: dict[str, Any], facepass: FacePass | None = None) -> Review:
    """Read the face pass named in the analysis (unless given) and the detectors' output."""
    if facepass is None:
        fp_path = (analysis.get("facepass") or {}).get("path")
        if fp_path and Path(fp_path).is_file():
            try:
                facepass = FacePass.load(fp_path)
            except (OSError, ValueError, KeyError):
                facepass = None
    review = Review(analysis, facepass)
    faces = {f["track_id"]: f for f in analysis.get("faces", [])}
    if facepass is not None:
        stored = analysis.get("parameters") or {}
        params, eye_params = stored_params(stored)
        for t in facepass.tracks:
            # the pipeline's own call with the run's parameters (cheap: stored EAR and landmarks)
            evs, thr, check = track_blinks(t, facepass.width, facepass.height, facepass.fps, params, eye_params)
            events = faces.get(t.track_id, {}).get("blinks")
            if events is None or "eyes" not in stored:
                # no events stored, or a run from before the eyes mask (its events may lie on a
                # turned head): show the masked events, as `verity analyze` reports them now
                events = [e.to_dict() for e in evs]
            in_blink = np.zeros(len(t), bool)
            for e in events:
                in_blink |= (t.frames >= e["start_frame"]) & (t.frames <= e["end_frame"])
            review.tracks.append(TrackView(t, np.asarray(thr, np.float64), list(events), in_blink, check))
    n = review.frame_count
    for name, d in (analysis.get("detectors") or {}).items():
        gradcam = (d.get("metrics") or {}).get("gradcam") or {}
        if gradcam.get("path"):  # stored with the run; a changed or missing file is not shown
            from core.heatmaps import HeatmapStore

            try:
                review.heatmaps[name] = HeatmapStore.load(gradcam["path"], expected_sha256=gradcam.get("sha256"))
            except ValueError:
                pass
        for s in d.get("segments") or []:
            try:
                review.segments.append(
                    SegmentView(name, int(s["start_frame"]), int(s["end_frame"]), s.get("score"), str(s.get("reason", "")), s.get("track_id"))
                )
            except (KeyError, TypeError, ValueError):
                continue
        curves = d.get("curves") or {}
        for cname, cval in curves.items():
            review.series += parse_curve(name, cname, cval, n)
        if not curves:  # seed-style results: windows in frame_predictions
            rows = [r for r in d.get("frame_predictions") or [] if isinstance(r, dict) and (
                isinstance(r.get("score"), (int, float)) or _is_unmeasurable(r.get("state"), r.get("measurable")))]
            if rows:
                review.series += parse_curve(name, "score per window", rows, n)
    return review


def audio_envelope(path: str | Path, times_s: np.ndarray) -> np.ndarray | None:
    """RMS of the 16 kHz mono audio over each video frame's interval (None without audio).

    Frame i covers [t_i, t_{i+1}); times are stream times, aligned by the audio's start time.
    Runs in a worker thread: decoding audio is too slow for the GUI thread.
    """
    from core.audio import load_audio
    from core.errors import EvidenceError

    try:
        track = load_audio(path)
    except EvidenceError:
        return None
    if track.samples.size == 0 or times_s.size == 0:
        return None
    sr = track.sample_rate
    step = float(np.median(np.diff(times_s))) if times_s.size > 1 else 1.0 / 25
    edges = np.append(times_s, times_s[-1] + step)
    idx = np.clip(np.round((edges - track.start_time_s) * sr).astype(np.int64), 0, track.samples.size)
    sq = np.concatenate([[0.0], np.cumsum(track.samples.astype(np.float64) ** 2)])
    counts = np.diff(idx)
    sums = sq[idx[1:]] - sq[idx[:-1]]
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.sqrt(np.where(counts > 0, sums / np.maximum(counts, 1), np.nan))
    return rms.astype(np.float32)
