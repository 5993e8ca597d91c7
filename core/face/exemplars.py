"""Identity descriptors of a known exemplar (a reference video or photo) and of a face pass's tracks.

A reference video gets the same face pass as evidence (`facepass_of`, given by the pipeline:
stored by its sha256, so it is computed once) and its largest track is described like a
questioned track (core.face.identity). A photo is decoded (OpenCV, EXIF orientation applied), its
largest face found with the face pass's HOG detector (the thorough MMOD search when the HOG sees
none) and landmarked with the 68-point predictor, then described as one frame. The files are only
read. Descriptors are cached beside the face passes, keyed by the exemplar's sha256 and every
parameter that changes them.

An exemplar is anything with the fields of `core.detectors.base.Exemplar` (person, path,
sha256, kind, name, problem, to_dict): this module sits below the detectors and does not import them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from core.errors import EvidenceError, VerityError
from core.face.facepass import FacePass, FacePassParams, FaceTrack
from core.face.identity import FaceIdentity, IdentityParams, describe
from core.progress import CancelToken

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
FacePassOf = Callable[[Path, str], FacePass]  # (path, sha256) -> its face pass, stored like the evidence's


class Exemplar(Protocol):
    person: str
    path: Path
    sha256: str
    kind: str
    name: str
    problem: str | None

    def to_dict(self) -> dict[str, Any]: ...


def read_photo(path: str | os.PathLike[str]) -> np.ndarray:
    """RGB (H, W, 3) uint8 of a still image, turned as its EXIF orientation says; EvidenceError
    when it cannot be decoded. The file is only read."""
    import cv2

    p = Path(path)
    try:
        data = np.fromfile(p, np.uint8)
    except OSError as exc:
        raise EvidenceError(f"{p}: cannot be read ({exc.strerror or exc})") from exc
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None  # IMREAD_COLOR applies EXIF orientation
    if img is None:
        raise EvidenceError(f"{p}: not a photo that can be decoded (JPEG, PNG, BMP, TIFF or WebP)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

# the parameters that change an exemplar's descriptors (the reading thresholds do not)
DESCRIPTOR_KEYS = ("max_frames", "max_yaw", "min_eye_span_px", "max_chip_blur_px", "min_frontal_score", "algorithm")


@dataclass
class DescribedExemplar:
    exemplar: Exemplar
    face: FaceIdentity | None  # None when the exemplar could not be used
    track_id: int | None = None  # the reference video's track described (its largest)
    tracks: int = 0  # face tracks found in it (faces in a photo)
    problem: str | None = None  # why it is not used, in words

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.exemplar.to_dict(), "track_id": self.track_id, "faces_found": self.tracks}
        if self.face is not None:
            out.update(self.face.summary())
        if self.problem:
            out["problem"] = self.problem
        return out


def largest_track(tracks: list[FaceTrack]) -> FaceTrack | None:
    """The track with the largest median face width (then the longest): the default face."""
    if not tracks:
        return None
    return max(tracks, key=lambda t: (float(np.median(t.boxes[:, 2] - t.boxes[:, 0])), len(t)))


def describe_track(path: Path, fp: FacePass, track: FaceTrack, params: IdentityParams, cancel: CancelToken | None = None) -> FaceIdentity:
    """Descriptors of one track of a stored face pass, decoding only the sampled frames."""
    from core.video.reader import VideoReader

    with VideoReader(path) as reader:
        # frame 0 first: a reader that seeks before decoding the stream's first frame decodes the
        # FaceForensics++ High 4:4:4 files wrongly (FFmpeg takes x264's version from the first SEI
        # only). Redundant once VideoReader primes itself (main, "decode frame 0 before the first seek").
        reader.frame(0)
        return describe(
            track.frames, track.landmarks, track.boxes, fp.width, fp.height, reader.frame, params,
            (lambda: cancel.raise_if_cancelled()) if cancel is not None else (lambda: None),
        )


def _cache_path(ex: Exemplar, params: IdentityParams, fp_params: FacePassParams, work_dir: Path | None) -> Path:
    from core.face.dlib_models import FACE_RECOGNITION, MODEL_SHA256
    from core.paths import cache_dir

    key = {"descriptors": {k: getattr(params, k) for k in DESCRIPTOR_KEYS}, "facepass": fp_params.to_dict(), "model": MODEL_SHA256[FACE_RECOGNITION]}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return (work_dir or cache_dir()) / "identity" / f"{ex.sha256}-{digest}.npz"


def _save(path: Path, d: DescribedExemplar) -> None:
    assert d.face is not None
    f = d.face
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"rows": f.rows, "excluded": f.excluded, "eye_span_px": f.eye_span_px, "track_id": d.track_id, "tracks": d.tracks}
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as fh:
        np.savez(fh, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), frames=f.frames, descriptors=f.descriptors, boxes=f.boxes, blur=f.blur)
    tmp.replace(path)


def _load(path: Path, ex: Exemplar) -> DescribedExemplar | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            face = FaceIdentity(z["frames"], z["descriptors"], z["boxes"], z["blur"], meta["rows"], meta["excluded"], meta["eye_span_px"])
    except (OSError, KeyError, ValueError):
        return None
    return DescribedExemplar(ex, face, meta.get("track_id"), int(meta.get("tracks", 0)))


def _describe_photo(ex: Exemplar, params: IdentityParams) -> DescribedExemplar:
    import cv2

    from core.face.detect import MIN_FRAME_SIDE, detect_faces, detect_hard
    from core.face.tracker import fit_landmarks

    rgb = read_photo(ex.path)
    if min(rgb.shape[:2]) < MIN_FRAME_SIDE:
        return DescribedExemplar(ex, None, None, 0, f"the photo is {rgb.shape[1]}x{rgb.shape[0]} px, below the {MIN_FRAME_SIDE} px a side the face detectors need")
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    dets = detect_faces(gray, max_side=1280) or detect_hard(gray)
    if not dets:
        return DescribedExemplar(ex, None, None, 0, "no face found in the photo")
    best = max(dets, key=lambda d: d.box[2] - d.box[0])
    box = np.asarray(best.box, np.float64)
    lm = fit_landmarks(gray, box)
    face = describe(np.array([0]), lm[None], box[None].astype(np.float32), rgb.shape[1], rgb.shape[0], lambda _i: rgb, params)
    return DescribedExemplar(ex, face, None, len(dets))


def _describe_video(ex: Exemplar, params: IdentityParams, facepass_of: FacePassOf, cancel: CancelToken | None) -> DescribedExemplar:
    fp = facepass_of(ex.path, ex.sha256)
    track = largest_track(fp.tracks)
    if track is None:
        return DescribedExemplar(ex, None, None, 0, fp.no_face_reason() or "no face found in the reference video")
    return DescribedExemplar(ex, describe_track(ex.path, fp, track, params, cancel), track.track_id, len(fp.tracks))


def describe_exemplar(
    ex: Exemplar, params: IdentityParams, fp_params: FacePassParams, facepass_of: FacePassOf,
    work_dir: Path | None = None, cancel: CancelToken | None = None,
) -> DescribedExemplar:
    """The exemplar's descriptors (cached), or the reason it cannot be used. `fp_params`: the
    face-pass parameters `facepass_of` runs with (they key the cache)."""
    if ex.problem:
        return DescribedExemplar(ex, None, problem=ex.problem)
    cache = _cache_path(ex, params, fp_params, work_dir)
    if cache.is_file() and (hit := _load(cache, ex)) is not None:
        return hit
    try:
        d = _describe_photo(ex, params) if ex.kind == "photo" else _describe_video(ex, params, facepass_of, cancel)
    except (EvidenceError, VerityError) as exc:
        from core.errors import CancelledError

        if isinstance(exc, CancelledError):
            raise
        return DescribedExemplar(ex, None, problem=str(exc))
    if d.face is not None:
        _save(cache, d)
    return d
