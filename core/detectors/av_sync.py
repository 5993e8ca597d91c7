"""`av_sync`: audio-visual offset of the speaking face, without trained weights.

Each face track's mouth aperture is cross-correlated with the speech envelope (see
core.signals.avsync). The track whose lips follow the audio best is taken as the speaker. The
reading for fusion:
- silence / no speech: inconclusive (nothing to measure);
- lips follow the speech beyond chance (p <= alpha) at |offset| <= 2 frames: consistent;
- lips follow the speech beyond chance at |offset| >= 160 ms (a visible lip-sync error):
  inconsistent only on robust evidence (core.signals.avsync.offset_evidence_missing: >= 2 s of
  speech with a face, p <= 0.01 against 400 rotations, the offset lag beating every in-sync lag
  by 2.5 jackknife standard errors); else inconclusive, since the speech rhythm gives in-sync
  footage side lobes 4-6 frames away that can win over a short clip;
- in between (beyond 2 frames, below 160 ms): inconclusive, windows flagged. Lip-sync generators
  leave ~110 ms here, but genuine broadcasts are found there too (the SyncNet example, -120 ms);
- otherwise inconclusive: the lips do not measurably follow the speech (could be a
  manipulation, a poor face track, an off-screen speaker or music).

Windows (frame_predictions, curves.windows, segments) are flagged only on evidence against the
clip's own sync, with the chance of any flag on an in-sync clip held near 5 % (see
core.signals.avsync_windows); a window that can show nothing either way is reported
`not measurable` (curves.measurable = 0, score None), never flagged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.detectors import register
from core.detectors.base import AnalysisContext, Detector, DetectorResult, Method, Segment
from core.detectors.curves import Curve
from core.errors import EvidenceError
from core.progress import sub_progress
from core.signals.avsync import NOT_MEASURABLE, AVSyncParams, SyncEstimate, estimate_offset, mouth_series, offset_evidence_missing
from core.signals.timebase import usable_fps


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


def _merge_segments(est: SyncEstimate, track_id: int) -> list[Segment]:
    """Consecutive flagged windows flagged by the same rule (`Segment.kind`) become one segment."""
    out: list[Segment] = []
    for w in est.windows:
        if not w.flagged:
            continue
        if out and out[-1].track_id == track_id and out[-1].kind == w.flag and w.start_frame <= out[-1].end_frame + 1:
            prev = out[-1]
            prev.end_frame = max(prev.end_frame, w.end_frame)
            prev.score = max(prev.score or 0.0, w.score or 0.0)
            continue
        out.append(Segment(w.start_frame, w.end_frame, w.score, w.reason, track_id, kind=w.flag))
    return out


METHOD = Method(
    title="Audio-visual synchronisation (weight-free)",
    summary=(
        "Cross-correlation of the mouth aperture with the speech envelope over +/-15 frames, globally and in sliding "
        "windows, giving an offset (frames, ms) and a confidence in the spirit of SyncNet, with a chance level from "
        "the same mouth against time-rotated audio. An offset of 160 ms or more is read as inconsistent only on robust "
        "evidence: at least 2 s of speech with a tracked mouth, p <= 0.01 against 400 audio rotations, and the offset "
        "lag beating every in-sync lag (within 2 frames) by 2.5 standard errors over time, since the rhythm of speech "
        "gives in-sync footage side lobes 4-6 frames away. A window is flagged only on evidence against the clip's own "
        "sync (the clip's offset, followed in that window; a local offset over at least 8 s; or lips that stop "
        "following the speech), with the chance of any flag on an in-sync clip held near 5 %; a window that can show "
        "nothing either way is reported as not measurable, not flagged."
    ),
    references=("Chung J. S., Zisserman A. (2016). Out of time: automated lip sync in the wild. ACCV Workshops.",),
    limits=(
        "Needs speech and a visible mouth; silence, music, off-screen speakers or dubbing give no reliable reading.",
        "Containers may carry a constant audio offset from editing or capture that is not manipulation.",
        "Short clips (about 2 s of speech or less) are measured but not read as inconsistent; a lip-sync fake made in "
        "sync reads consistent in timing only.",
    ),
)


@register
class AVSyncDetector(Detector):
    name = "av_sync"
    title = "Audio-visual sync (lip movement against speech)"
    needs_weights = False
    needs_faces = True
    Params = AVSyncParams
    method = METHOD

    def run(self, ctx: AnalysisContext) -> DetectorResult:
        p: AVSyncParams = self.params(ctx)
        if ctx.evidence.audio is None:
            return DetectorResult.unavailable(self.name, "the evidence has no audio track: audio-visual sync cannot be measured")
        try:
            audio = ctx.audio
        except EvidenceError as exc:
            return DetectorResult.unavailable(self.name, f"audio could not be decoded: {exc}")
        if audio is None or audio.samples.size == 0:
            return DetectorResult.unavailable(self.name, "the audio track decoded to no samples")
        fp = ctx.facepass
        fps = fp.fps if fp.fps > 0 else None
        per_track: dict[str, Any] = {}
        best: tuple[int, SyncEstimate] | None = None
        for k, t in enumerate(fp.tracks):
            ctx.check_cancel()
            ctx.progress(self.name, k / len(fp.tracks), f"face track {t.track_id}")
            if len(t) < p.min_track_s * usable_fps(fps):
                per_track[str(t.track_id)] = {"measured": False, "reason": "track too short"}
                continue
            m = mouth_series(fp.frame_count, t.frames, t.mouth)
            step = sub_progress(ctx.progress, k / len(fp.tracks), (k + 1) / len(fp.tracks))
            est = estimate_offset(fp.times_s, m, audio.samples, audio.sample_rate, audio.start_time_s, fps, p,
                                  lambda f, step=step, t=t: step(self.name, f, f"face track {t.track_id}: sync per window"))
            per_track[str(t.track_id)] = {**self._track_summary(est), "assessment": self._reading(est, p)[1]}
            if est.confidence is not None and (best is None or _rank(est) > _rank(best[1])):
                best = (t.track_id, est)
            elif best is None and est.silent:
                best = (t.track_id, est)
        if best is None:
            any_est = next(iter(per_track.values()), None)
            reason = "no face track long enough to measure" if any_est is None or not per_track else "no face track could be measured against the audio"
            return DetectorResult(prediction="inconclusive", assessment="inconclusive", note=reason, per_track=per_track)

        tid, est = best
        windows = est.windows
        frame_predictions = [
            {
                "index": k, "start_frame": w.start_frame, "end_frame": w.end_frame, "score": w.score,
                "offset_frames": w.offset_frames, "confidence": w.confidence, "p_value": _r(w.p_value),
                "speech_fraction": w.speech_fraction, "flagged": w.flagged, "reason": w.reason,
                "state": w.state, "measurable": w.measurable, "r_at_clip_lag": w.r_at_clip_lag,
                "r_expected": w.r_expected, "r_chance": w.r_chance, "deviation_z": w.deviation_z, "z_crit": w.z_crit,
            }
            for k, w in enumerate(windows)
        ]
        starts, ends = [w.start_frame for w in windows], [w.end_frame for w in windows]
        curves = {
            # heuristic desync score per window (not calibrated); "not measurable" windows are grey
            "windows": Curve("score", [w.score for w in windows], start_frame=starts, end_frame=ends, track_id=tid,
                             unmeasurable=[w.state == NOT_MEASURABLE for w in windows],
                             columns={"offset_frames": [w.offset_frames for w in windows], "confidence": [w.confidence for w in windows],
                                      "state": [w.state for w in windows], "flagged": [w.flagged for w in windows]}),
            # 1 = a window without sync would have been told from the clip's sync, 0 = this window
            # can show nothing either way (weak signal, no speech, no face, no clip-level sync)
            "measurable": Curve("measurement", [1.0 if w.measurable else 0.0 for w in windows], start_frame=starts, end_frame=ends,
                                unit="1 = measurable"),
            "mouth_aperture": Curve("measurement", np.round(est.mouth, 5) if est.mouth is not None else [], track_id=tid,
                                    unit="inner-lip opening / outer eye-corner distance"),
            "speech_level_db": Curve("measurement", np.round(est.envelope_db, 2) if est.envelope_db is not None else [], unit="dB"),
        }
        metrics = {
            "offset_ms": _r(est.offset_ms, 1),
            "offset_frames": _r(est.offset_frames, 2),
            "confidence": _r(est.confidence),
            "peak_correlation": _r(est.peak_correlation),
            "p_value": _r(est.p_value),
            "speech_fraction": _r(est.speech_fraction, 3),
            "track_id": tid,
            "windows_judged": len(est.judged_windows),
            "windows_flagged": sum(w.flagged for w in windows),
            "windows_measurable": sum(w.measurable for w in windows),
            "speech_face_s": _r(est.speech_face_s, 2),
            "p_value_fine": _r(est.p_value_fine),
            "in_sync_lag": _r(est.in_sync_lag, 0),
            "in_sync_margin": _r(est.in_sync_margin),
            "margin_z": _r(est.margin_z, 2),
            "window_z_crit": next((w.z_crit for w in windows if w.z_crit is not None), None),
            "correlation_by_lag": {"lags": est.lags.astype(int), "r": np.round(est.correlation, 4)},
        }
        prediction, assessment, note = self._reading(est, p)
        return DetectorResult(
            prediction=prediction,
            confidence=None,  # the sync confidence is in metrics; no calibrated probability exists
            note=note,
            frames_analyzed=int(np.isfinite(est.mouth).sum()) if est.mouth is not None else 0,
            frame_predictions=frame_predictions,
            metrics=metrics,
            assessment=assessment,
            segments=_merge_segments(est, tid),
            per_track=per_track,
            curves={name: c.to_dict() for name, c in curves.items()},
        )

    @staticmethod
    def _reading(est: SyncEstimate, p: AVSyncParams) -> tuple[str, str, str]:
        if est.silent or est.speech_fraction < 0.05:
            return "inconclusive", "inconclusive", "no speech in the audio: sync cannot be judged"
        if est.p_value is None or est.offset_frames is None:
            return "inconclusive", "inconclusive", "too little speech with a tracked face to judge sync"
        ms = est.offset_ms or 0.0
        if est.p_value > p.alpha:
            return "inconclusive", "inconclusive", (
                f"the lips do not measurably follow the speech (p={est.p_value:.2f}): a manipulation, an off-screen "
                "speaker, music or a poor face track can each cause this"
            )
        if abs(round(est.offset_frames)) <= p.flag_offset_frames:  # whole frames, as SyncNet reports
            return "in sync", "consistent", f"lips follow the speech at {ms:+.0f} ms (p={est.p_value:.2f})"
        what = (
            f"lips follow the speech but the audio is offset by {ms:+.0f} ms ({est.offset_frames:+.1f} frames; positive = audio late, "
            f"p={est.p_value:.2f})"
        )
        if abs(ms) >= p.inconsistent_offset_ms:
            missing = offset_evidence_missing(est, p)
            if not missing:
                return "out of sync", "inconsistent", (
                    f"{what}: a visible lip-sync error (p={est.p_value_fine:.4f} against {p.clip_null_shifts} audio rotations; "
                    f"beats the best in-sync lag by {est.in_sync_margin:.2f}, {est.margin_z:.1f} standard errors). "
                    "Re-muxing or editing can also cause one"
                )
            return "out of sync", "inconclusive", (
                f"{what}, but the evidence for an offset is not robust: {'; '.join(missing)}. The speech rhythm gives in-sync "
                "footage side lobes 4-6 frames away that can win over a short stretch"
            )
        return "out of sync", "inconclusive", (
            f"{what}: beyond 2 frames but below {p.inconsistent_offset_ms:.0f} ms; lip-sync generators leave such offsets, "
            "and so do genuine broadcast chains"
        )

    @staticmethod
    def _track_summary(est: SyncEstimate) -> dict[str, Any]:
        return {
            "measured": est.confidence is not None,
            "offset_ms": _r(est.offset_ms, 1),
            "confidence": _r(est.confidence),
            "p_value": _r(est.p_value),
            "speech_fraction": _r(est.speech_fraction, 3),
            "silent": est.silent,
        }


def _rank(est: SyncEstimate) -> tuple[float, float]:
    """Speaker choice: the most significant, then most confident, sync."""
    return (-(est.p_value if est.p_value is not None else 1.0), est.confidence or 0.0)
