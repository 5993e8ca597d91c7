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
- distance >= `inconsistent_min`, with at least `min_frames` exemplar frames: inconsistent
  (another person's face);
- otherwise inconclusive, with the distances and n in the note: in between; fewer than
  `min_frames` usable questioned frames; fewer exemplar frames (a photo) and no match; a face
  whose two halves disagree by more than `max_halves_distance`; no exemplar attached; several
  persons and none chosen.
Every track's identity spread is reported as a measurement (no reading).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from core.detectors import register
from core.detectors.base import AnalysisContext, Detector, DetectorResult, Method, Segment, params_dict
from core.detectors.curves import Curve
from core.errors import VerityError
from core.face.exemplars import DescribedExemplar, describe_exemplar, describe_track, largest_track
from core.face.facepass import FacePassParams
from core.face.identity import REASON_TEXT, FaceIdentity, IdentityParams, distances, halves_distance, robust_mean, stability

CALIBRATION = Path(__file__).resolve().parents[2] / "resources" / "calibration" / "identity_reference.json"
WEIGHTS_NAME = "dlib_face_recognition_resnet_model_v1"


@lru_cache(maxsize=1)
def calibration() -> dict[str, Any]:
    """Verity's own calibration summary (empty when the file is absent)."""
    try:
        return json.loads(CALIBRATION.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _where() -> str:
    """Where a distance lies in Verity's calibration, in words."""
    s = (calibration().get("summary") or {})
    same, diff = s.get("same_person") or {}, s.get("different_person") or {}
    if not same or not diff:
        return "no calibration data is installed"
    return (
        f"Verity's calibration: same person in different recordings or halves of one (n = {same['n']}) "
        f"{same['min']:.2f}-{same['max']:.2f}, different persons (n = {diff['n']}) {diff['min']:.2f}-{diff['max']:.2f}"
    )


def _no_facepass(path: Path, sha256: str) -> Any:
    """A context made without the pipeline: a reference video cannot get its face pass."""
    raise VerityError(f"{path.name}: no face pass can be made in this analysis context; reference video not used")


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(float(x), nd)


def _excluded_text(face: FaceIdentity) -> str:
    parts = [f"{REASON_TEXT[k]} {n}" for k, n in face.excluded.items() if n and k in REASON_TEXT]
    return ", ".join(parts) if parts else "none"


@dataclass
class Comparison:
    """One face against one person's pooled exemplar descriptors."""

    reading: str  # consistent / inconsistent / inconclusive
    note: str
    distance: float | None  # between the robust aggregates
    per_frame: np.ndarray  # (K,) each of the face's descriptors to the person's aggregate
    segments: list[Segment]


def departures(frames: np.ndarray, per_frame: np.ndarray, p: IdentityParams, tid: int | None, person: str) -> list[Segment]:
    """Runs of at least `departure_min_frames` consecutive samples at or beyond `departure`; a
    segment spans from the first to the last departing sample of its run. Samples more than twice
    the usual sampling step apart (frames in between not eligible) do not continue a run."""
    out: list[Segment] = []
    frames = np.asarray(frames, int)
    step = float(np.median(np.diff(frames))) if frames.size > 1 else 1.0
    run: list[int] = []
    for k in range(frames.size + 1):
        ok = k < frames.size and per_frame[k] >= p.departure and (not run or frames[k] - frames[run[-1]] <= 2 * step)
        if ok:
            run.append(k)
            continue
        if len(run) >= p.departure_min_frames:
            worst = float(per_frame[run].max())
            out.append(Segment(int(frames[run[0]]), int(frames[run[-1]]), None,
                               f"identity departs from {person}: {len(run)} sampled frames at distance >= {p.departure} (max {worst:.2f})", tid,
                               "identity_departure"))
        run = [k] if k < frames.size and per_frame[k] >= p.departure else []
    return out


def compare(face: FaceIdentity, reference: np.ndarray, p: IdentityParams, tid: int | None, person: str, photos: int = 0) -> Comparison:
    """The reading of one face (its descriptors) against a person's pooled exemplar descriptors
    (R, 128), `photos` of them from photos: the rule in the module docstring.

    With fewer than `min_frames` exemplar frames (one or a few photos) only `consistent` can be
    read: noise in a single exemplar frame only adds distance, so a small distance stands, but a
    large one may be the frame (one frame of another recording of the same person as the exemplar
    lay up to 0.64 away in calibration, docs/identity.md)."""
    q_agg = face.aggregate()
    r_agg = robust_mean(reference)[0] if reference.shape[0] else None
    d = float(np.linalg.norm(q_agg - r_agg)) if q_agg is not None and r_agg is not None else None
    per_frame = distances(face.descriptors, r_agg) if r_agg is not None and len(face) else np.zeros(0)
    segments = departures(face.frames, per_frame, p, tid, person) if per_frame.size else []
    n_q, n_ref = len(face), int(reference.shape[0])
    counts = f"n = {n_q} questioned frames, {n_ref} exemplar frames" + (f" ({photos} from photos)" if photos else "")
    dist = f"distance {d:.3f}" if d is not None else "no distance"
    who = "the face" if tid is None else f"face {tid}"
    halves = halves_distance(face)
    if n_q < p.min_frames or n_ref == 0:
        return Comparison("inconclusive", (
            f"face quality too low for a reading: {counts} sharp and frontal (at least {p.min_frames} questioned frames "
            f"needed); {dist}; {who}: frames left out: {_excluded_text(face)}"), d, per_frame, segments)
    assert d is not None
    if n_ref < p.min_frames and d > p.consistent_max:
        return Comparison("inconclusive", (
            f"{who} lies {d:.3f} from {person}'s exemplars, but {counts}: with fewer than {p.min_frames} exemplar frames "
            f"only a match (distance <= {p.consistent_max}) can be read, since one exemplar frame alone can lie far from "
            "the same person's other recordings; add more photos or reference footage"), d, per_frame, segments)
    if halves is not None and halves > p.max_halves_distance:
        return Comparison("inconclusive", (
            f"{who} is not one stable identity: its first and second halves lie {halves:.2f} apart (> {p.max_halves_distance}; "
            f"occlusion, failing landmarks or a swap that fails part of the time); {dist} to {person} ({counts}); "
            "see the per-frame curve"), d, per_frame, segments)
    where = _where()
    if d <= p.consistent_max:
        return Comparison("consistent", (
            f"{who} matches {person}'s exemplars: distance {d:.3f} <= {p.consistent_max} ({counts}; {where}). "
            "Identity is all this checks: a reenactment or lip-sync keeps the person's identity"), d, per_frame, segments)
    if d >= p.inconsistent_min:
        return Comparison("inconsistent", (
            f"{who} is not {person} by dlib's face descriptors: distance {d:.3f} >= {p.inconsistent_min} ({counts}; {where}); "
            "a face swap, or the wrong person named, gives this"), d, per_frame, segments)
    return Comparison("inconclusive", (
        f"{who} lies between the same-person and different-person ranges: distance {d:.3f} (consistent <= "
        f"{p.consistent_max}, inconsistent >= {p.inconsistent_min}; {counts}; {where})"), d, per_frame, segments)


def usable_exemplars(described: list[DescribedExemplar], p: IdentityParams) -> None:
    """Mark exemplars that cannot be used: no sharp frontal face, or no stable identity."""
    for d in described:
        if d.face is None:
            continue
        h = halves_distance(d.face)
        if not len(d.face):
            d.problem, d.face = f"no sharp frontal face (left out: {_excluded_text(d.face)})", None
        elif h is not None and h > p.max_halves_distance:
            d.problem, d.face = f"its first and second halves lie {h:.2f} apart (> {p.max_halves_distance}): not one stable identity", None


def pooled(described: list[DescribedExemplar]) -> dict[str, tuple[np.ndarray, int]]:
    """person -> (the descriptors of all that person's usable exemplars (R, 128), how many photos)."""
    out: dict[str, list[np.ndarray]] = {}
    photos: dict[str, int] = {}
    for d in described:
        out.setdefault(d.exemplar.person, [])
        if d.face is not None and len(d.face):
            out[d.exemplar.person].append(d.face.descriptors)
            photos[d.exemplar.person] = photos.get(d.exemplar.person, 0) + (d.exemplar.kind == "photo")
    return {k: (np.concatenate(v) if v else np.zeros((0, 128), np.float32), photos.get(k, 0)) for k, v in out.items()}


def identity_method() -> Method:
    """The report's Methods text, with Verity's own calibration (n and ranges) from its data file."""
    p = IdentityParams()
    s = calibration().get("summary") or {}
    same, diff = s.get("same_person") or {}, s.get("different_person") or {}
    swaps = (s.get("categories") or {}).get("face swap vs the claimed person's original") or {}
    if same.get("n") and diff.get("n"):
        calib = (
            f"Verity's own calibration on its development media (FaceForensics++ c40, VoxCeleb2, GRID, HDTF and other "
            f"clips): same person in different recordings or in the two halves of one, n = {same['n']} pairs, distances "
            f"{same['min']:.2f}-{same['max']:.2f}; different persons, n = {diff['n']} pairs, {diff['min']:.2f}-{diff['max']:.2f}"
            + (f"; FaceForensics++ face swaps against the original of the person shown, n = {swaps['distance']['n']}, "
               f"{swaps['distance']['min']:.2f}-{swaps['distance']['max']:.2f}" if (swaps.get("distance") or {}).get("n") else "")
            + ". The thresholds were chosen on this set (docs/identity.md): these figures are not independent error rates."
        )
    else:
        calib = "Verity's calibration data file is not installed: the thresholds are stated but their calibration cannot be cited."
    return Method(
        title="Identity against known exemplars (questioned vs known, dlib face recognition)",
        summary=(
            "Each face track is described by dlib's face-recognition network (a ResNet giving a 128-d descriptor of the face "
            "aligned from its 68 landmarks) on up to "
            f"{p.max_frames} frames, evenly spaced over the frames where the face is frontal (yaw proxy within {p.max_yaw}), "
            f"large enough (outer eye corners at least {p.min_eye_span_px:.0f} px apart), inside the picture and sharp (edge blur "
            f"of the aligned face at most {p.max_chip_blur_px} px); a robust mean of those descriptors is compared with the "
            "robust mean of the named person's exemplars (reference footage described the same way, or photos). A distance "
            f"of at most {p.consistent_max} reads consistent with that person, at least {p.inconsistent_min} inconsistent, "
            f"between them inconclusive; fewer than {p.min_frames} usable frames on either side, or a face whose two halves "
            f"differ by more than {p.max_halves_distance}, give no reading. Each used frame's distance is plotted, and runs "
            f"of frames beyond {p.departure} are flagged. Identity is all this checks: a reenactment or lip-sync keeps the "
            "identity and reads consistent. " + calib
        ),
        references=(
            "King D. E. (2009). Dlib-ml: A Machine Learning Toolkit. Journal of Machine Learning Research 10:1755-1758; "
            "dlib_face_recognition_resnet_model_v1 (dlib 19.3, 2017): 99.38 % on the LFW benchmark, same-person threshold 0.6 "
            "(dlib's model documentation).",
            "He K., Zhang X., Ren S., Sun J. (2016). Deep residual learning for image recognition. CVPR.",
            "Huang G. B., Ramesh M., Berg T., Learned-Miller E. (2007). Labeled Faces in the Wild. UMass Amherst TR 07-49.",
            "Rössler A. et al. (2019). FaceForensics++: Learning to detect manipulated facial images. ICCV.",
        ),
        limits=(
            "Face recognition errs between similar-looking people; on the development media two different young men measured "
            "0.46 apart, and dlib is known to be less accurate for some groups under-represented in its training data.",
            "Turned, small, blurred, occluded or heavily compressed faces give unreliable descriptors and are left out, so "
            "such footage often gives no reading.",
            "Reference footage from another day, age, make-up or lighting lies farther from the questioned face than the same "
            "recording does; a reading is only as good as the exemplars and the examiner's identification of the person.",
            "A face swap whose source person resembles the target, or a swap that keeps much of the target's face, can stay "
            "within the same-person range.",
        ),
    )


@register
class IdentityReferenceDetector(Detector):
    name = "identity_reference"
    title = "Identity against known exemplars (dlib face recognition)"
    needs_weights = False  # dlib's published model ships in a pip package and is sha256-verified
    needs_faces = True
    Params = IdentityParams
    method = identity_method()

    def run(self, ctx: AnalysisContext) -> DetectorResult:
        from core.face.dlib_models import FACE_RECOGNITION, model_sha256

        p: IdentityParams = self.params(ctx)
        try:
            weights = {WEIGHTS_NAME: model_sha256(FACE_RECOGNITION)}
        except VerityError as exc:
            return DetectorResult.unavailable(self.name, f"dlib's face-recognition model cannot be used: {exc}")
        fp = ctx.facepass
        if p.track is not None and all(t.track_id != p.track for t in fp.tracks):
            return self._result(p, weights, {}, "inconclusive", f"there is no face track {p.track} (tracks: {', '.join(str(t.track_id) for t in fp.tracks)})")
        # the examiner's choice of face, by default the largest
        tid = p.track if p.track is not None else largest_track(fp.tracks).track_id  # type: ignore[union-attr]
        t0 = time.perf_counter()
        faces: dict[int, FaceIdentity] = {}
        for k, t in enumerate(fp.tracks):
            ctx.check_cancel()
            ctx.progress("identity", k / max(len(fp.tracks), 1), f"face {t.track_id}")
            # the compared face densely (its curve); the others, and all without an exemplar, for their spread
            n = p.max_frames if t.track_id == tid and ctx.references else min(p.spread_frames, p.max_frames)
            faces[t.track_id] = describe_track(ctx.path, fp, t, replace(p, max_frames=n), ctx.cancel)
        n_desc = sum(len(f) + f.excluded.get("not_frontal", 0) + f.excluded.get("blurred", 0) for f in faces.values())
        per_track: dict[str, Any] = {str(i): {**f.summary(), "stability": stability(f)} for i, f in faces.items()}
        face = faces[tid]
        metrics: dict[str, Any] = {
            "track_id": tid, "track_choice": "examiner" if p.track is not None else "largest face", "frames_used": len(face),
            # per chip made (decode, alignment, HOG check, blur, descriptor), over every track
            "ms_per_frame": _r(1000 * (time.perf_counter() - t0) / n_desc, 1) if n_desc else None,
        }
        if not ctx.references:
            return self._result(p, weights, per_track, "inconclusive", (
                "no known exemplar is attached: identity cannot be compared with the person the video claims to show "
                "(add reference footage or photos with `verity case reference add`); the identity spread of each face is "
                "reported as a measurement"), metrics, frames=len(face))

        fp_params = FacePassParams(**{k: v for k, v in fp.params.items() if k in FacePassParams.__dataclass_fields__})
        facepass_of = ctx.facepass_of or _no_facepass
        described = []
        for ex in ctx.references:
            ctx.check_cancel()
            ctx.progress("identity", 0.9, f"exemplar {ex.name or ex.path.name}")
            described.append(describe_exemplar(ex, p, fp_params, facepass_of, ctx.work_dir, ctx.cancel))
        usable_exemplars(described, p)
        metrics["exemplars"] = [d.summary() for d in described]
        unusable = [f"{d.exemplar.name or d.exemplar.path.name}: {d.problem}" for d in described if d.face is None]
        if unusable:
            metrics["exemplars_not_used"] = unusable
        persons = pooled(described)
        # every face against every person: measurements; the chosen pair is read below
        for t2, f2 in faces.items():
            a2 = f2.aggregate()
            per_track[str(t2)]["distance_to"] = {
                name: _r(float(np.linalg.norm(a2 - robust_mean(r)[0]))) if a2 is not None and r.shape[0] else None
                for name, (r, _) in persons.items()
            }
        metrics["distances"] = per_track[str(tid)]["distance_to"]
        named = sorted(persons)
        person = p.person if p.person is not None else (named[0] if len(named) == 1 else None)
        if person is None:
            listed = "; ".join(f"{k} {v}" for k, v in metrics["distances"].items())
            return self._result(p, weights, per_track, "inconclusive", (
                f"the case has exemplars of several persons ({', '.join(named)}): choose which one face {tid} claims to be "
                f"(parameter `person`); distances: {listed}"), metrics, frames=len(face))
        if person not in persons:
            return self._result(p, weights, per_track, "inconclusive", f"no known exemplar of {person!r} (persons: {', '.join(named)})",
                                metrics, frames=len(face))
        ref, photos = persons[person]
        if not ref.shape[0]:
            return self._result(p, weights, per_track, "inconclusive", (
                f"none of {person}'s exemplars can be used: {'; '.join(unusable)}"), metrics, frames=len(face))
        c = compare(face, ref, p, tid, person, photos)
        metrics.update({"person": person, "distance": _r(c.distance)})
        curves: dict[str, Any] = {}
        if c.per_frame.size:
            curves["identity_distance"] = Curve(
                "measurement", np.round(c.per_frame, 4).tolist(), frames=face.frames.astype(int).tolist(), unit="descriptor distance",
                track_id=tid, description="dlib descriptor distance of each used frame to the compared person's exemplars",
            ).to_dict()
            metrics["per_frame_median"] = _r(float(np.median(c.per_frame)))
            metrics["frames_departing"] = int((c.per_frame >= p.departure).sum())
        per_track[str(tid)].update({"assessment": c.reading, "reasons": [c.note]})
        note = c.note + (f"; exemplars not used: {'; '.join(unusable)}" if unusable else "")
        return self._result(p, weights, per_track, c.reading, note, metrics, curves, c.segments, frames=len(face))

    def _result(
        self, p: IdentityParams, weights: dict[str, str], per_track: dict[str, Any], reading: str, note: str,
        metrics: dict[str, Any] | None = None, curves: dict[str, Any] | None = None, segments: list[Segment] | None = None, frames: int = 0,
    ) -> DetectorResult:
        labels = {"consistent": "same person", "inconsistent": "different person", "inconclusive": "inconclusive"}
        return DetectorResult(
            prediction=labels[reading], confidence=None, note=note, frames_analyzed=frames, metrics=metrics or {},
            assessment=reading, weights_sha256=weights, parameters=params_dict(p), segments=segments or [],
            per_track=per_track, curves=curves or {},
        )
