"""ViViT blink detector: a learned second opinion on where the blinks are, to set beside EAR.

Per face track, eye-region clips (`core.face.eye_region`: both eyes, crop smoothed over time,
from the face pass's landmarks) are cut into windows of `num_frames` frames every `stride`
frames. The model (`core.models.vivit_blink`, Hugging Face ViViT) gives each window P(blink):
the probability that the lids are closed in the window's `centre` middle frames, with the
frames around them as context (the labels `verity train vivit` trains on say exactly that).
Per frame, the blink probability is the mean over the windows whose centre holds the frame;
blink events are the runs of frames at or above `threshold`.

Unlike EAR, the model reads pixels, not lid landmarks: it needs the face pass only for where the
eyes are (smoothed eye corners). It runs on every frame of a track, also where EAR cannot judge
the eyes (turned head, small eyes); those are exactly the frames where it can disagree usefully.
Disagreements are listed as segments: a ViViT blink with no EAR blink, an EAR blink ViViT does
not see. That is what the examiner should look at; neither is called right here.

Explanations, stored with the run (the GUI never recomputes them):
- temporal saliency per frame of the track: the last layer's [CLS] attention over the tubelets,
  summed over space, spread over the two frames of each tubelet, times the window's P(blink) and
  the number of frames (uniform attention gives P(blink) itself), averaged over the windows that
  hold the frame. Driven by P(blink) first; within a window, attention moves it;
- spatial attention per analysed frame: the [CLS] attention over the eye region at that frame's
  tubelet, from the window whose centre holds the frame, scaled to 0..255, with the corners of
  the eye crop in the image (`per_track[id]["attention"]`), for an overlay on the player.

No verdict: the detector gives no manipulation score (`assessment` None). Without verified
weights (`vivit_blink`, written by `verity train vivit`, or the seed's checkpoint
`vivit_blink_seed`) it is `unavailable`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from core.detectors import register
from core.detectors.base import AnalysisContext, Detector, DetectorResult, Method, Segment, params_dict
from core.detectors.curves import Curve
from core.face.eye_region import EyeRegionParams, crop_maps, crop_quad, stretches
from core.signals.event_matching import pair_events
from core.weights.resident import OneModel, torch_device

if TYPE_CHECKING:
    import torch

NAME = "vivit_blink"
WEIGHTS = "vivit_blink"  # trained here (safetensors + metadata)
SEED_WEIGHTS = "vivit_blink_seed"  # the seed's vivit_blink_best.pth: a plain HF state dict, vivit-b-16x2
FORMAT = "verity.vivit_blink/1"
MEAN = STD = 0.5  # VivitImageProcessor: rescale to 0..1, then (x - 0.5) / 0.5


@dataclass
class Preprocessing:
    """What turns a face track into model input; stored in the checkpoint's metadata."""

    eyes: EyeRegionParams = field(default_factory=EyeRegionParams)
    num_frames: int = 16  # frames per window (the model's num_frames)
    centre: int = 4  # the middle frames a window's label is about
    min_stretch: int = 8  # gap-free stretches of a track shorter than this are not analysed
    # "window": each window's pixels to zero mean, unit spread per colour (brightness and contrast
    # of the footage do not matter); "fixed": (x - 0.5) / 0.5 as the HF VivitImageProcessor (the seed)
    normalise: str = "window"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "eyes": self.eyes.to_dict(), "mean": MEAN, "std": STD}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        known = {f.name for f in fields(cls)} - {"eyes", "normalise"}
        return cls(eyes=EyeRegionParams.from_dict(d.get("eyes") or {}), normalise=str(d.get("normalise", "fixed")),
                   **{k: int(d[k]) for k in known if k in d})

    @property
    def lead(self) -> int:
        """Frames of context before a window's centre."""
        return (self.num_frames - self.centre) // 2


def parity_preprocessing() -> Preprocessing:
    """Input of the seed's vivit-b-16x2: 32 frames of a 224 x 224 square around both eyes."""
    return Preprocessing(EyeRegionParams(width=224, height=224), num_frames=32, centre=4, min_stretch=8, normalise="fixed")


# ----------------------------------------------------------------------------------------------
# windows


@dataclass
class Window:
    """One model input of a track: `rows` (num_frames track rows; stretch edges repeated) and the
    centre frames [centre_first, centre_last] its probability is about."""

    track_id: int
    rows: np.ndarray
    centre_first: int
    centre_last: int


