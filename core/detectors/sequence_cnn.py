"""`sequence_cnn`: a frame-sequence classifier (MobileNetV2+LSTM of seed 001, or CNN+BiLSTM of
seed 004) over sliding windows of each face track, with Grad-CAM on the flagged windows.

Per face track, the frames sampled at the model's rate (`core.face.align.sample_frames`) are cut
into windows of `sequence_length` consecutive sampled frames (`stride` apart; a track shorter
than a window but at least `min_frames` long gives one window, its last frame repeated, as
seed 001 pads). Each window's crops (aligned 224 px faces, or whole frames for the upstream
seed-001 weights, as they were trained) go through the model: one P(manipulated) per window.
A track's score is the mean of its windows; the video's is the highest track score (one
swapped face in a crowd makes the video manipulated). Windows at or above `threshold` are
flagged; consecutive flagged windows of a track become one segment.

Grad-CAM (the `grad-cam` package) targets the manipulated-class logit of a flagged window,
through the LSTM, at the frame CNN's last block; the maps of the highest-scoring
`gradcam_max_windows` windows are stored once with the run (`core.heatmaps`), for the player
overlay and the PDF.

The architecture comes from the weights file: Verity's own checkpoints (safetensors written by
`verity train seq`, architecture and preprocessing in their metadata) or the upstream seed-001
state dicts (`cnn_lstm_detector.pt`, `best_model.pt`), whose layout is recognised from the key
names. Without verified weights the detector is `unavailable`; it never scores with random
weights. Every result states where its weights came from; weights trained on fewer than
`min_training_videos_per_class` videos per class (a pipeline check, such as one on the
development clips) give scores but no reading.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.detectors import register
from core.detectors.base import AnalysisContext, Detector, DetectorResult, Segment
from core.face.align import CropSpec, iter_track_crops, sample_frames

if TYPE_CHECKING:
    import torch

    from core.face.facepass import FaceTrack

NAME = "sequence_cnn"
FORMAT = "verity.sequence_cnn/1"  # metadata "format" of checkpoints written by `verity train seq`
LOCAL_WEIGHTS = "sequence_cnn_local"
UPSTREAM_WEIGHTS = ("seq_upstream_cnn_lstm", "seq_upstream_deepfake_detector")
CANDIDATES = (LOCAL_WEIGHTS, *UPSTREAM_WEIGHTS)  # weights/manifest.toml, tried in this order
BACKBONE_WEIGHTS = "mobilenet_v2_imagenet"
ARCHS = ("mobilenet_lstm", "cnn_bilstm")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALISATIONS = ("0_1", "-1_1", "imagenet")


@dataclass
class SeqPreprocessing:
    """Everything that turns a face track into the model's input; stored with the weights."""

    input: str = "face_aligned"  # or "frame": the whole frame (seed 001 upstream)
    size: int = 224  # crop side
    input_size: int = 224  # side fed to the network (crops are resized when it differs)
    fps: float = 5.0  # frames sampled per second of video (0: every frame)
    sequence_length: int = 16
    normalisation: str = "imagenet"  # 0_1, -1_1 or imagenet
    eye_distance: float = CropSpec.eye_distance
    eye_y: float = CropSpec.eye_y
    fallback_scale: float = CropSpec.fallback_scale

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SeqPreprocessing:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    def crop_spec(self) -> CropSpec:
        return CropSpec(self.input, self.size, self.eye_distance, self.eye_y, self.fallback_scale)

    def crop_key(self) -> str:
        """What the stored crops depend on (not the network's input size or normalisation)."""
        d = {k: v for k, v in self.to_dict().items() if k not in ("input_size", "normalisation", "sequence_length")}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


# What the upstream seed-001 code fed each layout (scripts/run_inference.py; scripts/train.py).
UPSTREAM_PREPROCESSING = {
    "cnn_lstm_detector": SeqPreprocessing(input="frame", fps=0.0, sequence_length=30, normalisation="0_1"),
    "deepfake_detector": SeqPreprocessing(input="frame", fps=0.0, sequence_length=30, normalisation="imagenet"),
}


