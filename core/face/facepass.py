"""The stored face pass: every face track's boxes, 68 landmarks, EAR and mouth aperture per frame.

Numpy only (no dlib, cv2 or av), so detectors, the GUI and the report read a pass without loading
the tracker; `core.face.tracker` makes one. Stored once per evidence file and parameters as a
compressed .npz, so nothing decodes the video again for landmarks.
"""

from __future__ import annotations

import json
import os
import threading
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "verity.facepass/1"


@dataclass
class FacePassParams:
    algorithm: int = 4  # bumped when the tracker changes, so stored passes of another version are not reused
    detect_max_side: int = 640  # detection image long side (the frame is downscaled to it)
    detect_pad: float = 0.25  # border before detection, fraction of the short side
    detect_upsample: int = 0  # dlib pyramid upsampling (slow; for small faces)
    redetect_every: int = 10  # frames between detections while faces are tracked
    search_every: int = 3  # frames between detections while no face is tracked
    local_threshold: float = -0.7  # HOG score that confirms a tracked face in its neighbourhood
    hard_every: int = 15  # frames between thorough searches while no face is tracked (0: never)
    hard_every_tracked: int = 60  # ... while faces are tracked, for further small or dark faces in frames
    # larger than detect_max_side (0: never)
    hard_whole_frame_px: int = 400 * 400  # frames up to this area go whole (downscaled) to the CNN
    hard_candidate_threshold: float = -0.7  # HOG score of a candidate on large frames
    cnn_threshold: float = 0.0  # MMOD CNN confidence that confirms a face
    match_iou: float = 0.3  # a detection continues a track above this overlap
    max_missed: int = 2  # confirmations in a row that may fail before a track ends
    max_scale_jump: float = 0.35  # relative box size change in one frame that means "lost"
    relink_gap_s: float = 2.0  # a face found again this soon near where a track ended keeps its id
    min_face_contrast: float = 3.0  # grey-level standard deviation below which "a face" is a blank area
    cut_decorrelation: float = 0.5  # 1 - correlation of consecutive thumbnails that means a shot cut (0: off)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FaceTrack:
    track_id: int
    frames: np.ndarray  # int32 (M,) frame indices, increasing (gaps where the face was lost)
    boxes: np.ndarray  # float32 (M, 4) x0, y0, x1, y1 (detector-style box)
    landmarks: np.ndarray  # float32 (M, 68, 2) full-resolution pixels
    ear: np.ndarray  # float32 (M, 2) EAR of image-left, image-right eye
    mouth: np.ndarray  # float32 (M,) inner-lip aperture / outer eye-corner distance
    detected: np.ndarray  # bool (M,) a detector confirmed the face on this frame

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
    search: dict[str, dict[str, int]] = field(default_factory=dict)  # search -> {"frames", "found"}
    cuts: list[int] = field(default_factory=list)  # first frame of each new shot (tracks end there)
    # frames that could not be decoded, as inclusive [first, last] ranges (tracks end before them)
    undecodable: list[list[int]] = field(default_factory=list)
    # frames whose packet made the decoder report errors: [{"frame": i, "messages": [...]}]
    decode_errors: list[dict[str, Any]] = field(default_factory=list)
    not_searched: str | None = None  # why no face search ran at all (frames too small for the detectors)

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

    def no_face_reason(self) -> str | None:
        """None when a face was found; else which detectors searched how many frames."""
        if self.tracks:
            return None
        if self.not_searched:
            return f"no face search: {self.not_searched}"
        done = [f"{name} searched {s.get('frames', 0)} of {self.frame_count} frames" for name, s in self.search.items() if s.get("frames")]
        return "no face found: " + ("; ".join(done) if done else "no frame was searched") + "; none found a face"

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
            "search": self.search,
            "cuts": self.cuts,
            "undecodable": self.undecodable,
            "decode_errors": self.decode_errors,
            "not_searched": self.not_searched,
        }
        # a name of its own: two analyses of one file at once (two `analyze --case`) write the same cache entry
        tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.part")
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
                times_s=np.asarray(self.times_s, np.float64),
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
        """Read a stored pass; ValueError when the file is not a complete pass."""
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                if meta.get("format") != FORMAT:
                    raise ValueError(f"{path}: not a {FORMAT} file")
                arrays = {k: z[k] for k in ("times_s", "track_id", "frames", "boxes", "landmarks", "ear", "mouth", "detected")}
        except (OSError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not a readable face pass ({type(exc).__name__}: {exc})") from exc
        ids = arrays["track_id"]
        m = ids.size
        n = int(meta["frame_count"])
        shapes_ok = (
            arrays["times_s"].shape == (n,)
            and arrays["frames"].shape == (m,)
            and arrays["boxes"].shape == (m, 4)
            and arrays["landmarks"].shape == (m, 68, 2)
            and arrays["ear"].shape == (m, 2)
            and arrays["mouth"].shape == (m,)
            and arrays["detected"].shape == (m,)
            and (m == 0 or (arrays["frames"].min() >= 0 and arrays["frames"].max() < n))
        )
        if not shapes_ok:
            raise ValueError(f"{path}: face pass arrays are incomplete or inconsistent")
        tracks = []
        for tid in np.unique(ids):
            sel = ids == tid
            tracks.append(
                FaceTrack(
                    int(tid), arrays["frames"][sel], arrays["boxes"][sel], arrays["landmarks"][sel],
                    arrays["ear"][sel], arrays["mouth"][sel], arrays["detected"][sel],
                )
            )
        return cls(
            frame_count=n,
            fps=meta["fps"],
            times_s=arrays["times_s"],
            width=meta["width"],
            height=meta["height"],
            tracks=tracks,
            params=meta["params"],
            evidence_sha256=meta["evidence_sha256"],
            processing_time=meta.get("processing_time", 0.0),
            search=meta.get("search", {}),
            cuts=[int(c) for c in meta.get("cuts", [])],
            undecodable=[[int(a), int(b)] for a, b in meta.get("undecodable", [])],
            decode_errors=list(meta.get("decode_errors", [])),
            not_searched=meta.get("not_searched"),
        )
