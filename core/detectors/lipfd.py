"""`lipfd`: the LipFD lip-sync forgery detector (model card seed 003, upstream AaronComo/LipFD).

Pipeline per the card: 16 kHz audio -> mel spectrogram (power_to_db(ref=min), viridis) ->
`n_extract` windows of `window_len` frames at linearly spaced starts -> composite image (mel
segment on top, the frames at 500x500 side by side below) -> three crop scales per frame and the
composite for the CLIP branch -> P(fake) per window -> mean; >= 0.5 is FAKE.

Where upstream is wrong we do better, and say so:
- upstream takes the five regional crops at 1-pixel shifts of frame 0 (`img[:, 500:, i:i+500]`);
  we take each window frame (`k*500:(k+1)*500`);
- upstream's `np.linspace(..., dtype=np.uint8)` wraps around past 255 frames; we use int64;
- upstream feeds un-normalised 0-255 BGR pixels and decodes audio at librosa's 22.05 kHz while
  the card says RGB and 16 kHz: our checkpoints follow the card and record their preprocessing
  (sample rate, colour order, normalisation) in their metadata; a checkpoint without that record
  (upstream's ckpt.pth) is fed upstream's values, so each model sees what it was trained on;
- upstream's fixed centre crops fail on footage that is not face-centred (upstream issue #21):
  each window frame is first cut to a square around the tracked face, then the card's pipeline
  runs on it;
- the mel segment of a window is found by time (frame pts, audio start), not by
  mel_width / frame_count, which drifts with variable frame rate or a late audio start.

Without verified weights the detector is `unavailable` with the reason; it never scores with
random weights.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.detectors import register
from core.detectors.base import AnalysisContext, Detector, DetectorResult, Method, Segment, params_dict
from core.detectors.curves import Curve
from core.params import from_dict
from core.signals.timebase import usable_fps
from core.weights.resident import OneModel, torch_device

NAME = "lipfd"
WEIGHT_CANDIDATES = ("lipfd_ckpt", "lipfd_local")  # weights/manifest.toml: upstream first, then ours
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# The card's face and lip crops, as fractions of the 224-px full-frame crop: [28:196], [61:163].
FACE_CROP = (28 / 224, 196 / 224)
LIP_CROP = (61 / 224, 163 / 224)


@dataclass
class LipFDPreprocessing:
    audio_sample_rate: int = 16000  # card: 16 kHz (upstream code: 22050)
    colour_order: str = "RGB"  # card: RGB (upstream code: BGR, cv2.imread of the composite)
    normalisation: str = "clip"  # "clip": 0-1 then CLIP mean/std; "none": raw 0-255 (upstream)
    frame_size: int = 500
    window_len: int = 5
    n_extract: int = 10
    face_centred: bool = True  # square crop around the tracked face before the card's pipeline
    face_scale: float = 1.6  # side of that square / the larger side of the face box
    mel_hop: int = 512
    mel_by_time: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LipFDPreprocessing:
        # a checkpoint's record: fields of a newer version are ignored, not refused
        return from_dict(cls, d, "LipFD preprocessing record", unknown="ignore")


# What upstream's ckpt.pth was trained on (preprocess.py + data/datasets.py).
UPSTREAM_PREPROCESSING = LipFDPreprocessing(audio_sample_rate=22050, colour_order="BGR", normalisation="none")


# --------------------------------------------------------------------------------------------
# windows and composites


def window_starts(frame_count: int, window_len: int = 5, n_extract: int = 10) -> np.ndarray:
    """Linearly spaced window starts in [0, frame_count - window_len - 1], int64, unique.

    Upstream used dtype=np.uint8, which wraps for videos longer than 260 frames.
    """
    if frame_count < window_len:
        return np.zeros(0, np.int64)
    last = max(frame_count - window_len - 1, 0)
    return np.unique(np.linspace(0, last, n_extract).astype(np.int64))


def face_square(box: np.ndarray, scale: float) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the square around a face box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return (x0 + x1) / 2, (y0 + y1) / 2, scale * max(x1 - x0, y1 - y0)


def crop_square(frame: np.ndarray, cx: float, cy: float, side: float) -> np.ndarray:
    """Square crop, padded with black where it leaves the picture."""
    import cv2

    h, w = frame.shape[:2]
    s = max(int(round(side)), 2)
    x0, y0 = int(round(cx - s / 2)), int(round(cy - s / 2))
    pad = max(0, -x0, -y0, x0 + s - w, y0 + s - h)
    if pad:
        frame = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        x0, y0 = x0 + pad, y0 + pad
    return frame[y0 : y0 + s, x0 : x0 + s]


def window_boxes(facepass: Any, start: int, window_len: int) -> tuple[list[np.ndarray | None], int | None]:
    """Face box for each window frame from the track that covers the window best.

    Frames the track misses take the nearest tracked box. (None, None) when no track is near.
    """
    frames = np.arange(start, start + window_len)
    best, best_cover = None, 0
    for t in facepass.tracks:
        cover = int(np.isin(frames, t.frames).sum())
        near = t.first_frame - window_len <= start <= t.last_frame + window_len
        if (cover > best_cover) or (best is None and near and len(t)):
            best, best_cover = t, cover
    if best is None:
        return [None] * window_len, None
    out: list[np.ndarray | None] = []
    for f in frames:
        k = int(np.argmin(np.abs(best.frames - f)))
        out.append(best.boxes[k] if abs(int(best.frames[k]) - int(f)) <= 2 * window_len else None)
    return out, best.track_id


def compose_window(frames_rgb: list[np.ndarray], mel_segment: np.ndarray, frame_size: int = 500) -> np.ndarray:
    """Card's composite: mel (frame_size x frame_size*W) on top, frames side by side below.

    -> uint8 (2*frame_size, frame_size*W, 3), RGB.
    """
    import cv2

    w = len(frames_rgb)
    row = np.concatenate([cv2.resize(f, (frame_size, frame_size)) for f in frames_rgb], axis=1)
    if mel_segment.shape[1] == 0:
        mel_segment = np.zeros((mel_segment.shape[0] or 1, 1, 3), np.uint8)
    mel = cv2.resize(mel_segment, (frame_size * w, frame_size))
    return np.ascontiguousarray(np.concatenate([mel, row], axis=0))


def composite_tensors(composite: np.ndarray, cfg: Any, prep: LipFDPreprocessing) -> tuple[Any, Any]:
    """Composite (2fs, fs*W, 3) RGB uint8 -> (global (3, 5n, 5n), crops (3 scales, W, 3, s, s)).

    Colour order and value range follow the checkpoint's preprocessing record.
    """
    import torch

    from core.models.lipfd import resize

    fs = prep.frame_size
    w = composite.shape[1] // fs
    x = torch.from_numpy(composite).permute(2, 0, 1).float()  # (3, H, W), RGB 0-255
    if prep.colour_order.upper() == "BGR":
        x = x.flip(0)
    if prep.normalisation == "clip":
        mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
        std = torch.tensor(CLIP_STD).view(3, 1, 1)
        if prep.colour_order.upper() == "BGR":
            mean, std = mean.flip(0), std.flip(0)
        x = (x / 255.0 - mean) / std
    glob = resize(x, cfg.composite_size)
    s = cfg.crop_size
    # each window frame (upstream: 1-pixel shifts of frame 0)
    full = resize(torch.stack([x[:, fs:, k * fs : (k + 1) * fs] for k in range(w)]), s)  # (W, 3, s, s)
    a0, a1 = (int(round(v * s)) for v in FACE_CROP)
    b0, b1 = (int(round(v * s)) for v in LIP_CROP)
    face = resize(full[:, :, a0:a1, a0:a1], s)
    lips = resize(full[:, :, b0:b1, b0:b1], s)
    return glob, torch.stack([full, face, lips])


@dataclass
class Window:
    index: int
    start_frame: int
    end_frame: int  # inclusive
    composite: np.ndarray
    face_centred: bool
    track_id: int | None = None


@dataclass
class ClipWindows:
    windows: list[Window] = field(default_factory=list)
    frame_count: int = 0
    note: str = ""


def extract_windows(
    video: str | Path, samples: np.ndarray, sample_rate: int, audio_start_s: float, facepass: Any, prep: LipFDPreprocessing,
    cancel: Any = None,
) -> ClipWindows:
    """The card's windows for one clip: composites with the mel segment aligned by time."""
    from core.audio.mel import mel_image
    from core.video.reader import VideoReader

    mel = mel_image(samples, sample_rate, audio_start_s, hop_length=prep.mel_hop)
    out = ClipWindows(frame_count=facepass.frame_count if facepass is not None else 0)
    with VideoReader(video) as reader:
        n = reader.frame_count
        out.frame_count = n
        times = reader.index.times_s
        fps = usable_fps(reader.fps)
        starts = window_starts(n, prep.window_len, prep.n_extract)
        if starts.size == 0:
            out.note = f"the video has {n} frames, fewer than one window of {prep.window_len}"
            return out
        for k, s in enumerate(starts):
            if cancel is not None:
                cancel.raise_if_cancelled()
            idx = list(range(int(s), int(s) + prep.window_len))
            frames = [reader.frame(i) for i in idx]
            boxes, tid = window_boxes(facepass, int(s), prep.window_len) if (facepass is not None and prep.face_centred) else ([None] * len(idx), None)
            centred = all(b is not None for b in boxes)
            if prep.face_centred and centred:
                # one square per window (mean of its boxes): the face stays still, the lips move
                cx, cy, side = np.mean([face_square(b, prep.face_scale) for b in boxes], axis=0)  # type: ignore[arg-type]
                frames = [crop_square(f, cx, cy, side) for f in frames]
            if prep.mel_by_time:
                t0 = float(times[idx[0]])
                t1 = float(times[idx[-1]]) + 1.0 / fps
                c0, c1 = mel.column_at(t0), mel.column_at(t1)
            else:  # upstream: columns per frame = mel width / frame count
                mapping = mel.rgb.shape[1] / n
                c0, c1 = int(round(s * mapping)), int(round((s + prep.window_len) * mapping))
            c1 = max(c1, c0 + 1)
            seg = mel.rgb[:, c0:c1]
            out.windows.append(Window(k, int(s), int(s) + prep.window_len - 1, compose_window(frames, seg, prep.frame_size), centred, tid))
    return out


