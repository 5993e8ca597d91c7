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

from core.detectors.curves import Curve, is_typed
from core.face.facepass import FacePass, FaceTrack
from core.heatmaps import stored_maps
from core.signals.eyes import EyeCheck, stored_params, track_blinks, unassessable_runs
from core.signals.timebase import fps_from_times
from desktop.legacy_curves import _is_unmeasurable, parse_legacy_curve
from desktop.series import Series, series_from_curve


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
    kind: str = ""  # what the detector found (Segment.kind); "" in older results


def parse_curve(detector: str, name: str, value: Any, frame_count: int) -> list[Series]:
    """One `curves` entry as series: a typed `Curve` as it says; anything else (results stored
    before the typed curves) by `desktop.legacy_curves`. A malformed typed curve is skipped (it
    stays in the JSON report)."""
    if is_typed(value):
        try:
            s = series_from_curve(detector, name, Curve.from_dict(value), frame_count)
        except ValueError:
            return []
        return [] if s is None else [s]
    return parse_legacy_curve(detector, name, value, frame_count)


@dataclass
class Review:
    """Everything shown for one analysed clip."""

    analysis: dict[str, Any]
    facepass: FacePass | None
    tracks: list[TrackView] = field(default_factory=list)
    segments: list[SegmentView] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    complete: bool = True  # False: shown while its analysis still runs (results arrive one by one)
    heatmaps: dict[str, Any] = field(default_factory=dict)  # detector -> core.heatmaps.HeatmapStore

    @property
    def frame_count(self) -> int:
        if self.facepass is not None:
            return self.facepass.frame_count
        return int(self.analysis.get("evidence", {}).get("video", {}).get("frame_count") or 0)

    @property
    def undecodable(self) -> list[tuple[int, int]]:
        """Inclusive frame ranges that could not be decoded (no track and no detector reads them)."""
        ranges = (self.analysis.get("evidence") or {}).get("undecodable_frames") or []
        if not ranges and self.facepass is not None:
            ranges = self.facepass.undecodable
        return [(int(a), int(b)) for a, b in ranges]

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


def build_review(analysis: dict[str, Any], facepass: FacePass | None = None) -> Review:
    """Read the face pass named in the analysis (unless given) and the detectors' output."""
    fpi = analysis.get("facepass") or {}
    if facepass is None and fpi.get("verified") is not False:  # False: changed since its run (CaseStore.stored_analysis)
        fp_path = fpi.get("path")
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
    review.heatmaps = stored_maps(analysis.get("detectors") or {})[0]  # stored with the run; a changed or missing file is not shown
    for name, d in (analysis.get("detectors") or {}).items():
        for s in d.get("segments") or []:
            try:
                review.segments.append(
                    SegmentView(name, int(s["start_frame"]), int(s["end_frame"]), s.get("score"), str(s.get("reason", "")), s.get("track_id"),
                                str(s.get("kind") or ""))
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
    step = 1.0 / fps_from_times(times_s)
    edges = np.append(times_s, times_s[-1] + step)
    idx = np.clip(np.round((edges - track.start_time_s) * sr).astype(np.int64), 0, track.samples.size)
    sq = np.concatenate([[0.0], np.cumsum(track.samples.astype(np.float64) ** 2)])
    counts = np.diff(idx)
    sums = sq[idx[1:]] - sq[idx[:-1]]
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.sqrt(np.where(counts > 0, sums / np.maximum(counts, 1), np.nan))
    return rms.astype(np.float32)
