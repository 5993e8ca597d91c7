"""`verity train eyeblink` -> head -> `verity analyze` -> `verity eval eyeblink`, end to end on CPU.

This proves the PIPELINE, not accuracy: there are no ImageNet Xception weights on this machine,
so the backbone is a randomly initialised legacy_xception saved to a temporary file and passed
with --backbone (its sha256 is recorded and registered like a real one). Four short clips of
../shared/media (2 real, 2 fake), 96 px crops and 4-frame sequences keep it to about a minute.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import core.detectors.eyeblink_cnn_lstm as eb
from core.cli import main

REAL = ["grid_bbaf2n.mpg", "grid_id2_swwp2s.mpg"]
FAKE = ["sadtalker_art2_rdradio31.mp4", "sadtalker_art0_japanese.mp4"]
pytestmark = [pytest.mark.media, pytest.mark.slow]


@pytest.fixture
def data_dir(media: Path, tmp_path: Path) -> Path:
    """DIR/real and DIR/fake as symlinks to the media clips (never copies)."""
    root = tmp_path / "data"
    for sub, names in (("real", REAL), ("fake", FAKE)):
        (root / sub).mkdir(parents=True)
        for n in names:
            (root / sub / n).symlink_to(media / sub / n)
    return root


@pytest.fixture
def random_backbone(tmp_path: Path) -> Path:
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model("legacy_xception", pretrained=False)
    path = tmp_path / "random_legacy_xception.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_train_head_then_analyze_and_eval(data_dir: Path, random_backbone: Path, media: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from core.pipeline import AnalysisOptions, analyze
    from core.weights import file_sha256, status

    # without a backbone the command refuses, with the reason
    assert main(["train", "eyeblink", "--data", str(data_dir), "--out", str(tmp_path / "none")]) == 2
    assert eb.BACKBONE_WEIGHTS in capsys.readouterr().err

    run = tmp_path / "run"
    args = ["train", "eyeblink", "--data", str(data_dir), "--backbone", str(random_backbone), "--out", str(run),
            "--input-size", "96", "--sequence-length", "4", "--epochs", "3", "--val-fraction", "0.5"]
    assert main(args) == 0
    head = run / f"{eb.HEAD_WEIGHTS}.safetensors"
    summary = json.loads((run / "summary.json").read_text())
    st = status(eb.HEAD_WEIGHTS)
    assert st.ok and st.path == head.resolve() and st.sha256 == summary["sha256"] == file_sha256(head)
    assert status(eb.BACKBONE_WEIGHTS).sha256 == file_sha256(random_backbone)
    assert summary["metrics"]["validation_videos"]["n"] == 2  # one real and one fake video held out

    # resume: continues after the last epoch instead of starting over
    capsys.readouterr()
    assert main([*args[:-4], "--epochs", "5", "--val-fraction", "0.5", "--resume"]) == 0
    assert "resuming after epoch 3" in capsys.readouterr().err
    from core.weights import load_state_dict

    _, meta = load_state_dict(status(eb.HEAD_WEIGHTS).path)
    assert [h["epoch"] for h in meta["training"]["history"]] == [0, 1, 2, 3, 4]
    assert meta["backbone"]["sha256"] == file_sha256(random_backbone)
    assert meta["preprocessing"]["input_size"] == 96 and meta["preprocessing"]["sequence_length"] == 4

    # the registered head now scores in analysis
    result = analyze(media / "real" / REAL[0], AnalysisOptions(detectors=[eb.NAME]))
    r = result["detectors"][eb.NAME]
    assert r["status"] == "ok", r["note"]
    assert r["weights_sha256"][eb.HEAD_WEIGHTS] == status(eb.HEAD_WEIGHTS).sha256
    assert r["metrics"]["blink_sequences_found"] == len(r["frame_predictions"]) > 0
    assert r["prediction"] in ("REAL", "FAKE") and r["assessment"] in ("consistent", "inconsistent", "inconclusive")

    # evaluation prints the metrics and writes the plots
    capsys.readouterr()
    out = tmp_path / "eval"
    assert main(["eval", "eyeblink", "--data", str(data_dir), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for word in ("ACC", "ROC-AUC", "AP", "EER", "confusion matrix"):
        assert word in text
    report = json.loads((out / "eval.json").read_text())
    assert report["videos"]["n"] == 4 and report["head_sha256"] == status(eb.HEAD_WEIGHTS).sha256
    assert {Path(p).name for p in report["plots"]} >= {"eyeblink_video_roc.png", "eyeblink_video_pr.png"}
    assert all(Path(p).stat().st_size > 1000 for p in report["plots"])