# --------------------------------------------------------------------------------------------
# weights and model


@dataclass
class LoadedLipFD:
    model: Any
    cfg: Any
    prep: LipFDPreprocessing
    weights_name: str
    sha256: str
    metadata: dict[str, Any]
    ignored_keys: list[str]
    device: str


_MODEL: OneModel[LoadedLipFD] = OneModel()


def choose_weights(requested: str | None = None) -> tuple[str | None, list[str]]:
    """The first verified entry among the candidates (or the requested one): (name, reasons)."""
    from core.weights import WeightsError, status

    names = [requested] if requested and requested != "auto" else list(WEIGHT_CANDIDATES)
    reasons = []
    for name in names:
        try:
            st = status(name)
        except (WeightsError, KeyError) as exc:
            reasons.append(f"{name}: {exc}")
            continue
        if st.ok:
            return name, reasons
        reasons.append(f"{name}: {st.reason}")
    return None, reasons


def load_model(source: str | Path, expected_sha256: str | None = None, device: str | None = None) -> LoadedLipFD:
    """Build LipFD and load a verified checkpoint: a manifest entry name or a path.

    Our checkpoints carry architecture + preprocessing in their metadata; one without them
    (upstream's ckpt.pth) is taken as upstream's ViT-L/14 with upstream preprocessing.
    Raises WeightsError (missing, hash mismatch, unsafe pickle, wrong layout).
    """
    from core.weights import WeightsError, file_sha256, status

    device = device or torch_device()
    if isinstance(source, str) and not Path(source).is_file():
        st = status(source)
        if not st.ok or st.path is None:
            raise WeightsError(f"weights {source!r} unavailable: {st.reason}")
        sha, name = st.sha256 or "", source
    else:
        sha, name = file_sha256(source), Path(source).name
    if expected_sha256 is not None and sha != expected_sha256.lower():
        raise WeightsError(f"{name}: sha256 {sha} differs from the expected {expected_sha256}")
    return _MODEL.get((sha, device), lambda: _load(source, expected_sha256, name, sha, device))


