"""`identity_reference`: is the face the person it claims to be? Questioned vs known exemplars.

A face swap (FaceForensics++ Deepfakes/FaceSwap, DFDC) replaces the inner face with another
person's, so its identity departs from the person the video claims to show; lip-sync and
reenactment keep it. Per face track, dlib's face-recognition ResNet describes quality-selected
frames (core.face.identity: frontal, large enough, sharp; the sampling rule is there), a robust
aggregate is compared with the aggregate of each named person's exemplars (the case's known
exemplars, core/cases/references.py), and each sampled frame's distance to the person is a
curve on the timeline; runs of frames beyond dlib's 0.6 are segments where the identity departs.

Which track is compared with which person is the examiner's choice (parameters `track`,
`person`); by default the largest track against the case's only person. The reading, on the
calibrated distances (docs/identity.md, resources/calibration/identity_reference.json):
- distance <= `consistent_max`: consistent (identity only: a reenactment or lip-sync keeps it);
- distance >= `inconsistent_min`: inconsistent (another person's face);
- in between, fewer than `min_frames` sharp frontal frames on either side, no exemplar attached,
  or several persons and none chosen: inconclusive, with the distances and n in the note.
Every track's frame-to-frame identity spread is reported as a measurement (no reading).
"""

from __future__ import annotations

import json
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from core.detectors import register
from core.detectors.base import AnalysisContext, Detector, DetectorResult, Segment
from core.errors import VerityError
from core.face.exemplars import DescribedExemplar, describe_exemplar, describe_track, largest_track
from core.face.facepass import FacePassParams
from core.face.identity import REASON_TEXT, FaceIdentity, IdentityParams, distances, robust_mean, stability

CALIBRATION = Path(__file__).resolve().parents[2] / "resources" / "calibration" / "identity_reference.json"
WEIGHTS_NAME = "dlib_face_recognition_resnet_model_v1"


