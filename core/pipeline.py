"""The one orchestration: evidence -> face pass -> blink events -> detectors -> analysis dict.

Pure Python with a progress callback and a cancel token; the GUI runs it in a worker thread and
tests call it directly.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import core
from core import detectors as detector_registry
from core.detectors.base import AnalysisContext, DetectorResult, Exemplar, params_dict
from core.digest import params_key
from core.evidence import probe, sha256_file
from core.face.facepass import FacePass, FacePassParams
from core.face.tracker import run_face_pass
from core.fusion import fuse
from core.paths import cache_dir
from core.progress import CancelToken, ProgressCallback, no_progress, shares, sub_progress
from core.signals.blinks import BlinkParams, blink_rate_per_min
from core.signals.eyes import EyeCheck, EyeParams, assessable_summary, check_eyes, track_blinks
from core.validation_records import lookup as validation_lookup
from core.video.reader import VideoReader

SCHEMA = "verity.analysis/1"
# Share of the whole analysis each stage takes (rough, from runs on the test clips); the detectors'
# share is split evenly between them. The progress callback of `analyze` sees the overall fraction.
STAGE_WEIGHTS = {"hash": 0.08, "faces": 0.62, "detectors": 0.30}


@dataclass
class AnalysisOptions:
    detectors: list[str] | None = None  # None: every registered detector
    facepass: FacePassParams = field(default_factory=FacePassParams)
    blinks: BlinkParams = field(default_factory=BlinkParams)
    eyes: EyeParams = field(default_factory=EyeParams)  # which frames' eyes count for blinks
    detector_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    work_dir: Path | None = None  # where the face pass is stored; default: the user cache
    reuse_facepass: bool = True
    # known exemplars (the case's references, resolved and re-hashed by core/cases/analysis.py);
    # parameters() names them by sha256 (a result made against other exemplars is another result)
    references: list[Exemplar] = field(default_factory=list)
    video_stream: int | None = None  # the container's number of the video stream to analyse (None: the first)

    def parameters(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "facepass": self.facepass.to_dict(),
            "blinks": self.blinks.to_dict(),
            "eyes": self.eyes.to_dict(),
            "detectors": self.detector_params,
        }
        if self.video_stream is not None:  # only when the examiner chose one: the default keeps its records
            out["video_stream"] = self.video_stream
        if self.references:
            out["references"] = sorted(r.sha256 for r in self.references)
        return out


def release_free_memory() -> None:
    """Hand freed heap pages back to the system (glibc's malloc_trim; elsewhere nothing). A stage's
    temporaries of up to 32 MB come from the heap, and the pages they leave free between live
    objects would otherwise stay in the process's RSS for the rest of the analysis."""
    global _malloc_trim
    gc.collect()  # arrays held only by reference cycles (a detector's closures, its records) go first
    if _malloc_trim is None:
        try:
            import ctypes

            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Any = None


def hash_share() -> float:
    """The hash stage's share of a whole analysis (callers that hash first, as the case store does)."""
    return STAGE_WEIGHTS["hash"] / sum(STAGE_WEIGHTS.values())


def facepass_path(sha256: str, params: FacePassParams, work_dir: Path | None, video_stream: int | None = None) -> Path:
    stream = "" if video_stream is None else f"-stream{video_stream}"
    return (work_dir or cache_dir()) / "facepass" / f"{sha256}{stream}-{params_key(params.to_dict())}.npz"


def load_or_run_facepass(
    path: Path, sha256: str, options: AnalysisOptions, progress: ProgressCallback, cancel: CancelToken | None
) -> tuple[FacePass, Path]:
    store = facepass_path(sha256, options.facepass, options.work_dir, options.video_stream)
    if options.reuse_facepass and store.is_file():
        try:
            fp = FacePass.load(store)
            if fp.evidence_sha256 == sha256:
                progress("faces", 1.0, "face pass reused")
                return fp, store
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache: recompute
    with VideoReader(path, stream_index=options.video_stream) as reader:
        fp = run_face_pass(reader, options.facepass, progress, cancel)
    fp.evidence_sha256 = sha256
    fp.save(store)
    return fp, store


def damage_warnings(fp: FacePass) -> list[str]:
    """What the face pass found damaged, in words for the report's evidence section."""
    out = []
    if fp.undecodable:
        count = sum(b - a + 1 for a, b in fp.undecodable)
        spans = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in fp.undecodable[:8]) + (" ..." if len(fp.undecodable) > 8 else "")
        out.append(
            f"{count} of {fp.frame_count} frames cannot be decoded (damaged or missing data): frame{'s' if count > 1 else ''} {spans}; "
            "they are left out, every face track ends before them and no detector reads across them"
        )
    errs = [e for e in fp.decode_errors if e.get("frame") is not None]
    if errs:
        frames = ", ".join(str(e["frame"]) for e in errs[:8]) + (" ..." if len(errs) > 8 else "")
        out.append(
            f"the decoder reported errors at {len(errs)} frame{'s' if len(errs) > 1 else ''} ({frames}; first: {errs[0]['messages'][0]}): "
            "the pictures near them may hold concealed, wrong areas"
        )
    out += [e["messages"][0] for e in fp.decode_errors if e.get("frame") is None]
    return out


