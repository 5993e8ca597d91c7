"""Bad and odd input through the real CLI: one clear line, the right exit code, no traceback, no hang,
and the evidence file byte-for-byte unchanged."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from core.evidence import probe, sha256_file
from core.face.tracker import run_face_pass
from core.video import VideoReader
from tests.conftest import gradient_frames, write_video

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 180  # a hang fails the test instead of blocking the suite


def run_cli(*args: str | Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "core.cli", "analyze", *map(str, args), "--work-dir", str(tmp_path / "work")]
    env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT, env=env, check=False)


def assert_refused(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("verity: error:")]
    assert len(errors) == 1, proc.stderr
    for f in fragments:
        assert f in errors[0], errors[0]


def half_of(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def faststart_clip(path: Path, n: int = 60) -> Path:
    """An mp4 with its index (moov) before the data, as phones and web exports write it."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 96, 64, "yuv420p"
        vs.options = {"g": "12"}
        for f in gradient_frames(n):
            for p in vs.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    return path


def audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        s = out.add_stream("aac", rate=16000)
        s.layout = "mono"
        for k in range(0, 16000, 1024):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
            f.sample_rate, f.pts = 16000, k
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path


def audio_with_cover(path: Path) -> Path:
    """An audio file with a cover picture: the picture is a one-frame "video" stream."""
    with av.open(str(path), "w", format="mp4") as out:
        a = out.add_stream("aac", rate=16000)
        a.layout = "mono"
        v = out.add_stream("mjpeg", rate=1)
        v.width, v.height, v.pix_fmt = 64, 64, "yuvj420p"
        v.disposition = av.stream.Disposition.attached_pic
        for p in v.encode(av.VideoFrame.from_ndarray(np.full((64, 64, 3), 200, np.uint8), format="rgb24")):
            out.mux(p)
        for p in v.encode():
            out.mux(p)
        for k in range(0, 16000, 1024):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
            f.sample_rate, f.pts = 16000, k
            for p in a.encode(f):
                out.mux(p)
        for p in a.encode():
            out.mux(p)
    return path


# -- files that cannot be analysed --------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    assert_refused(run_cli(tmp_path / "nope.mp4", tmp_path=tmp_path), "no such file")


def test_directory(tmp_path: Path) -> None:
    d = tmp_path / "folder.mp4"
    d.mkdir()
    assert_refused(run_cli(d, tmp_path=tmp_path), "is a directory")


def test_text_renamed_mp4(tmp_path: Path) -> None:
    p = tmp_path / "notes.mp4"
    p.write_text("this is a text file, not a video\n" * 20)
    before = sha256_file(p)
    assert_refused(run_cli(p, tmp_path=tmp_path), "not a media file")
    assert sha256_file(p) == before


def test_zero_byte_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.mp4"
    p.touch()
    assert_refused(run_cli(p, tmp_path=tmp_path), "empty file")
    assert p.stat().st_size == 0


def test_truncated_synthetic_mp4(tmp_path: Path) -> None:
    """Index at the end (the default): the first half has no index and cannot be read."""
    full = write_video(tmp_path / "full.mp4", gradient_frames(60))
    p = half_of(full, tmp_path / "half.mp4")
    before = sha256_file(p)
    assert_refused(run_cli(p, tmp_path=tmp_path), "half.mp4")
    assert sha256_file(p) == before


