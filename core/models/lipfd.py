"""LipFD ("Lips Are Lying", Liu et al., NeurIPS 2024): the network only.

Two branches (shapes for the card's configuration, B windows of F=5 frames, S=3 crop scales):

    composite (B, 3, 1120, 1120) -> conv1 Conv2d(3, 3, k=5, s=5) -> (B, 3, 224, 224)
        -> CLIP image encoder (frozen) -> global feature g (B, D)         D = 768 for ViT-L/14
    crops (B, S, F, 3, 224, 224) -> ResNet-50 trunk -> regional r (B, S, F, 2048)
    x = concat(r, g) (B, S, F, 2048 + D)
    w = sigmoid(get_weight(x)) (B, S, F, 1) -> softmax over S -> a
    frame feature = sum_s a * x (B, F, 2048 + D) -> mean over F (B, 2048 + D)
    logit = fc(...) (B,)                      P(lip-sync forgery) = sigmoid(logit)

Parameter names follow upstream AaronComo/LipFD so its `checkpoints/ckpt.pth` loads:
`conv1.*`, `encoder.visual.*` (OpenAI CLIP names, which open_clip keeps),
`backbone.{conv1,bn1,layer1..4}.*` (torchvision ResNet names), `backbone.get_weight.0.*`,
`backbone.fc.*`. Upstream stores the whole CLIP model under `encoder.*`; only its image tower
is built here and the text-tower keys are ignored on load (see `load_upstream_state_dict`).

Nothing is downloaded: the CLIP tower is built from open_clip's architecture config without
weights and ResNet-50 with torchvision `weights=None`; weights come from verified local files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.params import from_dict

# A few-layer ViT for tests and smoke runs only (not a model anyone should trust for analysis).
TINY_VISION = {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32}
TINY_EMBED = 32

# Upstream keeps the whole CLIP model under encoder.*; these are its text-tower parameters.
CLIP_TEXT_PREFIXES = (
    "encoder.token_embedding.", "encoder.positional_embedding", "encoder.transformer.", "encoder.ln_final.",
    "encoder.text_projection", "encoder.logit_scale", "encoder.logit_bias", "encoder.attn_mask",
)

SCALES = ("full", "face", "lips")


@dataclass
class LipFDConfig:
    clip_model: str = "ViT-L-14"  # open_clip architecture name ("ViT-L-14", "ViT-B-32", ...) or "tiny"
    clip_image_size: int = 224  # input of the CLIP tower; the composite is resized to 5x this
    crop_size: int = 224  # regional crops fed to the ResNet-50
    window_len: int = 5  # frames per window
    quick_gelu: bool = True  # OpenAI CLIP weights use QuickGELU

    @property
    def composite_size(self) -> int:
        return 5 * self.clip_image_size  # Conv2d(k=5, s=5) brings it back to clip_image_size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LipFDConfig:
        # a checkpoint's architecture record: fields of a newer version are ignored, not refused
        return from_dict(cls, d, "LipFD architecture record", unknown="ignore")


def _vision_cfg(cfg: LipFDConfig) -> tuple[int, dict[str, Any]]:
    if cfg.clip_model == "tiny":
        return TINY_EMBED, {**TINY_VISION, "image_size": cfg.clip_image_size}
    import open_clip

    model_cfg = open_clip.get_model_config(cfg.clip_model)
    if model_cfg is None:
        raise ValueError(f"unknown CLIP architecture {cfg.clip_model!r}")
    return int(model_cfg["embed_dim"]), {**model_cfg["vision_cfg"], "image_size": cfg.clip_image_size}


class ClipImageEncoder(nn.Module):
    """The image tower of CLIP under `visual` (so keys read `encoder.visual.*` as upstream)."""

    def __init__(self, cfg: LipFDConfig) -> None:
        super().__init__()
        embed_dim, vision_cfg = _vision_cfg(cfg)
        self.embed_dim = embed_dim
        try:
            from open_clip.model import _build_vision_tower

            self.visual = _build_vision_tower(embed_dim, vision_cfg, quick_gelu=cfg.quick_gelu)
        except ImportError:  # open_clip moved its helper: build the whole model without weights
            import open_clip

            self.visual = open_clip.create_model(
                cfg.clip_model, pretrained=None, force_image_size=cfg.clip_image_size, force_quick_gelu=cfg.quick_gelu
            ).visual

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_image(x)


class RegionAwareBackbone(nn.Module):
    """ResNet-50 trunk on every crop + region-awareness attention + classifier."""

    def __init__(self, global_dim: int) -> None:
        super().__init__()
        from torchvision.models import resnet50

        trunk = resnet50(weights=None)  # never downloads; weights are loaded from verified files
        self.conv1, self.bn1, self.relu, self.maxpool = trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.feature_dim = 2048 + global_dim
        self.get_weight = nn.Sequential(nn.Linear(self.feature_dim, 1), nn.Sigmoid())
        self.fc = nn.Linear(self.feature_dim, 1)

    def regional(self, crops: torch.Tensor) -> torch.Tensor:
        """(N, 3, s, s) -> (N, 2048)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(crops))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, crops: torch.Tensor, global_feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """crops (B, S, F, 3, s, s), global (B, D) -> (logit (B,), attention (B, S, F))."""
        b, s, f = crops.shape[:3]
        r = self.regional(crops.flatten(0, 2)).view(b, s, f, -1)  # (B, S, F, 2048)
        g = global_feature.to(r.dtype)[:, None, None, :].expand(b, s, f, -1)  # (B, S, F, D)
        x = torch.cat([r, g], dim=-1)  # (B, S, F, 2048 + D)
        w = self.get_weight(x)  # (B, S, F, 1), sigmoid per region
        a = torch.softmax(w, dim=1)  # normalised over the scales
        frame_feature = (x * a).sum(dim=1)  # (B, F, 2048 + D)
        logit = self.fc(frame_feature.mean(dim=1)).squeeze(-1)  # (B,)
        return logit, a.squeeze(-1)


