"""vivit_blink: eye-region clips, windows and their labels, and the detector end to end on
synthetic eyes.

What the detector tests prove: on synthetic footage (two drawn eyes whose lids close at known
frames, a face pass built by hand), a tiny ViViT trained in a session fixture for a few seconds
on other synthetic clips gives, through the real detector code (eye crops from the video, windows,
HF ViViT, [CLS] attention), a temporal saliency curve with one value per frame of the track that
peaks inside a blink, events on the blinks, and the EAR disagreements as segments. It proves the
plumbing and the frame alignment, not accuracy on real faces (tests/bench/vivit_blink.py
measures that on the hand-labelled clips).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import core.detectors.vivit_blink as vd
from core.face.eye_region import EyeRegionParams, crop_maps, crop_quad, eye_clips
from core.face.facepass import FacePass, FaceTrack
from core.train.vivit_data import TrackClip, hand_label, weak_label
from tests.conftest import write_video

SIZE = 96
EYES = ((30.0, 44.0), (66.0, 44.0))  # image-left, image-right eye centres
PREP = vd.Preprocessing(EyeRegionParams(width=32, height=16, margin=0.15), num_frames=8, centre=2, min_stretch=4)


def tiny_config() -> dict:
    from core.models.vivit_blink import config_dict

    cfg = config_dict("small")
    cfg.update(image_size=[16, 32], num_frames=8, tubelet_size=[2, 8, 16], hidden_size=16, num_hidden_layers=1,
               num_attention_heads=2, intermediate_size=32, hidden_dropout_prob=0.0)
    return cfg


def openness(n: int, blinks: list[int]) -> np.ndarray:
    """1 open .. 0 closed per frame; each blink closes over 2 frames, stays shut 2, opens over 2."""
    o = np.ones(n)
    for b in blinks:
        for d, v in zip(range(-2, 4), (0.5, 0.1, 0.0, 0.0, 0.2, 0.6)):
            if 0 <= b + d < n:
                o[b + d] = min(o[b + d], v)
    return o


def labels_of(blinks: list[int]) -> dict:
    return {"blinks": [{"onset": b - 2, "closed_start": b - 1, "closed_end": b + 1, "offset": b + 3} for b in blinks], "partial": [], "unusable": []}


def draw(o: float, rng: np.random.Generator) -> np.ndarray:
    img = np.full((SIZE, SIZE, 3), (200, 160, 140), np.uint8)
    for cx, cy in EYES:
        h = max(int(round(6 * o)), 0)
        if h > 0:
            cv2.ellipse(img, (int(cx), int(cy)), (10, h), 0, 0, 360, (245, 245, 245), -1)
            cv2.circle(img, (int(cx), int(cy)), min(4, h), (40, 30, 30), -1)
        cv2.line(img, (int(cx) - 10, int(cy) + h), (int(cx) + 10, int(cy) + h), (90, 60, 50), 2)
    return np.clip(img.astype(int) + rng.integers(-6, 7, img.shape), 0, 255).astype(np.uint8)


def landmarks(n: int, rng: np.random.Generator, jitter: float = 0.3) -> np.ndarray:
    lm = np.zeros((n, 68, 2), np.float32)
    lm[:, :, 0], lm[:, :, 1] = SIZE / 2, SIZE * 0.7  # the rest of the face: unused here
    for base, (cx, cy) in ((36, EYES[0]), (42, EYES[1])):
        pts = [(-10, 0), (-4, -4), (4, -4), (10, 0), (4, 4), (-4, 4)]
        for k, (dx, dy) in enumerate(pts):
            lm[:, base + k] = (cx + dx, cy + dy)
    return lm + rng.normal(0, jitter, lm.shape).astype(np.float32)


def synthetic_clip(path: Path, n: int, blinks: list[int], seed: int) -> tuple[Path, FacePass]:
    rng = np.random.default_rng(seed)
    o = openness(n, blinks)
    write_video(path, [draw(v, rng) for v in o])
    lm = landmarks(n, rng)
    frames = np.arange(n, dtype=np.int32)
    track = FaceTrack(0, frames, np.tile(np.array([10, 10, 86, 90], np.float32), (n, 1)), lm,
                      np.stack([0.3 * o, 0.3 * o], 1).astype(np.float32), np.zeros(n, np.float32), np.ones(n, bool))
    fp = FacePass(n, 25.0, frames / 25.0, SIZE, SIZE, [track])
    return path, fp


@pytest.fixture(autouse=True)
def _one_thread() -> object:
    """torch on one thread: on a machine whose 2 cores are shared, two threads spin and run 20x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """(state dict, metadata) of a tiny ViViT trained on three synthetic clips (a few seconds)."""
    from core.models.vivit_blink import build
    from core.video.reader import VideoReader

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("vivit-train")
    xs, ys = [], []
    for k, blinks in enumerate(([10, 30, 52], [8, 25, 45, 60], [15, 40])):
        path, fp = synthetic_clip(d / f"train{k}.mp4", 70, blinks, seed=10 + k)
        with VideoReader(path) as r:
            crops = eye_clips(r, fp, PREP.eyes)[0]
        for w in vd.track_windows(fp.tracks[0].frames, PREP, 1):
            y = hand_label(w, labels_of(blinks))
            if y >= 0:
                xs.append(vd.window_tensor(crops, [w], PREP.normalise))
                ys.append(y)
    x, y = torch.cat(xs), torch.tensor(ys)
    torch.manual_seed(0)
    model = build(tiny_config())
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    weight = torch.tensor([1.0, float((y == 0).sum() / max((y == 1).sum(), 1))])
    for _ in range(30):
        for i in torch.randperm(len(x)).split(32):
            loss = torch.nn.functional.cross_entropy(model(pixel_values=x[i]).logits, y[i], weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.set_num_threads(threads)
    meta = {"format": vd.FORMAT, "config": tiny_config(), "preprocessing": PREP.to_dict(), "training_data": {"synthetic": True}}
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, meta


def register(trained: tuple[dict, dict], tmp_path: Path) -> str:
    from core.weights import register_local, save_checkpoint

    path = tmp_path / "vivit_blink.safetensors"
    sha = save_checkpoint(path, *trained)
    register_local(vd.WEIGHTS, path, detector=vd.NAME, kind="full", sha256=sha)
    vd._MODEL.clear()
    return sha


def context(path: Path, fp: FacePass, blinks: dict) -> object:
    from core.detectors.base import AnalysisContext
    from core.evidence import probe
    from core.signals.eyes import check_eyes

    t = fp.tracks[0]
    eyes = {0: check_eyes(t.frames, t.landmarks, fp.width, fp.height, fp.fps, t.ear)}
    return AnalysisContext(path=path, evidence=probe(path), sha256="0" * 64, facepass=fp, blinks=blinks, eyes=eyes)


# ----------------------------------------------------------------------------------------------


def test_crop_is_smoothed_and_holds_both_eyes(tmp_path: Path) -> None:
    from core.video.reader import VideoReader

    rng = np.random.default_rng(0)
    lm = landmarks(40, rng, jitter=1.5)
    p = EyeRegionParams(width=64, height=32)
    raw = crop_maps(np.arange(40), lm, EyeRegionParams(width=64, height=32, smooth_frames=1))
    smooth = crop_maps(np.arange(40), lm, p)
    assert np.std(np.diff(smooth[:, :, 2], axis=0)) < 0.6 * np.std(np.diff(raw[:, :, 2], axis=0))  # steadier crop
    assert np.allclose(smooth[:, 0, 0], smooth[:, 1, 1]) and np.allclose(smooth[:, 0, 1], -smooth[:, 1, 0])  # still a similarity
    # a gap in the track starts a new stretch: no smoothing across it
    frames = np.r_[0:20, 30:50]
    jump = lm.copy()
    jump[20:] += 15.0
    m = crop_maps(frames, jump, p)
    assert np.allclose(m[19], crop_maps(frames[:20], jump[:20], p)[19])
    # the crop's quad maps back onto the eyes; the crop shows two dark irises, one per half
    quad = crop_quad(smooth[0], p)
    assert quad[0, 0] < EYES[0][0] < quad[1, 0] and quad[0, 1] < EYES[0][1] < quad[2, 1]
    path, fp = synthetic_clip(tmp_path / "c.mp4", 12, [], seed=1)
    with VideoReader(path) as r:
        crops = eye_clips(r, fp, p)[0]
    assert crops.shape == (12, 32, 64, 3)
    dark = crops[0].mean(-1) < 80
    assert dark[:, :32].sum() > 5 and dark[:, 32:].sum() > 5


def test_windows_tile_each_stretch() -> None:
    frames = np.r_[0:30, 40:43, 50:61]  # a 3-frame stretch is too short
    ws = vd.track_windows(frames, vd.Preprocessing(num_frames=16, centre=4, min_stretch=8), stride=2)
    centres = sorted({f for w in ws for f in range(w.centre_first, w.centre_last + 1)})
    assert centres == [*range(0, 30), *range(50, 61)]
    for w in ws:
        assert len(w.rows) == 16 and w.centre_last - w.centre_first + 1 <= 4
        f = frames[w.rows]
        assert f.min() >= (0 if w.centre_first < 30 else 50) and f.max() <= (29 if w.centre_first < 30 else 60)  # never across a gap
        assert frames[w.rows[6]] == w.centre_first  # 6 frames of context before the centre
    assert frames[ws[0].rows[0]] == 0 == frames[ws[0].rows[5]]  # the stretch's first frame repeated


def test_window_labels() -> None:
    labels = {"blinks": [{"onset": 20, "closed_start": 22, "closed_end": 24, "offset": 27}], "partial": [{"onset": 60, "closed_start": 61, "closed_end": 61, "offset": 63}],
              "unusable": [[90, 99]], "other_events": []}

    def w(c0: int) -> vd.Window:
        return vd.Window(0, np.arange(c0 - 6, c0 + 10), c0, c0 + 3)

    assert hand_label(w(21), labels) == 1  # centre 21-24 holds closed frames
    assert hand_label(w(18), labels) == -1  # centre on the descent only: no label to trust
    assert hand_label(w(40), labels) == 0
    assert hand_label(w(58), labels) == -1 and hand_label(w(88), labels) == -1  # next to a partial blink, in unusable frames
    frames = np.arange(100)
    ok = np.ones(100, bool)
    ok[70:80] = False
    t = TrackClip(0, frames, np.zeros((100, 1, 1, 3), np.uint8), ok, np.zeros(100), [(20, 23, 27)])
    assert weak_label(w(22), t) == 1 and weak_label(w(17), t) == -1 and weak_label(w(40), t) == 0
    assert weak_label(w(72), t) == -1  # EAR cannot see the eyes there: no weak label


def test_unavailable_without_weights(tmp_path: Path) -> None:
    path, fp = synthetic_clip(tmp_path / "c.mp4", 20, [], seed=2)
    vd._MODEL.clear()
    r = vd.VivitBlink()(context(path, fp, {0: []}))
    assert r.status == "unavailable" and "vivit_blink" in r.note and not r.curves


def test_detector_on_synthetic_eyes(trained: tuple[dict, dict], tmp_path: Path) -> None:
    from core.signals.blinks import BlinkEvent
    from desktop.review import parse_curve

    sha = register(trained, tmp_path)
    blinks = [14, 36, 58]
    path, fp = synthetic_clip(tmp_path / "test.mp4", 75, blinks, seed=99)
    track = fp.tracks[0]
    # EAR saw the first blink and a "blink" at 68 that is not one; it missed the other two
    ear = {0: [BlinkEvent(12, 14, 17, 0.24, 0.05, True, True), BlinkEvent(66, 67, 69, 0.16, 0.1, True, True)]}
    r = vd.VivitBlink()(context(path, fp, ear))
    assert r.status == "ok", r.note
    assert r.weights_sha256 == {vd.WEIGHTS: sha} and r.assessment is None

    sal = r.curves["ViViT temporal saliency (track 0)"]
    assert sal["frames"] == track.frames.tolist() and len(sal["values"]) == len(track)  # one value per frame of the track
    peak = int(np.nanargmax(np.asarray(sal["values"], float)))
    assert any(b - 2 <= peak <= b + 3 for b in blinks), peak  # inside a blink's onset..offset
    events = r.per_track["0"]["events"]
    found = [b for b in blinks if any(e["start_frame"] <= b + 3 and b - 2 <= e["end_frame"] for e in events)]
    assert found == blinks
    # disagreements with EAR, as segments
    only_vivit = [s for s in r.segments if s.reason.startswith("ViViT blink")]
    only_ear = [s for s in r.segments if s.reason.startswith("EAR blink not found")]
    assert len(only_vivit) == 2 and all(s.start_frame > 20 for s in only_vivit)
    assert [(s.start_frame, s.end_frame) for s in only_ear] == [(66, 69)]
    assert r.metrics["agreement_with_ear"]["both"] == 1 and r.metrics["cpu_s_per_window"] > 0
    # spatial attention stored per analysed frame, with where the crop lies in the image
    att = r.per_track["0"]["attention"]
    assert att["frames"] == track.frames.tolist() and att["grid"] == [2, 2]
    assert all(len(m) == 4 and max(m) == 255 for m in att["maps"]) and all(len(q) == 8 for q in att["quads"])
    # the timeline draws the curves as they are today (lines over frames, bars for events)
    d = json.loads(json.dumps(r.to_dict()))
    lines = parse_curve(vd.NAME, "ViViT temporal saliency (track 0)", d["curves"]["ViViT temporal saliency (track 0)"], fp.frame_count)
    assert len(lines) == 1 and lines[0].kind == "line" and lines[0].x0.size == len(track) and lines[0].track_id == 0
    bars = parse_curve(vd.NAME, "ViViT blinks (track 0)", d["curves"]["ViViT blinks (track 0)"], fp.frame_count)
    assert bars[0].kind == "bars" and bars[0].x0.size == len(events)


def test_attention_overlay_is_drawn_from_the_stored_maps(qtbot) -> None:  # type: ignore[no-untyped-def]
    from desktop.exhibits import _qimage_rgb
    from desktop.overlays import attention_at, render_frame
    from desktop.review import build_review

    rng = np.random.default_rng(0)
    n = 10
    lm = landmarks(n, rng, jitter=0.0)
    t = FaceTrack(0, np.arange(n, dtype=np.int32), np.tile(np.array([10, 10, 86, 90], np.float32), (n, 1)), lm,
                  np.full((n, 2), 0.3, np.float32), np.zeros(n, np.float32), np.ones(n, bool))
    fp = FacePass(n, 25.0, np.arange(n) / 25.0, SIZE, SIZE, [t])
    p = EyeRegionParams(width=64, height=32)
    quad = crop_quad(crop_maps(t.frames, t.landmarks, p)[3], p)
    hot = [0, 0, 0, 0, 0, 255, 0, 0]  # grid 2 x 4: one cell, lower row, second from the left
    analysis = {"detectors": {"vivit_blink": {"status": "ok", "per_track": {"0": {"attention": {
        "grid": [2, 4], "crop_size": [64, 32], "frames": [3], "maps": [hot], "quads": [quad.ravel().tolist()]}}}}}}
    review = build_review(analysis, facepass=fp)
    grid, q = attention_at(review, 0, 3)
    assert grid.shape == (2, 4) and np.allclose(q, quad)
    assert attention_at(review, 0, 4) is None  # no map stored for that frame: nothing drawn, nothing computed
    rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
    img = _qimage_rgb(render_frame(rgb, review, 3, ("attention",))).astype(int)
    red = img[..., 0] > 60
    ys, xs = np.nonzero(red)
    # the hot cell is the crop's 2nd quarter from the left, lower half: between the eyes' left part and the crop's bottom
    cx0, cx1 = quad[0, 0] + (quad[1, 0] - quad[0, 0]) * 0.25, quad[0, 0] + (quad[1, 0] - quad[0, 0]) * 0.5
    cy0, cy1 = (quad[0, 1] + quad[3, 1]) / 2, quad[3, 1]
    assert red.any() and xs.min() >= cx0 - 2 and xs.max() <= cx1 + 2 and ys.min() >= cy0 - 2 and ys.max() <= cy1 + 2
    assert np.array_equal(_qimage_rgb(render_frame(rgb, review, 4, ("attention",))), rgb)