@lru_cache(maxsize=1)
def calibration() -> dict[str, Any]:
    """Verity's own calibration summary (empty when the file is absent)."""
    try:
        return json.loads(CALIBRATION.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _where(d: float) -> str:
    """Where a distance lies in Verity's calibration, in words."""
    s = (calibration().get("summary") or {})
    same, diff = s.get("same_person") or {}, s.get("different_person") or {}
    if not same or not diff:
        return "no calibration data is installed"
    return (
        f"Verity's calibration: same person in different recordings or halves of one (n = {same['n']}) "
        f"{same['min']:.2f}-{same['max']:.2f}, different persons (n = {diff['n']}) {diff['min']:.2f}-{diff['max']:.2f}"
    )


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


def _excluded_text(face: FaceIdentity) -> str:
    parts = [f"{REASON_TEXT[k]} {n}" for k, n in face.excluded.items() if n and k in REASON_TEXT]
    return ", ".join(parts) if parts else "none"


@register
class IdentityReferenceDetector(Detector):
    name = "identity_reference"
    title = "Identity against known exemplars (dlib face recognition)"
    needs_weights = False  # dlib's published model ships in a pip package and is sha256-verified
    needs_faces = True
    default_params: dict[str, Any] = IdentityParams().to_dict()

    def run(self, ctx: AnalysisContext) -> DetectorResult:
        from core.face.models import FACE_RECOGNITION, model_sha256

        p = IdentityParams.from_dict(self.params(ctx))
        try:
            weights = {WEIGHTS_NAME: model_sha256(FACE_RECOGNITION)}
        except VerityError as exc:
            return DetectorResult.unavailable(self.name, f"dlib's face-recognition model cannot be used: {exc}")
        fp = ctx.facepass
        t0 = time.perf_counter()
        faces: dict[int, FaceIdentity] = {}
        for k, t in enumerate(fp.tracks):
            ctx.check_cancel()
            ctx.progress("identity", k / max(len(fp.tracks), 1), f"face {t.track_id}")
            faces[t.track_id] = describe_track(ctx.path, fp, t, p, ctx.cancel)
        n_desc = sum(len(f) for f in faces.values())
        ms_per_frame = 1000 * (time.perf_counter() - t0) / n_desc if n_desc else None
        per_track: dict[str, Any] = {str(tid): {**f.summary(), "stability": stability(f)} for tid, f in faces.items()}

        # the examiner's choice of face, by default the largest
        if p.track is not None and p.track not in faces:
            return self._result(p, weights, per_track, "inconclusive", f"there is no face track {p.track} (tracks: {', '.join(map(str, faces))})")
        tid = p.track if p.track is not None else largest_track(fp.tracks).track_id  # type: ignore[union-attr]
        face = faces[tid]
        metrics: dict[str, Any] = {"track_id": tid, "frames_used": len(face), "ms_per_frame": _r(ms_per_frame, 1),
                                   "track_choice": "examiner" if p.track is not None else "largest face"}

        # the exemplars: each named person's pooled descriptors
        if not ctx.references:
            return self._result(p, weights, per_track, "inconclusive", (
                "no known exemplar is attached: identity cannot be compared with the person the video claims to show "
                "(add reference footage or photos with `verity case reference add`); the identity spread of each face is "
                "reported as a measurement"), metrics)
        fp_params = FacePassParams(**{k: v for k, v in fp.params.items() if k in FacePassParams.__dataclass_fields__})
        described = []
        for ex in ctx.references:
            ctx.check_cancel()
            ctx.progress("identity", 0.9, f"exemplar {ex.name or ex.path.name}")
            described.append(describe_exemplar(ex, p, fp_params, ctx.work_dir, ctx.cancel))
        metrics["exemplars"] = [d.summary() for d in described]
        persons = self._persons(described, p)
        usable = [d for d in described if d.face is not None and len(d.face)]
        unusable = [f"{d.exemplar.name or d.exemplar.path.name}: {d.problem or 'no sharp frontal face'}" for d in described if d not in usable]
        q_agg = face.aggregate()
        comparisons = {}
        for person, descs in persons.items():
            ref_agg = robust_mean(descs)[0] if descs.shape[0] else None
            d = float(np.linalg.norm(q_agg - ref_agg)) if q_agg is not None and ref_agg is not None else None
            comparisons[person] = {"distance": _r(d), "reference_frames": int(descs.shape[0])}
            for t2, f2 in faces.items():  # every face against every person: a measurement
                a2 = f2.aggregate()
                if a2 is not None and ref_agg is not None:
                    per_track[str(t2)].setdefault("distance_to", {})[person] = _r(float(np.linalg.norm(a2 - ref_agg)))
        metrics["comparisons"] = comparisons
        named = sorted({d.exemplar.person for d in described})
        person = p.person if p.person is not None else (named[0] if len(named) == 1 else None)
        if unusable:
            metrics["exemplars_not_used"] = unusable
        if person is None:
            listed = "; ".join(f"{k}: {v['distance']}" for k, v in comparisons.items())
            return self._result(p, weights, per_track, "inconclusive", (
                f"the case has exemplars of several persons ({', '.join(named)}): choose which one face {tid} claims to be "
                f"(parameter `person`); distances: {listed}"), metrics)
        if person not in persons:
            return self._result(p, weights, per_track, "inconclusive", f"no known exemplar of {person!r} (persons: {', '.join(named)})", metrics)
        metrics["person"] = person
        ref = persons[person]
        ref_agg = robust_mean(ref)[0] if ref.shape[0] else None

        # the per-frame curve and the departures
        curves: dict[str, Any] = {}
        segments: list[Segment] = []
        if ref_agg is not None and len(face):
            per_frame = distances(face.descriptors, ref_agg)
            curves["identity_distance"] = {"track_id": tid, "frames": face.frames.astype(int).tolist(), "values": np.round(per_frame, 4)}
            segments = self._departures(face.frames, per_frame, p, tid, person)
            metrics["per_frame_median"] = _r(float(np.median(per_frame)))
            metrics["frames_departing"] = int((per_frame >= p.departure).sum())
        d = comparisons[person]["distance"]
        metrics["distance"] = d
        if unusable:
            note_tail = f"; exemplars not used: {'; '.join(unusable)}"
        else:
            note_tail = ""
        reading, note = self._reading(d, len(face), int(ref.shape[0]), p, tid, person, face)
        per_track[str(tid)]["assessment"] = reading
        per_track[str(tid)]["reasons"] = [note]
        return self._result(p, weights, per_track, reading, note + note_tail, metrics, curves, segments, frames=len(face))

    @staticmethod
    def _persons(described: list[DescribedExemplar], p: IdentityParams) -> dict[str, np.ndarray]:
        out: dict[str, list[np.ndarray]] = {}
        for d in described:
            out.setdefault(d.exemplar.person, [])
            if d.face is not None and len(d.face):
                out[d.exemplar.person].append(d.face.descriptors)
        return {k: np.concatenate(v) if v else np.zeros((0, 128), np.float32) for k, v in out.items()}

    @staticmethod
    def _departures(frames: np.ndarray, per_frame: np.ndarray, p: IdentityParams, tid: int, person: str) -> list[Segment]:
        """Runs of at least `departure_min_frames` sampled frames at or beyond `departure`; a
        segment spans from its first to its last departing sample."""
        out: list[Segment] = []
        above = per_frame >= p.departure
        k = 0
        while k < above.size:
            if not above[k]:
                k += 1
                continue
            j = k
            while j + 1 < above.size and above[j + 1]:
                j += 1
            if j - k + 1 >= p.departure_min_frames:
                worst = float(per_frame[k : j + 1].max())
                out.append(Segment(int(frames[k]), int(frames[j]), None,
                                   f"identity departs from {person}: {j - k + 1} sampled frames at distance >= {p.departure} (max {worst:.2f})", tid))
            k = j + 1
        return out

    @staticmethod
    def _reading(d: float | None, n_q: int, n_ref: int, p: IdentityParams, tid: int, person: str, face: FaceIdentity) -> tuple[str, str]:
        counts = f"n = {n_q} questioned frames, {n_ref} exemplar frames"
        if n_q < p.min_frames or n_ref < p.min_frames:
            dist = f"distance {d:.3f}" if d is not None else "no distance"
            return "inconclusive", (
                f"face quality too low for a reading: {counts} sharp and frontal (at least {p.min_frames} needed on each side); "
                f"{dist}; face {tid} frames left out: {_excluded_text(face)}"
            )
        assert d is not None
        where = _where(d)
        if d <= p.consistent_max:
            return "consistent", (
                f"face {tid} matches {person}'s exemplars: distance {d:.3f} <= {p.consistent_max} ({counts}; {where}). "
                "Identity is all this checks: a reenactment or lip-sync keeps the person's identity"
            )
        if d >= p.inconsistent_min:
            return "inconsistent", (
                f"face {tid} is not {person} by dlib's face descriptors: distance {d:.3f} >= {p.inconsistent_min} ({counts}; {where}); "
                "a face swap, or the wrong person named, gives this"
            )
        return "inconclusive", (
            f"face {tid} lies between the same-person and different-person ranges: distance {d:.3f} "
            f"(consistent <= {p.consistent_max}, inconsistent >= {p.inconsistent_min}; {counts}; {where})"
        )

    def _result(
        self, p: IdentityParams, weights: dict[str, str], per_track: dict[str, Any], reading: str, note: str,
        metrics: dict[str, Any] | None = None, curves: dict[str, Any] | None = None, segments: list[Segment] | None = None, frames: int = 0,
    ) -> DetectorResult:
        labels = {"consistent": "same person", "inconsistent": "different person", "inconclusive": "inconclusive"}
        return DetectorResult(
            prediction=labels[reading], confidence=None, note=note, frames_analyzed=frames, metrics=metrics or {},
            assessment=reading, weights_sha256=weights, parameters=p.to_dict(), segments=segments or [],
            per_track=per_track, curves=curves or {},
        )