class LipFD(nn.Module):
    def __init__(self, cfg: LipFDConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or LipFDConfig()
        self.conv1 = nn.Conv2d(3, 3, kernel_size=5, stride=5)  # (5n, 5n) -> (n, n)
        self.encoder = ClipImageEncoder(self.cfg)
        self.backbone = RegionAwareBackbone(self.encoder.embed_dim)

    def get_features(self, composite: torch.Tensor) -> torch.Tensor:
        """composite (B, 3, 5n, 5n) -> global feature (B, D)."""
        return self.encoder.encode_image(self.conv1(composite))

    def forward(self, composite: torch.Tensor, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (logit (B,), region attention (B, S, F)); sigmoid(logit) = P(fake)."""
        return self.backbone(crops, self.get_features(composite))

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The card trains conv1, the ResNet-50 and the heads; the CLIP encoder stays frozen.

        (Upstream's `fix_encoder` sets requires_grad=False on every parameter, a bug.)
        """
        return [p for n, p in self.named_parameters() if not n.startswith("encoder.")]


def region_awareness_loss(attention: torch.Tensor) -> torch.Tensor:
    """Upstream's RALoss: push the largest scale weight above the full-frame weight.

    attention (B, S, F): sum over frames of the batch mean of 10 / exp(max_s a - a_full).
    """
    a_max = attention.max(dim=1).values  # (B, F)
    a_full = attention[:, 0]  # (B, F)
    return (10.0 / torch.exp(a_max - a_full)).mean(dim=0).sum()


def split_upstream_state_dict(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Upstream {"model": sd} or a bare sd -> (our keys, ignored text-tower keys)."""
    if "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]
    sd = {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}  # DataParallel prefix
    ours: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            continue
        if k.startswith(CLIP_TEXT_PREFIXES) or k in ("encoder.input_resolution", "encoder.context_length", "encoder.vocab_size"):
            ignored.append(k)
        else:
            ours[k] = v
    return ours, ignored


def load_lipfd_state_dict(model: LipFD, sd: dict[str, Any]) -> list[str]:
    """Load our or upstream's layout strictly (every model key present, nothing unknown but the
    CLIP text tower). Returns the ignored keys. Raises ValueError with the mismatch."""
    ours, ignored = split_upstream_state_dict(sd)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(ours))
    unexpected = sorted(set(ours) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"checkpoint does not fit LipFD({model.cfg.clip_model}): "
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    bad = [k for k, v in ours.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if bad:
        k = bad[0]
        raise ValueError(f"checkpoint shape mismatch for {k}: {tuple(ours[k].shape)} vs model {tuple(expected[k].shape)} ({len(bad)} keys)")
    model.load_state_dict(ours, strict=True, assign=True)
    return ignored


def build_from_state_dict(cfg: LipFDConfig, sd: dict[str, Any]) -> tuple[LipFD, list[str]]:
    """Build on the meta device (no random initialisation: faster, half the peak memory) and
    take the checkpoint's tensors; falls back to a normal build if anything stays unset."""
    with torch.device("meta"):
        model = LipFD(cfg)
    ignored = load_lipfd_state_dict(model, sd)
    if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
        model = LipFD(cfg)
        ignored = load_lipfd_state_dict(model, sd)
    return model, ignored


def resize(x: torch.Tensor, size: int | tuple[int, int], antialias: bool = True) -> torch.Tensor:
    """Bilinear resize of (..., C, H, W), as torchvision's Resize on tensors: antialiased as from
    torchvision 0.17, or not (`antialias=False`) as torchvision 0.16, which upstream LipFD used."""
    hw = (size, size) if isinstance(size, int) else size
    lead = x.shape[:-3]
    y = F.interpolate(x.reshape(-1, *x.shape[-3:]).float(), size=hw, mode="bilinear", align_corners=False, antialias=antialias)
    return y.reshape(*lead, *y.shape[-3:])


def infer_config(sd: dict[str, Any], candidates: tuple[str, ...] = ("ViT-L-14", "ViT-B-32", "ViT-B-16", "ViT-L-14-336", "tiny")) -> LipFDConfig:
    """The CLIP tower of a checkpoint without an architecture record (upstream's), from its shapes."""
    ours, _ = split_upstream_state_dict(sd)
    conv = ours.get("encoder.visual.conv1.weight")
    pos = ours.get("encoder.visual.positional_embedding")
    if conv is None or pos is None:
        raise ValueError("checkpoint has no CLIP image tower (encoder.visual.conv1.weight)")
    width, patch = int(conv.shape[0]), int(conv.shape[-1])
    grid = int(round((pos.shape[0] - 1) ** 0.5))
    layers = len({k.split(".")[4] for k in ours if k.startswith("encoder.visual.transformer.resblocks.")})
    for name in candidates:
        cfg = LipFDConfig(clip_model=name, clip_image_size=grid * patch)
        _, v = _vision_cfg(cfg)
        if (v["width"], v["patch_size"], v["layers"]) == (width, patch, layers):
            return cfg
    raise ValueError(f"no known CLIP architecture has width {width}, patch {patch}, {layers} layers")
