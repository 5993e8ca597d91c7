"""`lipfd`: the LipFD lip-sync forgery detector (model card seed 003, upstream AaronComo/LipFD).

Pipeline per the card: audio -> mel spectrogram (power_to_db(ref=min), viridis) -> `n_extract`
windows of `window_len` frames at linearly spaced starts -> composite image (mel segment on top,
the frames at 500x500 side by side below) -> three crop scales and the composite for the CLIP
branch -> P(fake) per window -> mean; >= 0.5 is FAKE.

How the windows, composites and tensors are made depends on the checkpoint, so that each model
is fed what it was trained on (core.detectors.lipfd_input has both paths):
- `upstream`: upstream's published ckpt.pth (a checkpoint without Verity's preprocessing record).
  Upstream's preprocess.py and datasets.py reproduced exactly, defects included: whole frame
  resized, mel columns by frame index, 22.05 kHz audio as librosa reads it, BGR 0-255, resizes
  without antialiasing, window starts wrapping past 255 (uint8), and regional crops taken from
  frame 0 at 1-pixel shifts instead of from the five frames. Float32 inference.
- `verity`: checkpoints Verity trains record their preprocessing (mode, sample rate, colour
  order, normalisation) in their metadata: face-centred framing from the face track, mel
  columns by timestamps, per-frame crops, int64 window starts, 16 kHz, RGB with CLIP's
  normalisation.
The mode is in the result's parameters (`preprocessing.mode`), its note, and its window curve.

Without verified weights the detector is `unavailable` with the reason; it never scores with
random weights.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.detectors import register
from core.detectors.base import AnalysisContext, Detector, DetectorResult, Method, Segment, params_dict
from core.detectors.curves import Curve
from core.detectors.lipfd_input import (
    UPSTREAM_PREPROCESSING,
    LipFDPreprocessing,
    Window,
    clip_audio,
    clip_windows,
    composite_tensors,
    with_windows,
)
from core.weights.resident import OneModel, torch_device

NAME = "lipfd"
WEIGHT_CANDIDATES = ("lipfd_ckpt", "lipfd_local")  # weights/manifest.toml: upstream first, then ours


@dataclass
class LipFDParams:
    weights: str = "auto"  # manifest entry, or "auto": the first verified of WEIGHT_CANDIDATES
    n_extract: int = 10  # windows per clip (the card's 10)
    threshold: float = 0.5  # mean window score at or above it reads FAKE
    batch: int = 2  # windows per forward pass


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
    mode_reason: str = ""  # why this preprocessing mode (shown in the note)


_MODEL: OneModel[LoadedLipFD] = OneModel()  # one model at a time: ViT-L/14 + ResNet-50 is ~1.7 GB in float32


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


def preprocessing_for(meta: dict[str, Any]) -> tuple[LipFDPreprocessing, str]:
    """The input path a checkpoint was trained on, from its metadata: (record, why).

    Verity's checkpoints carry a `preprocessing` record (its `mode`; a record from before modes
    existed is `verity`). A checkpoint without one has upstream's layout (upstream's trainer
    saves `{"model", "optimizer", "total_steps"}` and nothing else): `upstream`.
    Raises ValueError for a record that names an unknown mode.
    """
    rec = meta.get("preprocessing")
    if isinstance(rec, dict):
        prep = LipFDPreprocessing.from_dict(rec)
        return prep, f"mode {prep.mode} as recorded in the checkpoint"
    return UPSTREAM_PREPROCESSING, "mode upstream: the checkpoint has upstream's layout (no preprocessing record)"


def load_model(source: str | Path, expected_sha256: str | None = None, device: str | None = None) -> LoadedLipFD:
    """Build LipFD and load a verified checkpoint: a manifest entry name or a path.

    Our checkpoints carry architecture + preprocessing in their metadata; one without them
    (upstream's ckpt.pth) is taken as upstream's architecture (inferred from its shapes) in
    `upstream` mode (`preprocessing_for`).
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
    try:
        prep, why = preprocessing_for(meta)
        cfg = LipFDConfig.from_dict(arch) if arch else infer_config(sd)
        model, ignored = build_from_state_dict(cfg, sd)
    except ValueError as exc:
        raise WeightsError(f"{name}: {exc}") from None
    model.eval().to(device)
    return LoadedLipFD(model, cfg, prep, name, sha, {k: v for k, v in meta.items() if k != "architecture"}, ignored, device, why)


def score_windows(loaded: LoadedLipFD, windows: list[Window], batch: int = 2) -> list[float]:
    """P(fake) of each window (sigmoid of the logit): float32 in upstream mode (as upstream's
    validate.py), mixed precision on CUDA otherwise (as Verity trains)."""
    import torch

    scores: list[float] = []
    dev = loaded.device
    for i in range(0, len(windows), batch):
        chunk = windows[i : i + batch]
        pairs = [composite_tensors(w.composite, loaded.cfg, loaded.prep) for w in chunk]
        g = torch.stack([p[0] for p in pairs]).to(dev)
        c = torch.stack([p[1] for p in pairs]).to(dev)
        half = dev == "cuda" and not loaded.prep.upstream
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=half):
            logit, _ = loaded.model(g, c)
        scores += torch.sigmoid(logit.float()).cpu().tolist()
    return scores


# --------------------------------------------------------------------------------------------
# detector


