"""Speed and memory of the one face pass against bare decoding (`verity bench`).

Each clip is measured in a fresh child process, so its peak resident memory is its own and the
models' load time is not counted: the child imports everything and loads the dlib models, then
times (1) bare decoding of every frame (PyAV with frame threading, luma plane only: what the face
pass decodes) and (2) the face pass over every frame, and reports the process's peak RSS.
Frames are streamed: a pass that held every frame of a 300-frame 1080p clip would need ~600 MB
of luma alone (1.8 GB as RGB).

Run as a module for one clip: `python -m core.face.benchmark VIDEO` prints one JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from core.errors import VerityError

# the targets (face pass, all frames, this 2-core machine)
TARGETS_FPS = {"512x512": 50.0, "1920x1080": 25.0}


def _rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def measure(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Time bare decoding and the face pass on one clip in this process."""
    from core.face.dlib_models import cnn_detector, frontal_detector, shape_predictor
    from core.face.facepass import FacePassParams
    from core.face.tracker import run_face_pass
    from core.video.reader import VideoReader

    shape_predictor(), frontal_detector(), cnn_detector()  # model loading is not face-pass time
    with VideoReader(path) as reader:
        n, w, h = reader.frame_count, reader.width, reader.height
        rss_before = _rss_mb()
        t0 = time.perf_counter()
        for _ in reader.iter_frames(fmt="gray"):
            pass
        decode_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        fp = run_face_pass(reader, FacePassParams())
        face_s = time.perf_counter() - t0
    decode_fps = n / decode_s if decode_s else float("inf")
    face_fps = n / face_s if face_s else float("inf")
    return {
        "clip": Path(path).name,
        "resolution": f"{w}x{h}",
        "frames": n,
        "decode_fps": round(decode_fps, 1),
        "facepass_fps": round(face_fps, 1),
        "facepass_over_decode": round(face_fps / decode_fps, 3),
        "frames_with_face": fp.frames_with_face,
        "tracks": len(fp.tracks),
        "search": fp.search,
        "rss_before_mb": round(rss_before, 1),
        "peak_rss_mb": round(_rss_mb(), 1),
    }


def measure_in_child(path: str | os.PathLike[str], timeout_s: float = 900.0) -> dict[str, Any]:
    """`measure` in a fresh interpreter (its own peak RSS); raises VerityError on failure."""
    cmd = [sys.executable, "-m", "core.face.benchmark", str(path)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise VerityError(f"{path}: benchmark took longer than {timeout_s:.0f} s") from exc
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise VerityError(f"{path}: benchmark failed ({tail})")
    return json.loads(out.stdout.strip().splitlines()[-1])


def format_rows(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"{'clip':36s} {'size':>10s} {'frames':>6s} {'decode fps':>10s} {'face fps':>9s} {'ratio':>6s} {'with face':>10s} {'peak RSS':>9s} {'(models loaded)':>15s}"
    ]
    for r in rows:
        lines.append(
            f"{r['clip'][:36]:36s} {r['resolution']:>10s} {r['frames']:6d} {r['decode_fps']:10.1f} {r['facepass_fps']:9.1f} "
            f"{r['facepass_over_decode']:6.3f} {r['frames_with_face']:5d}/{r['frames']:<4d} {r['peak_rss_mb']:7.0f} MB {r['rss_before_mb']:12.0f} MB"
        )
    for r in rows:
        target = TARGETS_FPS.get(r["resolution"])
        if target is not None:
            verdict = "met" if r["facepass_fps"] >= target else "NOT met"
            lines.append(f"target face pass >= {target:.0f} fps at {r['resolution']}: {verdict} ({r['facepass_fps']:.1f} fps, {r['clip']})")
    return lines


MEDIA = Path(__file__).resolve().parents[2].parent / "shared" / "media"
VIDEO_EXTS = {".mp4", ".mpg", ".avi", ".mov", ".mkv"}


def default_clips() -> list[Path]:
    """The issue's two benchmark clips in ../shared/media (beside the project), when present."""
    return [p for p in (MEDIA / "real" / "hdtf_katiehill_sadtalker_ref.mp4", MEDIA / "fake" / "dfdc_abofeumbvv_FAKE.mp4") if p.is_file()]


def all_media_clips() -> list[Path]:
    """Every video of ../shared/media (frames-with-face per clip: `verity bench --all`)."""
    return [p for d in ("real", "fake") if (MEDIA / d).is_dir() for p in sorted((MEDIA / d).iterdir()) if p.suffix.lower() in VIDEO_EXTS]


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1])))
