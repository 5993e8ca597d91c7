"""Shared test factories: synthetic faces and face passes, a test detector, small clips.

Test modules import what they share from here (not from each other).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import av
import numpy as np

from core.detectors.base import AnalysisContext, Detector, DetectorResult, Segment
from core.face.facepass import FacePass, FaceTrack
from core.signals.blinks import detect_blinks
from core.signals.geometry import ears, mouth_aperture
from tests.conftest import gradient_frames

# -- a 2-D face template with blinking eyes (blink physiology, motion, fusion) -------------------

FPS = 25.0
EYE_W = 40.0  # px, eye corner to corner in the template: large, clean eyes (blink depth is judged from 30 px)


def face_template(cx: float = 200.0, cy: float = 200.0, eye_w: float = EYE_W) -> np.ndarray:
    """A plausible 68-point iBUG face (image coordinates, y down), eyes open at EAR 0.3."""
    lm = np.zeros((68, 2))
    theta = np.linspace(np.pi, 0.0, 17)
    lm[0:17] = np.c_[cx + 110 * np.cos(theta), cy + 130 * np.sin(theta)]  # jaw, chin = 8
    lm[17:22] = np.c_[np.linspace(cx - 90, cx - 20, 5), np.full(5, cy - 60)]
    lm[22:27] = np.c_[np.linspace(cx + 20, cx + 90, 5), np.full(5, cy - 60)]
    lm[27:31] = np.c_[np.full(4, cx), np.linspace(cy - 45, cy, 4)]
    lm[31:36] = np.c_[np.linspace(cx - 20, cx + 20, 5), np.full(5, cy + 10)]
    for first, ex in ((36, cx - 65 + eye_w / 2), (42, cx + 65 - eye_w / 2)):
        lm[first : first + 6] = _eye_2d(ex, cy - 35, eye_w, 0.3)
    lm[48:60] = _ellipse(cx, cy + 55, 30, 10, 12)
    lm[60:68] = _ellipse(cx, cy + 55, 20, 2, 8)
    return lm


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int) -> np.ndarray:
    # left corner first, along the top to the right corner, back along the bottom (iBUG order)
    t = np.pi + np.arange(n) * 2 * np.pi / n
    return np.c_[cx + rx * np.cos(t), cy + ry * np.sin(t)]


def _eye_2d(cx: float, cy: float, w: float, ear: float) -> np.ndarray:
    """Six eye points (corner, top, top, corner, bottom, bottom) with EAR = 2h / w exactly."""
    h = ear * w / 2.0
    x0 = cx - w / 2
    return np.array([[x0, cy], [x0 + w / 3, cy - h], [x0 + 2 * w / 3, cy - h], [x0 + w, cy], [x0 + 2 * w / 3, cy + h], [x0 + w / 3, cy + h]])


def blink_profile(n: int, blinks: list[tuple[int, int, float, float]]) -> np.ndarray:
    """(n, 2) closure of each eye: blinks as (start row, duration in frames, depth left, depth right)."""
    c = np.zeros((n, 2))
    for s, d, ql, qr in blinks:
        k = np.arange(d)
        shape = np.sin(np.pi * (k + 0.5) / d)
        c[s : s + d, 0] = np.maximum(c[s : s + d, 0], ql * shape)
        c[s : s + d, 1] = np.maximum(c[s : s + d, 1], qr * shape)
    return c


def make_track(
    n: int,
    blinks: list[tuple[int, int, float, float]] = (),  # type: ignore[assignment]
    eye_w: float = EYE_W,
    open_ear: float = 0.3,
    noise_px: float = 0.05,
    seed: int = 0,
    track_id: int = 0,
    first_frame: int = 0,
    landmarks: np.ndarray | None = None,
) -> FaceTrack:
    rng = np.random.default_rng(seed)
    closure = blink_profile(n, list(blinks))
    if landmarks is None:
        base = face_template(eye_w=eye_w)
        landmarks = np.repeat(base[None], n, axis=0)
    landmarks = landmarks.copy()
    for i in range(n):
        for k, first in enumerate((36, 42)):
            centre = landmarks[i, [first, first + 3]].mean(axis=0)
            landmarks[i, first : first + 6] = _eye_2d(centre[0], centre[1], eye_w, open_ear * (1.0 - closure[i, k]))
    landmarks = landmarks + rng.normal(0.0, noise_px, landmarks.shape)
    lm = landmarks.astype(np.float32)
    frames = np.arange(first_frame, first_frame + n, dtype=np.int32)
    boxes = np.c_[lm[:, :, 0].min(1), lm[:, :, 1].min(1), lm[:, :, 0].max(1), lm[:, :, 1].max(1)].astype(np.float32)
    return FaceTrack(track_id, frames, boxes, lm, ears(lm).astype(np.float32), mouth_aperture(lm).astype(np.float32), np.ones(n, bool))


def make_facepass(tracks: list[FaceTrack], frame_count: int | None = None) -> FacePass:
    count = frame_count or max(t.last_frame for t in tracks) + 1
    return FacePass(count, FPS, np.arange(count) / FPS, 400, 400, tracks)


def make_context(fp: FacePass, parameters: dict[str, Any] | None = None, video: Path | None = None) -> AnalysisContext:
    """A detector context for a synthetic face pass; `video`: frames to decode (render_eyes),
    without which the blink-depth gate cannot measure the eyes' sharpness."""
    blinks = {t.track_id: detect_blinks(t.frames, t.ear, fp.fps)[0] for t in fp.tracks}
    path = video or Path("synthetic.mp4")
    return AnalysisContext(path=path, evidence=None, sha256="0" * 64, facepass=fp, blinks=blinks, parameters=parameters or {})  # type: ignore[arg-type]


