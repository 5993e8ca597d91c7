"""The sequence classifiers' weights and input: which architecture a checkpoint holds (Verity's
own `verity train seq` files, or the two upstream seed-001 state dicts recognised by their key
names), how its frames are prepared (`SeqPreprocessing`), and the one loaded model (verified
sha256, weights-only loading). Used by the `sequence_cnn` detector and by `verity train seq`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.digest import params_key
from core.face.align import CropSpec
from core.weights.resident import OneModel, torch_device

if TYPE_CHECKING:
    import torch

NAME = "sequence_cnn"
FORMAT = "verity.sequence_cnn/1"  # metadata "format" of checkpoints written by `verity train seq`
LOCAL_WEIGHTS = "sequence_cnn_local"
UPSTREAM_WEIGHTS = ("seq_upstream_cnn_lstm", "seq_upstream_deepfake_detector")
CANDIDATES = (LOCAL_WEIGHTS, *UPSTREAM_WEIGHTS)  # weights/manifest.toml, tried in this order
BACKBONE_WEIGHTS = "mobilenet_v2_imagenet"
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
        return params_key(d)


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
    from core.models.sequence import build_sequence_model

    return build_sequence_model(architecture)


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


_MODEL: OneModel[LoadedModel] = OneModel()  # one sequence model in memory
default_device = torch_device  # the trainer's name for it


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

    device = device or torch_device()
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
    return _MODEL.get(key, lambda: _load(p, digest, name, device, entry_meta))


def _load(p: Path, digest: str, name: str | None, device: str, entry_meta: dict[str, Any]) -> LoadedModel:
    from core.weights import WeightsError, load_state_dict

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
    return LoadedModel(model.to(device).eval(), arch, prep, digest, name, meta, provenance, device)


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
