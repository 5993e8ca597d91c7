"""ViViT blink model: configurations, Hugging Face state-dict layouts, the [CLS] attention."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from core.models import vivit_blink as vb

# transformers 4 names of VivitForVideoClassification (what `torch.save(model.state_dict())`
# wrote before transformers 5), spelled out from that version's module tree, not derived from
# core.models.vivit_blink's renaming rules
V4 = [
    (r"^vivit\.layers\.(\d+)\.attention\.q_proj\.", r"vivit.encoder.layer.\1.attention.attention.query."),
    (r"^vivit\.layers\.(\d+)\.attention\.k_proj\.", r"vivit.encoder.layer.\1.attention.attention.key."),
    (r"^vivit\.layers\.(\d+)\.attention\.v_proj\.", r"vivit.encoder.layer.\1.attention.attention.value."),
    (r"^vivit\.layers\.(\d+)\.attention\.o_proj\.", r"vivit.encoder.layer.\1.attention.output.dense."),
    (r"^vivit\.layers\.(\d+)\.mlp\.fc1\.", r"vivit.encoder.layer.\1.intermediate.dense."),
    (r"^vivit\.layers\.(\d+)\.mlp\.fc2\.", r"vivit.encoder.layer.\1.output.dense."),
    (r"^vivit\.layers\.(\d+)\.", r"vivit.encoder.layer.\1."),
]


def as_v4(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        for pat, rep in V4:
            k2 = re.sub(pat, rep, k)
            if k2 != k:
                k = k2
                break
        out[k] = v
    return out


def tiny_cfg(**kw: object) -> dict:
    cfg = vb.config_dict("small")
    cfg.update(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, image_size=[16, 32], num_frames=4, **kw)
    return cfg


def test_parity_config_is_vivit_b_16x2() -> None:
    from transformers import VivitConfig

    cfg = vb.config_dict("vivit-b-16x2")
    default = VivitConfig()  # transformers documents its defaults as google/vivit-b-16x2-kinetics400
    for k in ("image_size", "num_frames", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act"):
        assert cfg[k] == getattr(default, k), k
    assert list(cfg["tubelet_size"]) == list(default.tubelet_size) == [2, 16, 16]
    assert cfg["num_labels"] == 2 and cfg["id2label"][vb.BLINK] == "blink"
    assert vb.input_shape(cfg) == (32, 224, 224)
    small = vb.build(vb.config_dict("small"))
    assert vb.count_parameters(small) < 200_000  # trains on 2 CPU cores
    with pytest.raises(ValueError, match="unknown"):
        vb.config_dict("vivit-l")


@pytest.mark.parametrize("layout", ["v5", "v4", "v4 nested, DataParallel"])
def test_hf_state_dict_loads_strictly(layout: str) -> None:
    torch.manual_seed(0)
    src = vb.build(tiny_cfg())
    sd = src.state_dict()
    if layout != "v5":
        sd = as_v4(sd)
        assert "vivit.encoder.layer.1.attention.attention.query.weight" in sd and "vivit.encoder.layer.0.output.dense.bias" in sd
    if layout.endswith("DataParallel"):
        sd = {"model_state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}
    dst = vb.build(tiny_cfg())
    vb.load_hf_state_dict(dst, sd)
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k


def test_v4_renaming_matches_transformers_own_loader(tmp_path: Path) -> None:
    """transformers 5 converts old checkpoints itself in from_pretrained: the same tensors land in
    the same places as with Verity's strict loader."""
    from safetensors.torch import save_file
    from transformers import VivitConfig, VivitForVideoClassification

    torch.manual_seed(1)
    src = vb.build(tiny_cfg())
    folder = tmp_path / "old"
    folder.mkdir()
    VivitConfig(**tiny_cfg()).save_pretrained(folder)
    save_file({k: v.contiguous() for k, v in as_v4(src.state_dict()).items()}, str(folder / "model.safetensors"))
    theirs = VivitForVideoClassification.from_pretrained(folder, local_files_only=True)
    ours = vb.build(tiny_cfg())
    vb.load_hf_state_dict(ours, as_v4(src.state_dict()))
    for k, v in ours.state_dict().items():
        assert torch.equal(theirs.state_dict()[k], v), k