def render_eyes(fp: FacePass, path: Path, blur_sigma: float = 0.0) -> Path:
    """A video of the face pass's eyes: each track's eye outlines filled dark on a light face,
    sharp edges (or Gaussian-blurred by blur_sigma px), for the detectors that decode frames."""
    import cv2

    from tests.conftest import write_video

    frames = []
    for i in range(fp.frame_count):
        img = np.full((fp.height, fp.width, 3), 200, np.uint8)
        for t in fp.tracks:
            row = t.row_of(i)
            if row is None:
                continue
            for first in (36, 42):
                cv2.fillPoly(img, [np.round(t.landmarks[row, first : first + 6]).astype(np.int32)], (40, 40, 40))
        if blur_sigma > 0:
            img = cv2.GaussianBlur(img, (0, 0), blur_sigma)
        frames.append(img)
    return write_video(path, frames, fps=int(fp.fps))


def every(seconds: float, n: int, dur: int = 7, ql: float = 0.8, qr: float = 0.8, offset: int = 20) -> list[tuple[int, int, float, float]]:
    step = int(round(seconds * FPS))
    return [(s, dur, ql, qr) for s in range(offset, n - dur - 5, step)]


# -- a rigid 3-D head turned about the vertical axis (the eyes-assessable mask) -----------------
# yaw proxy known: (nose depth / jaw half-width) x tan(yaw) = 90/70 x tan(yaw)

SIZE = 512
OPEN_EAR = 0.3  # open-eye EAR of the 3-D head


def _eye_3d(cx: float, ear: float) -> np.ndarray:
    """Six eye points (p1 .. p6, left to right corner, upper lid, lower lid) in head coordinates
    (x, y, z), 30 wide, lid gap = ear x 30."""
    half = 0.5 * ear * 30.0
    xs = np.array([-15.0, -5.0, 5.0, 15.0, 5.0, -5.0])
    ys = np.array([0.0, -half, -half, 0.0, half, half])
    return np.stack([cx + xs, -30 + ys, np.full(6, 40.0)], axis=1)


def head(ear: float = OPEN_EAR) -> np.ndarray:
    """68 points (x right, y down, z towards the camera) of a frontal face about 140 units wide."""
    pts = np.zeros((68, 3))
    a = np.linspace(0, np.pi, 17)  # jaw: ear (0) -> chin (8) -> ear (16)
    pts[:17] = np.stack([-70 * np.cos(a), -20 + 90 * np.sin(a), 60 * np.sin(a)], axis=1)
    pts[17:22] = np.stack([np.linspace(-55, -15, 5), np.full(5, -50.0), np.full(5, 45.0)], axis=1)
    pts[22:27] = np.stack([np.linspace(15, 55, 5), np.full(5, -50.0), np.full(5, 45.0)], axis=1)
    pts[27:31] = np.stack([np.zeros(4), np.linspace(-30, 10, 4), np.linspace(50, 90, 4)], axis=1)  # bridge -> tip (30)
    pts[31:36] = np.stack([np.linspace(-15, 15, 5), np.full(5, 18.0), np.full(5, 60.0)], axis=1)
    pts[36:42] = _eye_3d(-30, ear)
    pts[42:48] = _eye_3d(30, ear)
    m = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    pts[48:60] = np.stack([-25 * np.cos(m), 45 + 10 * np.sin(m), np.full(12, 55.0)], axis=1)
    k = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    pts[60:68] = np.stack([-18 * np.cos(k), 45 + 4 * np.sin(k), np.full(8, 55.0)], axis=1)
    return pts