def eye_checks(fp: FacePass, params: EyeParams | None = None) -> dict[int, EyeCheck]:
    """Per track: which frames' eyes can be judged for blinks (core.signals.eyes)."""
    return {t.track_id: check_eyes(t.frames, t.landmarks, fp.width, fp.height, fp.fps, t.ear, params) for t in fp.tracks}


def faces_summary(fp: FacePass, blinks: dict[int, list[Any]], eyes: dict[int, EyeCheck] | None = None) -> list[dict[str, Any]]:
    eyes = eye_checks(fp) if eyes is None else eyes
    out = []
    for t in fp.tracks:
        events = blinks.get(t.track_id, [])
        check = eyes[t.track_id]
        # per minute of assessable eyes: a turned head is time in which no blink could be seen
        rate = blink_rate_per_min(len(events), int(check.assessable.sum()), fp.fps)
        out.append(
            {
                "track_id": t.track_id,
                "first_frame": t.first_frame,
                "last_frame": t.last_frame,
                "frames_with_face": len(t),
                "blinks": [
                    {k: v for k, v in e.to_dict().items() if k in ("start_frame", "apex_frame", "end_frame", "duration_s", "min_ear", "closed_left", "closed_right")}
                    for e in events
                ],
                "blink_rate_per_min": None if rate is None else round(rate, 2),
                **assessable_summary(check),
            }
        )
    return out


def check_detector_params(names: list[str], detector_params: dict[str, dict[str, Any]]) -> None:
    """Every named detector exists and every parameter given is one it has (ParameterError,
    KeyError otherwise): an examiner's typo must not run silently with the default."""
    from core.params import ParameterError

    for name in names:
        detector_registry.get(name)
    for name, d in detector_params.items():
        if name not in detector_registry.available():
            raise ParameterError(f"parameters given for unknown detector {name!r} (known: {', '.join(detector_registry.available())})")
        detector_registry.get(name).parse_params(d)


