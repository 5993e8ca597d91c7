"""The one face pass: decode every frame once, track every face, keep landmarks and signals.

Detection (dlib HOG, downscaled) runs on a schedule; between detections each face is tracked by
placing the 68-point predictor's box from the previous frame's landmarks (landmarks are always
computed at full resolution). The result is stored once as a compressed .npz so detectors and
the GUI never decode the video again for landmarks.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dlib
import numpy as np

from core.face.detect import Detection, detect_faces, iou
from core.face.models import shape_predictor
from core.progress import CancelToken, ProgressCallback, Throttle, no_progress
from core.signals.geometry import ears, mouth_aperture
from core.video.reader import VideoReader

FORMAT = "verity.facepass/1"


@dataclass
class FacePassParams:
    detect_max_side: int = 640  # detection image long side (the frame is downscaled to it)
    detect_pad: float = 0.25  # border before detection, fraction of the short side
    detect_upsample: int = 0  # dlib pyramid upsampling (slow; for small faces)
    redetect_every: int = 10  # frames between detections while faces are tracked
    search_every: int = 3  # frames between detections while no face is tracked
    match_iou: float = 0.3  # a detection continues a track above this overlap
    max_missed: int = 2  # detections in a row that may miss a tracked face before it ends
    max_scale_jump: float = 0.35  # relative box size change in one frame that means "lost"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FaceTrack:
    track_id: int
    frames: np.ndarray  # int32 (M,) frame indices, increasing
    boxes: np.ndarray  # float32 (M, 4) x0, y0, x1, y1 (detector-style box)
    landmarks: np.ndarray  # float32 (M, 68, 2) full-resolution pixels
    ear: np.ndarray  # float32 (M, 2) EAR of image-left, image-right eye
    mouth: np.ndarray  # float32 (M,) inner-lip aperture / outer eye-corner distance
    detected: np.ndarray  # bool (M,) box came from the detector on this frame

    @property
    def first_frame(self) -> int:
        return int(self.frames[0])

    @property
    def last_frame(self) -> int:
        return int(self.frames[-1])

    def __len__(self) -> int:
        return int(self.frames.size)

    def row_of(self, frame: int) -> int | None:
        k = int(np.searchsorted(self.frames, frame))
        return k if k < self.frames.size and self.frames[k] == frame else None


@dataclass
class FacePass:
    frame_count: int
    fps: float
    times_s: np.ndarray  # float64 (N,) presentation time of every frame
    width: int
    height: int
    tracks: list[FaceTrack]
    params: dict[str, Any] = field(default_factory=dict)
    evidence_sha256: str = ""
    processing_time: float = 0.0

    def track(self, track_id: int) -> FaceTrack:
        for t in self.tracks:
            if t.track_id == track_id:
                return t
        raise KeyError(track_id)

    @property
    def frames_with_face(self) -> int:
        seen = np.zeros(self.frame_count, bool)
        for t in self.tracks:
            seen[t.frames] = True
        return int(seen.sum())

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        ids = np.concatenate([np.full(len(t), t.track_id, np.int32) for t in self.tracks]) if self.tracks else np.zeros(0, np.int32)

        def cat(name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
            parts = [getattr(t, name) for t in self.tracks]
            return np.concatenate(parts).astype(dtype) if parts else np.zeros((0, *shape), dtype)

        meta = {
            "format": FORMAT,
            "frame_count": self.frame_count,
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "params": self.params,
            "evidence_sha256": self.evidence_sha256,
            "processing_time": self.processing_time,
        }
        tmp = path.with_name(path.name + ".part")
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
                times_s=self.times_s,
                track_id=ids,
                frames=cat("frames", (), np.int32),
                boxes=cat("boxes", (4,), np.float32),
                landmarks=cat("landmarks", (68, 2), np.float32),
                ear=cat("ear", (2,), np.float32),
                mouth=cat("mouth", (), np.float32),
                detected=cat("detected", (), bool),
            )
        os.replace(tmp, path)  # never leave a half-written pass behind
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FacePass:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            if meta.get("format") != FORMAT:
                raise ValueError(f"{path}: not a {FORMAT} file")
            ids = z["track_id"]
            tracks = []
            for tid in np.unique(ids):
                m = ids == tid
                tracks.append(
                    FaceTrack(int(tid), z["frames"][m], z["boxes"][m], z["landmarks"][m], z["ear"][m], z["mouth"][m], z["detected"][m])
                )
            return cls(
                frame_count=meta["frame_count"],
                fps=meta["fps"],
                times_s=z["times_s"],
                width=meta["width"],
                height=meta["height"],
                tracks=tracks,
                params=meta["params"],
                evidence_sha256=meta["evidence_sha256"],
                processing_time=meta.get("processing_time", 0.0),
            )


# --------------------------------------------------------------------------------------------
# tracking


def _landmark_box(lm: np.ndarray) -> np.ndarray:
    return np.array([lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max()], np.float64)


class _Track:
    """A live track: its rows so far and the detector-box/landmark-box relation for tracking."""

    def __init__(self, track_id: int) -> None:
        self.track_id = track_id
        self.rows: dict[int, tuple[np.ndarray, np.ndarray, bool]] = {}  # frame -> (box, lm, detected)
        self.calib = np.array([0.0, 0.0, 1.0, 1.0])  # centre offset (x, y) and size ratio (w, h)
        self.missed = 0
        self.last_lm: np.ndarray | None = None
        self.last_box: np.ndarray | None = None

    def calibrate(self, det_box: np.ndarray, lm: np.ndarray) -> None:
        lb = _landmark_box(lm)
        lw, lh = max(lb[2] - lb[0], 1.0), max(lb[3] - lb[1], 1.0)
        dc = ((det_box[0] + det_box[2]) / 2 - (lb[0] + lb[2]) / 2) / lw, ((det_box[1] + det_box[3]) / 2 - (lb[1] + lb[3]) / 2) / lh
        self.calib = np.array([dc[0], dc[1], (det_box[2] - det_box[0]) / lw, (det_box[3] - det_box[1]) / lh])

    def box_from(self, lm: np.ndarray) -> np.ndarray:
        lb = _landmark_box(lm)
        lw, lh = max(lb[2] - lb[0], 1.0), max(lb[3] - lb[1], 1.0)
        cx = (lb[0] + lb[2]) / 2 + self.calib[0] * lw
        cy = (lb[1] + lb[3]) / 2 + self.calib[1] * lh
        w, h = self.calib[2] * lw, self.calib[3] * lh
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _landmarks(gray: np.ndarray, box: np.ndarray) -> np.ndarray:
    rect = dlib.rectangle(int(round(box[0])), int(round(box[1])), int(round(box[2])), int(round(box[3])))
    shape = shape_predictor()(gray, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], np.float32)


class FaceTracker:
    """Feed frames in order with `step(i, gray)`; `tracks()` returns the finished tracks."""

    def __init__(self, params: FacePassParams, width: int, height: int) -> None:
        self.p = params
        self.width, self.height = width, height
        self.live: list[_Track] = []
        self.done: list[_Track] = []
        self.next_id = 0
        self.last_detect = -(10**9)
        self.force_detect = True
        self.recent: deque[tuple[int, np.ndarray]] = deque(maxlen=max(params.search_every, 1))

    def _plausible(self, tr: _Track, box: np.ndarray, lm: np.ndarray) -> bool:
        w, h = box[2] - box[0], box[3] - box[1]
        if w < 8 or h < 8:
            return False
        inside = (lm[:, 0] >= -0.1 * w) & (lm[:, 0] <= self.width + 0.1 * w) & (lm[:, 1] >= -0.1 * h) & (lm[:, 1] <= self.height + 0.1 * h)
        if inside.mean() < 0.8:
            return False
        if tr.last_box is not None:
            pw = tr.last_box[2] - tr.last_box[0]
            if abs(w - pw) / max(pw, 1.0) > self.p.max_scale_jump:
                return False
        return True

    def _record(self, tr: _Track, i: int, box: np.ndarray, lm: np.ndarray, detected: bool) -> None:
        tr.rows[i] = (box.astype(np.float32), lm, detected)
        tr.last_box, tr.last_lm = box, lm

    def _end(self, tr: _Track) -> None:
        self.live.remove(tr)
        if tr.rows:
            self.done.append(tr)

    def _backfill(self, tr: _Track, i: int) -> None:
        """A face found at frame i was probably there in the frames since the last search."""
        lm = tr.last_lm
        for j, gray in reversed(self.recent):
            if j >= i or j <= self.last_detect_before or any(j in t.rows and iou(t.rows[j][0], tr.last_box) > 0.3 for t in self.live if t is not tr):
                continue
            assert lm is not None
            box = tr.box_from(lm)
            lm = _landmarks(gray, box)
            if not self._plausible(tr, box, lm):
                break
            tr.rows[j] = (box.astype(np.float32), lm, False)

    def step(self, i: int, gray: np.ndarray) -> None:
        interval = self.p.redetect_every if self.live else self.p.search_every
        detect = self.force_detect or i - self.last_detect >= interval
        matched: set[int] = set()
        if detect:
            self.last_detect_before = self.last_detect
            self.last_detect = i
            self.force_detect = False
            dets = detect_faces(gray, self.p.detect_max_side, self.p.detect_pad, self.p.detect_upsample)
            pairs = sorted(
                ((iou(tr.last_box, d.box), ti, di) for ti, tr in enumerate(self.live) for di, d in enumerate(dets) if tr.last_box is not None),
                reverse=True,
            )
            used_t: set[int] = set()
            used_d: set[int] = set()
            for ov, ti, di in pairs:
                if ov < self.p.match_iou or ti in used_t or di in used_d:
                    continue
                used_t.add(ti)
                used_d.add(di)
                tr = self.live[ti]
                self._place_detection(tr, i, gray, dets[di])
                matched.add(id(tr))
            for ti, tr in enumerate(list(self.live)):
                if ti not in used_t:
                    tr.missed += 1
            for di, d in enumerate(dets):
                if di in used_d:
                    continue
                tr = _Track(self.next_id)
                self.next_id += 1
                self.live.append(tr)
                self._place_detection(tr, i, gray, d)
                matched.add(id(tr))
                self._backfill(tr, i)
        for tr in list(self.live):
            if id(tr) in matched:
                continue
            if tr.missed > self.p.max_missed or tr.last_lm is None:
                self._end(tr)
                continue
            box = tr.box_from(tr.last_lm)
            lm = _landmarks(gray, box)
            if not self._plausible(tr, box, lm):
                self._end(tr)
                self.force_detect = True
                continue
            self._record(tr, i, box, lm, False)
        self._drop_duplicates(i)
        self.recent.append((i, np.array(gray, copy=True)))

    last_detect_before = -(10**9)

    def _place_detection(self, tr: _Track, i: int, gray: np.ndarray, d: Detection) -> None:
        box = np.asarray(d.box, np.float64)
        lm = _landmarks(gray, box)
        tr.calibrate(box, lm)
        tr.missed = 0
        tr.last_box = None  # a detection may change the size freely
        self._record(tr, i, box, lm, True)

    def _drop_duplicates(self, i: int) -> None:
        """Two tracks that converged on one face: keep the older id."""
        for a in list(self.live):
            for b in list(self.live):
                if a is b or a not in self.live or b not in self.live or a.track_id > b.track_id:
                    continue
                if i in a.rows and i in b.rows and iou(a.rows[i][0], b.rows[i][0]) > 0.6:
                    del b.rows[i]
                    self._end(b)

    def tracks(self) -> list[FaceTrack]:
        for tr in list(self.live):
            self._end(tr)
        out = []
        for tr in sorted(self.done, key=lambda t: t.track_id):
            frames = np.array(sorted(tr.rows), np.int32)
            boxes = np.stack([tr.rows[f][0] for f in frames]).astype(np.float32)
            lms = np.stack([tr.rows[f][1] for f in frames]).astype(np.float32)
            det = np.array([tr.rows[f][2] for f in frames], bool)
            out.append(FaceTrack(tr.track_id, frames, boxes, lms, ears(lms).astype(np.float32), mouth_aperture(lms).astype(np.float32), det))
        # renumber 0..K-1 in order of appearance so ids are stable and readable
        out.sort(key=lambda t: (t.first_frame, t.track_id))
        for k, t in enumerate(out):
            t.track_id = k
        return out


def run_face_pass(
    reader: VideoReader,
    params: FacePassParams | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> FacePass:
    """Decode every frame once (luma only) and track every face."""
    params = params or FacePassParams()
    t0 = time.perf_counter()
    tracker = FaceTracker(params, reader.width, reader.height)
    n = reader.frame_count
    tick = Throttle(progress, 0.2)
    for i, gray in reader.iter_frames(fmt="gray"):
        if cancel is not None:
            cancel.raise_if_cancelled()
        tracker.step(i, np.ascontiguousarray(gray))
        tick("faces", (i + 1) / n, f"frame {i + 1}/{n}")
    progress("faces", 1.0, f"{n} frames")
    return FacePass(
        frame_count=n,
        fps=reader.fps,
        times_s=reader.index.times_s,
        width=reader.width,
        height=reader.height,
        tracks=tracker.tracks(),
        params=params.to_dict(),
        processing_time=time.perf_counter() - t0,
    )
