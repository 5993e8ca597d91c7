"""LipFD's two input modes on synthetic data: upstream's defects reproduced on purpose (uint8
window starts, overlapping windows, frame-0 crops, no antialiasing), the mode each checkpoint
selects, the container audio read as librosa reads a file, and the detector's result in upstream
mode (scores from a random tiny model: structure only, never a verdict)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.detectors.lipfd_input import (
    UPSTREAM_PREPROCESSING,
    LipFDPreprocessing,
    compose_window,
    composite_tensors,
    upstream_plan,
    upstream_preprocessing,
    upstream_window_starts,
)
from core.models.lipfd import LipFD, LipFDConfig
from tests.conftest import gradient_frames

TINY = LipFDConfig(clip_model="tiny", clip_image_size=32, crop_size=32)


def test_upstream_window_starts_wrap_like_uint8() -> None:
    # upstream: np.linspace(0, n - 6, 10, dtype=np.uint8), sorted
    assert upstream_window_starts(107).tolist() == [0, 11, 22, 33, 44, 56, 67, 78, 89, 101]
    wrapped = upstream_window_starts(300)
    assert wrapped.tolist() == [0, 5, 32, 38, 65, 98, 130, 163, 196, 228]  # 261 and 294 wrapped to 5 and 38
    assert wrapped.max() < 256  # the last 40 frames are never examined
    assert wrapped.tolist() == sorted(np.linspace(0, 294, 10, dtype=np.uint8).tolist())  # numpy's own cast here
    assert upstream_window_starts(5).size == 0


def test_upstream_overlapping_windows_misalign_frames_and_audio() -> None:
    # 40 frames: starts 0, 3, 7, ... overlap; upstream reads each frame once and cuts runs of 5
    plan = upstream_plan(40)
    assert [f for f, _ in plan] == [list(range(5 * k, 5 * k + 5)) for k in range(7)]  # 39 frames -> 7 runs, 4 dropped
    assert [m for _, m in plan] == [0, 3, 7, 11, 15, 18, 22]  # each run's audio starts elsewhere
    assert all(m == f[0] for f, m in upstream_plan(107))  # no overlap: they agree


def _five_colours(fs: int) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    colours = [(40 * k + 20, 255 - 40 * k, 10 * k) for k in range(5)]
    frames = [np.full((30, 30, 3), c, np.uint8) for c in colours]
    return compose_window(frames, np.full((128, 9, 3), 7, np.uint8), fs), colours


def test_upstream_crops_are_frame_0_shifted() -> None:
    fs = 100
    comp, colours = _five_colours(fs)
    prep = upstream_preprocessing(frame_size=fs)
    glob, crops = composite_tensors(comp, TINY, prep)
    assert crops.shape == (3, 5, 3, TINY.crop_size, TINY.crop_size)
    bgr0 = torch.tensor(colours[0][::-1], dtype=torch.float32)
    for k in range(5):  # every "frame" crop is frame 0 (crop k takes k columns of frame 1 at its right edge)
        left = crops[0, k, :, :, : TINY.crop_size // 2].mean(dim=(1, 2))
        assert torch.allclose(left, bgr0, atol=0.5), k
    # the verity mode takes each frame
    _, per_frame = composite_tensors(comp, TINY, LipFDPreprocessing(frame_size=fs, colour_order="BGR", normalisation="none"))
    assert torch.allclose(per_frame[0, 4].mean(dim=(1, 2)), torch.tensor(colours[4][::-1], dtype=torch.float32), atol=1.0)
    # no antialiasing (torchvision 0.16 on tensors), BGR 0-255
    x = torch.from_numpy(comp[:, :, ::-1].copy()).permute(2, 0, 1).float()[None]
    ref = F.interpolate(x, size=(TINY.composite_size,) * 2, mode="bilinear", align_corners=False, antialias=False)[0]
    assert torch.allclose(glob, ref, atol=1e-4)
    smooth = F.interpolate(x, size=(TINY.composite_size,) * 2, mode="bilinear", align_corners=False, antialias=True)[0]
    assert not torch.allclose(glob, smooth, atol=1.0)


def test_preprocessing_records() -> None:
    assert UPSTREAM_PREPROCESSING.upstream and UPSTREAM_PREPROCESSING.audio_sample_rate == 22050
    assert not UPSTREAM_PREPROCESSING.face_centred and not UPSTREAM_PREPROCESSING.mel_by_time
    assert LipFDPreprocessing.from_dict(UPSTREAM_PREPROCESSING.to_dict()) == UPSTREAM_PREPROCESSING
    old = {k: v for k, v in LipFDPreprocessing().to_dict().items() if k != "mode"}  # written before modes
    assert LipFDPreprocessing.from_dict(old).mode == "verity"
    with pytest.raises(ValueError, match="unknown LipFD preprocessing mode"):
        LipFDPreprocessing(mode="auto")


# ----------------------------------------------------------------------------------------------
# the mode each checkpoint selects


def _upstream_layout(model: LipFD) -> dict:  # type: ignore[type-arg]
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    sd["encoder.token_embedding.weight"] = torch.zeros(10, 8)  # upstream keeps CLIP's text tower
    return {"model": sd, "optimizer": {"state": {}, "param_groups": []}, "total_steps": 3}


@pytest.fixture(scope="module")
def tiny() -> LipFD:
    torch.manual_seed(0)
    return LipFD(TINY).eval()


def test_checkpoint_selects_its_mode(tiny: LipFD, tmp_path: Path) -> None:
    from core.detectors.lipfd import load_model
    from core.weights import WeightsError, file_sha256, save_checkpoint

    def load(path: Path):  # type: ignore[no-untyped-def]
        return load_model(path, expected_sha256=file_sha256(path), device="cpu")

    up = tmp_path / "ckpt.pth"
    torch.save(_upstream_layout(tiny), up)
    loaded = load(up)
    assert loaded.prep == UPSTREAM_PREPROCESSING and "upstream's layout" in loaded.mode_reason

    arch = {**TINY.to_dict(), "model": "LipFD"}
    for name, rec, mode in (
        ("verity.safetensors", LipFDPreprocessing().to_dict(), "verity"),
        ("fine_tuned.safetensors", upstream_preprocessing().to_dict(), "upstream"),  # `verity train lipfd --preprocessing upstream`
        ("before_modes.safetensors", {k: v for k, v in LipFDPreprocessing(frame_size=64).to_dict().items() if k != "mode"}, "verity"),
    ):
        path = tmp_path / name
        save_checkpoint(path, tiny.state_dict(), {"architecture": arch, "preprocessing": rec})
        loaded = load(path)
        assert loaded.prep.mode == mode and "recorded in the checkpoint" in loaded.mode_reason, name
        assert loaded.prep == LipFDPreprocessing.from_dict(rec)
    bad = tmp_path / "bad.safetensors"
    save_checkpoint(bad, tiny.state_dict(), {"architecture": arch, "preprocessing": {"mode": "best"}})
    with pytest.raises(WeightsError, match="unknown LipFD preprocessing mode"):
        load(bad)


# ----------------------------------------------------------------------------------------------
# audio and the detector in upstream mode


def test_container_audio_read_as_librosa_reads_a_file(make_video) -> None:  # type: ignore[no-untyped-def]
    import librosa

    from core.audio.decode import load_audio_as_librosa

    sr = 16000
    t = np.arange(int(1.3 * sr)) / sr  # 20800 samples: AAC decodes 21 whole 1024-sample frames
    y = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = make_video("tone.mp4", gradient_frames(33), audio=y)
    a = load_audio_as_librosa(path, 22050)
    expected = librosa.resample(y, orig_sr=sr, target_sr=22050, res_type="soxr_hq")
    assert a.sample_rate == 22050 and a.samples.size == expected.size  # cut at the track's declared end
    r = np.corrcoef(a.samples[2000:-2000], expected[2000:-2000])[0, 1]
    assert r > 0.99


def test_detector_in_upstream_mode(tiny: LipFD, tmp_path: Path, make_video, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    import core.models.lipfd as net
    from core.pipeline import AnalysisOptions, analyze
    from core.weights import register_local

    ckpt = tmp_path / "lipfd_ckpt.pth"
    torch.save(_upstream_layout(tiny), ckpt)
    # an upstream layout has no crop size (upstream's is 224): 16 px keeps the ResNet-50 fast on CPU
    infer = net.infer_config
    monkeypatch.setattr(net, "infer_config", lambda sd: replace(infer(sd), crop_size=16))
    register_local("lipfd_ckpt", ckpt, detector="lipfd", kind="full")
    rng = np.random.default_rng(0)
    # 20 frames: upstream's starts 0, 1, 3, 4, ... overlap (see upstream_plan)
    clip = make_video("short.mp4", gradient_frames(20), audio=(0.1 * rng.standard_normal(16000)).astype(np.float32))
    res = analyze(clip, AnalysisOptions(detectors=["lipfd"], detector_params={"lipfd": {"batch": 3}}))["detectors"]["lipfd"]
    assert res["status"] == "ok", res["note"]
    assert res["parameters"]["preprocessing"]["mode"] == "upstream" and res["metrics"]["preprocessing_mode"] == "upstream"
    assert "mode upstream" in res["note"] and "other frames' audio" in res["note"]
    preds = res["frame_predictions"]
    assert [p["start_frame"] for p in preds] == [0, 5, 10]
    assert [p["mel_start_frame"] for p in preds] == [0, 1, 3]
    assert not any(p["face_centred"] for p in preds)
    curve = res["curves"]["windows"]
    assert curve["start_frame"] == [p["start_frame"] for p in preds] and curve["score"] == res["metrics"]["window_scores"]
    assert curve["kind"] == "score" and "upstream preprocessing" in curve["description"]  # the tooltip names the mode
