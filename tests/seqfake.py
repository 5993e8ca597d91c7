"""Synthetic clips with a synthetic face pass, for the sequence-classifier tests (no dlib run)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from core.face.facepass import FacePass, FaceTrack
from tests.conftest import write_video

SIDE = 128


def face_landmarks(cx: float = 64.0, cy: float = 70.0, eye_gap: float = 32.0, angle_deg: float = 0.0) -> np.ndarray:
    """68 points: all at the face centre except the two eyes (36-41, 42-47), rotated by angle."""
    lm = np.full((68, 2), (cx, cy), np.float64)
    a = math.radians(angle_deg)
    d = np.array([math.cos(a), math.sin(a)]) * eye_gap / 2
    up = np.array([math.sin(a), -math.cos(a)]) * 14.0  # eyes above the centre
    ring = np.array([[-4, 0], [-2, -2], [2, -2], [4, 0], [2, 2], [-2, 2]], np.float64)
    lm[36:42] = (cx, cy) - d + up + ring
    lm[42:48] = (cx, cy) + d + up + ring
    return lm


def frames(n: int, seed: int) -> np.ndarray:
    """A textured square "face" drifting over a gradient (a valid, compressible clip)."""
    rng = np.random.default_rng(seed)
    base = np.linspace(40, 200, SIDE, dtype=np.float32)[None, :, None].repeat(SIDE, 0).repeat(3, 2)
    tex = rng.integers(0, 255, (64, 64, 3)).astype(np.float32)
    out = np.empty((n, SIDE, SIDE, 3), np.uint8)
    for i in range(n):
        img = base.copy()
        x = 30 + (i % 4)
        img[38:102, x : x + 64] = tex
        out[i] = img.clip(0, 255).astype(np.uint8)
    return out


def facepass_for(n: int, fps: float = 25.0, gap: tuple[int, int] | None = None) -> FacePass:
    keep = np.array([i for i in range(n) if gap is None or not gap[0] <= i <= gap[1]], np.int32)
    m = keep.size
    lm = np.stack([face_landmarks(cx=62.0 + (i % 4)) for i in keep]).astype(np.float32)
    boxes = np.tile(np.array([30, 38, 94, 110], np.float32), (m, 1))
    track = FaceTrack(0, keep, boxes, lm, np.full((m, 2), 0.3, np.float32), np.zeros(m, np.float32), np.ones(m, bool))
    return FacePass(frame_count=n, fps=fps, times_s=np.arange(n) / fps, width=SIDE, height=SIDE, tracks=[track])


def make_dataset_dir(root: Path, per_class: int = 3, n: int = 12) -> Path:
    """DIR/real/*.mp4 and DIR/fake/*.mp4 synthetic clips; fakes are noisier (a learnable cue)."""
    for label in ("real", "fake"):
        (root / label).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            fr = frames(n, seed=k + (100 if label == "fake" else 0))
            if label == "fake":
                fr = np.clip(fr.astype(np.int16) + np.random.default_rng(k).integers(-40, 40, fr.shape), 0, 255).astype(np.uint8)
            write_video(root / label / f"{label}{k}.mp4", fr)
    return root


def patch_facepass(monkeypatch: object, n: int = 12) -> None:
    """`verity prepare` gets the synthetic face pass instead of running dlib; the video is still
    opened (a corrupt file fails as it would)."""
    import core.pipeline
    from core.video.reader import VideoReader

    def fake(path: Path, sha256: str, options: object, progress: object, cancel: object) -> tuple[FacePass, Path]:
        with VideoReader(path) as r:
            fp = facepass_for(r.frame_count)
        fp.evidence_sha256 = sha256
        return fp, Path("synthetic")

    monkeypatch.setattr(core.pipeline, "load_or_run_facepass", fake)  # type: ignore[attr-defined]
