"""`verity train vivit` -> model -> `verity analyze` -> `verity eval vivit`, end to end on CPU.

This proves the COMMANDS on real footage (face pass, eye crops, hand and weak labels, split by
clip, checkpoint and resume, registration, evaluation beside EAR), not accuracy: two 3-second GRID
clips and two epochs train nothing useful. tests/bench/vivit_blink.py measures accuracy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import core.detectors.vivit_blink as vd
from core.cli import main

pytestmark = [pytest.mark.media, pytest.mark.slow]
TRAIN = ["grid_bbaf2n.mpg", "grid_brbk7n.mpg"]
TEST = "grid_lbax4n.mpg"


@pytest.fixture
def labels(media: Path, tmp_path: Path) -> Path:
    d = tmp_path / "labels"
    d.mkdir()
    for name in [*TRAIN, TEST]:
        shutil.copy(media / "labels" / f"{name}.json", d)
    return d


def test_train_resume_analyze_eval(labels: Path, media: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from core.pipeline import AnalysisOptions, analyze
    from core.weights import file_sha256, status

    weak = tmp_path / "weak"
    weak.mkdir()
    (weak / "grid_id2_swwp2s.mpg").symlink_to(media / "real" / "grid_id2_swwp2s.mpg")  # no hand labels here: weak labels
    run = tmp_path / "run"
    args = ["train", "vivit", "--labels", str(labels), "--media-root", str(media), "--weak", str(weak), "--holdout", TEST,
            "--out", str(run), "--epochs", "2", "--threads", "1", "--stride", "4", "--val-fraction", "0"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "hand_clips 2, weak_clips 1" in err and "train_weak_blink" in err
    model = run / f"{vd.WEIGHTS}.safetensors"
    summary = json.loads((run / "summary.json").read_text())
    st = status(vd.WEIGHTS)
    assert st.ok and st.sha256 == summary["sha256"] == file_sha256(model)

    assert main([*args[:-8], "--epochs", "3", "--threads", "1", "--stride", "4", "--val-fraction", "0", "--resume"]) == 0
    assert "resuming after epoch 2" in capsys.readouterr().err
    from core.weights import load_state_dict

    _, meta = load_state_dict(status(vd.WEIGHTS).path)
    assert [h["epoch"] for h in meta["training"]["history"]] == [0, 1, 2]
    assert meta["training_data"]["weak_clips"] == 1 and meta["config"]["num_frames"] == 16
    assert TEST not in meta["training_data"]["clip_sha256"]

    vd._MODEL.clear()
    result = analyze(media / "real" / TEST, AnalysisOptions(detectors=[vd.NAME]))
    r = result["detectors"][vd.NAME]
    assert r["status"] == "ok" and r["weights_sha256"] == {vd.WEIGHTS: status(vd.WEIGHTS).sha256}
    face = result["faces"][0]
    sal = r["curves"][f"ViViT temporal saliency (track {face['track_id']})"]
    assert len(sal["values"]) == face["frames_with_face"] == len(sal["frames"])

    out = tmp_path / "eval"
    assert main(["eval", "vivit", "--labels", str(labels), "--media-root", str(media), "--threads", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "vivit" in text and "ear" in text and "left out" in text  # the two training clips are not scored
    report = json.loads((out / "eval.json").read_text())
    assert [c["clip"] for c in report["per_clip"]] == [TEST] and sorted(report["skipped_training_clips"]) == sorted(TRAIN)
    assert report["summary"]["ear"]["events"]["tp"] >= 1 and report["summary"]["windows"] > 0
