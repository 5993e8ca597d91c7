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

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from core.detectors import register
from core.detectors.base import AnalysisContext, Detector, DetectorResult, Method, Segment, params_dict
from core.detectors.curves import Curve
from core.detectors.sequence_model import NAME, LoadedModel, cam_layer, load_model, p_manipulated, to_tensor
from core.digest import params_key
from core.face.align import iter_track_crops, sample_frames

if TYPE_CHECKING:
    import torch

    from core.face.facepass import FaceTrack

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
        out.append(Segment(w.start_frame, w.end_frame, float(s), f"window {k} scored {s:.2f} by the sequence classifier", w.track_id, "window_score"))
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


METHOD = Method(
    title="Frame-sequence classifier (MobileNetV2 + LSTM or CNN + BiLSTM, learned) with Grad-CAM",
    summary=(
        "Each tracked face is cut out on frames sampled at a fixed rate, aligned by the eyes to 224 x 224 pixels (or, for "
        "the published seed-001 weights, the whole frame resized, as they were trained), and scored in sliding windows of "
        "consecutive frames: a convolutional network describes each frame, a recurrent (LSTM) network the sequence, giving "
        "a probability of manipulation per window. A face's score is the mean of its windows, the video's the highest face "
        "score. For flagged windows, Grad-CAM maps of the manipulated-class output show which parts of the frames raised "
        "the score. Each result states where its weights came from and what they were trained on."
    ),
    references=(
        "Sandler M. et al. (2018). MobileNetV2: Inverted Residuals and Linear Bottlenecks. CVPR.",
        "Hochreiter S., Schmidhuber J. (1997). Long short-term memory. Neural Computation 9(8):1735-1780.",
        "Selvaraju R. R. et al. (2017). Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization. ICCV.",
        "Rössler A. et al. (2019). FaceForensics++: Learning to Detect Manipulated Facial Images. ICCV.",
    ),
    limits=(
        "A learned model: its scores hold only for footage like its training data (source, compression, manipulation methods).",
        "Weights trained on fewer than 50 videos per class, such as those made on Verity's development clips, check the "
        "processing pipeline and are not a detector: their scores are reported without a reading and are not evidence.",
        "Grad-CAM shows where a score came from, not that a region was manipulated; each map is scaled to its own maximum.",
        "Only counts when its weights are present and their sha256 verified; otherwise reported unavailable.",
    ),
)


@register
class SequenceCNN(Detector):
    name = NAME
    title = "Frame-sequence classifier (MobileNetV2+LSTM / CNN+BiLSTM, learned)"
    needs_weights = True
    needs_faces = True
    Params = SequenceParams
    method = METHOD

    def run(self, ctx: AnalysisContext) -> DetectorResult:
        from core.weights import WeightsError

        p: SequenceParams = self.params(ctx)
        raw = params_dict(p)
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

        wanted: dict[int, list[int]] = {}
        for w in windows:
            for f in set(w.frames):
                wanted.setdefault(f, []).append(w.track_id)
        ctx.progress(NAME, 0.0, f"{len(windows)} windows")
        crops: dict[tuple[int, int], np.ndarray] = {}
        affines: dict[tuple[int, int], np.ndarray] = {}
        fallback = 0
        with ctx.open_video() as reader:
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
            curves={"windows": Curve(
                "score", [round(float(s), 4) for s in scores], start_frame=[w.start_frame for w in windows],
                end_frame=[w.end_frame for w in windows], track_id=[w.track_id for w in windows],
                description=f"P(manipulated) per window, {arch} ({provenance.get('origin')})",
            ).to_dict()},
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
        key = params_key({"weights": model.sha256, "parameters": params_dict(p)})
        path = (ctx.work_dir or cache_dir()) / "gradcam" / f"{ctx.sha256}-{key}.npz"
        digest = store.save(path)
        return str(path), {"path": str(path), "sha256": digest, "windows": len(flagged), "maps": len(store),
                           "maps_without_positive_evidence": int((store.peak <= 0).sum()),
                           "target": store.meta["target"], "scaled": "each map to its own maximum"}