def track_windows(frames: np.ndarray, prep: Preprocessing, stride: int, track_id: int = 0) -> list[Window]:
    """Windows over every gap-free stretch of a track, centres tiling the stretch; the first and
    last frames of a stretch are repeated to give its edge frames context."""
    frames = np.asarray(frames).reshape(-1)
    T, C, lead = prep.num_frames, prep.centre, prep.lead
    step = max(int(stride), 1)
    out: list[Window] = []
    for a, b in stretches(frames):
        n = b - a
        if n < max(prep.min_stretch, 1):
            continue
        starts = list(range(0, max(n - C, 0) + 1, step))
        if starts[-1] + C < n:
            starts.append(n - C)  # the last centre ends on the stretch's last frame
        for s in starts:
            rel = np.clip(np.arange(s - lead, s - lead + T), 0, n - 1)
            c0, c1 = s, min(s + C, n) - 1
            out.append(Window(track_id, a + rel, int(frames[a + c0]), int(frames[a + c1])))
    return out


def window_tensor(clip: np.ndarray, windows: list[Window], normalise: str = "fixed") -> torch.Tensor:
    """uint8 crops (M, H, W, 3) of one track + windows -> float (B, T, 3, H, W), normalised as
    `Preprocessing.normalise` says."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(clip[np.stack([w.rows for w in windows])]))  # (B, T, H, W, 3)
    x = x.permute(0, 1, 4, 2, 3).float().div_(255.0)
    if normalise == "window":
        mean = x.mean(dim=(1, 3, 4), keepdim=True)
        std = x.std(dim=(1, 3, 4), keepdim=True).clamp_min(0.02)  # a flat (black) window stays flat
        return (x - mean) / (2.0 * std)  # about -1..1, like the fixed scaling
    return x.sub_(MEAN).div_(STD)


# ----------------------------------------------------------------------------------------------
# per frame: probability, events, saliency, attention maps


def frame_probability(frames: np.ndarray, windows: list[Window], probs: np.ndarray) -> np.ndarray:
    """(M,) per track row: mean P(blink) of the windows whose centre holds the frame; NaN where none."""
    pos = {int(f): k for k, f in enumerate(np.asarray(frames).tolist())}
    total, count = np.zeros(len(pos)), np.zeros(len(pos))
    for w, p in zip(windows, probs):
        for f in range(w.centre_first, w.centre_last + 1):
            k = pos[f]
            total[k] += p
            count[k] += 1
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def events_from(frames: np.ndarray, prob: np.ndarray, threshold: float) -> list[dict[str, Any]]:
    """Runs of consecutive frames with P(blink) >= threshold: start, end (inclusive), peak frame, max P."""
    frames = np.asarray(frames).reshape(-1)
    on = np.nan_to_num(prob, nan=0.0) >= threshold
    out: list[dict[str, Any]] = []
    k = 0
    while k < on.size:
        if not on[k]:
            k += 1
            continue
        j = k
        while j + 1 < on.size and on[j + 1] and frames[j + 1] == frames[j] + 1:
            j += 1
        seg = prob[k : j + 1]
        peak = k + int(np.nanargmax(seg))
        out.append({"start_frame": int(frames[k]), "end_frame": int(frames[j]), "peak_frame": int(frames[peak]), "probability": round(float(seg.max()), 4)})
        k = j + 1
    return out


def temporal_saliency(frames: np.ndarray, windows: list[Window], probs: np.ndarray, attn: np.ndarray, tubelet_t: int) -> np.ndarray:
    """(M,) per track row, see the module docstring; NaN where no window holds the frame.
    attn: (B, T/tubelet_t, h, w) [CLS] attention per window, each summing to 1."""
    m = np.asarray(frames).size
    total, count = np.zeros(m), np.zeros(m)
    for w, p, a in zip(windows, probs, attn):
        per_slot = a.reshape(a.shape[0], -1).sum(1)  # (T/tubelet_t,)
        per_frame = np.repeat(per_slot / tubelet_t, tubelet_t) * len(w.rows)  # uniform -> 1 per frame
        seen: set[int] = set()
        for j, row in enumerate(w.rows.tolist()):
            if row in seen:  # a repeated edge frame counts once
                continue
            seen.add(row)
            total[row] += p * per_frame[j]
            count[row] += 1
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def attention_maps(frames: np.ndarray, windows: list[Window], attn: np.ndarray, lead: int, tubelet_t: int) -> tuple[list[int], list[list[int]]]:
    """Per analysed frame (the first window whose centre holds it): the spatial [CLS] attention at
    the frame's tubelet, scaled so its maximum is 255, flattened row-major."""
    out_frames: list[int] = []
    maps: list[list[int]] = []
    done: set[int] = set()
    for w, a in zip(windows, attn):
        for j, f in enumerate(range(w.centre_first, w.centre_last + 1)):
            if f in done:
                continue
            done.add(f)
            grid = a[(lead + j) // tubelet_t]
            peak = float(grid.max())
            out_frames.append(f)
            maps.append(np.round(255.0 * grid / peak).astype(int).ravel().tolist() if peak > 0 else [0] * grid.size)
    order = np.argsort(out_frames, kind="stable")
    return [out_frames[k] for k in order], [maps[k] for k in order]


# ----------------------------------------------------------------------------------------------
# weights


@dataclass
class LoadedModel:
    model: Any
    prep: Preprocessing
    config: dict[str, Any]
    weights_name: str
    sha256: str
    meta: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"


_MODEL: OneModel[LoadedModel] = OneModel()  # one ViViT in memory


def from_state_dict(sd: dict[str, Any], meta: dict[str, Any], name: str, sha: str, device: str = "cpu") -> LoadedModel:
    """A model from verified weights: Verity's own (config and preprocessing in `meta`) or a plain
    HF-layout state dict (the seed's: vivit-b-16x2 and its preprocessing)."""
    from core.models.vivit_blink import build, config_dict, load_hf_state_dict
    from core.weights import WeightsError

    if meta.get("format") == FORMAT:
        cfg, prep = meta["config"], Preprocessing.from_dict(meta.get("preprocessing") or {})
    else:
        cfg, prep = config_dict("vivit-b-16x2"), parity_preprocessing()
    model = build(cfg)
    try:
        load_hf_state_dict(model, sd)
    except ValueError as exc:
        raise WeightsError(f"{name}: {exc}") from None
    return LoadedModel(model.to(device).eval(), prep, cfg, name, sha, meta, device)


def load_model(device: str | None = None, path: Any = None, sha256: str | None = None) -> LoadedModel:
    """The verified checkpoint (`vivit_blink`, else `vivit_blink_seed`), or a file (evaluation of
    one not registered; checked against `sha256` when given); WeightsError otherwise."""
    from core.weights import WeightsError, file_sha256, load_state_dict, status

    device = device or torch_device()
    if path is None:
        states = [status(n) for n in (WEIGHTS, SEED_WEIGHTS)]
        ok = [s for s in states if s.ok and s.path is not None]
        if not ok:
            why = "; ".join(f"{s.name}: {s.reason}" for s in states)
            raise WeightsError(f"no verified ViViT blink weights ({why}); train them with 'verity train vivit'")
        name, file, sha = ok[0].name, ok[0].path, str(ok[0].sha256)
    else:
        from pathlib import Path

        file = Path(path)
        if not file.is_file():
            raise WeightsError(f"ViViT checkpoint not found: {file}")
        name, sha = file.name, file_sha256(file)
        if sha256 is not None and sha != sha256.lower():
            raise WeightsError(f"{file.name}: sha256 {sha} does not match the expected {sha256.lower()}; refused")
    def load() -> LoadedModel:
        sd, meta = load_state_dict(file, expected_sha256=sha)
        return from_state_dict(sd, meta, name, sha, device)

    return _MODEL.get((sha, device), load)


def run_windows(lm: LoadedModel, clip: np.ndarray, windows: list[Window], batch_size: int = 16, cancel: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """P(blink) (B,) and [CLS] attention (B, T', h, w) of a track's windows."""
    import torch

    from core.models.vivit_blink import BLINK, cls_attention

    probs, attn = [], []
    with torch.inference_mode():
        for i in range(0, len(windows), batch_size):
            if cancel is not None:
                cancel.raise_if_cancelled()
            x = window_tensor(clip, windows[i : i + batch_size], lm.prep.normalise).to(lm.device)
            logits, a = cls_attention(lm.model, x)
            probs.append(torch.softmax(logits.float(), -1)[:, BLINK].cpu().numpy())
            attn.append(a.float().cpu().numpy())
    return np.concatenate(probs), np.concatenate(attn)


# ----------------------------------------------------------------------------------------------
# the detector


@dataclass
class VivitBlinkParams:
    stride: int = 2  # frames between window starts
    threshold: float = 0.5  # P(blink) at or above which a frame is in a blink
    batch_size: int = 16
    attention_maps: bool = True  # store the spatial attention per analysed frame (for the overlay)


METHOD = Method(
    title="ViViT blink detector (learned second opinion beside EAR)",
    summary=(
        "The eye region of each face track (placed from the eye-corner landmarks, steadied over time) is cut into short "
        "windows of frames, and a video transformer (ViViT) gives each window the probability that the eyes are closed at "
        "its centre. Runs of frames at or above 0.5 are blinks. They are compared with the EAR blinks: blinks found by one "
        "method and not the other are listed for the examiner. Gives no manipulation score."
    ),
    references=(
        "Arnab A. et al. (2021). ViViT: A Video Vision Transformer. ICCV.",
        "Hu G., Xiao Y., Cao Z. et al. (2020). Towards real-time eye blink detection in the wild: dataset, theory and practices (HUST-LEBW). IEEE Transactions on Information Forensics and Security 15.",
    ),
    limits=(
        "A learned model: its accuracy holds for data like its training data; the measured accuracy is in docs/vivit.md and is below EAR's on clean footage here.",
        "Needs the face pass to locate the eyes; where no face is tracked it sees nothing.",
        "Only runs when its weights are present and their sha256 verified; otherwise reported unavailable.",
    ),
)


@register
class VivitBlink(Detector):
    name = NAME
    title = "ViViT blink detector (learned, eye-region video; second opinion beside EAR)"
    needs_weights = True
    Params = VivitBlinkParams
    method = METHOD

    def run(self, ctx: AnalysisContext) -> DetectorResult:
        from core.weights import WeightsError

        p: VivitBlinkParams = self.params(ctx)
        try:
            lm = load_model()
        except WeightsError as exc:
            return DetectorResult.unavailable(NAME, str(exc), parameters=params_dict(p))
        from core.face.eye_region import eye_clips
        from core.models.vivit_blink import input_shape

        fp = ctx.facepass
        prep = lm.prep
        tubelet_t = int(lm.config.get("tubelet_size", [2])[0])
        params = {**params_dict(p), "preprocessing": prep.to_dict(), "model": {k: lm.config.get(k) for k in ("image_size", "num_frames", "tubelet_size", "hidden_size", "num_hidden_layers")},
                  "weights": lm.weights_name, "device": lm.device,
                  "training": {k: v for k, v in (lm.meta.get("training_data") or {}).items() if k != "clip_sha256"}}
        ctx.progress(NAME, 0.0, "eye regions")
        with ctx.open_video() as reader:
            clips = eye_clips(reader, fp, prep.eyes, progress=ctx.progress, cancel=ctx.cancel)
        per_track: dict[str, Any] = {}
        curves: dict[str, Any] = {}
        segments: list[Segment] = []
        n_windows = 0
        cpu = wall = 0.0
        agree = {"both": 0, "vivit_only": 0, "vivit_only_eyes_not_assessable": 0, "ear_only": 0}
        for t in fp.tracks:
            ctx.check_cancel()
            windows = track_windows(t.frames, prep, p.stride, t.track_id)
            if not windows:
                per_track[str(t.track_id)] = {"windows": 0, "note": f"no stretch of {prep.min_stretch}+ frames"}
                continue
            c0, w0 = time.process_time(), time.perf_counter()
            probs, attn = run_windows(lm, clips[t.track_id], windows, p.batch_size, ctx.cancel)
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
            n_windows += len(windows)
            prob = frame_probability(t.frames, windows, probs)
            sal = temporal_saliency(t.frames, windows, probs, attn, tubelet_t)
            events = events_from(t.frames, prob, p.threshold)
            ear = ctx.blinks.get(t.track_id, [])
            ok = ctx.eyes[t.track_id].assessable if t.track_id in ctx.eyes else np.ones(len(t), bool)
            pairs = pair_events([(e["start_frame"], e["end_frame"]) for e in events], [(e.start_frame, e.end_frame) for e in ear])
            matched_v, matched_e = {a for a, _ in pairs}, {b for _, b in pairs}
            agree["both"] += len(pairs)
            for k, e in enumerate(events):
                e["ear_blink"] = k in matched_v
                if k in matched_v:
                    continue
                r0, r1 = t.row_of(e["start_frame"]) or 0, t.row_of(e["end_frame"]) or 0  # frames of the track
                judged = bool(ok[r0 : r1 + 1].all())
                agree["vivit_only"] += 1
                why = "EAR found none although the eyes were assessable" if judged else "EAR could not judge the eyes here"
                if not judged and t.track_id in ctx.eyes:
                    check = ctx.eyes[t.track_id]
                    reasons = {check.reason(r) for r in range(r0, r1 + 1)} - {""}
                    why += f" ({'; '.join(sorted(reasons))})" if reasons else ""
                    agree["vivit_only_eyes_not_assessable"] += 1
                segments.append(Segment(e["start_frame"], e["end_frame"], e["probability"], f"ViViT blink (P {e['probability']:.2f}) with no EAR blink: {why}", t.track_id,
                                        "vivit_only_blink"))
            for k, e in enumerate(ear):
                if k in matched_e:
                    continue
                agree["ear_only"] += 1
                a, b = t.row_of(e.start_frame), t.row_of(e.end_frame)
                seg = prob[a : (b or a) + 1] if a is not None else np.array([np.nan])
                peak = float(np.nanmax(seg)) if np.isfinite(seg).any() else float("nan")
                text = f"max P {peak:.2f}" if np.isfinite(peak) else "not analysed there"
                segments.append(Segment(e.start_frame, e.end_frame, None, f"EAR blink not found by ViViT ({text} < {p.threshold:.2f})", t.track_id, "ear_only_blink"))
            entry: dict[str, Any] = {"windows": len(windows), "events": events, "ear_events": len(ear), "agreement": {"both": len(pairs), "vivit_only": len(events) - len(pairs), "ear_only": len(ear) - len(pairs)}}
            if p.attention_maps:
                maps = crop_maps(t.frames, t.landmarks, prep.eyes)
                af, amaps = attention_maps(t.frames, windows, attn, prep.lead, tubelet_t)
                _, h, w = input_shape(lm.config)
                ct = lm.config["tubelet_size"]
                entry["attention"] = {
                    "grid": [h // ct[1], w // ct[2]], "crop_size": [prep.eyes.width, prep.eyes.height], "scale": "each map scaled to max 255",
                    "frames": af, "maps": amaps,
                    "quads": [np.round(crop_quad(maps[t.row_of(f)], prep.eyes), 1).ravel().tolist() for f in af],
                }
            per_track[str(t.track_id)] = entry
            frames = t.frames.tolist()
            # measurements (a blink probability is not a probability of manipulation)
            curves[f"ViViT P(blink) (track {t.track_id})"] = Curve(
                "measurement", np.round(prob, 4).tolist(), frames=frames, unit="P(blink)", track_id=t.track_id).to_dict()
            curves[f"ViViT temporal saliency (track {t.track_id})"] = Curve(
                "measurement", np.round(sal, 4).tolist(), frames=frames, unit="saliency (0..1)", track_id=t.track_id,
                description="when the model looked: [CLS] attention over time, mapped back to frames").to_dict()
            if events:
                curves[f"ViViT blinks (track {t.track_id})"] = Curve(
                    "measurement", [e["probability"] for e in events], start_frame=[e["start_frame"] for e in events],
                    end_frame=[e["end_frame"] for e in events], unit="peak P(blink)", track_id=t.track_id).to_dict()
        if n_windows == 0:
            return DetectorResult.unavailable(NAME, f"no face track has a stretch of {prep.min_stretch} or more frames", parameters=params,
                                              weights_sha256={lm.weights_name: lm.sha256})
        n_events = sum(len(v.get("events", [])) for v in per_track.values())
        note = (f"{n_events} ViViT blink(s); with EAR: {agree['both']} found by both, {agree['vivit_only']} by ViViT only "
                f"({agree['vivit_only_eyes_not_assessable']} where EAR could not judge the eyes), {agree['ear_only']} by EAR only")
        return DetectorResult(
            note=note,
            frames_analyzed=int(sum(np.isfinite(np.asarray(c["values"], float)).sum() for k, c in curves.items() if "P(blink)" in k)),
            metrics={"windows": n_windows, "blink_events": n_events, "agreement_with_ear": agree,
                     "cpu_s_per_window": round(cpu / n_windows, 5), "wall_s_per_window": round(wall / n_windows, 5)},
            weights_sha256={lm.weights_name: lm.sha256},
            parameters=params,
            segments=segments,
            per_track=per_track,
            curves=curves,
        )
