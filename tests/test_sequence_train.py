"""`verity train seq` / `verity eval seq` and the `sequence_cnn` detector on synthetic clips.

Tiny crops (32 px) and 4-frame windows keep each run to a few seconds: these prove the pipeline
(checkpoints, resume, logs, curves, metadata, registration, detector, Grad-CAM store), not accuracy.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from core.cli import main
from core.detectors import sequence_model as sc
from core.train.seq_data import list_inputs, prepare
from tests import seqfake


@pytest.fixture
def prepared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = seqfake.make_dataset_dir(tmp_path / "data", per_class=3)
    seqfake.patch_facepass(monkeypatch)
    out = tmp_path / "prepared"
    prepare(list_inputs(root, test_fraction=0.34, seed=0), out, sc.SeqPreprocessing(size=32, input_size=32, fps=0.0))
    return out


def _train(prepared: Path, out: Path, arch: str, *extra: str) -> int:
    return main(["train", "seq", "--data", str(prepared), "--arch", arch, "--out", str(out), "--sequence-length", "4",
                 "--batch-size", "2", "--windows-per-video", "1", "--val-windows", "1", "--val-fraction", "0.5", *extra])


def test_train_resume_eval_then_detect(prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from core.weights import file_sha256, status

    run = tmp_path / "run"
    assert _train(prepared, run, "cnn_bilstm", "--epochs", "1") == 0
    ckpt = run / "sequence_cnn_cnn_bilstm.safetensors"
    rows = list(csv.DictReader(open(run / "history.csv")))
    assert [r["epoch"] for r in rows] == ["0"] and float(rows[0]["clips_per_s"]) > 0
    assert (run / "curves.png").stat().st_size > 1000 and (run / "checkpoint_last.pt.sha256").is_file()
    # resume: continues after epoch 0, same settings required
    assert _train(prepared, run, "cnn_bilstm", "--epochs", "2", "--resume") == 0
    assert "resuming after epoch 1" in capsys.readouterr().err
    assert [r["epoch"] for r in csv.DictReader(open(run / "history.csv"))] == ["0", "1"]
    assert _train(prepared, run, "cnn_bilstm", "--epochs", "3", "--resume", "--lr", "0.5") == 2
    assert "other data or settings" in capsys.readouterr().err

    from core.weights import load_state_dict

    _, meta = load_state_dict(ckpt)
    assert meta["format"] == sc.FORMAT and meta["architecture"]["arch"] == "cnn_bilstm"
    assert meta["preprocessing"]["sequence_length"] == 4 and meta["preprocessing"]["normalisation"] == "0_1"
    assert meta["backbone"]["init"].startswith("random")
    td = meta["training_data"]
    assert (td["real_videos"], td["fake_videos"], td["val_videos"]) == (2, 2, 2) and "not to make a detector" in td["note"]
    assert len(meta["training"]["history"]) == 2 and meta["metrics"]["validation_videos"]["n"] == 2
    assert status(sc.LOCAL_WEIGHTS).ok and status(sc.LOCAL_WEIGHTS).sha256 == file_sha256(ckpt)  # registered

    ev = tmp_path / "eval"
    assert main(["eval", "seq", "--data", str(prepared), "--checkpoint", str(ckpt), "--sha256", file_sha256(ckpt), "--out", str(ev)]) == 0
    out = capsys.readouterr().out
    assert "per video: n=2 (real 1, fake 1)" in out and "EER" in out and "per-class accuracy" in out
    report = json.loads((ev / "eval.json").read_text())
    assert report["videos"]["n"] == 2 and report["windows"]["n"] >= 2 and report["weights_sha256"] == file_sha256(ckpt)
    assert all(Path(p).is_file() for p in report["plots"]) and len(report["plots"]) == 6

    _detect(prepared, tmp_path, ckpt)


def _detect(prepared: Path, tmp_path: Path, ckpt: Path) -> None:
    """The registered checkpoint in the detector: windows, scores, segments, provenance, Grad-CAM store."""
    from core.detectors import get
    from core.detectors.base import AnalysisContext
    from core.evidence import probe, sha256_file
    from core.heatmaps import HeatmapStore
    from core.weights import file_sha256

    video = sorted((prepared.parent / "data" / "fake").glob("*.mp4"))[0]
    fp = seqfake.facepass_for(12)
    sha = sha256_file(video)
    ctx = AnalysisContext(path=video, evidence=probe(video), sha256=sha, facepass=fp, blinks={},
                          parameters={sc.NAME: {"threshold": 0.0}}, work_dir=tmp_path / "work")  # every window flagged
    res = get(sc.NAME)(ctx)
    assert res.status == "ok", res.note
    assert res.frames_analyzed == 12 and len(res.frame_predictions) == 5  # starts 0, 2, 4, 6, 8 (stride 2, length 4)
    assert [p["frames"] for p in res.frame_predictions][:2] == [[0, 1, 2, 3], [2, 3, 4, 5]]
    assert all(0.0 <= p["score"] <= 1.0 for p in res.frame_predictions)
    assert len(res.segments) == 1 and (res.segments[0].start_frame, res.segments[0].end_frame) == (0, 11)
    assert res.assessment == "inconclusive" and "fewer than 50 per class" in res.note  # trained on 4 videos: no reading
    assert res.metrics["weights_provenance"]["training_data"]["videos"] == 4
    assert res.weights_sha256 == {sc.LOCAL_WEIGHTS: file_sha256(ckpt)} and res.parameters["weights_entry"] == sc.LOCAL_WEIGHTS
    g = res.metrics["gradcam"]
    assert Path(res.visualization_path) == Path(g["path"]) and g["windows"] == 5
    store = HeatmapStore.load(g["path"], expected_sha256=g["sha256"])
    assert len(store) == g["maps"] == 5 * 4 and store.maps.shape[1:] == (56, 56)  # 4 frames per flagged window
    assert store.maps.dtype == np.uint8 and store.affine.shape == (len(store), 2, 3) and store.meta["evidence_sha256"] == sha
    assert set(store.frame.tolist()) == set(range(12)) and "manipulated" in store.meta["target"]
    hit = store.at(5)
    assert len(hit) == 1 and store.window_start[hit[0]] <= 5 <= store.window_end[hit[0]]
    with pytest.raises(ValueError, match="changed"):
        HeatmapStore.load(g["path"], expected_sha256="0" * 64)


def test_mobilenet_single_logit_layout_trains(prepared: Path, tmp_path: Path) -> None:
    """seed 001's cnn_lstm.py layout (one logit, binary cross-entropy), from scratch, not registered."""
    from core.weights import load_state_dict, status

    run = tmp_path / "mob"
    assert _train(prepared, run, "mobilenet_lstm", "--layout", "cnn_lstm_detector", "--epochs", "1", "--backbone", "none", "--no-register") == 0
    _, meta = load_state_dict(run / "sequence_cnn_mobilenet_lstm.safetensors")
    assert meta["architecture"] == {"arch": "mobilenet_lstm", "layout": "cnn_lstm_detector", "parameters": 5_374_209}
    assert meta["backbone"]["init"] == "random: trained from scratch (--backbone none)" and meta["preprocessing"]["normalisation"] == "imagenet"
    assert not status(sc.LOCAL_WEIGHTS).ok  # --no-register
    loaded = sc.load_model(path=run / "sequence_cnn_mobilenet_lstm.safetensors", device="cpu")
    assert loaded.model.manipulated_index == 0 and loaded.prep.sequence_length == 4


def test_detector_unavailable_without_weights(tmp_path: Path) -> None:
    from core.detectors import get
    from core.detectors.base import AnalysisContext
    from core.evidence import probe

    video = seqfake.make_dataset_dir(tmp_path / "d", per_class=1) / "real" / "real0.mp4"
    ctx = AnalysisContext(path=video, evidence=probe(video), sha256="0" * 64, facepass=seqfake.facepass_for(12), blinks={})
    res = get(sc.NAME)(ctx)
    assert res.status == "unavailable" and "no verified sequence-classifier weights" in res.note
    assert res.frame_predictions == [] and res.confidence is None