def test_damaged_middle(tmp_path: Path) -> None:
    full = write_video(tmp_path / "full.mp4", gradient_frames(60))
    data = bytearray(full.read_bytes())
    n = len(data)
    data[n // 4 : n // 2] = np.random.default_rng(0).integers(0, 256, n // 2 - n // 4, dtype=np.uint8).tobytes()
    p = tmp_path / "damaged.mp4"
    p.write_bytes(bytes(data))
    before = sha256_file(p)
    # analysed around the damage (issue 13, item 3), the damaged frames named, not refused whole
    proc = run_cli(p, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"\d+ of 60 frames cannot be decoded .*: frames \d+-\d+", proc.stdout), proc.stdout
    assert sha256_file(p) == before


def test_audio_only_file(tmp_path: Path) -> None:
    p = audio_only(tmp_path / "speech.mp4")
    before = sha256_file(p)
    assert_refused(run_cli(p, tmp_path=tmp_path), "no video stream")
    assert sha256_file(p) == before


def test_audio_with_cover_picture(tmp_path: Path) -> None:
    p = audio_with_cover(tmp_path / "song.m4a")
    assert_refused(run_cli(p, tmp_path=tmp_path), "no video stream", "cover picture")


def test_one_bad_file_does_not_stop_the_others(tmp_path: Path) -> None:
    good = write_video(tmp_path / "good.mp4", gradient_frames(12))
    proc = run_cli(tmp_path / "missing.mp4", good, tmp_path=tmp_path)
    assert proc.returncode == 1
    assert "good.mp4" in proc.stdout and "missing.mp4: no such file" in proc.stderr


# -- readable but odd -----------------------------------------------------------------------------


def test_truncated_faststart_mp4_analyses_what_is_there(tmp_path: Path) -> None:
    """Index first: the header lists every frame, only the first ones have data. The frames that
    decode are analysed and the JSON warns that the file is cut short."""
    p = half_of(faststart_clip(tmp_path / "full.mp4"), tmp_path / "half.mp4")
    before = sha256_file(p)
    out = tmp_path / "half.json"
    proc = run_cli(p, "--json", out, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    d = json.loads(out.read_text())
    v = d["evidence"]["video"]
    assert 0 < v["frame_count"] < 60
    assert any("truncated" in w and "60" in w for w in d["evidence"]["warnings"])
    assert "WARNING: file appears truncated" in proc.stdout
    assert sha256_file(p) == before


def test_no_face_clip_says_so(tmp_path: Path) -> None:
    p = write_video(tmp_path / "gradient.mp4", gradient_frames(40))
    before = sha256_file(p)
    out = tmp_path / "g.json"
    proc = run_cli(p, "--json", out, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "no face found" in proc.stdout
    d = json.loads(out.read_text())
    assert d["faces"] == []
    reason = d["facepass"]["no_face"]
    # which detectors looked, and on how many frames: never a silent "no face"
    assert reason.startswith("no face found") and "dlib-hog" in reason and "dlib-mmod-cnn" in reason
    assert d["facepass"]["frames_with_face"] == 0
    for name, r in d["detectors"].items():
        assert r["status"] in ("ok", "unavailable", "failed"), name
    assert sha256_file(p) == before


def test_read_only_evidence_is_untouched(tmp_path: Path) -> None:
    p = write_video(tmp_path / "ro.mp4", gradient_frames(12))
    p.chmod(0o444)
    st = p.stat()
    before = sha256_file(p)
    proc = run_cli(p, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sha256_file(p) == before
    assert p.stat().st_mtime_ns == st.st_mtime_ns


@pytest.mark.media
def test_truncated_media_clips(media: Path, tmp_path: Path) -> None:
    # index at the end: the first half cannot be read at all
    p = half_of(media / "real" / "hdtf_katiehill_sadtalker_ref.mp4", tmp_path / "hdtf_half.mp4")
    assert_refused(run_cli(p, tmp_path=tmp_path), "hdtf_half.mp4")
    # index first (this clip): the frames present are read, the rest reported missing
    src = media / "real" / "wav2lip_pair_source_video_8s.mp4"
    q = half_of(src, tmp_path / "w2l_half.mp4")
    info = probe(q)
    assert 0 < info.video.frame_count < info.video.declared_frame_count == 203
    assert info.warnings and "truncated" in info.warnings[0]
    with VideoReader(q) as r:
        last = r.frame(r.frame_count - 1)  # the last listed frame decodes
        assert last.shape == (320, 640, 3)
        seq = [a.copy() for _, a in r.iter_frames(r.frame_count - 3)]
    assert np.array_equal(seq[-1], last)


# -- odd but valid: frame rates, sizes, stream start times ----------------------------------------


def test_2997_fps(make_video) -> None:
    p = make_video("ntsc.mp4", gradient_frames(45), fps=Fraction(30000, 1001))
    info = probe(p)
    assert info.video.frame_count == 45
    assert abs(info.video.fps - 30000 / 1001) < 1e-3
    assert not info.video.variable_frame_rate
    with VideoReader(p) as r:
        assert abs(r.time_of(44) - r.time_of(0) - 44 * 1001 / 30000) < 1e-3


def test_tiny_frames(make_video) -> None:
    p = make_video("tiny.mp4", gradient_frames(10, w=16, h=16))
    info = probe(p)
    assert (info.video.width, info.video.height, info.video.frame_count) == (16, 16, 10)
    with VideoReader(p) as r:
        fp = run_face_pass(r)
        assert r.frame(9).shape == (16, 16, 3)
    assert fp.tracks == [] and fp.no_face_reason()


def test_large_frames(make_video) -> None:
    p = make_video("big.mp4", gradient_frames(4, w=2560, h=1440))
    info = probe(p)
    assert (info.video.width, info.video.height, info.video.frame_count) == (2560, 1440, 4)
    with VideoReader(p) as r:
        seq = [a.copy() for _, a in r.iter_frames()]
        assert np.array_equal(r.frame(2), seq[2])


def test_audio_starting_after_video(make_video) -> None:
    """Both streams' start times are kept (later analyses align by them)."""
    n, sr = 50, 16000
    t = np.arange(2 * sr, dtype=np.float32) / sr
    p = make_video("late_audio.mp4", gradient_frames(n), audio=0.1 * np.sin(2 * np.pi * 440 * t), sample_rate=sr, audio_offset_s=0.5)
    info = probe(p)
    assert info.audio is not None and info.audio.sample_rate == sr
    assert abs(info.video.start_time_s) < 0.05
    # AAC encoder priming may shift the first packet by a few ms; the 0.5 s offset must remain
    assert abs(info.audio.start_time_s - 0.5) < 0.1, info.audio.start_time_s


def test_single_frame_video(make_video, tmp_path: Path) -> None:
    p = make_video("still.mp4", gradient_frames(1), fps=25)
    info = probe(p)
    assert info.video.frame_count == 1 and info.video.fps == pytest.approx(25.0)  # the stated rate
    proc = run_cli(p, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "1 frames, 25.000 fps" in proc.stdout and "no face found" in proc.stdout


def phone_rotation(path: Path) -> Path:
    """Mark an mp4 as phones mark portrait video: the picture is stored turned, and the track
    header's display matrix (0, 1, -1, 0: "rotate=90") tells players to turn it clockwise."""
    import struct

    data = bytearray(path.read_bytes())
    k = data.find(b"tkhd")
    assert k > 0 and data[k + 4] == 0  # version 0 header: the matrix sits 44 bytes after the type
    data[k + 44 : k + 80] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))
    return path


def test_phone_rotation_is_applied(make_video) -> None:
    img = np.zeros((64, 96, 3), np.uint8)
    img[:, :20] = 255  # stored picture: a white band on the left
    p = phone_rotation(make_video("portrait.mp4", np.stack([img] * 12)))
    info = probe(p)
    assert (info.video.width, info.video.height, info.video.rotation) == (64, 96, 90)
    with VideoReader(p) as r:
        assert (r.width, r.height, r.rotation_cw) == (64, 96, 90)
        a = r.frame(5)
        assert a.shape == (96, 64, 3)
        assert a[:15].mean() > 200 and a[-60:].mean() < 40  # as displayed: the band on top
        seq = [x.copy() for _, x in r.iter_frames()]
        assert np.array_equal(seq[5], a) and seq[0].shape == (96, 64, 3)


@pytest.mark.media
def test_phone_portrait_face_is_found(media: Path, make_video) -> None:
    with VideoReader(media / "real" / "grid_bbaf2n.mpg") as r:
        stored = np.stack([np.rot90(a, k=1) for _, a in r.iter_frames(0, 30)])  # turned as a phone stores it
    p = phone_rotation(make_video("phone.mp4", stored))
    with VideoReader(p) as r:
        fp = run_face_pass(r)
    assert (fp.width, fp.height) == (360, 288)
    assert len(fp.tracks) == 1 and fp.frames_with_face == 30
    lm = fp.tracks[0].landmarks
    assert (lm[:, 36:48, 1].mean(1) < lm[:, 48:68, 1].mean(1)).all()  # upright: eyes above mouth
