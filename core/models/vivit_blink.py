"""ViViT blink classifier: Hugging Face `VivitForVideoClassification` with 2 labels.

    eye-region clip (B, T, 3, H, W), values normalised to -1..1
      -> tubelet embedding Conv3d(3 -> D, kernel = stride = (2, p, p))   (B, T/2 * H/p * W/p, D)
      -> [CLS] + position embeddings -> L layers of joint space-time self-attention
      -> LayerNorm -> Linear(D -> 2) on [CLS]                              (B, 2) logits

Label 0 = no_blink, 1 = blink (softmax of the logits). Two configurations:

- `vivit-b-16x2`: the seed's model, the defaults of `VivitConfig` (those of
  google/vivit-b-16x2-kinetics400: 32 frames of 224 x 224, tubelets 2 x 16 x 16, 12 layers of
  768, 88.6 M parameters). Kinetics-400 weights are a manifest entry the examiner brings;
- `small`: 16 frames of 32 x 64 (both eyes), tubelets 2 x 8 x 16 (128 tokens), 2 layers of 64:
  0.12 M parameters, trains on 2 CPU cores in minutes.

State dicts in the Hugging Face layout load strictly (`load_hf_state_dict`): the layout of
transformers 5 (`vivit.layers.N.attention.q_proj...`) as is, and that of transformers 4
(`vivit.encoder.layer.N.attention.attention.query...`, what a checkpoint saved with
`torch.save(model.state_dict())` in 2023-2025 holds, as the seed's `vivit_blink_best.pth` would)
renamed with the rules transformers 5 itself applies to ViT-style checkpoints.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

LABELS = ("no_blink", "blink")
BLINK = 1
CONFIGS = ("small", "vivit-b-16x2")

# transformers 4 -> 5 parameter names (transformers.conversion_mapping, "ViTModel"; VivitModel maps to it)
_V4_TO_V5 = (
    (r"\.encoder\.layer\.", ".layers."),
    (r"\.attention\.attention\.query\.", ".attention.q_proj."),
    (r"\.attention\.attention\.key\.", ".attention.k_proj."),
    (r"\.attention\.attention\.value\.", ".attention.v_proj."),
    (r"\.attention\.output\.dense\.", ".attention.o_proj."),
    (r"\.intermediate\.dense\.", ".mlp.fc1."),
    (r"\.output\.dense\.", ".mlp.fc2."),
)


def config_dict(name: str) -> dict[str, Any]:
    """The `VivitConfig` arguments of a named configuration (stored in every checkpoint's metadata)."""
    common = {"num_labels": 2, "id2label": dict(enumerate(LABELS)), "label2id": {v: k for k, v in enumerate(LABELS)}}
    if name == "vivit-b-16x2":
        # VivitConfig's defaults are this model; spelled out so a change of defaults cannot alter it
        return {**common, "image_size": 224, "num_frames": 32, "tubelet_size": [2, 16, 16], "hidden_size": 768,
                "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu_fast",
                "layer_norm_eps": 1e-6, "qkv_bias": True}
    if name == "small":
        # tubelets 8 px tall, 16 wide: lid motion is vertical; 128 tokens keep a training step near 25 ms CPU per window
        return {**common, "image_size": [32, 64], "num_frames": 16, "tubelet_size": [2, 8, 16], "hidden_size": 64,
                "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128, "hidden_act": "gelu_fast",
                "layer_norm_eps": 1e-6, "qkv_bias": True, "hidden_dropout_prob": 0.1}
    raise ValueError(f"unknown ViViT configuration {name!r} (known: {', '.join(CONFIGS)})")


def input_shape(cfg: dict[str, Any]) -> tuple[int, int, int]:
    """(frames, height, width) a configuration takes."""
    size = cfg.get("image_size", 224)
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    return int(cfg.get("num_frames", 32)), h, w


def build(cfg: dict[str, Any]) -> nn.Module:
    """A randomly initialised `VivitForVideoClassification` (load weights into it before use)."""
    from transformers import VivitConfig, VivitForVideoClassification

    config = VivitConfig(**cfg)
    config._attn_implementation = "sdpa"  # the [CLS] attention for saliency is recomputed by `cls_attention`
    return VivitForVideoClassification(config)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def hf_state_dict(sd: dict[str, Any]) -> dict[str, torch.Tensor]:
    """A checkpoint's weights in the transformers 5 layout: nested {"state_dict"/"model"/
    "model_state_dict": ...} unwrapped, DataParallel's "module." dropped, transformers 4 names renamed."""
    for key in ("model_state_dict", "state_dict", "model"):
        if isinstance(sd.get(key), dict):
            sd = sd[key]
            break
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        k = k.removeprefix("module.")
        for pat, rep in _V4_TO_V5:
            k = re.sub(pat, rep, k)
        out[k] = v
    return out


def load_hf_state_dict(model: nn.Module, sd: dict[str, Any], skip_classifier: bool = False) -> None:
    """Load strictly (every parameter present, nothing left over, every shape equal); ValueError
    naming what does not fit. `skip_classifier`: a backbone checkpoint (Kinetics-400, 400 labels)
    initialises everything but the 2-label head."""
    sd = hf_state_dict(sd)
    own = model.state_dict()
    if skip_classifier:
        sd = {k: v for k, v in sd.items() if not k.startswith("classifier.")}
        sd |= {k: v for k, v in own.items() if k.startswith("classifier.")}
    missing = sorted(set(own) - set(sd))
    extra = sorted(set(sd) - set(own))
    wrong = sorted(k for k in set(own) & set(sd) if tuple(own[k].shape) != tuple(sd[k].shape))
    if missing or extra or wrong:
        parts = []
        for what, keys in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong)):
            if keys:
                shown = ", ".join(f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" if what == "wrong shape" else k for k in keys[:3])
                parts.append(f"{len(keys)} {what} ({shown}{', ...' if len(keys) > 3 else ''})")
        raise ValueError("the state dict does not fit this ViViT: " + "; ".join(parts))
    model.load_state_dict(sd, strict=True)


def set_trainable(model: nn.Module, last_layers: int | None) -> None:
    """The seed's recipe: tubelet embedding, the last `last_layers` transformer layers, the final
    LayerNorm and the head trained, the rest frozen; None trains everything (a model from scratch)."""
    for p in model.parameters():
        p.requires_grad = last_layers is None
    if last_layers is None:
        return
    vivit = model.vivit
    keep: list[nn.Module] = [vivit.embeddings.patch_embeddings, vivit.layernorm, model.classifier]
    keep += list(vivit.layers[len(vivit.layers) - max(int(last_layers), 0):]) if last_layers else []
    for m in keep:
        for p in m.parameters():
            p.requires_grad = True


def cls_attention(model: nn.Module, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, 2) and the last layer's attention of [CLS] to every tubelet, averaged over the
    heads: (B, T/2, H/p, W/p), each map summing to 1 with the [CLS] self-attention left out.

    Only the [CLS] row of the last layer is computed again (from the inputs the layer saw), so
    every layer keeps the fast fused attention and no N x N matrix is stored."""
    vivit = model.vivit
    attn = vivit.layers[-1].attention
    seen: dict[str, torch.Tensor] = {}

    def grab(_mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        seen["h"] = args[0] if args else kwargs["hidden_states"]

    handle = attn.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        logits = model(pixel_values=pixel_values).logits
    finally:
        handle.remove()
    h = seen["h"]  # (B, 1 + N, D), after layernorm_before
    b, n1, _ = h.shape
    heads, hd = attn.num_attention_heads, attn.head_dim
    q = attn.q_proj(h[:, :1]).view(b, 1, heads, hd).transpose(1, 2)  # (B, heads, 1, hd)
    k = attn.k_proj(h).view(b, n1, heads, hd).transpose(1, 2)  # (B, heads, 1 + N, hd)
    w = torch.softmax((q @ k.transpose(-1, -2)) * attn.scaling, dim=-1)[:, :, 0, 1:].mean(1)  # (B, N)
    w = w / w.sum(-1, keepdim=True).clamp_min(1e-12)
    cfg = model.config
    t, hh, ww = input_shape(cfg.to_dict())
    grid = (t // cfg.tubelet_size[0], hh // cfg.tubelet_size[1], ww // cfg.tubelet_size[2])
    return logits, w.view(b, *grid)