def project(pts: np.ndarray, yaw_deg: float, scale: float = 1.0, centre: tuple[float, float] = (SIZE / 2, SIZE / 2)) -> np.ndarray:
    """Turn about the vertical axis and project orthographically into the image: (68, 2) pixels."""
    t = np.radians(yaw_deg)
    x = pts[:, 0] * np.cos(t) + pts[:, 2] * np.sin(t)
    return np.stack([centre[0] + scale * x, centre[1] + scale * pts[:, 1]], axis=1)


def series(yaw: np.ndarray, ear: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    lm = np.stack([project(head(e), y, scale) for y, e in zip(yaw, ear)]).astype(np.float32)
    return lm, ears(lm).astype(np.float32)


def blink_ear(n: int, starts: list[int]) -> np.ndarray:
    """Open eyes with a 5-frame blink (down to EAR 0.05) at each start frame."""
    x = np.full(n, OPEN_EAR)
    for s in starts:
        x[s : s + 5] = [0.2, 0.08, 0.05, 0.1, 0.22]
    return x


def track(yaw: np.ndarray, ear: np.ndarray, scale: float = 1.0) -> FaceTrack:
    lm, e = series(yaw, ear, scale)
    n = len(yaw)
    return FaceTrack(
        track_id=0, frames=np.arange(n, dtype=np.int32), boxes=np.zeros((n, 4), np.float32), landmarks=lm, ear=e,
        mouth=mouth_aperture(lm).astype(np.float32), detected=np.ones(n, bool),
    )


# -- the case store: a test detector and clips it flags --------------------------------------------

FAKE_WEIGHTS = hashlib.sha256(b"test weights").hexdigest()


class WindowScorer(Detector):
    """Test detector: scores 10-frame windows by mean brightness, flags windows above 0.5."""

    name = "test_windows"
    title = "Test window scorer"
    needs_faces = False

    def run(self, ctx: Any) -> DetectorResult:
        from core.video.reader import VideoReader

        with VideoReader(ctx.path) as reader:
            means = [float(f.mean()) / 255.0 for _, f in reader.iter_frames(fmt="gray")]
        preds, segs = [], []
        for k, a in enumerate(range(0, len(means), 10)):
            b = min(a + 9, len(means) - 1)
            score = round(sum(means[a : b + 1]) / (b - a + 1), 4)
            preds.append({"index": k, "start_frame": a, "end_frame": b, "score": score, "prediction": "FAKE" if score >= 0.5 else "REAL"})
            if score >= 0.5:
                segs.append(Segment(a, b, score, "window brightness above 0.5 (test detector)"))
        return DetectorResult(
            prediction="inconclusive", confidence=0.5, frames_analyzed=len(means), frame_predictions=preds,
            metrics={"windows": len(preds)}, assessment="inconclusive", weights_sha256={"test_head": FAKE_WEIGHTS},
            segments=segs, curves={"brightness": means},
        )


def clip(make_video: Any, name: str, n: int = 40, shift: int = 0) -> Path:
    frames = gradient_frames(n, 96, 64)
    frames[20:30] = 255 - shift  # a bright stretch: the test detector flags frames 20-29
    return make_video(name, frames)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- audio shifted against the video (av_sync) ---------------------------------------------------

def remux_shifted(src: Path, dst: Path, shift_s: float) -> Path:
    """Copy src's streams (no re-encoding) into dst with the audio `shift_s` later than the video.

    A negative shift delays the video instead, so no timestamp goes below zero. The evidence is
    only read.
    """
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin, ain = inp.streams.video[0], inp.streams.audio[0]
        vout = out.add_stream_from_template(vin)
        aout = out.add_stream_from_template(ain)
        delay = {vin.index: max(-shift_s, 0.0), ain.index: max(shift_s, 0.0)}
        for pkt in inp.demux(vin, ain):
            if pkt.dts is None or pkt.size == 0:
                continue
            d = int(round(delay[pkt.stream.index] / float(pkt.time_base)))
            pkt.dts += d
            if pkt.pts is not None:
                pkt.pts += d
            pkt.stream = vout if pkt.stream.index == vin.index else aout
            out.mux(pkt)
    return dst