METHOD = Method(
    title="LipFD lip-sync forgery detector (learned)",
    summary=(
        "A CLIP image encoder and ResNet-50 regional branch score windows of frames together with the mel spectrogram "
        "of the audio; window scores are averaged into a probability of manipulation. Each checkpoint is fed the input "
        "it was trained on (the mode is stated in the result): the published upstream checkpoint in 'upstream' mode, "
        "which reproduces the upstream code's preprocessing exactly (the whole frame resized to 500x500, mel columns "
        "mapped by frame index, the audio track resampled to 22.05 kHz as librosa reads a file, BGR 0-255 values, "
        "resizes without antialiasing); checkpoints trained by Verity in the mode recorded in them ('verity': "
        "frames framed on the tracked face, mel columns by time, one regional crop per frame)."
    ),
    references=(
        "Liu W. et al. (2024). Lips Are Lying: Spotting the Temporal Inconsistency between Audio and Visual in Lip-Syncing DeepFakes. NeurIPS.",
        "Upstream code: github.com/AaronComo/LipFD, preprocess.py and data/datasets.py at commit 3ed140a (the input reproduced in 'upstream' mode).",
    ),
    limits=(
        "A learned model: its accuracy holds for data like its training data; footage from other sources may be misjudged.",
        "Only counts when its weights are present and their sha256 verified; otherwise reported unavailable.",
        "In 'upstream' mode the upstream code's defects are reproduced on purpose, because the published checkpoint "
        "was trained and validated with them: the regional crops are taken from the first frame of each window five "
        "times, shifted by one pixel, instead of from the five frames; window start frames are stored as 8-bit "
        "numbers, so in clips longer than 261 frames they wrap back to the start and the end of the clip is not "
        "examined; and where windows overlap (clips under about 50 frames) later windows pair frames with the audio "
        "of other frames. The result's note says when the last two apply.",
        "Upstream read a separate .wav file; evidence has only its own audio track. Where that track is shorter than "
        "the audio upstream's model saw, later windows take mel columns shifted by up to three (measured on the "
        "AVLips clips: up to 32 grey levels mean difference in the mel half; 1.1 where the lengths agree).",
    ),
)


@register
class LipFDDetector(Detector):
    name = NAME
    title = "LipFD (audio-visual lip-sync forgery)"
    needs_weights = True
    needs_faces = False  # the card runs on any frames; verity mode centres on a face track when one exists
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
        prep = with_windows(loaded.prep, p.n_extract)
        try:
            audio = clip_audio(ctx.path, prep, None if prep.upstream else ctx.audio)
        except EvidenceError as exc:
            return DetectorResult.unavailable(NAME, f"audio could not be decoded: {exc}")
        if audio is None or audio.samples.size == 0:
            return DetectorResult.unavailable(NAME, "Video requires audio track for LipFD analysis (the audio track is empty)")
        ctx.progress(NAME, 0.05, "windows")
        clip = clip_windows(ctx.path, audio, ctx.facepass, prep, ctx.cancel, ctx.video_stream)
        if not clip.windows:
            return DetectorResult.unavailable(NAME, clip.note or "no window could be extracted")
        scores: list[float] = []
        batch = max(int(p.batch), 1)
        for i in range(0, len(clip.windows), batch):
            ctx.check_cancel()
            scores += score_windows(loaded, clip.windows[i : i + batch], batch)
            ctx.progress(NAME, 0.1 + 0.9 * len(scores) / len(clip.windows), f"window {len(scores)}/{len(clip.windows)}")
        return self._result(loaded, prep, clip, scores, p, time.perf_counter() - t0)

    @staticmethod
    def _result(loaded: LoadedLipFD, prep: LipFDPreprocessing, clip: Any, scores: list[float], p: LipFDParams, elapsed: float) -> DetectorResult:
        thr = float(p.threshold)
        final = float(np.mean(scores))
        fake = final >= thr
        wins = clip.windows
        preds = [
            {
                "index": w.index, "score": round(s, 6), "prediction": "FAKE" if s >= thr else "REAL",
                "start_frame": w.start_frame, "end_frame": w.end_frame, "face_centred": w.face_centred, "track_id": w.track_id,
                **({"mel_start_frame": w.mel_start_frame} if w.mel_start_frame is not None else {}),
            }
            for w, s in zip(wins, scores)
        ]
        segments = [
            Segment(w.start_frame, w.end_frame, round(s, 6), f"LipFD window {w.index} scores {s:.2f} >= {thr:.2f} ({prep.mode} preprocessing)", w.track_id, "window_score")
            for w, s in zip(wins, scores) if s >= thr
        ]
        note = f"weights {loaded.weights_name} ({loaded.sha256[:12]}); preprocessing {loaded.mode_reason}; mean of {len(scores)} windows"
        if clip.note:
            note += f"; {clip.note}"
        trained = loaded.metadata.get("training_data")
        if isinstance(trained, dict) and trained.get("summary"):
            note += f"; trained on {trained['summary']}"
        rounded = [round(s, 6) for s in scores]
        return DetectorResult(
            prediction="FAKE" if fake else "REAL",
            confidence=round(final if fake else 1.0 - final, 6),
            processing_time=round(elapsed, 3),
            note=note,
            frame_count=clip.frame_count,
            frames_analyzed=len(scores),
            frame_predictions=preds,
            metrics={"final_average_score": round(final, 6), "window_scores": rounded, "preprocessing_mode": prep.mode},
            assessment="inconsistent" if fake else "consistent",
            weights_sha256={loaded.weights_name: loaded.sha256},
            parameters={**params_dict(p), "weights": loaded.weights_name, "architecture": loaded.cfg.to_dict(), "preprocessing": prep.to_dict(), "device": loaded.device},
            segments=segments,
            # the timeline draws these as bars (same columnar shape as av_sync's windows);
            # `preprocessing_mode` and `description` are for its tooltip
            curves={"windows": Curve(
                "score", rounded, start_frame=[w.start_frame for w in wins], end_frame=[w.end_frame for w in wins],
                description=f"LipFD P(fake) per window, {prep.mode} preprocessing ({loaded.weights_name})",
            ).to_dict()},
        )