def _load(source: str | Path, expected_sha256: str | None, name: str, sha: str, device: str) -> LoadedLipFD:
    from core.models.lipfd import LipFDConfig, build_from_state_dict, infer_config
    from core.weights import WeightsError, load_state_dict

    sd, meta = load_state_dict(source, expected_sha256)
    arch = meta.get("architecture") if isinstance(meta.get("architecture"), dict) else None
    prep_d = meta.get("preprocessing") if isinstance(meta.get("preprocessing"), dict) else None
    prep = LipFDPreprocessing.from_dict(prep_d) if prep_d else UPSTREAM_PREPROCESSING
    try:
        cfg = LipFDConfig.from_dict(arch) if arch else infer_config(sd)
        model, ignored = build_from_state_dict(cfg, sd)
    except ValueError as exc:
        raise WeightsError(f"{name}: {exc}") from None
    model.eval().to(device)
    return LoadedLipFD(model, cfg, prep, name, sha, {k: v for k, v in meta.items() if k != "architecture"}, ignored, device)


def score_windows(loaded: LoadedLipFD, windows: list[Window], batch: int = 2) -> list[float]:
    """P(fake) of each window (sigmoid of the logit); mixed precision on CUDA."""
    import torch

    scores: list[float] = []
    dev = loaded.device
    for i in range(0, len(windows), batch):
        chunk = windows[i : i + batch]
        pairs = [composite_tensors(w.composite, loaded.cfg, loaded.prep) for w in chunk]
        g = torch.stack([p[0] for p in pairs]).to(dev)
        c = torch.stack([p[1] for p in pairs]).to(dev)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=dev == "cuda"):
            logit, _ = loaded.model(g, c)
        scores += torch.sigmoid(logit.float()).cpu().tolist()
    return scores


