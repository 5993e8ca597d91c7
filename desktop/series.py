"""A detector's timeline series on the frame axis (no Qt): what the timeline draws and the status
bar reads. Made from a typed `core.detectors.curves.Curve`, or from an older analysis's curve
shapes by `desktop.legacy_curves`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.detectors.curves import Curve


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
    description: str = ""  # what the series is (a curve's description, e.g. LipFD's input mode): the tooltip

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
            return Series(self.detector, self.name, self.kind, self.x0[m], self.x1[m], self.y[m], track_id, None, self.scored, um, self.description)
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


def series_from_curve(detector: str, name: str, curve: Curve, frame_count: int) -> Series | None:
    """The typed curve on the frame axis; None for a per-frame curve that is not this video's length."""
    y = np.array([np.nan if v is None else v for v in curve.values], dtype=np.float64)
    tids = np.asarray(curve.track_id) if isinstance(curve.track_id, list) else None
    tid = curve.track_id if isinstance(curve.track_id, int) else None
    scored = curve.kind == "score"
    if curve.axis == "windows":
        x0 = np.array(curve.start_frame, dtype=np.float64)
        x1 = np.array(curve.end_frame, dtype=np.float64)
        um = None if curve.unmeasurable is None else np.array(curve.unmeasurable, bool)
        return Series(detector, name, "bars", x0, x1, y, tid, tids, scored, um if um is not None and um.any() else None, curve.description)
    if curve.frames is None:
        if y.size != frame_count:
            return None
        x = np.arange(frame_count, dtype=np.float64)
        return Series(detector, name, "line", x, x, y, tid, tids, scored)
    x = np.array(curve.frames, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    return Series(detector, name, "line", x[order], x[order], y[order], tid, None if tids is None else tids[order], scored)
