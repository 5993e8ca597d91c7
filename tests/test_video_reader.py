"""Frame-exact access: random frame(i) equals the i-th frame of sequential decoding."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest

from core.video import VideoReader, build_index
from tests.conftest import gradient_frames, media_clips


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def test_synthetic_random_access_matches_sequential(make_video) -> None:
    frames = gradient_frames(40)
    path = make_video("g.mp4", frames)
    with VideoReader(path) as r:
        assert len(r) == 40
        seq = [_digest(a) for _, a in r.iter_frames()]
        for i in [39, 0, 17, 5, 6, 30, 12, 11]:
            assert _digest(r.frame(i)) == seq[i], i
        strided = [i for i, _ in r.iter_frames(3, 20, 4)]
        assert strided == [3, 7, 11, 15, 19]


@pytest.mark.media
@pytest.mark.parametrize("clip", media_clips(sample=True), ids=lambda p: p.name)
def test_media_random_access_is_exact(media, clip) -> None:
    with VideoReader(clip) as r:
        seq = [_digest(a) for _, a in r.iter_frames()]
        assert len(seq) == r.frame_count
        order = list(range(len(seq)))
        random.Random(clip.name).shuffle(order)
        k = 25 if r.width * r.height < 1_000_000 else 12  # each 1080p seek decodes up to a GOP
        for i in order[:k] + [len(seq) - 1, 0, len(seq) // 2, len(seq) // 2 + 1, len(seq) - 2]:
            assert _digest(r.frame(i)) == seq[i], f"{clip.name} frame {i}"
    # a reader whose first read is a seek (the player scrubbing, a detector's crops) is exact too
    for i in (len(seq) - 1, len(seq) // 2):
        with VideoReader(clip) as fresh:
            assert _digest(fresh.frame(i)) == seq[i], f"{clip.name} frame {i} read first"


@pytest.mark.media
def test_variable_frame_rate_clip(media) -> None:
    idx = build_index(media / "real" / "retalking_face1_man_suit.mp4")
    assert idx.frame_count == 135
    assert idx.variable_frame_rate


@pytest.mark.media
def test_2997_fps_clip(media) -> None:
    idx = build_index(media / "fake" / "dfdc_abofeumbvv_FAKE.mp4")
    assert idx.frame_count == 300
    assert abs(idx.average_fps - 29.97) < 0.01
    assert not idx.variable_frame_rate


@pytest.mark.parametrize(
    ("codec", "pix_fmt", "ext"),
    [("ffv1", "yuv420p10le", "mkv"), ("mpeg4", "yuv420p", "avi"), ("mjpeg", "yuvj422p", "avi"), ("libvpx-vp9", "yuv420p", "webm")],
)
def test_other_codecs_and_containers(tmp_path, codec: str, pix_fmt: str, ext: str) -> None:
    """10-bit, intra-only, AVI, WebM: exact random access, 8-bit luma for the face pass."""
    import av

    path = tmp_path / f"clip.{ext}"
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = 96, 64, pix_fmt
        for f in gradient_frames(20):
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format=pix_fmt)):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    with VideoReader(path) as r:
        assert r.frame_count == 20
        seq = [_digest(a) for _, a in r.iter_frames()]
        for i in (15, 3, 19, 0, 7):
            assert _digest(r.frame(i)) == seq[i]
        g = r.frame(4, fmt="gray")
        assert g.dtype == np.uint8 and g.shape == (64, 96)
