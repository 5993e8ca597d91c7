"""Does a checkpoint file hold what its manifest entry's architecture needs? Checked before any
hash is recorded for it (`verity weights import`), so a mistaken `--confirm` cannot lock an entry
to a 0-byte file, random bytes or another model's weights.

The file is opened without running code and without reading its tensor data: a safetensors
header (names, shapes), or `torch.load(weights_only=True, mmap=True)`. The tensors needed are
those of the model the detector builds, made on the meta device (shapes only, no memory):

| architecture in weights/manifest.toml | model |
|---|---|
| `model = "LipFD"` | core.models.lipfd.LipFD (CLIP tower from the file's own metadata, else ViT-L-14) |
| `model = "EyeBlinkHead"` | core.models.eyeblink_cnn_lstm.EyeBlinkHead(input_size, hidden_size) |
| `model = "SequenceClassifier"` | core.models.sequence (arch, layout, params: from the file's metadata, else the entry's) |
| `model = "ViViT"` | core.models.vivit_blink (the file's VivitConfig, else the entry's `config` and `num_labels`) |
| `torchvision_model` | torchvision.models.get_model(name, weights=None) |
| `timm_model` | timm.create_model(name, pretrained=False, num_classes) |
| `open_clip_model` | the CLIP image tower, keys `visual.*` (what LipFD training takes from it) |

Every parameter and buffer of that model must be present with its shape (extra tensors, such as
a CLIP text tower or an optimizer state, are allowed; BatchNorm's `num_batches_tracked` counters
are not required: old torchvision files lack them). An entry without a known architecture (one
added with `--detector`) only has to be a safe checkpoint holding at least one tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.weights.loading import safetensors_metadata, torch_load
from core.weights.manifest import WeightEntry, WeightsError


@dataclass
class Contents:
    shapes: dict[str, tuple[int, ...]]  # tensor name -> shape, nested dicts flattened with dots
    meta: dict[str, Any]  # safetensors metadata (our JSON block merged in); {} for torch files


def _flatten(obj: Any, prefix: str = "") -> dict[str, tuple[int, ...]]:
    import torch

    out: dict[str, tuple[int, ...]] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, torch.Tensor):
        out[prefix[:-1]] = tuple(obj.shape)
    return out


def read_contents(path: Path, as_name: str | None = None) -> Contents:
    """Tensor names and shapes of a checkpoint, without running code or reading tensor data.
    `as_name`: the file name that tells its format (a copy being imported has a temporary name)."""
    if not path.is_file():
        raise WeightsError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise WeightsError(f"{as_name or path.name} is empty (0 bytes), not a checkpoint")
    if Path(as_name or path.name).suffix.lower() == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as fh:
                raw = fh.metadata() or {}
                shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118 - not a mapping
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{path.name} is not a readable safetensors file: {exc}") from None
        return Contents(shapes, safetensors_metadata(path, raw))
    obj = torch_load(path, mmap=True)
    if not isinstance(obj, dict):
        raise WeightsError(f"{path.name} holds a {type(obj).__name__}, not a state dict")
    return Contents(_flatten(obj), {})


def _model_shapes(entry: WeightEntry, meta: dict[str, Any]) -> tuple[str, dict[str, tuple[int, ...]]] | None:
    """(model name, the tensor shapes it needs) for the entry, or None when its architecture is unknown."""
    import torch

    arch = entry.architecture or {}
    model = arch.get("model")
    with torch.device("meta"):  # shapes only: no memory, no random initialisation
        if model == "LipFD":
            from core.models.lipfd import LipFD, LipFDConfig

            own = meta.get("architecture") if isinstance(meta.get("architecture"), dict) else {}
            cfg = LipFDConfig.from_dict(own) if own else LipFDConfig()
            net, what = LipFD(cfg), f"LipFD with CLIP {cfg.clip_model}"
        elif model == "EyeBlinkHead":
            from core.models.eyeblink_cnn_lstm import EyeBlinkHead

            net = EyeBlinkHead(int(arch.get("input_size", 2048)), int(arch.get("hidden_size", 128)))
            what = "EyeBlink LSTM head"
        elif model == "SequenceClassifier":
            from core.models.sequence import build_sequence_model

            own = meta.get("architecture") if isinstance(meta.get("architecture"), dict) else {}
            seq = own or {k: arch[k] for k in ("arch", "layout", "params") if k in arch}
            net, what = build_sequence_model(seq), f"sequence classifier {seq.get('arch')} ({seq.get('layout', 'own layout')})"
        elif model == "ViViT":
            from core.models.vivit_blink import build, config_dict

            cfg = meta.get("config") if isinstance(meta.get("config"), dict) else config_dict(str(arch.get("config", "small")))
            if "num_labels" in arch and not isinstance(meta.get("config"), dict):  # e.g. a Kinetics-400 backbone
                cfg = {k: v for k, v in cfg.items() if k not in ("id2label", "label2id")} | {"num_labels": int(arch["num_labels"])}
            net, what = build(cfg), f"ViViT {arch.get('config', 'from the file')} with {cfg.get('num_labels')} labels"
        elif "torchvision_model" in arch:
            import torchvision

            net, what = torchvision.models.get_model(arch["torchvision_model"], weights=None), f"torchvision {arch['torchvision_model']}"
        elif "timm_model" in arch:
            import timm

            net = timm.create_model(arch["timm_model"], pretrained=False, num_classes=int(arch.get("num_classes", 1000)))
            what = f"timm {arch['timm_model']}"
        elif "open_clip_model" in arch:
            from core.models.lipfd import ClipImageEncoder, LipFDConfig

            net = ClipImageEncoder(LipFDConfig(clip_model=arch["open_clip_model"], quick_gelu=bool(arch.get("quick_gelu", True))))
            what = f"CLIP {arch['open_clip_model']} image tower"
        else:
            return None
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    return what, shapes


def _layout(shapes: dict[str, tuple[int, ...]], required: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """The file's tensors in the model's key layout: as they are, or unwrapped from {"model": sd} /
    {"state_dict": sd} and DataParallel's `module.` prefix, whichever holds most of the model."""
    layouts = [shapes]
    for p in ("model.", "state_dict."):
        inner = {k[len(p):]: v for k, v in shapes.items() if k.startswith(p)}
        if inner:
            layouts.append(inner)
    layouts += [{k[7:] if k.startswith("module.") else k: v for k, v in lay.items()} for lay in list(layouts)]
    return max(layouts, key=lambda lay: sum(k in lay for k in required))


