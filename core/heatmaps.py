"""Grad-CAM heat maps stored with an analysis run: written once by a detector, read by the report
and the player (never recomputed while scrubbing). numpy and OpenCV only: no torch, no Qt.

One compressed .npz per run, beside the face pass in the work folder. Entry k is one frame of a
flagged window: its face track, frame, the window (index into the detector's windows, its frame
range and score), the 2x3 affine from frame pixels to the crop the model saw (`crop_size`
square) and the map itself, `size` x `size` uint8 over that crop (255 = the map's maximum: each
map is scaled to its own range, so it shows where the evidence lies, not how much there is; the
unscaled maximum is kept as `peak`, and 0 there means no region raised the logit at all).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "verity.gradcam/1"
_ARRAYS = ("track_id", "frame", "window", "window_start", "window_end", "score", "affine", "maps", "peak")


@dataclass
class HeatmapStore:
    track_id: np.ndarray  # (K,) int32
    frame: np.ndarray  # (K,) int32
    window: np.ndarray  # (K,) int32: index of the window in the detector's frame_predictions
    window_start: np.ndarray  # (K,) int32: that window's first and last frame
    window_end: np.ndarray  # (K,) int32
    score: np.ndarray  # (K,) float32: that window's P(manipulated)
    affine: np.ndarray  # (K, 2, 3) float32: frame pixels -> crop pixels
    maps: np.ndarray  # (K, S, S) uint8
    peak: np.ndarray  # (K,) float32: the map's maximum before scaling (0: nothing raised the logit)
    crop_size: int = 224
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.frame.size)

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write atomically; returns the file's sha256 (recorded in the detector's result)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {**self.meta, "format": FORMAT, "crop_size": int(self.crop_size)}
        tmp = path.with_name(path.name + ".part")
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
                                **{k: getattr(self, k) for k in _ARRAYS})
        os.replace(tmp, path)
        return hashlib.sha256(path.read_bytes()).hexdigest()

    @classmethod
    def load(cls, path: str | os.PathLike[str], expected_sha256: str | None = None) -> HeatmapStore:
        """ValueError when the file is not a complete store or differs from `expected_sha256`."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"{path}: not a readable heat-map store ({exc.strerror or exc})") from None
        if expected_sha256 and hashlib.sha256(raw).hexdigest() != expected_sha256:
            raise ValueError(f"{path.name}: changed since the run wrote it (sha256 mismatch)")
        try:
            with np.load(path, allow_pickle=False) as z:  # a pickle is refused (ValueError), never run
                meta = json.loads(bytes(z["meta"]).decode())
                arrays = {k: z[k] for k in _ARRAYS}
        except (OSError, ValueError, KeyError, EOFError, AttributeError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not a readable heat-map store ({type(exc).__name__}: {exc})") from None
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} file")
        k = arrays["frame"].size
        if arrays["affine"].shape != (k, 2, 3) or arrays["maps"].ndim != 3 or arrays["maps"].shape[0] != k \
                or any(arrays[n].shape != (k,) for n in _ARRAYS if n not in ("affine", "maps")):
            raise ValueError(f"{path}: heat-map arrays are inconsistent")
        return cls(**arrays, crop_size=int(meta.get("crop_size", 224)), meta=meta)

    def at(self, frame: int, track_id: int | None = None) -> list[int]:
        """Entries to show on `frame`: per track, of the highest-scoring flagged window covering
        the frame, the map of the window frame nearest to it (maps exist on sampled frames only)."""
        cover = np.flatnonzero((self.window_start <= frame) & (frame <= self.window_end))
        out: list[int] = []
        for tid in np.unique(self.track_id[cover]):
            if track_id is not None and tid != track_id:
                continue
            mine = cover[self.track_id[cover] == tid]
            best = mine[self.score[mine] == self.score[mine].max()]
            best = best[self.window[best] == self.window[best].min()]
            out.append(int(best[np.argmin(np.abs(self.frame[best] - frame))]))
        return out

    def nearest(self, track_id: int | None, lo: int, hi: int) -> int | None:
        """The entry of this track (None: any) with the highest window score on a frame in
        [lo, hi], nearest the middle: the key frame of a flagged segment."""
        sel = np.flatnonzero((self.frame >= lo) & (self.frame <= hi) & ((self.track_id == track_id) if track_id is not None else True))
        if not sel.size:
            return None
        top = sel[self.score[sel] == self.score[sel].max()]
        return int(top[np.argmin(np.abs(self.frame[top] - (lo + hi) / 2.0))])


def colourise(heat: np.ndarray, max_alpha: float = 0.6) -> np.ndarray:
    """(S, S) uint8 map -> (S, S, 4) RGBA uint8, jet colours, alpha rising with the value (a cold
    map is see-through, so the face stays visible)."""
    import cv2

    h = np.ascontiguousarray(heat, np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(h, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    alpha = (h.astype(np.float32) * (max_alpha / 255.0) * 255.0).clip(0, 255).astype(np.uint8)
    return np.dstack([rgb, alpha])


def blend(crop_rgb: np.ndarray, heat: np.ndarray, max_alpha: float = 0.6) -> np.ndarray:
    """The crop with the coloured map over it, (H, W, 3) uint8."""
    import cv2

    h, w = crop_rgb.shape[:2]
    rgba = colourise(cv2.resize(np.ascontiguousarray(heat, np.uint8), (w, h), interpolation=cv2.INTER_LINEAR), max_alpha)
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    return (crop_rgb.astype(np.float32) * (1 - a) + rgba[..., :3].astype(np.float32) * a).round().astype(np.uint8)


def stored_maps(results: dict[str, Any]) -> tuple[dict[str, HeatmapStore], list[str]]:
    """Each detector's stored maps (its result's `metrics.gradcam` path and sha256), for the
    player and the PDF; a store that is missing or changed since the run is left out, with why."""
    out: dict[str, HeatmapStore] = {}
    problems: list[str] = []
    for name, res in (results or {}).items():
        g = ((res or {}).get("metrics") or {}).get("gradcam") or {}
        if not g.get("path"):
            continue
        try:
            out[name] = HeatmapStore.load(g["path"], expected_sha256=g.get("sha256"))
        except ValueError as exc:
            problems.append(f"the Grad-CAM maps of {name} are not shown ({exc})")
    return out, problems

