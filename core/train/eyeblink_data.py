"""Blink-sequence features for training and evaluating the EyeBlink head.

A labelled folder holds `real/` and `fake/` videos (FaceForensics++ style). Each video goes
through the same steps as analysis (face pass, blink events over assessable eyes, blink windows,
eye crops) and the frozen Xception once; its (S, L, 2048) features are cached on disk keyed by
the video's sha256, the preprocessing, the blink and eye parameters and the backbone's sha256,
so training epochs, resumed runs and evaluations never run the backbone twice.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.detectors.eyeblink_sequences import (
    Preprocessing,
    backbone_features,
    iter_crops,
    sequence_array,
    windows_for,
)
from core.digest import params_key
from core.errors import VerityError
from core.progress import CancelToken, ProgressCallback, no_progress
from core.signals.blinks import BlinkParams
from core.signals.eyes import EyeParams, track_blinks

if TYPE_CHECKING:
    from core.models.eyeblink_cnn_lstm import XceptionFeatures

log = logging.getLogger("verity.train.eyeblink")

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".mpg", ".mpeg", ".webm", ".m4v"}
CACHE_FORMAT = "verity.eyeblink_features/1"


@dataclass
class LabelledVideo:
    path: Path
    label: int  # 1 = manipulated (fake/), 0 = real (real/)


def list_videos(data_dir: str | os.PathLike[str]) -> list[LabelledVideo]:
    """DIR/real/* (label 0) and DIR/fake/* (label 1), video files only, sorted by name."""
    root = Path(data_dir)
    if not root.is_dir():
        raise VerityError(f"{root}: not a folder (expected {root}/real/*.mp4 and {root}/fake/*.mp4)")
    out: list[LabelledVideo] = []
    for sub, label in (("real", 0), ("fake", 1)):
        d = root / sub
        if d.is_dir():
            out += [LabelledVideo(p, label) for p in sorted(d.iterdir()) if p.suffix.lower() in VIDEO_EXTS and p.is_file()]
    if not out:
        raise VerityError(f"{root}: no videos in {root}/real/ or {root}/fake/")
    return out


@dataclass
class VideoSequences:
    """The blink sequences of one labelled video, as backbone features."""

    path: str
    sha256: str
    label: int
    feats: np.ndarray  # (S, L, 2048) float32
    windows: list[dict[str, Any]] = field(default_factory=list)  # track_id, frames, blink_start/end
    blink_frames_found: int = 0
    frame_count: int = 0
    error: str | None = None  # why the video gave nothing (unreadable, no face...)


def cache_key(sha256: str, prep: Preprocessing, blinks: BlinkParams, backbone_sha256: str, tracks: str, eyes: EyeParams | None = None) -> str:
    eyes = eyes or EyeParams()
    key = params_key({"prep": prep.to_dict(), "blinks": blinks.to_dict(), "eyes": eyes.to_dict(), "backbone": backbone_sha256, "tracks": tracks}, 16)
    return f"{sha256}-{key}"


def _load_cached(path: Path) -> VideoSequences | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            if meta.get("format") != CACHE_FORMAT:
                return None
            return VideoSequences(meta["path"], meta["sha256"], meta["label"], z["feats"].astype(np.float32), meta["windows"], meta["blink_frames_found"], meta["frame_count"])
    except (OSError, ValueError, KeyError):
        return None


def _save_cached(path: Path, vs: VideoSequences) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": CACHE_FORMAT, "path": vs.path, "sha256": vs.sha256, "label": vs.label, "windows": vs.windows,
            "blink_frames_found": vs.blink_frames_found, "frame_count": vs.frame_count}
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as fh:
        np.savez(fh, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), feats=vs.feats)
    os.replace(tmp, path)


def video_sequences(
    video: LabelledVideo,
    prep: Preprocessing,
    backbone: XceptionFeatures,
    backbone_sha256: str,
    cache: Path,
    blinks: BlinkParams | None = None,
    tracks: str = "largest",
    device: str = "cpu",
    batch_size: int = 16,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    eyes: EyeParams | None = None,
) -> VideoSequences:
    """Face pass (reused from the cache when present), blink windows, backbone features (cached).

    Blink events and the eyes-assessable mask come from `track_blinks`, as in `verity analyze`,
    so the head trains on the sequences it will be shown (none on a turned head)."""
    from core.evidence import sha256_file
    from core.pipeline import AnalysisOptions, load_or_run_facepass
    from core.video.reader import VideoReader

    blinks = blinks or BlinkParams()
    eyes = eyes or EyeParams()
    sha = sha256_file(video.path)
    store = cache / f"{cache_key(sha, prep, blinks, backbone_sha256, tracks, eyes)}.npz"
    hit = _load_cached(store) if store.is_file() else None
    if hit is not None:
        hit.label, hit.path = video.label, str(video.path)
        return hit
    fp, _ = load_or_run_facepass(video.path, sha, AnalysisOptions(blinks=blinks, eyes=eyes), progress, cancel)
    events: dict[int, list[Any]] = {}
    assessable: dict[int, np.ndarray] = {}
    for t in fp.tracks:
        evs, _, check = track_blinks(t, fp.width, fp.height, fp.fps, blinks, eyes)
        events[t.track_id], assessable[t.track_id] = evs, check.assessable
    windows, found = windows_for(fp, events, prep, tracks, assessable)
    if windows:
        n_crops = len({(w.track_id, f) for w in windows for f in w.frames})
        with VideoReader(video.path) as reader:
            crops = iter_crops(reader, fp, windows, prep, cancel)
            feats = sequence_array(windows, backbone_features(backbone, crops, prep, device, batch_size, cancel, progress, n_crops))
    else:
        feats = np.zeros((0, prep.sequence_length, 2048), np.float32)
    vs = VideoSequences(
        str(video.path), sha, video.label, feats,
        [{"track_id": w.track_id, "frames": w.frames, "blink_start": w.blink_start, "blink_end": w.blink_end} for w in windows],
        found, fp.frame_count,
    )
    _save_cached(store, vs)
    return vs


def split_by_video(labels: list[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Train/validation video indices, stratified by label; never one video on both sides.

    A class with a single video stays in training (nothing to validate it against).
    """
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    for label in sorted(set(labels)):
        idx = [i for i, y in enumerate(labels) if y == label]
        rng.shuffle(idx)
        n_val = 0 if len(idx) < 2 or val_fraction <= 0 else min(len(idx) - 1, max(1, round(val_fraction * len(idx))))
        val += idx[:n_val]
        train += idx[n_val:]
    return sorted(train), sorted(val)