def to_tensor(crops: np.ndarray, prep: SeqPreprocessing) -> torch.Tensor:
    """uint8 (..., H, W, 3) RGB -> normalised float (..., 3, input_size, input_size)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(crops)).movedim(-1, -3).float().div_(255.0)
    return normalise(resize(x, prep.input_size), prep.normalisation)


def resize(x: torch.Tensor, side: int) -> torch.Tensor:
    import torch.nn.functional as F

    if x.shape[-1] == side and x.shape[-2] == side:
        return x
    lead = x.shape[:-3]
    y = F.interpolate(x.reshape(-1, *x.shape[-3:]), size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    return y.reshape(*lead, *y.shape[-3:])


def normalise(x: torch.Tensor, how: str) -> torch.Tensor:
    """0..1 floats -> the model's range (channel axis -3)."""
    import torch

    if how == "0_1":
        return x
    if how == "-1_1":
        return x * 2.0 - 1.0
    if how == "imagenet":
        shape = (3, 1, 1)
        return (x - torch.tensor(IMAGENET_MEAN).view(shape)) / torch.tensor(IMAGENET_STD).view(shape)
    raise ValueError(f"normalisation {how!r} is not one of {', '.join(NORMALISATIONS)}")


# ----------------------------------------------------------------------------------------------
# models and weights


def build_model(architecture: dict[str, Any]) -> torch.nn.Module:
    arch = architecture.get("arch")
    if arch == "mobilenet_lstm":
        from core.models.mobilenet_lstm import build

        return build(architecture.get("layout", "deepfake_detector"))
    if arch == "cnn_bilstm":
        from core.models.cnn_bilstm import CNNBiLSTM

        return CNNBiLSTM(**(architecture.get("params") or {}))
    raise ValueError(f"unknown sequence architecture {arch!r} (known: {', '.join(ARCHS)})")


def cam_layer(model: torch.nn.Module) -> torch.nn.Module:
    from core.models import cnn_bilstm, mobilenet_lstm

    return cnn_bilstm.cam_layer(model) if isinstance(model, cnn_bilstm.CNNBiLSTM) else mobilenet_lstm.cam_layer(model)  # type: ignore[arg-type]


def p_manipulated(logits: torch.Tensor) -> torch.Tensor:
    from core.models.mobilenet_lstm import p_manipulated as p

    return p(logits)


def upstream_layout(state_dict: dict[str, Any]) -> str | None:
    """Which seed-001 layout a bare state dict has, from its key names (None: neither)."""
    keys = set(state_dict)
    if "cnn.features.0.0.weight" in keys and "classifier.3.weight" in keys:
        return "deepfake_detector"
    if "cnn.0.0.weight" in keys and "lstm.weight_ih_l0_reverse" in keys and "classifier.weight" in keys:
        return "cnn_lstm_detector"
    return None


@dataclass
class LoadedModel:
    model: torch.nn.Module
    architecture: dict[str, Any]
    prep: SeqPreprocessing
    sha256: str
    entry: str | None  # manifest entry, None for a file given by path
    meta: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"


_cache: dict[tuple[str, str, str | None], LoadedModel] = {}
_lock = threading.Lock()


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _unwrap(sd: dict[str, Any]) -> dict[str, Any]:
    for k in ("state_dict", "model"):
        if isinstance(sd.get(k), dict):
            return sd[k]
    return sd


