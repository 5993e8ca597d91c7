"""Grad-CAM for the sequence classifiers: the maps match a hand computation, are stored with the
run, and are drawn beside the PDF key frame and over the player's frame."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from core.detectors import sequence_cnn as sc
from core.detectors import sequence_model as sm
from core.face.align import crop_transform
from core.heatmaps import HeatmapStore, blend, colourise
from tests import seqfake


def _store(k: int = 6, size: int = 8) -> HeatmapStore:
    maps = np.zeros((k, size, size), np.uint8)
    maps[:, 2:6, 2:6] = 255
    return HeatmapStore(
        track_id=np.array([0, 0, 0, 0, 1, 1], np.int32)[:k], frame=np.array([0, 5, 10, 10, 20, 25], np.int32)[:k],
        window=np.array([0, 0, 1, 1, 2, 2], np.int32)[:k], window_start=np.array([0, 0, 5, 5, 20, 20], np.int32)[:k],
        window_end=np.array([10, 10, 15, 15, 30, 30], np.int32)[:k], score=np.array([0.6, 0.6, 0.9, 0.9, 0.7, 0.7], np.float32)[:k],
        affine=np.tile(np.array([[1, 0, 0], [0, 1, 0]], np.float32), (k, 1, 1)), maps=maps, peak=np.ones(k, np.float32), crop_size=size,
    )


def test_store_round_trip_and_lookup(tmp_path: Path) -> None:
    st = _store()
    sha = st.save(tmp_path / "g.npz")
    back = HeatmapStore.load(tmp_path / "g.npz", expected_sha256=sha)
    assert np.array_equal(back.maps, st.maps) and back.crop_size == 8 and back.meta["format"] == "verity.gradcam/1"
    # frame 7: windows 0 (0.6) and 1 (0.9) of track 0 cover it -> window 1, its nearest mapped frame (10)
    assert [int(back.frame[k]) for k in back.at(7)] == [10]
    assert [int(back.window[k]) for k in back.at(3)] == [0]
    assert [int(back.track_id[k]) for k in back.at(22)] == [1] and back.at(40) == []
    assert back.at(7, track_id=1) == []
    assert int(back.frame[back.nearest(0, 0, 15)]) == 10 and back.nearest(1, 0, 15) is None
    with pytest.raises(ValueError, match="changed"):
        HeatmapStore.load(tmp_path / "g.npz", expected_sha256="0" * 64)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable"):
        HeatmapStore.load(tmp_path / "bad.npz")


def test_colours_are_see_through_where_cold() -> None:
    heat = np.array([[0, 255]], np.uint8)
    rgba = colourise(heat)
    assert rgba[0, 0, 3] == 0 and rgba[0, 1, 3] > 100
    crop = np.full((1, 2, 3), 100, np.uint8)
    out = blend(crop, heat)
    assert np.array_equal(out[0, 0], crop[0, 0]) and not np.array_equal(out[0, 1], crop[0, 1])


def test_gradcam_matches_a_hand_computation() -> None:
    """Grad-CAM of logit 1 through the BiLSTM: channel weights = mean gradient over the map,
    ReLU of the weighted sum, each frame scaled to its own maximum (pytorch-grad-cam)."""
    import cv2

    from core.models.cnn_bilstm import CNNBiLSTM

    torch.manual_seed(3)
    net = CNNBiLSTM(channels=(4, 8, 8), feature_dim=16, hidden=8, layers=2).eval()
    prep = sm.SeqPreprocessing(size=32, input_size=32, sequence_length=3, normalisation="0_1")
    model = sm.LoadedModel(net, {"arch": "cnn_bilstm"}, prep, "0" * 64, None)
    rng = np.random.default_rng(0)
    crops = {(0, f): rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for f in range(3)}
    maps, peak = sc.gradcam_maps(model, sc.Window(0, [0, 1, 2]), crops, size=16)
    assert maps.shape == (3, 16, 16) and maps.dtype == np.uint8 and peak.shape == (3,)

    acts: list[torch.Tensor] = []

    def keep(module: torch.nn.Module, inputs: object, out: torch.Tensor) -> None:
        out.retain_grad()
        acts.append(out)

    hook = sm.cam_layer(net).register_forward_hook(keep)
    x = sm.to_tensor(np.stack([crops[(0, f)] for f in range(3)])[None], prep).requires_grad_(True)
    net(x)[0, 1].backward()
    hook.remove()
    a, g = acts[0].detach().numpy(), acts[0].grad.numpy()  # (3, 8, 8, 8)
    cam = np.maximum((g.mean(axis=(2, 3))[:, :, None, None] * a).sum(axis=1), 0)  # (3, 8, 8)
    assert np.allclose(peak, cam.reshape(3, -1).max(1), rtol=1e-4, atol=1e-7)
    assert (peak > 0).any()
    for t in range(3):
        c = cam[t] - cam[t].min()
        c = cv2.resize(c / (1e-7 + c.max()), (32, 32))  # to the input size ...
        c = (c - c.min()) / (1e-7 + (c - c.min()).max())  # ... and scaled again after the resize, as the library does
        want = np.round(cv2.resize(c, (16, 16), interpolation=cv2.INTER_AREA) * 255).clip(0, 255)
        assert np.abs(maps[t].astype(int) - want.astype(int)).max() <= 2


def test_key_frame_with_heat_map_beside_it(tmp_path: Path) -> None:
    import cv2

    from core.report import plots
    from core.video.reader import VideoReader
    from tests.conftest import write_video

    video = write_video(tmp_path / "v.mp4", seqfake.frames(4, 0))
    fp = seqfake.facepass_for(4)
    heat = np.zeros((16, 16), np.uint8)
    heat[4:12, 4:12] = 255
    aff, _ = crop_transform(fp.tracks[0].landmarks[1], fp.tracks[0].boxes[1], (128, 128), sm.SeqPreprocessing(size=64).crop_spec())
    with VideoReader(video) as r:
        plain, cap0 = plots.key_frame(r, 1, fp, 0, max_side=200)
        both, cap1 = plots.key_frame(r, 1, fp, 0, max_side=200, heat=(aff, heat, 64))
    a = cv2.imdecode(np.frombuffer(plain, np.uint8), cv2.IMREAD_COLOR)
    b = cv2.imdecode(np.frombuffer(both, np.uint8), cv2.IMREAD_COLOR)
    assert b.shape[0] == a.shape[0] and b.shape[1] == a.shape[1] + 6 + a.shape[0]  # frame | gap | square panel
    assert "Grad-CAM" in cap1 and "Grad-CAM" not in cap0
    panel = b[:, a.shape[1] + 6 :].astype(int)
    centre, corner = panel[panel.shape[0] // 2, panel.shape[1] // 2], panel[5, 5]
    assert centre[2] > centre[0] + 60  # hot (red in BGR) in the middle of the map
    assert abs(corner[2] - corner[0]) < 80  # cold corner: the crop shows through


def test_player_overlay_is_off_by_default_and_paints_the_stored_map(qtbot: object, tmp_path: Path) -> None:
    from PySide6.QtGui import QColor

    from desktop.overlays import render_frame
    from desktop.player import Player
    from desktop.review import build_review

    fp = seqfake.facepass_for(4)
    spec = sm.SeqPreprocessing(size=64).crop_spec()
    aff = np.stack([crop_transform(fp.tracks[0].landmarks[i], fp.tracks[0].boxes[i], (128, 128), spec)[0] for i in range(4)])
    maps = np.zeros((4, 16, 16), np.uint8)
    maps[:, 6:10, 6:10] = 255  # hot at the crop centre, between the eyes and the mouth
    st = HeatmapStore(np.zeros(4, np.int32), np.arange(4, dtype=np.int32), np.zeros(4, np.int32), np.zeros(4, np.int32),
                      np.full(4, 3, np.int32), np.full(4, 0.8, np.float32), aff.astype(np.float32), maps, np.ones(4, np.float32),
                      crop_size=64, meta={"crop": asdict(spec)})
    path = tmp_path / "gc.npz"
    sha = st.save(path)
    analysis = {"evidence": {"video": {"frame_count": 4}}, "faces": [], "parameters": {},
                "detectors": {sc.NAME: {"metrics": {"gradcam": {"path": str(path), "sha256": sha}}, "segments": [], "curves": {}}}}
    review = build_review(analysis, facepass=fp)
    assert sc.NAME in review.heatmaps
    rgb = np.full((128, 128, 3), 128, np.uint8)
    plain = render_frame(rgb, review, 2, ())
    hot = render_frame(rgb, review, 2, ("heatmap",))
    centre = np.array(crop_transform(fp.tracks[0].landmarks[2], fp.tracks[0].boxes[2], (128, 128), spec)[0])
    cx, cy = (np.linalg.inv(np.vstack([centre, [0, 0, 1]])) @ [32, 32, 1])[:2]  # crop centre in the frame
    on, off = QColor(hot.pixel(int(cx), int(cy))), QColor(hot.pixel(2, 2))
    assert on.red() > on.blue() + 50 and on.red() > on.green() + 50  # jet's hot end (dark red) where the crop centre is
    assert off == QColor(plain.pixel(2, 2))  # outside the face nothing changes
    assert render_frame(rgb, review, 3, ("heatmap",)).pixel(int(cx), int(cy)) != plain.pixel(int(cx), int(cy))
    # a changed store is not shown
    path.write_bytes(path.read_bytes() + b"x")
    assert not build_review(analysis, facepass=fp).heatmaps

    player = Player()
    qtbot.addWidget(player)  # type: ignore[attr-defined]
    assert not player.overlay_actions["heatmap"].isChecked() and "heatmap" not in player.visible_overlays()
    player.overlay_actions["heatmap"].setChecked(True)
    assert "heatmap" in player.visible_overlays() and player.overlay_actions["boxes"].isChecked()
