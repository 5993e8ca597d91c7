"""LipFD end to end on the shared AVLips clips: train (tiny config) -> checkpoint -> registered ->
`verity eval` -> `analyze` scores with it; dataset layouts; no weights / no audio -> unavailable."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from core.train import lipfd as lipfd_train
from core.train.lipfd_data import discover, split
from tests.conftest import gradient_frames

TINY_ARGS = [
    "--arch", "tiny", "--clip-image-size", "32", "--crop-size", "32", "--frame-size", "64", "--n-extract", "1",
    "--batch-size", "4", "--clip-weights", "none", "--resnet-weights", "none", "--device", "cpu",
]


def _avlips_layout(media: Path, root: Path) -> Path:
    """AVLips folders made of symlinks to the shared clips (never copies)."""
    for label, src_dir, prefix in (("0_real", "real", "avlips_real"), ("1_fake", "fake", "avlips_fake")):
        (root / label).mkdir(parents=True)
        (root / "wav" / label).mkdir(parents=True)
        for k in range(3):
            (root / label / f"{k}.mp4").symlink_to(media / src_dir / f"{prefix}_{k}.mp4")
            (root / "wav" / label / f"{k}.wav").symlink_to(media / src_dir / f"{prefix}_{k}.wav")
    return root


def _parse(add, argv: list[str]) -> argparse.Namespace:  # type: ignore[no-untyped-def]
    p = argparse.ArgumentParser()
    add(p)
    return p.parse_args(argv)


def test_discover_layouts(tmp_path: Path) -> None:
    avl = tmp_path / "AVLips"
    for d in ("0_real", "1_fake", "wav/0_real"):
        (avl / d).mkdir(parents=True)
    for d in ("0_real", "1_fake"):
        for k in range(2):
            (avl / d / f"{k}.mp4").write_bytes(b"x")
    (avl / "wav" / "0_real" / "0.wav").write_bytes(b"x")
    clips = discover(avl)
    assert [(c.video.parent.name, c.label) for c in clips] == [("0_real", 0)] * 2 + [("1_fake", 1)] * 2
    plain = tmp_path / "plain"
    (plain / "real").mkdir(parents=True)
    (plain / "fake").mkdir()
    (plain / "real" / "a.mp4").write_bytes(b"x")
    (plain / "real" / "a.wav").write_bytes(b"x")
    (plain / "fake" / "b.mkv").write_bytes(b"x")
    clips = discover(plain)
    assert [(c.video.name, c.label) for c in clips] == [("a.mp4", 0), ("b.mkv", 1)]
    tr, va = split(discover(avl), 0.5)
    assert {c.label for c in va} == {0, 1} and not {c.video for c in tr} & {c.video for c in va}


@pytest.mark.parametrize("mode", ["verity", "upstream"])
def test_trainer_reads_the_audio_the_detector_reads(mode: str, tmp_path: Path, make_video) -> None:  # type: ignore[no-untyped-def]
    """A .wav beside the clip (AVLips ships them) is not what evidence has: training windows come
    from the container's track, exactly as the detector builds them."""
    import cv2
    import soundfile as sf

    from core.audio import AudioTrack
    from core.detectors.lipfd_input import LipFDPreprocessing, clip_audio, clip_windows, upstream_preprocessing
    from core.train.lipfd_data import build_windows

    rng = np.random.default_rng(1)
    t = np.arange(3 * 16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 300 * t) * (t % 0.5 < 0.25)).astype(np.float32)  # bursts
    (tmp_path / "real").mkdir()
    video = make_video("real/talk.mp4", gradient_frames(75), audio=tone)
    other = (0.3 * rng.standard_normal(t.size)).astype(np.float32)
    sf.write(video.with_suffix(".wav"), other, 16000)  # other audio beside the clip
    shape = {"frame_size": 48, "n_extract": 3, "face_centred": False}
    prep = upstream_preprocessing(**shape) if mode == "upstream" else LipFDPreprocessing(**shape)
    clip = discover(video.parent.parent)[0]
    paths, note = build_windows(clip, prep, tmp_path / "cache")
    assert len(paths) == 3, note
    ref = clip_windows(video, clip_audio(video, prep), None, prep)
    from_wav = clip_windows(video, AudioTrack(other, 16000, 0.0), None, LipFDPreprocessing(**{**prep.to_dict(), "audio_sample_rate": 16000}))
    for p, w, w_wav in zip(paths, ref.windows, from_wav.windows):
        cached = cv2.imread(str(p))[:, :, ::-1]
        assert np.array_equal(cached, w.composite)  # mel half included: the container's audio...
        assert np.abs(cached[:48].astype(int) - w_wav.composite[:48]).mean() > 5  # ...not the .wav's


