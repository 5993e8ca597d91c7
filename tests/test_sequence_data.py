"""Dataset preparation for the sequence classifiers: eye alignment, frame sampling, windows,
corrupt videos, resumption, augmentation, and the evaluation metrics on a hand-made set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.detectors.sequence_cnn import Window, track_windows
from core.detectors.sequence_model import SeqPreprocessing
from core.face.align import CropSpec, crop_transform, sample_frames
from core.train.seq_data import Clip, SequenceDataset, augmentation, list_inputs, load_dataset, prepare
from tests import seqfake


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


@pytest.mark.parametrize("angle", [0.0, 20.0, -35.0])
def test_alignment_puts_the_eyes_level_where_asked(angle: float) -> None:
    spec = CropSpec(size=224, eye_distance=0.28, eye_y=0.4)
    lm = seqfake.face_landmarks(cx=300, cy=200, eye_gap=80, angle_deg=angle)
    m, aligned = crop_transform(lm, np.array([250, 150, 350, 280]), (640, 480), spec)
    assert aligned
    left, right = _apply(m, np.stack([lm[36:42].mean(0), lm[42:48].mean(0)]))
    assert left[1] == pytest.approx(0.4 * 224, abs=1e-6) and right[1] == pytest.approx(0.4 * 224, abs=1e-6)
    assert right[0] - left[0] == pytest.approx(0.28 * 224, abs=1e-6)
    assert (left[0] + right[0]) / 2 == pytest.approx(112, abs=1e-6)


def test_alignment_falls_back_to_a_plain_crop_and_says_so() -> None:
    spec = CropSpec(size=100, fallback_scale=1.0)
    box = np.array([10.0, 20.0, 60.0, 80.0])
    for lm in (seqfake.face_landmarks(eye_gap=2.0), seqfake.face_landmarks(angle_deg=70.0), np.full((68, 2), np.nan)):
        m, aligned = crop_transform(lm, box, (128, 128), spec)
        assert not aligned
        assert _apply(m, np.array([[35.0, 50.0]]))[0] == pytest.approx([50, 50])  # box centre -> crop centre
        assert m[0, 0] == pytest.approx(100 / 60)  # larger box side fills the crop, no rotation
    m, aligned = crop_transform(seqfake.face_landmarks(), box, (320, 160), CropSpec(input="frame", size=64))
    assert not aligned and _apply(m, np.array([[320.0, 160.0]]))[0] == pytest.approx([64, 64])


def test_sample_frames_follows_presentation_time() -> None:
    t = np.concatenate([np.arange(0, 1, 0.04), 1 + np.arange(0, 1, 0.02)])  # 25 fps, then 50 fps
    k = sample_frames(t, 5.0)
    assert np.allclose(np.diff(t[k]), 0.2, atol=0.021)
    assert k.size == 10 and sample_frames(t, 0).size == t.size


def test_track_windows_split_at_lost_faces_and_pad_short_runs() -> None:
    sampled = np.arange(0, 40, 2)  # every 2nd frame sampled
    track = seqfake.facepass_for(40, gap=(17, 21)).tracks[0]  # face lost on frames 17-21 (samples 18, 20)
    ws = track_windows(track, sampled, length=4, stride=2, min_frames=2)
    assert all(len(w.frames) == 4 for w in ws)
    assert [w.frames for w in ws[:4]] == [[0, 2, 4, 6], [4, 6, 8, 10], [8, 10, 12, 14], [10, 12, 14, 16]]  # last start covers the run's end
    assert not any(18 in w.frames or 20 in w.frames for w in ws)
    assert all(np.all(np.diff(w.frames) >= 0) for w in ws)
    short = track_windows(seqfake.facepass_for(40, gap=(6, 40)).tracks[0], sampled, length=4, stride=2, min_frames=2)
    assert [w.frames for w in short] == [[0, 2, 4, 4]]  # 3 sampled frames: one window, last one repeated
    assert track_windows(seqfake.facepass_for(40, gap=(2, 40)).tracks[0], sampled, 4, 2, min_frames=2) == []


def test_prepare_lists_a_corrupt_video_skips_it_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = seqfake.make_dataset_dir(tmp_path / "data", per_class=2)
    (root / "fake" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    seqfake.patch_facepass(monkeypatch)
    entries = list_inputs(root, test_fraction=0.5, seed=1)
    assert sorted(e.split for e in entries if e.path.name != "broken.mp4") == ["test", "test", "train", "train"]
    prep = SeqPreprocessing(size=48, input_size=48, fps=0.0)
    index = prepare(entries, tmp_path / "out", prep)
    assert [Path(f["path"]).name for f in index["failures"]] == ["broken.mp4"]
    assert index["failures"][0]["reason"]
    assert index["stats"]["videos_ok"] == 4 and index["stats"]["videos_failed"] == 1
    assert index["stats"]["crops"] == 4 * 12 and index["stats"]["alignment_fallbacks"] == 0
    clip = tmp_path / "out" / index["videos"][0]["clip"]
    manifest = json.loads((clip / "manifest.json").read_text())
    assert manifest["frames_sampled"] == 12 and manifest["faces_found"] == 1 and manifest["crops"] == 12
    assert manifest["sha256"] == index["videos"][0]["sha256"] and manifest["decode_failures"] == []
    assert np.load(clip / "crops.npy").shape == (12, 48, 48, 3)
    # again: every video is reused, nothing is recomputed, the corrupt one is still listed
    again = prepare(entries, tmp_path / "out", prep)
    assert all(v["reused"] for v in again["videos"]) and len(again["failures"]) == 1
    # an incomplete folder (no manifest) is redone
    (clip / "manifest.json").unlink()
    third = prepare(entries, tmp_path / "out", prep)
    assert sum(not v["reused"] for v in third["videos"]) == 1
    _, clips = load_dataset(tmp_path / "out")
    assert len(clips) == 4 and {c.label for c in clips} == {0, 1}


def test_list_inputs_reads_a_manifest_and_the_ffpp_layout(tmp_path: Path) -> None:
    (tmp_path / "train" / "real").mkdir(parents=True)
    (tmp_path / "test" / "fake").mkdir(parents=True)
    (tmp_path / "train" / "real" / "a.mp4").write_bytes(b"x")
    (tmp_path / "test" / "fake" / "b.avi").write_bytes(b"x")
    entries = list_inputs(tmp_path)
    assert [(e.path.name, e.label, e.split) for e in entries] == [("a.mp4", 0, "train"), ("b.avi", 1, "test")]
    tsv = tmp_path / "set.tsv"
    tsv.write_text("path\tlabel\ntrain/real/a.mp4\treal\ntest/fake/b.avi\tfake\n")
    assert {(e.path.name, e.label) for e in list_inputs(tsv)} == {("a.mp4", 0), ("b.avi", 1)}


def _clip(label: int, n: int = 8, side: int = 32) -> Clip:
    rng = np.random.default_rng(label)
    one = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
    crops = np.repeat(one[None], n, axis=0)  # every frame the same picture
    frames = np.arange(n, dtype=np.int32)
    return Clip("0" * 64, "x.mp4", label, "train", crops, frames, np.zeros(n, np.int32), frames)


def test_augmentation_keeps_labels_and_shapes_and_one_transform_per_sequence() -> None:
    import torch

    clips = [_clip(0), _clip(1)]
    prep = SeqPreprocessing(size=32, input_size=24, sequence_length=4, normalisation="0_1")
    items = [(0, Window(0, [0, 1, 2, 3])), (1, Window(0, [2, 3, 4, 5]))]
    plain = SequenceDataset(clips, items, prep)
    aug = SequenceDataset(clips, items, prep, augmentation())
    torch.manual_seed(0)
    changed = 0
    for i in range(len(items)):
        x0, y0 = plain[i]
        for _ in range(5):
            x, y = aug[i]
            assert y == y0 == clips[items[i][0]].label
            assert x.shape == x0.shape == (4, 3, 24, 24) and x.dtype == torch.float32
            assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
            assert all(torch.equal(x[0], x[t]) for t in range(4))  # same parameters for every frame of the window
            changed += int(not torch.allclose(x, x0))
    assert changed >= 8  # it does augment


def test_normalisations() -> None:
    import torch

    from core.detectors.sequence_model import normalise

    x = torch.full((1, 3, 2, 2), 0.5)
    assert torch.allclose(normalise(x, "-1_1"), torch.zeros_like(x))
    assert torch.allclose(normalise(x, "imagenet")[0, 0], torch.full((2, 2), (0.5 - 0.485) / 0.229))
    with pytest.raises(ValueError):
        normalise(x, "zscore")


def test_metrics_on_a_hand_made_set_with_known_auc_and_eer() -> None:
    from core.train.metrics import binary_metrics
    from core.train.seq import _with_class_accuracy

    y = [0, 0, 0, 0, 1, 1, 1, 1]
    s = [0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9]
    m = _with_class_accuracy(binary_metrics(y, s))
    assert m["roc_auc"] == pytest.approx(15 / 16)  # 15 of the 16 (fake, real) pairs ordered correctly
    assert m["eer"] == pytest.approx(0.25)  # at threshold 0.6: one real of four above it, one fake of four below
    assert m["confusion_matrix"] == {"tn": 3, "fp": 1, "fn": 1, "tp": 3}
    assert m["acc_real"] == 0.75 and m["acc_fake"] == 0.75 and m["fpr"] == 0.25 and m["fnr"] == 0.25
    perfect = binary_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert perfect["roc_auc"] == 1.0 and perfect["eer"] == 0.0 and perfect["ap"] == 1.0