# --------------------------------------------------------------------------------------------
# detector


@dataclass
class LipFDParams:
    weights: str = "auto"  # a manifest entry, or "auto": the first verified of WEIGHT_CANDIDATES
    n_extract: int = 10  # windows per clip (the card's)
    threshold: float = 0.5  # window / clip score at or above it: FAKE (the card's)
    batch: int = 2  # windows per forward pass


METHOD = Method(
    title="LipFD lip-sync forgery detector (learned)",
    summary=(
        "A CLIP image encoder and ResNet-50 regional branch score windows of frames together with the mel spectrogram "
        "of the audio; window scores are averaged into a probability of manipulation."
    ),
    references=(
        "Liu W. et al. (2024). Lips Are Lying: Spotting the Temporal Inconsistency between Audio and Visual in Lip-Syncing DeepFakes. NeurIPS.",
    ),
    limits=(
        "A learned model: its accuracy holds for data like its training data; footage from other sources may be misjudged.",
        "Only counts when its weights are present and their sha256 verified; otherwise reported unavailable.",
    ),
)


@register
class LipFDDetector(Detector):
    name = NAME
    title = "LipFD (audio-visual lip-sync forgery)"
    needs_weights = True
    needs_faces = False  # the card runs on any frames; face-centring is used when a track exists
    Params = LipFDParams
    method = METHOD

    def run(self, ctx: AnalysisContext) -> DetectorResult:
        from core.errors import EvidenceError
        from core.weights import WeightsError

        p: LipFDParams = self.params(ctx)
        t0 = time.perf_counter()
        name, reasons = choose_weights(p.weights)
        if name is None:
            return DetectorResult.unavailable(NAME, "no verified LipFD weights: " + "; ".join(reasons))
        if ctx.evidence.audio is None:
            return DetectorResult.unavailable(NAME, "Video requires audio track for LipFD analysis (the evidence has no audio track)")
        try:
            loaded = load_model(name)
        except WeightsError as exc:
            return DetectorResult.unavailable(NAME, str(exc))
        prep = LipFDPreprocessing.from_dict({**loaded.prep.to_dict(), "n_extract": int(p.n_extract)})
        try:
            if prep.audio_sample_rate == 16000:
                audio = ctx.audio
            else:
                from core.audio import load_audio

                audio = load_audio(ctx.path, sample_rate=prep.audio_sample_rate)
        except EvidenceError as exc:
            return DetectorResult.unavailable(NAME, f"audio could not be decoded: {exc}")
        if audio is None or audio.samples.size == 0:
            return DetectorResult.unavailable(NAME, "Video requires audio track for LipFD analysis (the audio track is empty)")
        ctx.progress(NAME, 0.05, "windows")
        clip = extract_windows(ctx.path, audio.samples, audio.sample_rate, audio.start_time_s, ctx.facepass, prep, ctx.cancel)
        if not clip.windows:
            return DetectorResult.unavailable(NAME, clip.note or "no window could be extracted")
        scores: list[float] = []
        batch = int(p.batch)
        for i in range(0, len(clip.windows), batch):
            ctx.check_cancel()
            scores += score_windows(loaded, clip.windows[i : i + batch], batch)
            ctx.progress(NAME, 0.1 + 0.9 * len(scores) / len(clip.windows), f"window {len(scores)}/{len(clip.windows)}")
        thr = float(p.threshold)
        final = float(np.mean(scores))
        fake = final >= thr
        preds = [
            {
                "index": w.index, "score": round(s, 6), "prediction": "FAKE" if s >= thr else "REAL",
                "start_frame": w.start_frame, "end_frame": w.end_frame, "face_centred": w.face_centred, "track_id": w.track_id,
            }
            for w, s in zip(clip.windows, scores)
        ]
        segments = [
            Segment(w.start_frame, w.end_frame, round(s, 6), f"LipFD window {w.index} scores {s:.2f} >= {thr:.2f}", w.track_id, "window_score")
            for w, s in zip(clip.windows, scores) if s >= thr
        ]
        not_centred = sum(not w.face_centred for w in clip.windows)
        note = f"weights {loaded.weights_name} ({loaded.sha256[:12]}); mean of {len(scores)} windows"
        if not_centred:
            note += f"; {not_centred} window(s) without a tracked face used the whole frame"
        trained = loaded.metadata.get("training_data")
        if isinstance(trained, dict) and trained.get("summary"):
            note += f"; trained on {trained['summary']}"
        return DetectorResult(
            prediction="FAKE" if fake else "REAL",
            confidence=round(final if fake else 1.0 - final, 6),
            processing_time=round(time.perf_counter() - t0, 3),
            note=note,
            frame_count=clip.frame_count,
            frames_analyzed=len(scores),
            frame_predictions=preds,
            metrics={"final_average_score": round(final, 6), "window_scores": [round(s, 6) for s in scores]},
            assessment="inconsistent" if fake else "consistent",
            weights_sha256={loaded.weights_name: loaded.sha256},
            parameters={**params_dict(p), "weights": loaded.weights_name, "architecture": loaded.cfg.to_dict(), "preprocessing": prep.to_dict(), "device": loaded.device},
            segments=segments,
            curves={"windows": Curve("score", [round(s, 6) for s in scores], start_frame=[w.start_frame for w in clip.windows],
                                     end_frame=[w.end_frame for w in clip.windows]).to_dict()},
        )