def check_contents(entry: WeightEntry, path: Path, as_name: str | None = None) -> str:
    """Raise WeightsError unless the file is a safe checkpoint holding every tensor the entry's
    architecture needs, with its shape; returns a one-line description of what was checked."""
    name = as_name or path.name
    try:
        got = read_contents(path, as_name)
    except WeightsError as exc:
        raise WeightsError(str(exc).replace(path.name, name)) from None
    if not got.shapes:
        raise WeightsError(f"{name} holds no tensors; it cannot be the weights of {entry.name}")
    need = _model_shapes(entry, got.meta)
    if need is None:
        return f"{len(got.shapes)} tensors (no architecture on record for {entry.name} to check them against)"
    what, required = need
    shapes = got.shapes
    if (entry.architecture or {}).get("model") == "ViViT":  # transformers 4 parameter names, as 5 names them
        from core.models.vivit_blink import hf_state_dict

        shapes = hf_state_dict(shapes)
    have = _layout(shapes, required)
    missing = [k for k in required if k not in have]
    if missing:
        raise WeightsError(
            f"{name} does not hold the weights of {entry.name} ({what}): {len(missing)} of its {len(required)} tensors "
            f"are missing (e.g. {', '.join(missing[:3])})"
        )
    wrong = [k for k, shape in required.items() if have[k] != shape]
    if wrong:
        k = wrong[0]
        raise WeightsError(
            f"{name} does not fit {entry.name} ({what}): tensor {k} has shape {list(have[k])}, the model needs "
            f"{list(required[k])} ({len(wrong)} tensor{'s' if len(wrong) > 1 else ''} differ)"
        )
    return f"all {len(required)} tensors of {what} present with their shapes"
