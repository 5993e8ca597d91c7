"""LipFD network and preprocessing: shapes per stage, upstream checkpoint layout, the upstream
bugs we fix (per-frame crops, integer window starts, colour order / normalisation records)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.audio.mel import colourise, mel_image
from core.detectors.lipfd import load_model
from core.detectors.lipfd_input import (
    UPSTREAM_PREPROCESSING,
    LipFDPreprocessing,
    compose_window,
    composite_tensors,
    crop_square,
    face_square,
    window_starts,
)
from core.models.lipfd import (
    LipFD,
    LipFDConfig,
    infer_config,
    load_lipfd_state_dict,
    region_awareness_loss,
)

TINY = LipFDConfig(clip_model="tiny", clip_image_size=32, crop_size=32)


@pytest.fixture(scope="module")
def tiny_model() -> LipFD:
    torch.manual_seed(0)
    return LipFD(TINY).eval()


def test_shapes_per_stage(tiny_model: LipFD) -> None:
    b, f = 2, 5
    composite = torch.randn(b, 3, TINY.composite_size, TINY.composite_size)  # (2, 3, 160, 160)
    crops = torch.randn(b, 3, f, 3, TINY.crop_size, TINY.crop_size)
    stem = tiny_model.conv1(composite)
    assert stem.shape == (b, 3, 32, 32)  # stride-5 conv: 5n -> n
    g = tiny_model.get_features(composite)
    assert g.shape == (b, tiny_model.encoder.embed_dim)
    r = tiny_model.backbone.regional(crops.flatten(0, 2))
    assert r.shape == (b * 3 * f, 2048)
    logit, att = tiny_model(composite, crops)
    assert logit.shape == (b,)
    assert att.shape == (b, 3, f)
    assert torch.allclose(att.sum(dim=1), torch.ones(b, f), atol=1e-5)  # softmax over the scales
    assert tiny_model.backbone.get_weight[0].in_features == 2048 + tiny_model.encoder.embed_dim
    loss = region_awareness_loss(att)
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_vit_b32_shapes() -> None:
    cfg = LipFDConfig(clip_model="ViT-B-32", clip_image_size=64, crop_size=32)
    model = LipFD(cfg).eval()
    with torch.inference_mode():
        g = model.get_features(torch.randn(1, 3, 320, 320))
        logit, att = model(torch.randn(1, 3, 320, 320), torch.randn(1, 3, 5, 3, 32, 32))
    assert g.shape == (1, 512)
    assert model.backbone.fc.in_features == 2048 + 512
    assert logit.shape == (1,) and att.shape == (1, 3, 5)


def test_vit_l14_layout_matches_card_and_upstream() -> None:
    with torch.device("meta"):  # the full-size model without allocating 1.7 GB
        model = LipFD(LipFDConfig())
    sd = model.state_dict()
    assert model.encoder.embed_dim == 768  # the card's global feature
    assert sd["backbone.get_weight.0.weight"].shape == (1, 2816)
    assert sd["backbone.fc.weight"].shape == (1, 2816)
    assert sd["conv1.weight"].shape == (3, 3, 5, 5)
    assert sd["encoder.visual.conv1.weight"].shape == (1024, 3, 14, 14)
    assert sd["encoder.visual.positional_embedding"].shape == (257, 1024)
    assert "encoder.visual.transformer.resblocks.23.attn.in_proj_weight" in sd
    assert "encoder.visual.proj" in sd and sd["encoder.visual.proj"].shape == (1024, 768)
    for k in ("backbone.conv1.weight", "backbone.bn1.running_mean", "backbone.layer1.0.downsample.0.weight", "backbone.layer4.2.bn3.weight"):
        assert k in sd
    # a checkpoint without an architecture record is recognised from its shapes
    assert infer_config(sd).clip_model == "ViT-L-14"


def _upstream_layout(model: LipFD) -> dict:  # type: ignore[type-arg]
    """What upstream's trainer saves: {"model": full LipFD incl. CLIP text tower, "optimizer", "total_steps"}."""
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    text = {
        "encoder.positional_embedding": torch.zeros(77, 64),
        "encoder.text_projection": torch.zeros(64, 32),
        "encoder.logit_scale": torch.tensor(4.6),
        "encoder.token_embedding.weight": torch.zeros(100, 64),
        "encoder.transformer.resblocks.0.attn.in_proj_weight": torch.zeros(192, 64),
        "encoder.ln_final.weight": torch.ones(64),
    }
    return {"model": {**sd, **text}, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]}, "total_steps": 7}