def load_model(weights: str = "auto", device: str | None = None, path: str | Path | None = None, sha256: str | None = None) -> LoadedModel:
    """Verified weights -> model in eval mode; WeightsError with the reason otherwise.

    `weights`: "auto" (the first verified of CANDIDATES) or a manifest entry; `path` (with an
    optional expected `sha256`) loads a file that is not registered (evaluation)."""
    from core.weights import WeightsError, file_sha256, status
    from core.weights.manifest import entry

    device = device or default_device()
    entry_meta: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise WeightsError(f"sequence checkpoint not found: {p}")
        digest = file_sha256(p)
        if sha256 is not None and digest != sha256.lower():
            raise WeightsError(f"{p.name}: sha256 {digest} does not match the expected {sha256.lower()}; refused")
        name = None
    else:
        names = CANDIDATES if weights == "auto" else (weights,)
        reasons = []
        for n in names:
            st = status(n)
            if st.ok and st.path is not None:
                p, digest, name = st.path, str(st.sha256), n
                e = entry(n)
                entry_meta = {"architecture": e.architecture, "preprocessing": e.preprocessing, "source": e.source, "description": e.description}
                break
            reasons.append(f"{n}: {st.reason}")
        else:
            raise WeightsError("no verified sequence-classifier weights (" + "; ".join(reasons) + "); train some with 'verity train seq' "
                               "or import the seed-001 checkpoints (see weights/README.md)")
    key = (digest, device, name)  # the same file under an entry may carry that entry's preprocessing
    with _lock:
        if key in _cache:
            return _cache[key]
        from core.weights import load_state_dict

        sd, meta = load_state_dict(p, expected_sha256=digest)  # weights-only: a pickle payload is refused
        sd = _unwrap(sd)
        if meta.get("format") == FORMAT:
            arch = meta.get("architecture") or {}
            prep = SeqPreprocessing.from_dict(meta.get("preprocessing") or {})
            provenance = _own_provenance(meta)
        else:
            layout = upstream_layout(sd)
            if layout is None:
                raise WeightsError(f"{p.name} is neither a checkpoint of 'verity train seq' nor a seed-001 state dict (unknown key names)")
            arch = {"arch": "mobilenet_lstm", "layout": layout}
            prep = SeqPreprocessing.from_dict({**UPSTREAM_PREPROCESSING[layout].to_dict(), **(entry_meta.get("preprocessing") or {})})
            provenance = {"origin": "upstream seed 001 (AbhishekX04/Deepfake-detection)", "layout": layout,
                          "training_data": "not recorded by upstream", "source": entry_meta.get("source", "")}
        try:
            model = build_model(arch)
            model.load_state_dict(sd, strict=True)
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise WeightsError(f"{p.name} does not fit the {arch.get('arch')} model: {str(exc).splitlines()[0]}") from None
        loaded = LoadedModel(model.to(device).eval(), arch, prep, digest, name, meta, provenance, device)
        _cache.clear()  # one model in memory
        _cache[key] = loaded
        return loaded


def _own_provenance(meta: dict[str, Any]) -> dict[str, Any]:
    td = meta.get("training_data") or {}
    return {
        "origin": "trained locally by 'verity train seq'",
        "training_data": {k: td.get(k) for k in ("dataset", "videos", "real_videos", "fake_videos", "train_windows") if k in td},
        "backbone": meta.get("backbone"),
        "validation": (meta.get("metrics") or {}).get("validation_videos"),
        "saved_utc": meta.get("saved_utc"),
        "note": td.get("note", ""),
    }


# ----------------------------------------------------------------------------------------------
# windows


@dataclass
class Window:
    track_id: int
    frames: list[int]  # sequence_length frames (the last may repeat for a short track)

    @property
    def start_frame(self) -> int:
        return self.frames[0]

    @property
    def end_frame(self) -> int:
        return self.frames[-1]


def runs(sampled: np.ndarray, track_frames: np.ndarray) -> list[np.ndarray]:
    """The track's frames among the sampled ones, split where the face was lost for a sample."""
    pos = np.flatnonzero(np.isin(sampled, track_frames))
    if not pos.size:
        return []
    cuts = np.flatnonzero(np.diff(pos) > 1) + 1
    return [sampled[p] for p in np.split(pos, cuts)]


def track_windows(track: FaceTrack, sampled: np.ndarray, length: int, stride: int, min_frames: int) -> list[Window]:
    out: list[Window] = []
    for run in runs(sampled, track.frames):
        n = run.size
        if n >= length:
            starts = list(range(0, n - length + 1, max(stride, 1)))
            if starts[-1] != n - length:
                starts.append(n - length)  # cover the end of the run too
            out += [Window(track.track_id, [int(f) for f in run[s : s + length]]) for s in starts]
        elif n >= max(min_frames, 1):
            out.append(Window(track.track_id, [int(f) for f in run] + [int(run[-1])] * (length - n)))
    return out


def video_score(scores_by_track: dict[int, list[float]]) -> float:
    """The video's score: the highest of its tracks' mean window scores."""
    return max(float(np.mean(s)) for s in scores_by_track.values() if len(s))


