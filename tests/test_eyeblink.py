"""EyeBlink-CNN-LSTM: model shapes and sizes, score direction, blink windows, eye crops, the
insufficient-blinks path, and refusal of bad weights. Tiny inputs (64 px crops) keep it fast."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import core.detectors.eyeblink_cnn_lstm as eb
from core.detectors.base import AnalysisContext
from core.evidence import probe, sha256_file
from core.face.facepass import FacePass, FaceTrack
from core.models.eyeblink_cnn_lstm import EyeBlinkCNNLSTM, EyeBlinkHead, XceptionFeatures, count_parameters
from core.signals.blinks import BlinkEvent

SIZE = 64  # crop size for tests (the real default is timm's 299)


@pytest.fixture(scope="module")
def backbone() -> XceptionFeatures:
    torch.manual_seed(0)
    return XceptionFeatures()  # random init: shapes only, never a verdict


@pytest.fixture(scope="module")
def xception_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised legacy_xception saved as timm would ship it (full model, with fc)."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(1)
    full = timm.create_model("legacy_xception", pretrained=False)
    path = tmp_path_factory.mktemp("xception") / "random_legacy_xception.safetensors"
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, str(path))
    return path


# ---------------------------------------------------------------------------------------------
# model


def test_head_shapes_and_parameter_count() -> None:
    head = EyeBlinkHead()
    logits = head(torch.randn(3, 5, 2048))
    assert logits.shape == (3,)
    i, h = 2048, 128
    lstm = 4 * h * (i + h) + 2 * 4 * h  # four gates: input and recurrent weights, two biases
    assert count_parameters(head.lstm) == lstm
    assert count_parameters(head.fc) == h + 1  # the card's "~129"
    n = count_parameters(head, trainable_only=True)
    assert n == lstm + h + 1 == 1_115_265
    assert 1.0e6 < n < 1.2e6  # the card's "~1.1M trainable"
    assert not head.lstm.bidirectional and head.lstm.num_layers == 1 and head.lstm.batch_first
    assert head.dropout.p == pytest.approx(0.3)
    p = head.eval().p_real(torch.randn(2, 4, 2048))
    assert p.shape == (2,) and bool(((p > 0) & (p < 1)).all())


def test_backbone_frozen_shapes_and_size(backbone: XceptionFeatures) -> None:
    feats = backbone(torch.randn(2, 3, SIZE, SIZE))
    assert feats.shape == (2, 2048)
    assert count_parameters(backbone, trainable_only=True) == 0
    n = count_parameters(backbone)
    assert 20e6 < n < 23e6  # card: ~22M for Xception (timm counts 22.9M with the ImageNet fc, dropped here)
    assert backbone.data_config["input_size"] == (3, 299, 299)
    backbone.train()
    assert not backbone.body.training  # stays in eval mode: frozen batch-norm statistics


def test_full_model_forward(backbone: XceptionFeatures) -> None:
    model = EyeBlinkCNNLSTM(backbone, EyeBlinkHead())
    assert model(torch.randn(2, 2, 3, SIZE, SIZE)).shape == (2,)
    assert count_parameters(model, trainable_only=True) == count_parameters(model.head)


def test_backbone_loads_local_file_without_download(xception_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import timm.models._builder as builder
    from safetensors.torch import load_file

    def no_network(*a: object, **k: object) -> None:
        raise AssertionError("tried to download")

    monkeypatch.setattr(builder, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(builder, "load_state_dict_from_hf", no_network)
    saved = load_file(str(xception_file))
    by_file = XceptionFeatures(xception_file)  # pretrained_cfg_overlay=dict(file=...)
    by_dict = XceptionFeatures(saved)  # pretrained_cfg_overlay=dict(state_dict=...)
    for model in (by_file, by_dict):
        sd = model.body.state_dict()
        conv1 = next(v for k, v in sd.items() if k.endswith("conv1.weight"))
        assert torch.equal(conv1, saved["conv1.weight"])
        last = next(v for k, v in sd.items() if k.endswith("bn4.running_var"))
        assert torch.equal(last, saved["bn4.running_var"])


# ---------------------------------------------------------------------------------------------
# score direction


def _head_saying(p_real: float) -> EyeBlinkHead:
    head = EyeBlinkHead()
    with torch.no_grad():
        head.fc.weight.zero_()
        head.fc.bias.fill_(math.log(p_real / (1 - p_real)))
    return head.eval()


def test_inversion_direction() -> None:
    assert eb.manipulation_score(0.9) == pytest.approx(0.1)
    x = np.random.default_rng(0).normal(size=(4, 3, 2048)).astype(np.float32)
    for p_real in (0.95, 0.1):
        model = eb.LoadedModel(backbone=None, head=_head_saying(p_real), prep=eb.Preprocessing(), head_sha256="h", backbone_sha256="b")  # type: ignore[arg-type]
        scores = eb.score_sequences(model, x)
        # the card's network says "real" with p_real; Verity's score is P(manipulated)
        assert scores == pytest.approx(np.full(4, 1 - p_real), abs=1e-5)


# ---------------------------------------------------------------------------------------------
# blink windows and crops


def _ev(s: int, e: int) -> BlinkEvent:
    return BlinkEvent(s, (s + e) // 2, e, (e - s + 1) / 25, 0.1, True, True)


def test_short_blink_is_centred_with_neighbouring_frames() -> None:
    w, found = eb.blink_windows(np.arange(100), [_ev(40, 42)], sequence_length=8)
    assert found == 3 and len(w) == 1
    assert w[0].frames == list(range(38, 46))  # 2 frames before, the 3 blink frames, 3 after


def test_long_blink_is_split_covering_every_frame() -> None:
    w, found = eb.blink_windows(np.arange(100), [_ev(10, 29)], sequence_length=8)
    assert found == 20 and len(w) == math.ceil(20 / 8)
    covered = set().union(*(x.frames for x in w))
    assert covered == set(range(10, 30))
    assert all(len(x.frames) == 8 and x.frames == list(range(x.frames[0], x.frames[0] + 8)) for x in w)


def test_window_at_track_edge_repeats_the_edge_frame() -> None:
    frames = np.arange(5, 12)  # the face is seen only in frames 5..11
    w, _ = eb.blink_windows(frames, [_ev(9, 11)], sequence_length=10)
    assert len(w[0].frames) == 10
    assert set(w[0].frames) <= set(frames.tolist())
    assert w[0].frames == sorted(w[0].frames)
    # a gap in the track is not bridged
    gappy = np.array([0, 1, 2, 3, 10, 11, 12, 13, 14])
    w, _ = eb.blink_windows(gappy, [_ev(11, 12)], sequence_length=4)
    assert set(w[0].frames) <= {10, 11, 12, 13, 14}


def test_frame_skip_samples_like_the_card() -> None:
    ev = [_ev(12, 25)]
    w1, found1 = eb.blink_windows(np.arange(100), ev, 4, frame_skip=1)
    w10, found10 = eb.blink_windows(np.arange(100), ev, 4, frame_skip=10)
    assert found1 == 14 and found10 == 1  # only frame 20 of this blink is on the card's grid
    assert all(f % 10 == 0 for f in w10[0].frames)


def test_sequences_never_hold_unassessable_frames() -> None:
    frames = np.arange(100)
    ok = np.ones(100, bool)
    ok[30:40] = False  # e.g. the head turned away
    ev = [_ev(41, 43), _ev(60, 62), _ev(36, 38)]  # just after the turn, clear of it, inside it (unmasked events)
    w, found = eb.blink_windows(frames, ev, sequence_length=10, assessable=ok)
    assert found == 6 and [x.blink_index for x in w] == [0, 1]  # the event inside the turn is skipped
    for x in w:
        assert all(ok[f] for f in x.frames) and len(x.frames) == 10
    assert min(w[0].frames) >= 40  # padding stops at the turn: the window shifts right instead
    assert w[1].frames == list(range(57, 67))  # away from the turn: centred as before (3 before, 4 after)
    # without the mask the first window would have pulled in frames 37-39
    w0, _ = eb.blink_windows(frames, ev[:1], sequence_length=10)
    assert min(w0[0].frames) < 40
    # a short assessable run: the edge frame repeats rather than crossing into unassessable frames
    ok2 = np.zeros(100, bool)
    ok2[50:54] = True
    (x,), _ = eb.blink_windows(frames, [_ev(51, 52)], 8, assessable=ok2)
    assert set(x.frames) <= {50, 51, 52, 53} and len(x.frames) == 8
    # with the card's sampling too
    w10, _ = eb.blink_windows(frames, [_ev(58, 62)], 4, frame_skip=10, assessable=ok)
    assert all(ok[f] and f % 10 == 0 for f in w10[0].frames) and 30 not in w10[0].frames
    with pytest.raises(ValueError):
        eb.blink_windows(frames, ev, 4, assessable=ok[:50])


def test_windows_for_uses_the_mask_and_checks_tracks_without_one() -> None:
    from tests.factories import FPS, SIZE, blink_ear, track

    n = 200
    yaw = np.zeros(n)
    yaw[70:130] = 35.0
    t = track(yaw, blink_ear(n, [30, 100, 160]))
    fp = FacePass(n, FPS, np.arange(n) / FPS, SIZE, SIZE, [t])
    from core.signals.blinks import detect_blinks
    from core.signals.eyes import track_blinks

    unmasked = detect_blinks(t.frames, t.ear, FPS)[0]
    events, _, check = track_blinks(t, SIZE, SIZE, FPS)
    prep = eb.Preprocessing(sequence_length=16)
    for blinks, mask in (({0: events}, {0: check.assessable}), ({0: unmasked}, None)):  # the pipeline's, or a mask computed here
        w, _ = eb.windows_for(fp, blinks, prep, assessable=mask)
        assert len(w) == 2 and all(check.assessable[f] for x in w for f in x.frames)


def _landmarks(n: int, cx: float = 64.0, cy: float = 56.0, span: float = 40.0, angle: float = 0.0) -> np.ndarray:
    """68 points with eyes (36-47) placed around (cx, cy), tilted by angle; the rest below."""
    lm = np.zeros((n, 68, 2), np.float32)
    base = np.zeros((68, 2))
    base[:, 0], base[:, 1] = cx, cy + 30
    # jaw ends and nose tip of a frontal face: the eyes-assessable check reads the head's yaw there
    base[0], base[16], base[30] = (cx - span / 2 - 5, cy + 5), (cx + span / 2 + 5, cy + 5), (cx, cy + 15)
    xs = np.linspace(-span / 2, -span / 8, 4)
    eye_l = [(xs[0], 0), (xs[1], -3), (xs[2], -3), (xs[3], 0), (xs[2], 3), (xs[1], 3)]
    eye_r = [(-xs[3], 0), (-xs[2], -3), (-xs[1], -3), (-xs[0], 0), (-xs[1], 3), (-xs[2], 3)]
    c, s = math.cos(angle), math.sin(angle)
    for k, (x, y) in enumerate(eye_l + eye_r):
        base[36 + k] = (cx + c * x - s * y, cy + s * x + c * y)
    lm[:] = base
    return lm


def test_eye_crop_is_centred_and_levelled() -> None:
    for angle in (0.0, 0.3):
        lm = _landmarks(1, angle=angle)[0]
        m = eb.eye_crop_transform(lm, SIZE, 0.15)
        pts = np.c_[lm[36:48], np.ones(12)] @ m.T
        centre = pts[[0, 3, 6, 9]].mean(axis=0)
        assert centre == pytest.approx([SIZE / 2, SIZE / 2], abs=1e-6)
        assert pts[0, 1] == pytest.approx(pts[9, 1], abs=1e-6)  # outer corners level after rotation
        span = pts[9, 0] - pts[0, 0]
        assert span == pytest.approx(SIZE / 1.3, rel=1e-6)  # side = span * (1 + 2 * margin)
    frame = np.full((128, 128, 3), 200, np.uint8)
    crop = eb.crop_eyes(frame, _landmarks(1, cx=5, cy=5)[0], SIZE, 0.15)  # eyes near the corner
    assert crop.shape == (SIZE, SIZE, 3) and crop.dtype == np.uint8
    assert (crop == 0).any() and (crop == 200).any()  # outside the frame is black, not an error


# ---------------------------------------------------------------------------------------------
# the detector on a synthetic clip, with a stand-in model (no weights files)


@pytest.fixture
def clip_ctx(make_video, tmp_path: Path):  # noqa: ANN201
    def make(events: list[BlinkEvent], n: int = 40) -> AnalysisContext:
        rng = np.random.default_rng(0)
        frames = [np.clip(rng.normal(120, 40, (128, 128, 3)), 0, 255).astype(np.uint8) for _ in range(n)]
        path = make_video("eyes.mp4", frames)
        track = FaceTrack(0, np.arange(n, dtype=np.int32), np.tile(np.float32([24, 20, 104, 120]), (n, 1)), _landmarks(n),
                          np.full((n, 2), 0.3, np.float32), np.zeros(n, np.float32), np.ones(n, bool))
        fp = FacePass(frame_count=n, fps=25.0, times_s=np.arange(n) / 25.0, width=128, height=128, tracks=[track])
        return AnalysisContext(path=path, evidence=probe(path), sha256=sha256_file(path), facepass=fp, blinks={0: events}, work_dir=tmp_path)

    return make


@pytest.fixture
def stand_in(backbone: XceptionFeatures, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    def use(p_real: float, sequence_length: int = 4) -> None:
        model = eb.LoadedModel(backbone, _head_saying(p_real), eb.Preprocessing(input_size=SIZE, sequence_length=sequence_length), "h" * 64, "b" * 64)
        monkeypatch.setattr(eb, "load_model", lambda *a, **k: model)

    return use


def test_detector_scores_and_inverts_once(clip_ctx, stand_in) -> None:  # noqa: ANN001
    ctx = clip_ctx([_ev(8, 10), _ev(20, 29)])
    stand_in(0.2)  # the head says "20 % real"
    r = eb.EyeBlinkCNNLSTM()(ctx)
    assert r.status == "ok", r.note
    assert r.prediction == "FAKE" and r.assessment == "inconsistent"
    assert r.metrics["blink_sequences_found"] == 1 + 3 == r.frames_analyzed == len(r.frame_predictions)
    assert r.metrics["suspicious_blink_sequences"] == 4
    assert r.metrics["average_blink_suspicion"] == pytest.approx(0.8, abs=1e-3)
    assert r.confidence == pytest.approx(0.8, abs=1e-3)
    assert [fp["index"] for fp in r.frame_predictions] == [0, 1, 2, 3]
    assert set(r.frame_predictions[0]) == {"index", "score", "prediction"}
    assert len(r.segments) == 4 and r.segments[0].start_frame <= 8 and r.segments[0].end_frame >= 10
    c = r.curves["eyeblink_sequence_score"]
    assert len(c["score"]) == 4 and c["start_frame"][1] >= 20
    assert r.weights_sha256 == {eb.HEAD_WEIGHTS: "h" * 64, eb.BACKBONE_WEIGHTS: "b" * 64}
    assert r.visualization_path is None
    d = r.to_dict()
    for k in ("prediction", "confidence", "processing_time", "note", "frame_count", "frames_analyzed", "frame_predictions", "metrics", "visualization_path"):
        assert k in d

    stand_in(0.9)
    r = eb.EyeBlinkCNNLSTM()(ctx)
    assert r.prediction == "REAL" and r.assessment == "consistent" and not r.segments
    assert r.confidence == pytest.approx(0.9, abs=1e-3)


def test_insufficient_blinks_is_inconclusive(clip_ctx, stand_in) -> None:  # noqa: ANN001
    stand_in(0.2, sequence_length=8)
    for events, found in (([], 0), ([_ev(10, 12)], 3)):  # none, or fewer blink frames than one sequence
        r = eb.EyeBlinkCNNLSTM()(clip_ctx(events))
        assert r.status == "ok"
        assert r.assessment == "inconclusive" and r.prediction == "inconclusive"
        assert r.confidence is None  # the card's 0.51 guess is not reported as a score
        assert r.note == f"Insufficient blinks detected ({found} frames found). Result is a low-confidence fallback."
        assert r.frames_analyzed == 0 and r.frame_predictions == [] and not r.segments
        assert r.metrics["blink_sequences_found"] == 0
        assert r.metrics["card_fallback"] == {"prediction": "REAL", "confidence": 0.51, "used": False}


def test_visualization_only_when_asked(clip_ctx, stand_in) -> None:  # noqa: ANN001
    import av

    stand_in(0.3)
    ctx = clip_ctx([_ev(8, 11)])
    ctx.parameters = {eb.NAME: {"visualize": True}}
    r = eb.EyeBlinkCNNLSTM()(ctx)
    assert r.visualization_path and Path(r.visualization_path).is_file()
    with av.open(r.visualization_path) as c:
        assert sum(1 for _ in c.decode(video=0)) == 4  # one sequence of 4 crops


# ---------------------------------------------------------------------------------------------
# weights: no head, bad hash, pickle payload, head from another backbone


def test_unavailable_without_head(clip_ctx) -> None:  # noqa: ANN001
    r = eb.EyeBlinkCNNLSTM()(clip_ctx([_ev(8, 11)]))
    assert r.status == "unavailable"
    assert eb.HEAD_WEIGHTS in r.note
    assert r.prediction is None and r.confidence is None and not r.frame_predictions


def _register_backbone(path: Path) -> str:
    from core.weights import register_local

    return register_local(eb.BACKBONE_WEIGHTS, path, detector=eb.NAME, kind="backbone").sha256 or ""


def _write_head(path: Path, backbone_sha: str) -> str:
    from core.weights import register_local, save_checkpoint

    torch.manual_seed(0)
    meta = {"format": eb.HEAD_FORMAT, "output": eb.OUTPUT_CONVENTION, "preprocessing": eb.Preprocessing(input_size=SIZE, sequence_length=4).to_dict(),
            "backbone": {"name": eb.BACKBONE_WEIGHTS, "sha256": backbone_sha}}
    sha = save_checkpoint(path, EyeBlinkHead().state_dict(), meta)
    register_local(eb.HEAD_WEIGHTS, path, detector=eb.NAME, kind="head", sha256=sha)
    return sha


def test_verified_weights_load_and_score(clip_ctx, xception_file: Path, tmp_path: Path) -> None:  # noqa: ANN001
    bb = _register_backbone(xception_file)
    head_sha = _write_head(tmp_path / "head.safetensors", bb)
    r = eb.EyeBlinkCNNLSTM()(clip_ctx([_ev(8, 11)]))
    assert r.status == "ok", r.note
    assert r.weights_sha256 == {eb.HEAD_WEIGHTS: head_sha, eb.BACKBONE_WEIGHTS: bb}
    assert r.parameters["preprocessing"]["input_size"] == SIZE
    assert 0.0 <= r.frame_predictions[0]["score"] <= 1.0


def test_head_with_flipped_byte_is_refused(clip_ctx, xception_file: Path, tmp_path: Path) -> None:  # noqa: ANN001
    bb = _register_backbone(xception_file)
    head = tmp_path / "head.safetensors"
    _write_head(head, bb)
    data = bytearray(head.read_bytes())
    data[-5] ^= 0xFF
    head.write_bytes(bytes(data))
    r = eb.EyeBlinkCNNLSTM()(clip_ctx([_ev(8, 11)]))
    assert r.status == "unavailable"
    assert "does not match" in r.note and eb.HEAD_WEIGHTS in r.note
    assert not r.frame_predictions


class _Payload:
    """Unpickling this would create a marker file: proof that code ran."""

    marker: Path

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))


def test_pickle_payload_head_is_refused_and_never_runs(clip_ctx, xception_file: Path, tmp_path: Path) -> None:  # noqa: ANN001
    from core.weights import register_local

    _register_backbone(xception_file)
    marker = tmp_path / "payload_ran"
    payload = _Payload()
    payload.marker = marker
    evil = tmp_path / "eyeblink_lstm_head.pt"
    with open(evil, "wb") as fh:
        pickle.dump({"lstm.weight_ih_l0": payload}, fh)
    register_local(eb.HEAD_WEIGHTS, evil, detector=eb.NAME, kind="head")  # its sha256 is right: the file itself is bad
    r = eb.EyeBlinkCNNLSTM()(clip_ctx([_ev(8, 11)]))
    assert r.status == "unavailable"
    assert "refused" in r.note or "weights-only" in r.note
    assert not marker.exists()


def test_head_from_another_backbone_is_refused(clip_ctx, xception_file: Path, tmp_path: Path) -> None:  # noqa: ANN001
    _register_backbone(xception_file)
    _write_head(tmp_path / "head.safetensors", "0" * 64)
    r = eb.EyeBlinkCNNLSTM()(clip_ctx([_ev(8, 11)]))
    assert r.status == "unavailable" and "backbone" in r.note


def test_resume_checkpoint_verified_before_loading(tmp_path: Path) -> None:
    from core.train.eyeblink import _load_training_checkpoint, _save_training_checkpoint
    from core.weights import WeightsError, file_sha256

    ckpt = tmp_path / "checkpoint_last.pt"
    _save_training_checkpoint(ckpt, {"epoch": 2, "head": EyeBlinkHead().state_dict(), "history": "[]"})
    assert _load_training_checkpoint(ckpt)["epoch"] == 2
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="does not match"):
        _load_training_checkpoint(ckpt)
    # a pickle payload with a matching .sha256 beside it: refused by weights_only, never run
    marker = tmp_path / "payload_ran"
    payload = _Payload()
    payload.marker = marker
    with open(ckpt, "wb") as fh:
        pickle.dump({"epoch": payload}, fh)
    ckpt.with_name(ckpt.name + ".sha256").write_text(file_sha256(ckpt))
    with pytest.raises(WeightsError, match="refused"):
        _load_training_checkpoint(ckpt)
    assert not marker.exists()