def test_upstream_layout_loads(tiny_model: LipFD, tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pth"
    torch.save(_upstream_layout(tiny_model), path)
    torch.manual_seed(1)
    other = LipFD(TINY).eval()
    ignored = load_lipfd_state_dict(other, torch.load(path, weights_only=True))
    assert "encoder.token_embedding.weight" in ignored and "encoder.logit_scale" in ignored
    x, c = torch.randn(1, 3, 160, 160), torch.randn(1, 3, 5, 3, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(other(x, c)[0], tiny_model(x, c)[0])

    # through the verified loader: no metadata -> architecture inferred, upstream preprocessing
    from core.weights import file_sha256

    loaded = load_model(path, expected_sha256=file_sha256(path), device="cpu")
    assert loaded.cfg.clip_model == "tiny" and loaded.cfg.clip_image_size == 32
    assert loaded.prep == UPSTREAM_PREPROCESSING
    assert loaded.prep.colour_order == "BGR" and loaded.prep.audio_sample_rate == 22050


def test_layout_mismatch_is_refused(tiny_model: LipFD) -> None:
    sd = _upstream_layout(tiny_model)
    del sd["model"]["backbone.fc.weight"]
    with pytest.raises(ValueError, match="missing"):
        load_lipfd_state_dict(LipFD(TINY), sd)
    sd = _upstream_layout(tiny_model)
    sd["model"]["backbone.extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="unexpected"):
        load_lipfd_state_dict(LipFD(TINY), sd)


def test_bad_hash_is_refused(tiny_model: LipFD, tmp_path: Path) -> None:
    from core.weights import WeightsError

    path = tmp_path / "ckpt.pth"
    torch.save(_upstream_layout(tiny_model), path)
    with pytest.raises(WeightsError):
        load_model(path, expected_sha256="0" * 64, device="cpu")


# ----------------------------------------------------------------------------------------------
# preprocessing


def test_window_starts_are_integers_beyond_255() -> None:
    s = window_starts(1000, 5, 10)
    assert s.dtype == np.int64
    assert s[0] == 0 and s[-1] == 1000 - 5 - 1
    assert np.all(np.diff(s) > 0) and s.max() > 255  # upstream's uint8 wrapped here
    assert window_starts(4, 5, 10).size == 0
    assert list(window_starts(7, 5, 10)) == [0, 1]


def test_composite_and_per_frame_crops() -> None:
    fs, w = 40, 5
    colours = [(40 * k + 20, 255 - 40 * k, 10 * k) for k in range(w)]
    frames = [np.full((30, 30, 3), c, np.uint8) for c in colours]
    mel = np.full((128, 9, 3), 7, np.uint8)
    comp = compose_window(frames, mel, fs)
    assert comp.shape == (2 * fs, fs * w, 3) and comp.dtype == np.uint8
    assert np.all(comp[:fs] == 7)
    prep = LipFDPreprocessing(frame_size=fs, normalisation="none", colour_order="RGB")
    glob, crops = composite_tensors(comp, TINY, prep)
    assert glob.shape == (3, TINY.composite_size, TINY.composite_size)
    assert crops.shape == (3, w, 3, TINY.crop_size, TINY.crop_size)
    for k, c in enumerate(colours):  # crop k is frame k (upstream: 1-pixel shifts of frame 0)
        for scale in range(3):
            assert torch.allclose(crops[scale, k].mean(dim=(1, 2)), torch.tensor(c, dtype=torch.float32), atol=1.0)
    # upstream's record: BGR, 0-255
    _, bgr = composite_tensors(comp, TINY, UPSTREAM_PREPROCESSING.__class__(frame_size=fs, colour_order="BGR", normalisation="none"))
    assert torch.allclose(bgr[0, 0].mean(dim=(1, 2)), torch.tensor(colours[0][::-1], dtype=torch.float32), atol=1.0)
    # the card's normalisation for our checkpoints
    _, norm = composite_tensors(comp, TINY, LipFDPreprocessing(frame_size=fs))
    expected = (colours[0][0] / 255 - 0.48145466) / 0.26862954
    assert abs(float(norm[0, 0, 0].mean()) - expected) < 0.02


def test_face_square_crop_centres_the_face() -> None:
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[20:60, 220:260] = 255  # a "face" in the top-right corner
    cx, cy, side = face_square(np.array([220, 20, 260, 60]), 1.5)
    assert (cx, cy, side) == (240, 40, 60)
    crop = crop_square(frame, cx, cy, side)
    assert crop.shape == (60, 60, 3)
    assert crop[25:35, 25:35].min() == 255  # face in the middle
    edge = crop_square(frame, 5, 5, 40)  # leaves the picture: padded, not shifted
    assert edge.shape == (40, 40, 3)


def test_mel_image_viridis_in_memory() -> None:
    sr = 16000
    t = np.arange(sr) / sr
    y = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    img = mel_image(y, sr)
    assert img.rgb.dtype == np.uint8 and img.rgb.shape[0] == 128 and img.rgb.shape[2] == 3
    assert img.rgb.shape[1] == 1 + sr // 512
    assert img.column_at(0.5) == round(0.5 * sr / 512)
    # viridis: the minimum is dark purple, the maximum yellow (as plt.imsave renders it)
    c = colourise(np.array([[0.0, 1.0]]))
    assert tuple(c[0, 0]) == (68, 1, 84) and c[0, 1, 0] > 240 and c[0, 1, 1] > 220