def test_no_weights_is_unavailable(make_video) -> None:  # type: ignore[no-untyped-def]
    from core.pipeline import AnalysisOptions, analyze

    path = make_video("talk.mp4", gradient_frames(30), audio=np.zeros(16000, np.float32))
    res = analyze(path, AnalysisOptions(detectors=["lipfd"]))["detectors"]["lipfd"]
    assert res["status"] == "unavailable"
    assert "no verified LipFD weights" in res["note"] and "lipfd_ckpt" in res["note"]
    assert res["prediction"] is None and not res["frame_predictions"]


@pytest.mark.media
@pytest.mark.slow
def test_train_checkpoint_eval_analyze(media: Path, tmp_path: Path, make_video, capsys) -> None:  # type: ignore[no-untyped-def]
    from core.pipeline import AnalysisOptions, analyze
    from core.weights import load_state_dict, status

    data = _avlips_layout(media, tmp_path / "AVLips")
    run = tmp_path / "run"
    args = _parse(lipfd_train.add_train_args, [str(data), "--out", str(run), "--cache", str(tmp_path / "cache"), "--epochs", "1", "--val-fraction", "0.34", *TINY_ARGS])
    assert lipfd_train.train(args) == 0
    summary = json.loads((run / "summary.json").read_text())
    st = status("lipfd_local")
    assert st.ok and st.sha256 == summary["sha256"]
    _, meta = load_state_dict("lipfd_local")
    assert meta["preprocessing"]["audio_sample_rate"] == 16000 and meta["preprocessing"]["colour_order"] == "RGB"
    assert meta["preprocessing"]["face_centred"] is True and meta["preprocessing"]["mode"] == "verity"
    assert meta["architecture"]["clip_model"] == "tiny"
    assert meta["initialisation"]["clip"]["source"] is None  # says it started from random weights
    assert len(meta["training_data"]["train"]) == 4 and len(meta["training_data"]["validation"]) == 2
    assert any((tmp_path / "cache").rglob("w00_*.png"))  # preprocessing cached

    # resume: one more epoch from last.pt
    args = _parse(lipfd_train.add_train_args, [str(data), "--out", str(run), "--cache", str(tmp_path / "cache"), "--epochs", "2", "--resume", "--val-fraction", "0.34", *TINY_ARGS])
    assert lipfd_train.train(args) == 0
    hist = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [1, 2]
    assert "resumed" in capsys.readouterr().out
    summary = json.loads((run / "summary.json").read_text())
    assert status("lipfd_local").sha256 == summary["sha256"]

    # evaluation: metrics and plots
    ev = _parse(lipfd_train.add_eval_args, [str(data), "--weights", "lipfd_local", "--out", str(tmp_path / "eval"), "--cache", str(tmp_path / "cache"), "--device", "cpu"])
    assert lipfd_train.evaluate(ev) == 0
    rep = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert rep["clips"]["n"] == 6 and {"acc", "ap", "roc_auc", "eer", "fpr", "fnr"} <= set(rep["clips"])
    assert len(rep["plots"]) == 2 and all(Path(p).is_file() for p in rep["plots"])

    # the registered checkpoint is what analysis uses
    out = analyze(media / "fake" / "avlips_fake_1.mp4", AnalysisOptions(detectors=["lipfd"], detector_params={"lipfd": {"n_extract": 4}}))
    res = out["detectors"]["lipfd"]
    assert res["status"] == "ok", res["note"]
    assert res["prediction"] in ("REAL", "FAKE") and res["frames_analyzed"] == 4
    scores = res["metrics"]["window_scores"]
    assert len(scores) == 4 and all(0.0 <= s <= 1.0 for s in scores)
    assert res["metrics"]["final_average_score"] == pytest.approx(float(np.mean(scores)), abs=1e-5)
    assert [p["index"] for p in res["frame_predictions"]] == [0, 1, 2, 3]
    assert res["frame_predictions"][0]["start_frame"] == 0 and res["frame_predictions"][-1]["end_frame"] == 176 - 2
    assert res["weights_sha256"] == {"lipfd_local": summary["sha256"]}
    assert all(p["face_centred"] for p in res["frame_predictions"])

    # no face at all: the card's whole-frame pipeline, and the note says so
    rng = np.random.default_rng(0)
    noface = make_video("noface.mp4", gradient_frames(40), audio=(0.1 * rng.standard_normal(2 * 16000)).astype(np.float32))
    res = analyze(noface, AnalysisOptions(detectors=["lipfd"], detector_params={"lipfd": {"n_extract": 2}}))["detectors"]["lipfd"]
    assert res["status"] == "ok" and res["frames_analyzed"] == 2
    assert not any(p["face_centred"] for p in res["frame_predictions"]) and "without a tracked face" in res["note"]

    # no audio -> the card's error as `unavailable`
    silent = make_video("no_audio.mp4", gradient_frames(30))
    res = analyze(silent, AnalysisOptions(detectors=["lipfd"]))["detectors"]["lipfd"]
    assert res["status"] == "unavailable" and "requires audio track" in res["note"]
