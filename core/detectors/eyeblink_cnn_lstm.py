"""EyeBlink-CNN-LSTM (model card 000): a learned score per blink sequence of eye crops.

From the face pass's blink events (found on every frame, not the card's every-10th frame,
which misses most blinks; `frame_skip` keeps the card's sampling available; only on frames whose
eyes can be judged, `core.signals.eyes`: a sequence never pads into a turned head), both eyes are cut
out around landmarks 36-47 for the frames of each blink, grouped into sequences of
`sequence_length` frames, run through the frozen Xception and the trained LSTM head.

Direction of the score: the card's network gives sigmoid(logit) = P(REAL). Verity reports
P(manipulated) everywhere, so `manipulation_score` (this file) inverts it, once; nothing else
in Verity inverts EyeBlink scores.

Without a verified head (weights entry `eyeblink_lstm_head`, written by `verity train eyeblink`)
and the verified Xception it was trained on, the detector is `unavailable`: it never scores
with random weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.detectors import register
from core.detectors.base import AnalysisContext, Detector, DetectorResult, Method, Segment, params_dict
from core.detectors.curves import Curve
from core.detectors.eyeblink_sequences import (  # noqa: F401 - the detector's input, also read as eyeblink_cnn_lstm.X
    IMAGENET_MEAN,
    IMAGENET_STD,
    BlinkWindow,
    Preprocessing,
    backbone_features,
    blink_windows,
    crop_eyes,
    eye_crop_transform,
    iter_crops,
    read_crops,
    sequence_array,
    to_tensor,
    windows_for,
)
from core.signals.timebase import usable_fps
from core.weights.resident import OneModel, torch_device

if TYPE_CHECKING:
    from core.models.eyeblink_cnn_lstm import EyeBlinkHead, XceptionFeatures

NAME = "eyeblink_cnn_lstm"
HEAD_WEIGHTS = "eyeblink_lstm_head"  # weights/manifest.toml entries
BACKBONE_WEIGHTS = "xception_imagenet"
HEAD_FORMAT = "verity.eyeblink_head/1"
OUTPUT_CONVENTION = "sigmoid(logit) = P(real) (card convention); Verity score = 1 - that"
SUSPICIOUS = 0.5  # the card's threshold on the per-sequence score


def manipulation_score(p_real: np.ndarray | float) -> np.ndarray | float:
    """THE inversion: the card's P(real) -> Verity's P(manipulated). Applied once, here."""
    return 1.0 - p_real


def summarise(scores: Sequence[float]) -> float:
    """One score for a video from its sequence scores: their mean (the card's average suspicion)."""
    return float(np.mean(scores))


# ----------------------------------------------------------------------------------------------
# weights


def build_backbone(weights: str | Path | dict[str, Any], device: str = "cpu") -> XceptionFeatures:
    """Frozen Xception from a verified local file or an already verified state dict."""
    from core.models.eyeblink_cnn_lstm import XceptionFeatures

    return XceptionFeatures(weights).to(device)


def build_head(state_dict: dict[str, Any], device: str = "cpu") -> EyeBlinkHead:
    from core.models.eyeblink_cnn_lstm import EyeBlinkHead

    head = EyeBlinkHead()
    head.load_state_dict(state_dict, strict=True)
    return head.to(device).eval()


@dataclass
class LoadedModel:
    backbone: XceptionFeatures
    head: EyeBlinkHead
    prep: Preprocessing
    head_sha256: str
    backbone_sha256: str
    head_meta: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"


_MODEL: OneModel[LoadedModel] = OneModel()


def load_model(device: str | None = None, head: str | Path | None = None, head_sha256: str | None = None) -> LoadedModel:
    """The verified head and the verified backbone it was trained on; WeightsError otherwise.

    `head`: None for the manifest entry `eyeblink_lstm_head` (what analysis uses), or a file
    (evaluation of a head not yet registered; checked against `head_sha256` when given).
    """
    from core.weights import WeightsError, file_sha256, status

    device = device or torch_device()
    if head is None:
        head_st = status(HEAD_WEIGHTS)
        if not head_st.ok or head_st.path is None:
            raise WeightsError(f"no verified EyeBlink head ({HEAD_WEIGHTS}): {head_st.reason}; train one with 'verity train eyeblink --data DIR'")
        head_path, head_sha = head_st.path, str(head_st.sha256)
    else:
        head_path = Path(head)
        if not head_path.is_file():
            raise WeightsError(f"EyeBlink head not found: {head_path}")
        head_sha = file_sha256(head_path)
        if head_sha256 is not None and head_sha != head_sha256.lower():
            raise WeightsError(f"{head_path.name}: sha256 {head_sha} does not match the expected {head_sha256.lower()}; refused")
    bb_st = status(BACKBONE_WEIGHTS)
    if not bb_st.ok or bb_st.path is None:
        raise WeightsError(f"no verified Xception backbone ({BACKBONE_WEIGHTS}): {bb_st.reason}")
    return _MODEL.get((head_sha, str(bb_st.sha256), device), lambda: _load(head_path, head_sha, bb_st.path, str(bb_st.sha256), device))


def _load(head_path: Path, head_sha: str, backbone_path: Path, backbone_sha: str, device: str) -> LoadedModel:
    from core.weights import WeightsError, load_state_dict

    head_sd, meta = load_state_dict(head_path, expected_sha256=head_sha)
    if meta.get("format") != HEAD_FORMAT:
        raise WeightsError(f"{head_path.name} is not an EyeBlink head written by 'verity train eyeblink' (format {meta.get('format')!r})")
    trained_on = (meta.get("backbone") or {}).get("sha256")
    if trained_on != backbone_sha:
        raise WeightsError(
            f"the EyeBlink head was trained on Xception features of backbone sha256 {trained_on}, "
            f"but the verified {BACKBONE_WEIGHTS} is {backbone_sha}: its scores would be meaningless"
        )
    bb_sd, _ = load_state_dict(backbone_path, expected_sha256=backbone_sha)
    bb_sd = _unwrap(bb_sd)
    try:
        backbone = build_backbone(bb_sd, device)
        head = build_head(head_sd, device)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise WeightsError(f"the EyeBlink weights do not fit the model: {str(exc).splitlines()[0]}") from None
    return LoadedModel(backbone, head, Preprocessing.from_dict(meta.get("preprocessing", {})), head_sha, backbone_sha, meta, device)


def _unwrap(sd: dict[str, Any]) -> dict[str, Any]:
    """timm/torch checkpoints sometimes nest the weights under "state_dict" or "model"."""
    for k in ("state_dict", "model"):
        if isinstance(sd.get(k), dict):
            return sd[k]
    return sd


def score_sequences(model: LoadedModel, seqs: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Verity scores P(manipulated) (S,) for feature sequences (S, L, 2048)."""
    import torch

    if len(seqs) == 0:
        return np.zeros(0)
    out = []
    for i in range(0, len(seqs), batch_size):
        x = torch.from_numpy(seqs[i : i + batch_size]).to(model.device)
        out.append(model.head.p_real(x).float().cpu().numpy())
    return np.asarray(manipulation_score(np.concatenate(out)), np.float64)


# ----------------------------------------------------------------------------------------------
# visualisation


def write_visualization(path: Path, windows: Sequence[BlinkWindow], scores: Sequence[float], crops: dict[tuple[int, int], np.ndarray], fps: float) -> Path:
    """An MP4 of the eye crops of every sequence, labelled with its frames and score."""
    import av
    import cv2

    size = 256
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=max(1, int(round(usable_fps(fps)))))
        stream.width, stream.height = size, size + 48
        stream.pix_fmt = "yuv420p"
        for k, (w, s) in enumerate(zip(windows, scores)):
            for f in w.frames:
                canvas = np.zeros((size + 48, size, 3), np.uint8)
                canvas[48:] = cv2.resize(crops[(w.track_id, f)], (size, size), interpolation=cv2.INTER_AREA)
                colour = (230, 60, 60) if s >= SUSPICIOUS else (60, 200, 90)
                cv2.putText(canvas, f"seq {k} face {w.track_id} frame {f}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
                cv2.putText(canvas, f"P(manipulated) {s:.2f}", (6, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.55, colour, 1, cv2.LINE_AA)
                for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


# ----------------------------------------------------------------------------------------------
# the detector


def insufficient_note(found: int) -> str:
    """The card's fallback note, word for word (Verity reports no score with it)."""
    return f"Insufficient blinks detected ({found} frames found). Result is a low-confidence fallback."


@dataclass
class EyeBlinkParams:
    sequence_length: int | None = None  # None: the length the head was trained with
    frame_skip: int | None = None  # None: the head's (1 = every frame); 10 = the card's sampling
    min_blink_frames: int | None = None  # fewer blink frames -> inconclusive; None: sequence_length (card)
    tracks: str = "all"  # "all" faces, or "largest" (the card analyses the primary face only)
    inconclusive_band: float = 0.1  # |score - 0.5| below this -> assessment "inconclusive"
    batch_size: int = 16
    visualize: bool = False  # write an MP4 of the eye crops with per-sequence scores
    visualization_dir: str | None = None  # default: the analysis work dir, else the user cache


METHOD = Method(
    title="EyeBlink CNN-LSTM (learned)",
    summary="Eye crops of each face track are scored over time by a CNN-LSTM for the absence or abnormality of blinking.",
    references=("Li Y., Chang M.-C., Lyu S. (2018). In Ictu Oculi: Exposing AI Created Fake Videos by Detecting Eye Blinking. IEEE WIFS.",),
    limits=(
        "Modern generators reproduce blinking; a normal blink pattern does not show a video is original.",
        "Only counts when its weights are present and their sha256 verified; otherwise reported unavailable.",
    ),
)


@register
class EyeBlinkCNNLSTM(Detector):
    name = NAME
    title = "EyeBlink-CNN-LSTM (learned blink-sequence classifier)"
    needs_weights = True
    Params = EyeBlinkParams
    method = METHOD

    def run(self, ctx: AnalysisContext) -> DetectorResult:
        from core.weights import WeightsError

        p: EyeBlinkParams = self.params(ctx)
        try:
            model = load_model()
        except WeightsError as exc:
            return DetectorResult.unavailable(NAME, str(exc), parameters=params_dict(p))
        prep = Preprocessing.from_dict(model.prep.to_dict())
        if p.frame_skip is not None:
            prep.frame_skip = int(p.frame_skip)
        caveat = ""
        if p.sequence_length is not None and int(p.sequence_length) != prep.sequence_length:
            # the LSTM can run on any length, but the head was only trained on one: say so
            caveat = f"sequence_length {int(p.sequence_length)} differs from the {prep.sequence_length} the head was trained on"
            prep.sequence_length = int(p.sequence_length)
        params = {**params_dict(p), "sequence_length": prep.sequence_length, "frame_skip": prep.frame_skip, "preprocessing": prep.to_dict(), "device": model.device}
        training = {k: v for k, v in (model.head_meta.get("training") or {}).items() if k != "history"}
        params["head_training"] = {"training_data": model.head_meta.get("training_data"), "metrics": model.head_meta.get("metrics"), "training": training}
        weights = {HEAD_WEIGHTS: model.head_sha256, BACKBONE_WEIGHTS: model.backbone_sha256}

        # the pipeline's eyes mask (the one its blink events were found under); sequences stay inside it
        mask = {tid: check.assessable for tid, check in ctx.eyes.items()}
        params["eyes_mask"] = "analysis" if mask else "default eye parameters"
        windows, found = windows_for(ctx.facepass, ctx.blinks, prep, p.tracks, mask)
        min_frames = prep.sequence_length if p.min_blink_frames is None else int(p.min_blink_frames)
        base = {"detector": NAME, "weights_sha256": weights, "parameters": params, "frame_count": ctx.facepass.frame_count}
        if found < max(min_frames, 1) or not windows:
            # The card answers REAL with 0.51 here: a guess. Verity gives no score, says why.
            return DetectorResult(
                **base,
                prediction="inconclusive",
                confidence=None,
                note=insufficient_note(found),
                frames_analyzed=0,
                frame_predictions=[],
                metrics={"blink_sequences_found": 0, "suspicious_blink_sequences": 0, "average_blink_suspicion": None,
                         "card_fallback": {"prediction": "REAL", "confidence": 0.51, "used": False}},
                assessment="inconclusive",
            )


        ctx.progress("eyeblink", 0.0, f"{len(windows)} blink sequences")
        thumbs: dict[tuple[int, int], np.ndarray] | None = {} if p.visualize else None
        n_crops = len({(w.track_id, f) for w in windows for f in w.frames})
        with ctx.open_video() as reader:
            feats = backbone_features(model.backbone, iter_crops(reader, ctx.facepass, windows, prep, ctx.cancel), prep, model.device,
                                      int(p.batch_size or 16), ctx.cancel, ctx.progress, n_crops, thumbs)
        scores = score_sequences(model, sequence_array(windows, feats))
        score = summarise(scores)
        fake = score >= SUSPICIOUS
        band = float(p.inconclusive_band or 0.0)
        assessment = "inconclusive" if abs(score - SUSPICIOUS) < band else ("inconsistent" if fake else "consistent")

        preds = [{"index": k, "score": round(float(s), 4), "prediction": "FAKE" if s >= SUSPICIOUS else "REAL"} for k, s in enumerate(scores)]
        segments = [
            Segment(w.start_frame, w.end_frame, float(s), f"blink sequence {k} (blink frames {w.blink_start}-{w.blink_end}) scored {s:.2f} by EyeBlink-CNN-LSTM",
                    w.track_id, "sequence_score")
            for k, (w, s) in enumerate(zip(windows, scores))
            if s >= SUSPICIOUS
        ]
        per_track: dict[str, Any] = {}
        for tid in sorted({w.track_id for w in windows}):
            ts = [float(s) for w, s in zip(windows, scores) if w.track_id == tid]
            per_track[str(tid)] = {"sequences": len(ts), "suspicious": int(sum(s >= SUSPICIOUS for s in ts)), "average_blink_suspicion": round(summarise(ts), 4)}
        curves = {
            "eyeblink_sequence_score": Curve(
                "score", [round(float(s), 4) for s in scores], start_frame=[w.start_frame for w in windows],
                end_frame=[w.end_frame for w in windows], track_id=[w.track_id for w in windows],
                columns={"frames": [w.frames for w in windows]}).to_dict()  # each sequence's frames (they may skip)
        }
        viz = None
        if p.visualize:
            out_dir = Path(p.visualization_dir or ctx.work_dir or _default_viz_dir())
            viz = str(write_visualization(out_dir / f"eyeblink_{ctx.sha256[:16]}.mp4", windows, scores, thumbs or {}, ctx.facepass.fps))
        return DetectorResult(
            **base,
            prediction="FAKE" if fake else "REAL",
            confidence=round(score if fake else 1.0 - score, 4),
            note=caveat,
            frames_analyzed=len(windows),  # the card counts blink sequences here
            frame_predictions=preds,
            metrics={
                "blink_sequences_found": len(windows),
                "suspicious_blink_sequences": int(sum(s >= SUSPICIOUS for s in scores)),
                "average_blink_suspicion": round(score, 4),
            },
            visualization_path=viz,
            assessment=assessment,
            segments=segments,
            per_track=per_track,
            curves=curves,
        )


def _default_viz_dir() -> Path:
    from core.paths import cache_dir

    return cache_dir() / "eyeblink"