def analyze(
    path: str | os.PathLike[str],
    options: AnalysisOptions | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    on_result: Callable[[str, DetectorResult], None] | None = None,
    expected_sha256: str | None = None,
    verified_sha256: str | None = None,
) -> dict[str, Any]:
    """Analyse one evidence file. Raises EvidenceError for files that cannot be analysed.

    `verified_sha256`: the caller hashed the file immediately before (the case store's custody
    check); the file is then not read a second time for its hash.
    """
    from core.errors import EvidenceError

    options = options or AnalysisOptions()
    t0 = time.perf_counter()
    path = Path(path)
    names = options.detectors if options.detectors is not None else list(detector_registry.available())
    check_detector_params(names, options.detector_params)  # a typo fails now, not after the face pass
    stages = shares({k: w for k, w in STAGE_WEIGHTS.items() if k != "hash" or verified_sha256 is None})
    info = probe(path, options.video_stream)
    sha = verified_sha256 or sha256_file(path, sub_progress(progress, *stages["hash"]), cancel)
    if expected_sha256 is not None and sha != expected_sha256:
        raise EvidenceError(f"{path}: sha256 {sha} differs from the {expected_sha256} recorded at intake; analysis refused")

    fp, store = load_or_run_facepass(path, sha, options, sub_progress(progress, *stages["faces"]), cancel)
    release_free_memory()  # the tracker's per-frame rows, now in the pass's arrays
    # track_blinks is also what the GUI, the PDF and training call, so they show these very events
    eyes: dict[int, EyeCheck] = {}
    blinks: dict[int, list[Any]] = {}
    for t in fp.tracks:
        blinks[t.track_id], _, eyes[t.track_id] = track_blinks(t, fp.width, fp.height, fp.fps, options.blinks, options.eyes)

    ctx = AnalysisContext(
        path=path, evidence=info, sha256=sha, facepass=fp, blinks=blinks, eyes=eyes,
        parameters=options.detector_params, progress=progress, cancel=cancel, work_dir=options.work_dir,
        references=list(options.references),
        facepass_of=lambda p, sha: load_or_run_facepass(p, sha, replace(options, video_stream=None), no_progress, cancel)[0],
        video_stream=options.video_stream,
    )
    results: dict[str, Any] = {}
    d0, d1 = stages["detectors"]
    step = (d1 - d0) / max(len(names), 1)
    for k, name in enumerate(names):
        if cancel is not None:
            cancel.raise_if_cancelled()
        progress("detectors", d0 + k * step, name)
        ctx.progress = sub_progress(progress, d0 + k * step, d0 + (k + 1) * step)  # the bar moves inside a long detector
        detector = detector_registry.get(name)
        if not fp.tracks and detector.needs_faces:
            result = DetectorResult.unavailable(
                name, fp.no_face_reason() or "no face found in the video", frame_count=fp.frame_count,
                parameters=params_dict(detector.params(ctx), detector.internal_params),
            )
        else:
            result = detector(ctx)
        results[name] = result.to_dict()
        if on_result is not None:
            on_result(name, result)
        # the 16 kHz track (3.8 MB per minute) is not held through the other detectors: a later
        # reader (lipfd) decodes it again, 0.6 s per 10 minutes
        ctx.__dict__.pop("audio", None)
        release_free_memory()
    progress("detectors", d1, "done")
    # the validation record each result may cite (same version and parameters), for fusion and the report
    validation = validation_lookup(results, options.parameters())

    v = info.video
    return {
        "schema": SCHEMA,
        "software": {"name": core.SOFTWARE_NAME, "version": core.__version__},
        "evidence": {
            "path": str(path.resolve()),
            "sha256": sha,
            "size_bytes": info.size_bytes,
            "format": info.format,
            "duration_s": info.duration_s,
            "video": {
                "stream_index": v.index, "codec": v.codec, "width": v.width, "height": v.height, "fps": round(v.fps, 4),
                "real_frame_rate": v.real_frame_rate, "frame_count": v.frame_count,
                "variable_frame_rate": v.variable_frame_rate, "start_time_s": v.start_time_s, "rotation": v.rotation,
            },
            "audio": None if info.audio is None else {
                "codec": info.audio.codec, "sample_rate": info.audio.sample_rate,
                "channels": info.audio.channels, "start_time_s": info.audio.start_time_s,
            },
            "tags": info.tags,
            "warnings": info.warnings + damage_warnings(fp),
            "undecodable_frames": fp.undecodable,
            "decode_errors": fp.decode_errors,
        },
        "parameters": options.parameters(),
        "facepass": {
            "path": str(store), "frames_with_face": fp.frames_with_face, "processing_time": round(fp.processing_time, 3),
            "search": fp.search, "no_face": fp.no_face_reason(), "shot_cuts": fp.cuts,
        },
        "faces": faces_summary(fp, blinks, eyes),
        "detectors": results,
        "validation": validation,
        "finding": fuse(results, [t.track_id for t in fp.tracks], validation=validation),
        "processing_time": round(time.perf_counter() - t0, 3),
    }
