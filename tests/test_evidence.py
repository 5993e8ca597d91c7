"""Evidence intake: streamed hashing, container probe, read-only access, the cached pts index."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from core.errors import CancelledError, EvidenceError
from core.evidence import check_readable, probe, sha256_file
from core.progress import CancelToken
from core.video import build_index
from tests.conftest import gradient_frames


def test_sha256_streams_and_matches_hashlib(tmp_path: Path) -> None:
    p = tmp_path / "blob.bin"
    data = np.random.default_rng(0).integers(0, 256, 3 * (1 << 20) + 123, dtype=np.uint8).tobytes()
    p.write_bytes(data)
    seen: list[float] = []
    digest = sha256_file(p, progress=lambda stage, f, msg="": seen.append(f))
    assert digest == hashlib.sha256(data).hexdigest()
    assert len(seen) == 4 and seen[-1] == 1.0  # one report per 1 MiB chunk: streamed, not read whole
    assert sha256_file(tmp_path / "blob.bin") == digest


def test_sha256_of_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "e"
    p.touch()
    assert sha256_file(p) == hashlib.sha256(b"").hexdigest()


def test_sha256_can_be_cancelled(tmp_path: Path) -> None:
    p = tmp_path / "blob.bin"
    p.write_bytes(b"x" * (2 << 20))
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        sha256_file(p, cancel=token)


def test_check_readable_reasons(tmp_path: Path) -> None:
    with pytest.raises(EvidenceError, match="no such file"):
        check_readable(tmp_path / "missing.mp4")
    with pytest.raises(EvidenceError, match="is a directory"):
        check_readable(tmp_path)
    (tmp_path / "empty.mp4").touch()
    with pytest.raises(EvidenceError, match="empty file"):
        check_readable(tmp_path / "empty.mp4")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.mp4")
        with pytest.raises(EvidenceError, match="not a regular file"):  # opening it would block
            check_readable(tmp_path / "pipe.mp4")


def test_probe_synthetic_clip(make_video) -> None:
    p = make_video("clip.mp4", gradient_frames(30, w=96, h=64), fps=25)
    info = probe(p)
    v = info.video
    assert (v.codec, v.width, v.height, v.frame_count) == ("h264", 96, 64, 30)
    assert abs(v.fps - 25.0) < 1e-6 and v.real_frame_rate == pytest.approx(25.0)
    assert not v.variable_frame_rate
    assert v.declared_frame_count == 30 and info.warnings == []
    assert info.audio is None
    assert info.format.startswith("mov")
    assert info.size_bytes == p.stat().st_size and info.path == str(p.resolve())
    assert info.duration_s == pytest.approx(30 / 25, abs=0.05)
    assert isinstance(info.tags, dict)
    assert [s["type"] for s in info.streams] == ["video"]
    d = info.to_dict()
    assert d["video"]["frame_count"] == 30


def test_probe_with_audio(make_video) -> None:
    sr = 16000
    p = make_video("av.mp4", gradient_frames(25), audio=np.zeros(sr, np.float32), sample_rate=sr)
    info = probe(p)
    assert info.audio is not None
    assert (info.audio.codec, info.audio.sample_rate, info.audio.channels) == ("aac", sr, 1)
    assert sorted(s["type"] for s in info.streams) == ["audio", "video"]


def test_probe_never_writes(make_video) -> None:
    p = make_video("ro.mp4", gradient_frames(10))
    st = p.stat()
    before = sha256_file(p)
    probe(p)
    build_index(p)
    after = p.stat()
    assert sha256_file(p) == before
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def test_index_cache_follows_file_changes(make_video) -> None:
    p = make_video("c.mp4", gradient_frames(10))
    a = build_index(p)
    assert build_index(p) is a  # probe and reader share one build
    make_video("c.mp4", gradient_frames(14))
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    b = build_index(p)
    assert b is not a and b.frame_count == 14


@pytest.mark.media
def test_probe_media_clips(media: Path) -> None:
    vfr = probe(media / "real" / "retalking_face1_man_suit.mp4").video
    assert vfr.frame_count == 135 and vfr.variable_frame_rate
    dfdc = probe(media / "fake" / "dfdc_abofeumbvv_FAKE.mp4")
    assert (dfdc.video.width, dfdc.video.height, dfdc.video.frame_count) == (1920, 1080, 300)
    assert abs(dfdc.video.fps - 29.97) < 0.01 and dfdc.audio is not None
    grid = probe(media / "real" / "grid_bbaf2n.mpg")
    assert grid.video.frame_count == 75 and grid.warnings == []
