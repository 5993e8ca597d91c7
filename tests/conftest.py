"""Shared fixtures. Every test runs with its own data/cache/weights folders (never the user's)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path_factory.mktemp("verity-user")
    for var, sub in (("VERITY_DATA_DIR", "data"), ("VERITY_CACHE_DIR", "cache"), ("VERITY_WEIGHTS_DIR", "weights")):
        monkeypatch.setenv(var, str(base / sub))
    monkeypatch.setenv("VERITY_NO_SHIPPED_VALIDATION", "1")  # a test that wants the shipped record unsets it


@pytest.fixture(scope="session")
def media() -> Path:
    """../shared/media (the real clips); tests that need it skip with the reason when absent."""
    if not (MEDIA / "MANIFEST.tsv").is_file():
        pytest.skip(f"test media not found at {MEDIA} (expected ../shared/media beside the project)")
    return MEDIA


# One clip of each source and encoding in ../shared/media (containers, codecs, profiles, rates,
# sizes): what the tests parametrised over media run on, so that CI time does not grow with every
# clip added. VERITY_MEDIA_FULL=1 runs them on every clip.
MEDIA_SAMPLE = (
    "real/hdtf_katiehill_sadtalker_ref.mp4",  # H.264 512x512 25 fps, the index at the end
    "real/retalking_face1_man_suit.mp4",  # variable frame rate
    "real/syncnet_example_newsanchor.avi",  # AVI
    "real/grid_bbaf2n.mpg",  # MPEG-PS (seek(0) not exact)
    "real/wav2lip_pair_source_video_8s.mp4",  # the index first
    "real/avlips_real_0.mp4",  # 224x224 crops with a .wav beside
    "real/voxceleb2_pcavs_audiosrc_681100216.mp4",
    "real/ffpp_youtube_c40_253.mp4",  # H.264 High 4:4:4 by an old x264: decodes right only after frame 0
    "fake/dfdc_abofeumbvv_FAKE.mp4",  # 1920x1080 29.97 fps
    "fake/sadtalker_art0_japanese.mp4",
    "fake/emo_vexpress_talk_hb.mp4",
    "fake/vasa1_vexpress_10.mp4",
    "fake/sadtalkervls_zzww_face_dain_50fps.mp4",  # 50 fps
    "fake/ffpp_faceswap_c40_253_183.mp4",
)


def media_clips(*folders: str, sample: bool = False) -> list[Path]:
    """Video clips under the given media folders (for parametrisation; empty when absent);
    sample=True: only those of MEDIA_SAMPLE (all of them with VERITY_MEDIA_FULL=1)."""
    exts = {".mp4", ".mpg", ".avi", ".mov", ".mkv"}
    out: list[Path] = []
    for folder in folders or ("real", "fake"):
        d = MEDIA / folder
        if d.is_dir():
            out += sorted(p for p in d.iterdir() if p.suffix.lower() in exts)
    if sample and not os.environ.get("VERITY_MEDIA_FULL"):
        out = [p for p in out if f"{p.parent.name}/{p.name}" in MEDIA_SAMPLE]
    return out


def write_video(
    path: Path,
    frames: np.ndarray | list[np.ndarray],
    fps: int | Fraction = 25,
    codec: str = "libx264",
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    audio_offset_s: float = 0.0,
    video_options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Write RGB uint8 frames (and optional mono float audio) with PyAV: synthetic test media.
    `video_options`: the encoder's (default for libx264: crf 18, GOP 12); `container_options`:
    the muxer's (e.g. movflags +faststart)."""
    import av

    frames = list(frames)
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", options=container_options or {}) as out:
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height = w, h
        vs.pix_fmt = "yuv420p"
        if video_options is not None:
            vs.options = video_options
        elif codec == "libx264":
            vs.options = {"crf": "18", "g": "12"}
        as_ = None
        if audio is not None:
            as_ = out.add_stream("aac", rate=sample_rate)
            as_.layout = "mono"
        for f in frames:
            for packet in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if as_ is not None and audio is not None:
            pcm = np.asarray(audio, np.float32)
            start = int(round(audio_offset_s * sample_rate))
            for k in range(0, pcm.size, 1024):
                chunk = pcm[k : k + 1024]
                af = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
                af.sample_rate = sample_rate
                af.pts = start + k
                for packet in as_.encode(af):
                    out.mux(packet)
            for packet in as_.encode():
                out.mux(packet)
    return path


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    """make_video(name, frames, **kw) -> path of a synthetic clip in tmp_path."""

    def make(name: str, frames: np.ndarray | list[np.ndarray], **kw: object) -> Path:
        return write_video(tmp_path / name, frames, **kw)  # type: ignore[arg-type]

    return make


def gradient_frames(n: int = 30, w: int = 96, h: int = 64) -> np.ndarray:
    """A moving colour gradient: a valid video with no face in it."""
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None, None]
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        out[i] = np.clip(np.concatenate([x + 0 * y + i * 3, y + 0 * x, (x + y) / 2 + 0 * x], axis=2) % 256, 0, 255).astype(np.uint8)
    return out


@pytest.fixture
def test_detector() -> Iterator[list[str]]:
    """Register the test detector for one test only (the registry is process-wide)."""
    from core import detectors as registry
    from tests.factories import WindowScorer

    registry.register(WindowScorer)
    yield [WindowScorer.name]
    registry._REGISTRY.pop(WindowScorer.name, None)
