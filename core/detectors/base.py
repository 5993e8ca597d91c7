"""The common detector contract: an `AnalysisContext` in, a `DetectorResult` out.

A detector declares its parameters as a dataclass (`Params`, read with `core.params.from_dict`:
unknown names are refused), the report's description of its method (`method`), and returns
timeline series as `Curve`s and flagged frame ranges as `Segment`s with a `kind`. How to add
one: docs/architecture.md.

Scores are probabilities of manipulation (1 = manipulated) wherever a detector gives one.
Detectors that need trained weights report `unavailable` (with the reason) when the verified
weights are missing: they never score with random weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from core.detectors.curves import Curve
from core.errors import CancelledError
from core.face.facepass import FacePass
from core.params import from_dict
from core.progress import CancelToken, ProgressCallback, no_progress

if TYPE_CHECKING:  # the probe needs PyAV; a detector module must import without it
    from core.evidence.probe import EvidenceInfo

@dataclass(frozen=True)
class Method:
    """What a method does, where it comes from and where it fails: the report's "Methods" text."""

    title: str
    summary: str
    references: tuple[str, ...]
    limits: tuple[str, ...]


@dataclass
class Segment:
    start_frame: int
    end_frame: int  # inclusive
    score: float | None
    reason: str  # for the examiner, with the numbers
    track_id: int | None = None
    kind: str = ""  # what was found, for grouping and filtering (e.g. "clip_offset", "incomplete")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DetectorResult:
    # seed-compatible fields (model cards' JSON)
    prediction: str | None = None  # e.g. "REAL"/"FAKE" as the cards say, or "inconclusive"
    confidence: float | None = None
    processing_time: float = 0.0
    note: str = ""
    frame_count: int = 0
    frames_analyzed: int = 0
    frame_predictions: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    visualization_path: str | None = None
    # Verity's additions
    detector: str = ""
    status: str = "ok"  # ok / unavailable / failed
    # This detector's own reading for fusion, on the examiner's scale: "consistent" /
    # "inconsistent" / "inconclusive", or None when it gives no reading (a pure measurement).
    assessment: str | None = None
    weights_sha256: dict[str, str] = field(default_factory=dict)  # weight entry name -> sha256
    parameters: dict[str, Any] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)
    per_track: dict[str, Any] = field(default_factory=dict)  # track id -> detector-specific details
    # timeline series by name, for the GUI and the report: `Curve`s (stored in their wire form,
    # see core.detectors.curves); other shapes only in results of older versions
    curves: dict[str, Any] = field(default_factory=dict)

    def add_curve(self, name: str, curve: Curve) -> None:
        self.curves[name] = curve.to_dict()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["segments"] = [s.to_dict() if isinstance(s, Segment) else s for s in self.segments]
        return _jsonable(d)

    @classmethod
    def unavailable(cls, detector: str, reason: str, **kw: Any) -> DetectorResult:
        return cls(detector=detector, status="unavailable", note=reason, **kw)

    @classmethod
    def failed(cls, detector: str, reason: str, **kw: Any) -> DetectorResult:
        return cls(detector=detector, status="failed", note=reason, **kw)