def test_strict_loading_refuses_what_does_not_fit() -> None:
    model = vb.build(tiny_cfg())
    sd = model.state_dict()
    with pytest.raises(ValueError, match="1 missing"):
        vb.load_hf_state_dict(model, {k: v for k, v in sd.items() if k != "vivit.layernorm.bias"})
    with pytest.raises(ValueError, match="unexpected"):
        vb.load_hf_state_dict(model, {**sd, "vivit.pooler.dense.weight": torch.zeros(16, 16)})
    kinetics = {**sd, "classifier.weight": torch.zeros(400, 16), "classifier.bias": torch.zeros(400)}
    with pytest.raises(ValueError, match="wrong shape"):
        vb.load_hf_state_dict(model, kinetics)
    vb.load_hf_state_dict(model, kinetics, skip_classifier=True)  # a 400-label backbone initialises all but the head


@pytest.mark.slow  # two 88.6 M-parameter models (about 10 s alone, a minute on the busy 2-core machine)
def test_seed_checkpoint_layout_builds_the_parity_model(tmp_path: Path) -> None:
    """A plain state dict of vivit-b-16x2 with 2 labels (as the seed's vivit_blink_best.pth, saved
    with transformers 4) loads strictly through the weights loader into the parity model."""
    from core.detectors.vivit_blink import from_state_dict

    torch.manual_seed(0)
    ref = vb.build(vb.config_dict("vivit-b-16x2"))
    path = tmp_path / "vivit_blink_best.pth"
    torch.save(as_v4(ref.state_dict()), path)
    from core.weights import file_sha256, load_state_dict

    sd, meta = load_state_dict(path, expected_sha256=file_sha256(path))
    lm = from_state_dict(sd, meta, "vivit_blink_seed", "x")
    assert lm.prep.num_frames == 32 and (lm.prep.eyes.width, lm.prep.eyes.height) == (224, 224)
    assert vb.count_parameters(lm.model) == vb.count_parameters(ref) > 88_000_000
    k = "vivit.layers.11.attention.q_proj.weight"
    assert torch.equal(lm.model.state_dict()[k], ref.state_dict()[k])


def test_cls_attention_is_a_distribution_over_tubelets() -> None:
    torch.manual_seed(0)
    model = vb.build(tiny_cfg()).eval()
    x = torch.randn(3, 4, 3, 16, 32)
    with torch.no_grad():
        logits, attn = vb.cls_attention(model, x)
        plain = model(pixel_values=x).logits
    assert torch.allclose(logits, plain)  # the hook does not change the forward pass
    assert attn.shape == (3, 2, 2, 2)  # (B, T/2, H/8, W/16) for tubelets 2 x 8 x 16
    assert torch.allclose(attn.sum((1, 2, 3)), torch.ones(3), atol=1e-5) and (attn >= 0).all()
    # recomputed [CLS] row == the row of the full eager attention matrix (heads averaged)
    model.config._attn_implementation = "eager"
    with torch.no_grad():
        full = model(pixel_values=x, output_attentions=True).attentions[-1]  # (B, heads, N+1, N+1)
    row = full[:, :, 0, 1:].mean(1)
    assert torch.allclose(attn.reshape(3, -1), row / row.sum(-1, keepdim=True), atol=1e-5)


def test_seed_recipe_trains_embedding_and_last_layers() -> None:
    model = vb.build(tiny_cfg())
    vb.set_trainable(model, 1)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "vivit.embeddings.patch_embeddings.projection.weight" in trained and "classifier.weight" in trained
    assert any(n.startswith("vivit.layers.1.") for n in trained) and not any(n.startswith("vivit.layers.0.") for n in trained)
    vb.set_trainable(model, None)
    assert all(p.requires_grad for p in model.parameters())
