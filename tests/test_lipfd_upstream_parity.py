"""LipFD `upstream` mode against upstream's own output: ../shared/media/lipfd_upstream holds the
composites upstream's unchanged preprocess.py wrote for windows 0, 5 and 9 of the six AVLips
clips (from their .wav files), and its window starts. Verity builds the same windows from the
evidence alone (the .mp4 and its own audio track) and must give the same input tensors.

Measured on these 18 windows (docs/lipsync.md has the table): frame half 0.000 grey levels mean
absolute difference; mel half 0.000 from the same .wav, and from the container's track 0.10-1.07
where the track holds the .wav's length (the three fakes and every window 0) and up to 31.8 where
upstream's .wav runs 52-60 ms past the container's track (the reals: a longer .wav has more mel
columns, and upstream maps columns by mel width / frame count, so later windows shift).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from core.detectors.lipfd_input import UPSTREAM_PREPROCESSING, clip_audio, clip_windows, composite_tensors, upstream_window_starts
from core.models.lipfd import LipFDConfig

pytestmark = pytest.mark.media

FS = 500  # upstream's frame size
CFG = LipFDConfig()  # upstream's ViT-L/14 input sizes: composite 1120, crops 224
WINDOWS = (0, 5, 9)
CLIPS = [f"avlips_{kind}_{k}" for kind in ("real", "fake") for k in range(3)]
# the mel half from the container's track; measured maxima 1.07 and 31.8 (module docstring)
MEL_BOUND_SAME_LENGTH = 1.5
MEL_BOUND_ANY = 35.0


@pytest.fixture(scope="module")
def upstream_dir(media: Path) -> Path:
    d = media / "lipfd_upstream"
    if not (d / "windows.json").is_file():
        pytest.skip(f"upstream reference composites not found in {d}")
    return d


def _video(media: Path, clip: str) -> Path:
    return media / clip.split("_")[1] / f"{clip}.mp4"


@cache
def _built(video: Path, source: str) -> tuple[int, list]:  # type: ignore[type-arg]
    """(frame count, windows) in upstream mode; source "container" (the evidence) or "wav"."""
    if source == "wav":
        import librosa

        from core.audio import AudioTrack

        y, sr = librosa.load(video.with_suffix(".wav"))  # what upstream read
        audio = AudioTrack(y, sr, 0.0)
    else:
        audio = clip_audio(video, UPSTREAM_PREPROCESSING)
    cw = clip_windows(video, audio, None, UPSTREAM_PREPROCESSING)
    return cw.frame_count, cw.windows


def _reference(upstream_dir: Path, clip: str, k: int) -> np.ndarray:
    """Upstream's composite as its datasets.py reads it (cv2.imread: BGR), turned to RGB."""
    import cv2

    bgr = cv2.imread(str(upstream_dir / f"{clip}_w{k}.png"), cv2.IMREAD_COLOR)
    assert bgr is not None and bgr.shape == (2 * FS, 5 * FS, 3)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def upstream_derivation(rgb: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Upstream's data/datasets.py on one composite, with torchvision as upstream ran it (0.16:
    no antialiasing on tensors): BGR float 0-255, five crops of frame 0 at 1-px shifts, their
    [28:196] and [61:163] sub-crops, and the whole composite at 1120x1120."""
    from torchvision.transforms import Resize

    img = torch.tensor(np.ascontiguousarray(rgb[:, :, ::-1]), dtype=torch.float32).permute(2, 0, 1)
    to224 = Resize((224, 224), antialias=False)
    full = [to224(img[:, 500:, i : i + 500]) for i in range(5)]
    face = [to224(c[:, 28:196, 28:196]) for c in full]
    lips = [to224(c[:, 61:163, 61:163]) for c in full]
    return Resize((1120, 1120), antialias=False)(img), torch.stack([torch.stack(full), torch.stack(face), torch.stack(lips)])


@pytest.mark.parametrize("clip", CLIPS)
def test_window_starts_and_frame_count(media: Path, upstream_dir: Path, clip: str) -> None:
    ref = json.loads((upstream_dir / "windows.json").read_text())[clip]
    n, windows = _built(_video(media, clip), "container")
    assert n == ref["frame_count"]
    assert upstream_window_starts(n).tolist() == ref["window_starts"]
    assert [w.start_frame for w in windows] == ref["window_starts"]
    assert all(w.mel_start_frame == w.start_frame for w in windows)  # no overlap in these clips


@pytest.mark.parametrize("clip", CLIPS)
def test_composite_equals_upstreams(media: Path, upstream_dir: Path, clip: str) -> None:
    import librosa

    video = _video(media, clip)
    _, windows = _built(video, "container")
    # where the container's track holds as many samples as upstream's .wav, the mel columns map alike
    same_length = librosa.load(video.with_suffix(".wav"))[0].size == clip_audio(video, UPSTREAM_PREPROCESSING).samples.size
    for k in WINDOWS:
        ref = _reference(upstream_dir, clip, k)
        ours = windows[k].composite
        assert ours.shape == ref.shape
        assert _mad(ours[FS:], ref[FS:]) < 1.0, f"{clip} w{k}: frame half"
        # from the evidence's own track, as close as the two audio sources allow
        mel = _mad(ours[:FS], ref[:FS])
        assert mel <= (MEL_BOUND_SAME_LENGTH if (same_length or k == 0) else MEL_BOUND_ANY), f"{clip} w{k}: mel half {mel:.2f}"


@pytest.mark.parametrize("clip", ["avlips_real_0", "avlips_fake_1"])  # a 44.1 kHz stereo and a 16 kHz mono .wav
def test_mel_path_is_upstreams_exactly(media: Path, upstream_dir: Path, clip: str) -> None:
    """Fed upstream's own .wav, the mel strip is upstream's to the grey level: what remains from
    the container's track is the difference between the two audio sources."""
    _, from_wav = _built(_video(media, clip), "wav")
    for k in WINDOWS:
        assert _mad(from_wav[k].composite[:FS], _reference(upstream_dir, clip, k)[:FS]) < 0.01, f"{clip} w{k}"


@pytest.mark.parametrize("clip", ["avlips_fake_2"])
def test_regional_crops_match_upstreams_derivation(media: Path, upstream_dir: Path, clip: str) -> None:
    _, windows = _built(_video(media, clip), "container")
    for k in WINDOWS:
        ref = _reference(upstream_dir, clip, k)
        up_glob, up_crops = upstream_derivation(ref)
        # Verity's derivation from upstream's own composite: the same tensors
        glob, crops = composite_tensors(ref, CFG, UPSTREAM_PREPROCESSING)
        assert crops.shape == up_crops.shape == (3, 5, 3, 224, 224) and glob.shape == up_glob.shape == (3, 1120, 1120)
        assert torch.allclose(crops, up_crops, atol=1e-3) and torch.allclose(glob, up_glob, atol=1e-3)
        # and from the composite Verity builds from the evidence: within resampling noise
        _, ours = composite_tensors(windows[k].composite, CFG, UPSTREAM_PREPROCESSING)
        assert float((ours - up_crops).abs().mean()) < 1.0