def _jsonable(obj: Any) -> Any:
    """numpy scalars/arrays and NaN -> plain JSON values (NaN becomes null)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


@dataclass(frozen=True)
class Exemplar:
    """A known exemplar (reference footage or a photo) of a named person, from the case store
    (core/cases/references.py) or given on the command line. The file is only read."""

    person: str
    path: Path
    sha256: str  # at intake; the case store re-hashed the file before this analysis
    kind: str  # "video" | "photo"
    id: int | None = None  # reference id in the case store
    name: str = ""
    problem: str | None = None  # why it cannot be used (changed or missing file); None: usable

    @classmethod
    def from_file(cls, person: str, path: Path, sha256: str | None = None) -> Exemplar:
        """An exemplar given as a file (not from a case): a photo by its suffix, else a video;
        hashed now unless the caller has just hashed it."""
        from core.digest import sha256_file
        from core.face.exemplars import PHOTO_SUFFIXES

        kind = "photo" if path.suffix.lower() in PHOTO_SUFFIXES else "video"
        return cls(person=person, path=path.resolve(), sha256=sha256 or sha256_file(path), kind=kind, name=path.name)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "person": self.person, "name": self.name or self.path.name, "kind": self.kind,
                "sha256": self.sha256, "path": str(self.path), **({"problem": self.problem} if self.problem else {})}


@dataclass
class AnalysisContext:
    """What a detector may read. Audio and frames are loaded lazily and shared between detectors."""

    path: Path
    evidence: EvidenceInfo
    sha256: str
    facepass: FacePass
    blinks: dict[int, list[Any]]  # track id -> BlinkEvent list
    eyes: dict[int, Any] = field(default_factory=dict)  # track id -> core.signals.eyes.EyeCheck (the blinks' mask)
    parameters: dict[str, Any] = field(default_factory=dict)  # per-detector parameters by name
    progress: ProgressCallback = no_progress
    cancel: CancelToken | None = None
    work_dir: Path | None = None
    references: list[Exemplar] = field(default_factory=list)  # known exemplars of the case's persons
    # (path, sha256) -> the face pass of another file (a reference video), stored like the evidence's
    facepass_of: Callable[[Path, str], FacePass] | None = None
    video_stream: int | None = None  # the container's number of the analysed video stream (None: the first)

    def open_video(self) -> Any:
        """A core.video.VideoReader on the analysed video stream (the one the face pass read)."""
        from core.video.reader import VideoReader

        return VideoReader(self.path, stream_index=self.video_stream)

    @cached_property
    def audio(self) -> Any:
        """16 kHz mono audio (core.audio.AudioTrack) or None when the evidence has no audio.
        Decoded when first read; the pipeline drops it after each detector (bounded memory)."""
        from core.audio import load_audio

        if self.evidence.audio is None:
            return None
        return load_audio(self.path)

    def check_cancel(self) -> None:
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()


@dataclass
class NoParams:
    """A detector without parameters."""


class Detector:
    """Subclass, set `name`, `title`, `Params` and `method`, implement `run`; register with `@register`."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    needs_weights: ClassVar[bool] = False
    needs_faces: ClassVar[bool] = True  # skipped as `unavailable` when the face pass found none
    Params: ClassVar[type] = NoParams  # a dataclass: the parameters and their defaults
    internal_params: ClassVar[tuple[str, ...]] = ()  # Params fields the pipeline sets, not the examiner
    method: ClassVar[Method | None] = None  # the report's Methods text (None: "no reviewed description")

    @classmethod
    def parse_params(cls, d: Mapping[str, Any] | None) -> Any:
        """This detector's Params from a plain dict; ParameterError names an unknown key."""
        return from_dict(cls.Params, d, f"detector {cls.name}", exclude=cls.internal_params)

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        return params_dict(cls.Params(), cls.internal_params)

    def params(self, ctx: AnalysisContext) -> Any:
        return self.parse_params(ctx.parameters.get(self.name))

    def run(self, ctx: AnalysisContext) -> DetectorResult:
        raise NotImplementedError

    def __call__(self, ctx: AnalysisContext) -> DetectorResult:
        """Run with timing; an unexpected exception becomes a `failed` result, never a crash."""
        t0 = time.perf_counter()
        try:
            result = self.run(ctx)
        except CancelledError:
            raise  # the examiner's cancel ends the analysis; it is not this detector failing
        except Exception as exc:  # noqa: BLE001 - one detector must not take the analysis down
            result = DetectorResult.failed(self.name, f"{type(exc).__name__}: {exc}")
        result.detector = self.name
        result.processing_time = round(time.perf_counter() - t0, 4)
        result.frame_count = result.frame_count or ctx.facepass.frame_count
        if not result.parameters:
            try:
                result.parameters = params_dict(self.params(ctx), self.internal_params)
            except Exception as exc:  # noqa: BLE001 - the failed result above already says why
                result.parameters = {"unreadable": str(exc)}
        return result


def params_dict(params: Any, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """A Params dataclass as the plain dict stored with the result (the run's parameters)."""
    d = asdict(params) if is_dataclass(params) else dict(params)
    return {k: v for k, v in d.items() if k not in exclude}