def score_windows(model: LoadedModel, windows: list[Window], crops: dict[tuple[int, int], np.ndarray], batch_size: int = 4) -> np.ndarray:
    import torch

    out = []
    for i in range(0, len(windows), batch_size):
        batch = np.stack([np.stack([crops[(w.track_id, f)] for f in w.frames]) for w in windows[i : i + batch_size]])
        with torch.inference_mode():
            out.append(p_manipulated(model.model(to_tensor(batch, model.prep).to(model.device))).float().cpu().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def gradcam_maps(model: LoadedModel, window: Window, crops: dict[tuple[int, int], np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM of the window's manipulated-class logit, per frame: (T, size, size) uint8 maps,
    each scaled to its own maximum (the library's convention), and (T,) the unscaled maxima
    (0: nothing in that frame raises the logit; its map is then all zero)."""
    import cv2
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    class SequenceGradCAM(GradCAM):
        peak: np.ndarray

        # the library reads a 5-D input as 3-D volumes; ours is (1, T, 3, H, W): frames of H x W
        def get_target_width_height(self, input_tensor: torch.Tensor) -> tuple[int, int]:
            return int(input_tensor.size(-1)), int(input_tensor.size(-2))

        def get_cam_image(self, *args: Any, **kwargs: Any) -> np.ndarray:
            cam = super().get_cam_image(*args, **kwargs)  # (T, h, w) before the ReLU and scaling
            self.peak = np.maximum(cam, 0).reshape(len(cam), -1).max(axis=1)
            return cam

    x = to_tensor(np.stack([crops[(window.track_id, f)] for f in window.frames])[None], model.prep).to(model.device)
    target = [ClassifierOutputTarget(int(model.model.manipulated_index))]
    # cuDNN runs an LSTM backward only in training mode; the plain kernels do it in eval mode
    with torch.backends.cudnn.flags(enabled=False), SequenceGradCAM(model=model.model, target_layers=[cam_layer(model.model)]) as cam:
        maps = cam(input_tensor=x, targets=target)  # (T, H, W) floats in 0..1, one per frame
        peak = cam.peak
    small = np.stack([cv2.resize(m, (size, size), interpolation=cv2.INTER_AREA) for m in maps])
    return np.clip(np.round(small * 255.0), 0, 255).astype(np.uint8), peak.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# the detector


@dataclass
class SequenceParams:
    weights: str = "auto"  # a manifest entry, or "auto": the first verified of CANDIDATES
    stride: int | None = None  # sampled frames between window starts (None: half a window)
    min_frames: int | None = None  # shortest track stretch scored, padded (None: half a window)
    threshold: float = 0.5  # window score at or above which it is flagged
    inconclusive_band: float = 0.1  # |video score - 0.5| below this -> inconclusive
    min_training_videos_per_class: int = 50  # fewer (as the checkpoint records): scores, no reading
    batch_size: int = 4
    gradcam: bool = True
    gradcam_max_windows: int = 8  # the highest-scoring flagged windows get heat maps
    heatmap_size: int = 56
    device: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _merge(windows: list[Window], scores: np.ndarray, threshold: float) -> list[Segment]:
    """Flagged windows of a track that overlap or touch become one segment."""
    out: list[Segment] = []
    first: list[int] = []  # index of each segment's first window
    for k, (w, s) in enumerate(zip(windows, scores)):
        if s < threshold:
            continue
        prev = out[-1] if out else None
        if prev is not None and prev.track_id == w.track_id and w.start_frame <= prev.end_frame + 1:
            prev.end_frame = max(prev.end_frame, w.end_frame)
            prev.score = max(prev.score or 0.0, float(s))
            prev.reason = f"windows {first[-1]}-{k} scored up to {prev.score:.2f} by the sequence classifier"
            continue
        first.append(k)
        out.append(Segment(w.start_frame, w.end_frame, float(s), f"window {k} scored {s:.2f} by the sequence classifier", w.track_id))
    return out


def _too_little_training(prov: dict[str, Any], minimum: int) -> str | None:
    td = prov.get("training_data")
    if not isinstance(td, dict) or "real_videos" not in td:
        return None  # upstream weights: their training data is not recorded
    real, fake = int(td.get("real_videos") or 0), int(td.get("fake_videos") or 0)
    if min(real, fake) < minimum:
        return (f"the weights were trained on {real} real and {fake} fake videos, fewer than {minimum} per class: "
                "enough to check the pipeline, not to make a detector; the scores are shown, no reading is given")
    return None


@register
class SequenceCNN(Detector):
    name = NAME
    title = "Frame-sequence classifier (MobileNetV2+LSTM / CNN+BiLSTM, learned)"
    needs_weights = True
    needs_faces = True
    default_params: dict[str, Any] = SequenceParams().to_dict()

    def run(self, ctx: AnalysisContext) -> DetectorResult:
        from core.weights import WeightsError

        raw = self.params(ctx)
        p = SequenceParams(**{k: v for k, v in raw.items() if k in SequenceParams.__dataclass_fields__})
        try:
            model = load_model(p.weights, p.device)
        except WeightsError as exc:
            return DetectorResult.unavailable(NAME, str(exc), parameters=raw)
        prep, fp = model.prep, ctx.facepass
        L = prep.sequence_length
        stride = p.stride or max(L // 2, 1)
        min_frames = p.min_frames or max(L // 2, 1)
        params = {**raw, "stride": stride, "min_frames": min_frames, "preprocessing": prep.to_dict(), "architecture": model.architecture,
                  "device": model.device, "weights_entry": model.entry}
        base = {"detector": NAME, "weights_sha256": {model.entry or "file": model.sha256}, "parameters": params,
                "frame_count": fp.frame_count}
        provenance = model.provenance
        sampled = sample_frames(fp.times_s, prep.fps)
        windows = [w for t in fp.tracks for w in track_windows(t, sampled, L, stride, min_frames)]
        if not windows:
            return DetectorResult(**base, prediction="inconclusive", assessment="inconclusive",
                                  note=f"no face track has {min_frames} sampled frames in a row (at {prep.fps:g} frames/s): nothing to score",
                                  metrics={"windows": 0, "weights_provenance": provenance})
        from core.video.reader import VideoReader

        wanted: dict[int, list[int]] = {}
        for w in windows:
            for f in set(w.frames):
                wanted.setdefault(f, []).append(w.track_id)
        ctx.progress(NAME, 0.0, f"{len(windows)} windows")
        crops: dict[tuple[int, int], np.ndarray] = {}
        affines: dict[tuple[int, int], np.ndarray] = {}
        fallback = 0
        with VideoReader(ctx.path) as reader:
            for c in iter_track_crops(reader, fp.tracks, wanted, prep.crop_spec(), ctx.cancel):
                crops[(c.track_id, c.frame)], affines[(c.track_id, c.frame)] = c.image, c.affine
                fallback += int(prep.input == "face_aligned" and not c.aligned)
        ctx.check_cancel()
        scores = score_windows(model, windows, crops, p.batch_size)
        by_track: dict[int, list[float]] = {}
        for w, s in zip(windows, scores):
            by_track.setdefault(w.track_id, []).append(float(s))
        score = video_score(by_track)
        weak = _too_little_training(provenance, p.min_training_videos_per_class)

        def reading(s: float) -> str:
            if weak or abs(s - 0.5) < p.inconclusive_band:
                return "inconclusive"
            return "inconsistent" if s >= p.threshold else "consistent"

        segments = _merge(windows, scores, p.threshold)
        metrics: dict[str, Any] = {
            "windows": len(windows), "windows_flagged": int((scores >= p.threshold).sum()), "video_score": round(score, 4),
            "crops": len(crops), "alignment_fallbacks": fallback, "weights_provenance": provenance,
        }
        viz = None
        if p.gradcam and segments:
            ctx.progress(NAME, 0.8, "Grad-CAM")
            try:
                viz, metrics["gradcam"] = self._gradcam(ctx, model, windows, scores, crops, affines, p, segments)
            except (RuntimeError, ValueError, OSError) as exc:  # the scores stand without their explanation
                metrics["gradcam"] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
        per_track = {str(t): {"windows": len(s), "score": round(float(np.mean(s)), 4), "assessment": reading(float(np.mean(s)))}
                     for t, s in by_track.items()}
        arch = f"{model.architecture.get('arch')} ({model.architecture.get('layout', 'cnn_bilstm')})"
        note = f"{arch} weights {model.entry or 'file'} ({provenance.get('origin')})"
        if weak:
            note += f"; {weak}"
        return DetectorResult(
            **base,
            prediction="FAKE" if score >= p.threshold else "REAL",
            confidence=round(score if score >= p.threshold else 1.0 - score, 4),
            note=note,
            frames_analyzed=len({f for w in windows for f in w.frames}),
            frame_predictions=[{"index": k, "track_id": w.track_id, "start_frame": w.start_frame, "end_frame": w.end_frame,
                                "frames": w.frames, "score": round(float(s), 4), "flagged": bool(s >= p.threshold)}
                               for k, (w, s) in enumerate(zip(windows, scores))],
            metrics=metrics,
            visualization_path=viz,
            assessment=reading(score),
            segments=segments,
            per_track=per_track,
            curves={"windows": {"track_id": [w.track_id for w in windows], "start_frame": [w.start_frame for w in windows],
                                "end_frame": [w.end_frame for w in windows], "score": [round(float(s), 4) for s in scores]}},
        )

    @staticmethod
    def _gradcam(ctx: AnalysisContext, model: LoadedModel, windows: list[Window], scores: np.ndarray,
                 crops: dict[tuple[int, int], np.ndarray], affines: dict[tuple[int, int], np.ndarray],
                 p: SequenceParams, segments: list[Segment]) -> tuple[str, dict[str, Any]]:
        from core.heatmaps import HeatmapStore
        from core.paths import cache_dir

        by_score = [int(k) for k in np.argsort(-scores, kind="stable") if scores[k] >= p.threshold]
        # the best window of every segment first (its key frame in the report gets a map), then by score
        best = [next(k for k in by_score if windows[k].track_id == g.track_id and g.start_frame <= windows[k].start_frame <= g.end_frame)
                for g in sorted(segments, key=lambda g: -(g.score or 0.0))]
        flagged = list(dict.fromkeys(best + by_score))[: p.gradcam_max_windows]
        rows: dict[str, list[Any]] = {k: [] for k in ("track_id", "frame", "window", "window_start", "window_end", "score", "affine", "maps", "peak")}
        for n, k in enumerate(sorted(flagged)):
            ctx.check_cancel()
            w = windows[k]
            maps, peaks = gradcam_maps(model, w, crops, p.heatmap_size)
            seen: set[int] = set()
            for f, m, pk in zip(w.frames, maps, peaks):
                if f in seen:
                    continue  # a padded window repeats its last frame
                seen.add(f)
                for name, v in (("track_id", w.track_id), ("frame", f), ("window", k), ("window_start", w.start_frame),
                                ("window_end", w.end_frame), ("score", scores[k]), ("affine", affines[(w.track_id, f)]), ("maps", m), ("peak", pk)):
                    rows[name].append(v)
            ctx.progress(NAME, 0.8 + 0.2 * (n + 1) / len(flagged), f"Grad-CAM {n + 1}/{len(flagged)}")
        store = HeatmapStore(
            np.asarray(rows["track_id"], np.int32), np.asarray(rows["frame"], np.int32), np.asarray(rows["window"], np.int32),
            np.asarray(rows["window_start"], np.int32), np.asarray(rows["window_end"], np.int32), np.asarray(rows["score"], np.float32),
            np.asarray(rows["affine"], np.float32).reshape(-1, 2, 3), np.asarray(rows["maps"], np.uint8).reshape(-1, p.heatmap_size, p.heatmap_size),
            np.asarray(rows["peak"], np.float32), crop_size=model.prep.size,
            meta={"detector": NAME, "evidence_sha256": ctx.sha256, "weights_sha256": model.sha256, "method": "Grad-CAM (pytorch-grad-cam)",
                  "crop": asdict(model.prep.crop_spec()),
                  "target": f"logit {int(model.model.manipulated_index)} (manipulated class) of the window", "layer": type(cam_layer(model.model)).__name__},
        )
        key = hashlib.sha256(json.dumps([model.sha256, p.to_dict()], sort_keys=True).encode()).hexdigest()[:12]
        path = (ctx.work_dir or cache_dir()) / "gradcam" / f"{ctx.sha256}-{key}.npz"
        digest = store.save(path)
        return str(path), {"path": str(path), "sha256": digest, "windows": len(flagged), "maps": len(store),
                           "maps_without_positive_evidence": int((store.peak <= 0).sum()),
                           "target": store.meta["target"], "scaled": "each map to its own maximum"}
