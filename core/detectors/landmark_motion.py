"""Landmark motion (micro-expression dynamics): flicker and mouth-jaw coherence per face track.

No trained weights. `core.signals.motion` describes the measurements and their scales. This
detector turns them into segments (windows that are irregular or where the mouth moves on a
rigid jaw), curves for the timeline and per-track summaries.

Reading (`assessment`): always `inconclusive` when a track could be measured. The scores are
relative, uncalibrated measurements; on the test media they did not separate originals from
fakes (see docs/physiology.md), so they point the examiner at stretches to look at and never
decide a finding on their own.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.detectors import register
from core.detectors.base import AnalysisContext, Detector, DetectorResult, Method, Segment
from core.detectors.curves import Curve
from core.signals.motion import REGIONS, MotionParams, measure_motion


def _median(values: list[float | None]) -> float | None:
    v = [x for x in values if x is not None and np.isfinite(x)]
    return round(float(np.median(v)), 4) if v else None


def _merge(windows: list[dict[str, Any]], key: str) -> list[tuple[int, int, list[dict[str, Any]]]]:
    """Overlapping flagged windows -> frame ranges with the windows they hold."""
    out: list[tuple[int, int, list[dict[str, Any]]]] = []
    for w in windows:
        if not w[key]:
            continue
        if out and w["start_frame"] <= out[-1][1] + 1:
            a, _, ws = out[-1]
            out[-1] = (a, w["end_frame"], [*ws, w])
        else:
            out.append((w["start_frame"], w["end_frame"], [w]))
    return out


METHOD = Method(
    title="Landmark motion and micro-expression coherence",
    summary=(
        "Landmarks normalised to a canonical face; per-region velocity and jitter, frame-to-frame flicker not explained "
        "by head motion, and coherence between regions (e.g. a moving mouth with a rigid jaw)."
    ),
    references=("Measurements defined in Verity's documentation (docs/); scores are irregularity measures, not calibrated probabilities.",),
    limits=("Compression, low resolution and landmark noise raise jitter in original recordings too.",),
)


@register
class LandmarkMotion(Detector):
    name = "landmark_motion"
    title = "Landmark motion (flicker beyond head motion, mouth-jaw coherence)"
    needs_weights = False
    Params = MotionParams
    method = METHOD

    def run(self, ctx: AnalysisContext) -> DetectorResult:
        p: MotionParams = self.params(ctx)
        fp = ctx.facepass
        if fp.fps <= 0:
            return DetectorResult.unavailable(self.name, "the video has no usable frame rate")
        min_rows = max(3, int(round((p.window_s + p.hop_s) * fp.fps)))
        per_track: dict[str, Any] = {}
        segments: list[Segment] = []
        curves: dict[str, Curve] = {}
        analysed = 0
        for k, t in enumerate(fp.tracks):
            ctx.check_cancel()
            ctx.progress(self.name, k / len(fp.tracks), f"face track {t.track_id}")
            if len(t) < min_rows:
                per_track[str(t.track_id)] = {"assessment": "inconclusive", "reasons": [f"track of {len(t)} frames: too short for motion windows"]}
                continue
            tm = measure_motion(t.frames, t.landmarks, fp.fps, p)
            ws = tm.windows
            if not ws:
                per_track[str(t.track_id)] = {"assessment": "inconclusive", "reasons": ["no gap-free window of landmarks"]}
                continue
            analysed += len(t)
            tid = t.track_id
            for a, b, group in _merge(ws, "irregular"):
                top = max(group, key=lambda w: w["score"])
                segments.append(Segment(a, b, None, f"{top['region']} flicker {top['score']:.1f}x what head motion explains in this clip", tid, "flicker"))
            for a, b, group in _merge(ws, "decoupled"):
                c = np.mean([w["coupling"] for w in group])
                r = np.mean([w["jaw_ratio"] for w in group])
                segments.append(Segment(a, b, None, f"mouth moves on a rigid jaw: lip-chin correlation {c:.2f}, chin moves {r:.0%} of the lips", tid,
                                        "rigid_jaw"))
            coupled = [w["coupling"] for w in ws if w["coupling"] is not None]
            summary = {
                "windows": len(ws),
                "irregular_windows": sum(w["irregular"] for w in ws),
                "decoupled_windows": sum(w["decoupled"] for w in ws),
                "mouth_moving_windows": len(coupled),
                "max_irregularity": _median([max((w["score"] or 0.0) for w in ws)]),
                "median_irregularity": _median([w["score"] for w in ws]),
                "median_coupling": _median(coupled),
                "median_jaw_ratio": _median([w["jaw_ratio"] for w in ws if w["coupling"] is not None]),
                "flicker_permille_iod": {r: _median(list(tm.flicker[r])) for r in [*REGIONS, "anchors"]},
                "velocity_iod_per_s": {r: _median(list(tm.velocity[r])) for r in REGIONS},
                "mouth_to_anchor_flicker": None,
                "head_speed_iod_per_s": _median(list(tm.head_speed)),
            }
            fm, fa = summary["flicker_permille_iod"]["mouth"], summary["flicker_permille_iod"]["anchors"]
            summary["mouth_to_anchor_flicker"] = round(fm / fa, 3) if fm and fa else None
            reasons = [
                f"{summary['irregular_windows']} of {len(ws)} windows irregular, {summary['decoupled_windows']} of "
                f"{len(coupled)} mouth-moving windows decoupled from the jaw; uncalibrated measurements, no reading"
            ]
            per_track[str(tid)] = {"assessment": "inconclusive", "reasons": reasons, **summary}
            starts, ends = [w["start_frame"] for w in ws], [w["end_frame"] for w in ws]
            # measurements, not probabilities; "score" kept as a column: analyses before the typed
            # curves stored these windows under it
            irregularity = [None if w["score"] is None else round(w["score"], 3) for w in ws]
            coupling = [None if w["coupling"] is None else round(w["coupling"], 3) for w in ws]
            curves[f"landmark irregularity (track {tid})"] = Curve(
                "measurement", irregularity, start_frame=starts, end_frame=ends, track_id=tid,
                unit="x the flicker head motion explains", columns={"score": irregularity})
            curves[f"mouth-jaw coupling (track {tid})"] = Curve(
                "measurement", coupling, start_frame=starts, end_frame=ends, track_id=tid, unit="correlation", columns={"score": coupling})
            curves[f"mouth flicker, permille IOD (track {tid})"] = Curve(
                "measurement", np.round(tm.flicker["mouth"], 3), frames=t.frames, track_id=tid, unit="permille IOD")
        if not analysed:
            return DetectorResult.unavailable(self.name, "no face track long enough for motion windows", per_track=per_track)
        measured = {k: v for k, v in per_track.items() if "windows" in v}
        main_id = max(measured, key=lambda k: measured[k]["windows"])
        main = measured[main_id]
        return DetectorResult(
            assessment="inconclusive",
            note=(
                f"track {main_id}: irregularity median {main['median_irregularity']}, max {main['max_irregularity']} "
                f"(1 = as steady as the rest of the clip at that head speed); mouth-jaw coupling median "
                f"{main['median_coupling']}; uncalibrated measurements, no reading"
            ),
            frames_analyzed=analysed,
            metrics={"main_track": int(main_id), **{k: v for k, v in main.items() if k not in ("assessment", "reasons")}},
            per_track=per_track,
            segments=segments,
            curves={name: c.to_dict() for name, c in curves.items()},
        )
