"""Windows and their labels for training and evaluating the ViViT blink model.

Two sources of labels, never mixed within a clip:
- hand labels: a folder of `<clip>.json` in the format of `../shared/media/labels` (README
  there; `clip` is the path under the folder above the labels folder unless a media root is
  given). A window is `blink` (1) when its centre frames overlap a blink's closed frames
  (closed_start..closed_end); `no_blink` (0) when its centre, widened by `GUARD` frames, touches
  no blink or partial blink (onset..offset), no unusable range and no other event; otherwise it
  is left out (lids half way: no label to trust);
- weak labels, for clips without hand labels: the same rule on the EAR blink events that
  `verity analyze` reports (`core.signals.eyes.track_blinks`; closed frames = the apex +-1
  within the event), used only where the eyes are assessable over the whole window centre.

Each clip's eye-region crops, track frames, EAR events and assessable mask are cached on disk
(keyed by the video's sha256 and every parameter that changes them), so folds, epochs and resumed
runs never decode a video twice. Splits are by clip, never by window.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.detectors.vivit_blink import Preprocessing, Window, track_windows
from core.errors import VerityError
from core.progress import CancelToken, ProgressCallback, no_progress
from core.signals.blinks import BlinkParams
from core.signals.event_matching import label_span, overlaps
from core.signals.eyes import EyeParams

log = logging.getLogger("verity.train.vivit")

CACHE_FORMAT = "verity.vivit_clips/1"
GUARD = 2  # frames around a no_blink centre that must be free of any lid movement
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".mpg", ".mpeg", ".webm", ".m4v"}


@dataclass
class LabelledClip:
    path: Path
    labels: dict[str, Any] | None  # the hand labels; None: weak labels from EAR events


def read_labels(label_dir: str | os.PathLike[str], media_root: str | os.PathLike[str] | None = None) -> list[LabelledClip]:
    """Every `*.json` of a labels folder whose clip exists; a missing clip is skipped with a warning."""
    d = Path(label_dir)
    if not d.is_dir():
        raise VerityError(f"{d}: not a folder of blink labels")
    root = Path(media_root) if media_root else d.parent
    out: list[LabelledClip] = []
    for f in sorted(d.glob("*.json")):
        try:
            lab = json.loads(f.read_text())
            clip = root / lab["clip"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s skipped: not a blink label file (%s)", f.name, exc)
            continue
        if clip.is_file():
            out.append(LabelledClip(clip, lab))
        else:
            log.warning("%s: clip %s missing, skipped", f.name, clip)
    if not out:
        raise VerityError(f"{d}: no label file whose clip exists")
    return out


def list_unlabelled(folders: list[Path], labelled: list[LabelledClip]) -> list[LabelledClip]:
    """Videos under the folders (not recursive) that have no hand labels, for weak labels."""
    known = {c.path.resolve() for c in labelled}
    out = []
    for d in folders:
        if not Path(d).is_dir():
            raise VerityError(f"{d}: not a folder of videos")
        out += [LabelledClip(p, None) for p in sorted(Path(d).iterdir()) if p.suffix.lower() in VIDEO_EXTS and p.resolve() not in known]
    return out


@dataclass
class TrackClip:
    track_id: int
    frames: np.ndarray  # (M,) frame numbers
    crops: np.ndarray  # uint8 (M, H, W, 3) eye regions
    assessable: np.ndarray  # bool (M,) eyes assessable for EAR
    closure: np.ndarray  # float (M,) EAR lid closure 1 - EAR / open level (mean of the eyes; NaN: not assessable)
    ear_events: list[tuple[int, int, int]]  # (start, apex, end) of the EAR blinks


@dataclass
class ClipData:
    path: str
    sha256: str
    frame_count: int
    tracks: list[TrackClip] = field(default_factory=list)
    labels: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return Path(self.path).name


def cache_key(sha256: str, prep: Preprocessing, facepass: dict[str, Any], blinks: BlinkParams, eyes: EyeParams) -> str:
    blob = json.dumps({"eyes_crop": prep.eyes.to_dict(), "facepass": facepass, "blinks": blinks.to_dict(), "eyes": eyes.to_dict()}, sort_keys=True)
    return f"{sha256}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def _save(path: Path, cd: ClipData) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": CACHE_FORMAT, "path": cd.path, "sha256": cd.sha256, "frame_count": cd.frame_count,
            "tracks": [{"track_id": t.track_id, "ear_events": t.ear_events} for t in cd.tracks]}
    arrays = {}
    for k, t in enumerate(cd.tracks):
        arrays |= {f"frames{k}": t.frames, f"crops{k}": t.crops, f"ok{k}": t.assessable, f"closure{k}": t.closure}
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as fh:
        np.savez(fh, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    os.replace(tmp, path)


def _load(path: Path) -> ClipData | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            if meta.get("format") != CACHE_FORMAT:
                return None
            tracks = [TrackClip(t["track_id"], z[f"frames{k}"], z[f"crops{k}"], z[f"ok{k}"], z[f"closure{k}"], [tuple(e) for e in t["ear_events"]])
                      for k, t in enumerate(meta["tracks"])]
            return ClipData(meta["path"], meta["sha256"], meta["frame_count"], tracks)
    except (OSError, ValueError, KeyError):
        return None


def clip_data(
    clip: LabelledClip,
    prep: Preprocessing,
    cache: Path,
    blinks: BlinkParams | None = None,
    eyes: EyeParams | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> ClipData:
    """Face pass (the stored one when present), EAR events and eye-region crops of every track."""
    from core.evidence import sha256_file
    from core.face.eye_region import eye_clips
    from core.pipeline import AnalysisOptions, load_or_run_facepass
    from core.signals.eyes import track_blinks
    from core.signals.physiology import per_eye_baseline
    from core.video.reader import VideoReader

    blinks, eyes = blinks or BlinkParams(), eyes or EyeParams()
    options = AnalysisOptions(blinks=blinks, eyes=eyes)
    sha = sha256_file(clip.path)
    store = cache / f"{cache_key(sha, prep, options.facepass.to_dict(), blinks, eyes)}.npz"
    hit = _load(store) if store.is_file() else None
    if hit is None:
        fp, _ = load_or_run_facepass(clip.path, sha, options, progress, cancel)
        with VideoReader(clip.path) as reader:
            crops = eye_clips(reader, fp, prep.eyes, progress=progress, cancel=cancel)
        tracks = []
        for t in fp.tracks:
            events, _, check = track_blinks(t, fp.width, fp.height, fp.fps, blinks, eyes)
            base = per_eye_baseline(t.frames, np.asarray(t.ear, np.float64), fp.fps, blinks, check.assessable)
            with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # rows with neither eye known stay NaN
                closure = np.nanmean(1.0 - np.asarray(t.ear, np.float64) / base, axis=1) if len(t) else np.zeros(0)
            closure = np.where(check.assessable, closure, np.nan)
            tracks.append(TrackClip(t.track_id, t.frames, crops[t.track_id], check.assessable, closure,
                                    [(e.start_frame, e.apex_frame, e.end_frame) for e in events]))
        hit = ClipData(str(clip.path), sha, fp.frame_count, tracks)
        _save(store, hit)
    hit.path, hit.labels = str(clip.path), clip.labels
    return hit


# ----------------------------------------------------------------------------------------------
# window labels


def _touches(a: int, b: int, spans: list[tuple[int, int]]) -> bool:
    return any(overlaps((a, b), s) for s in spans)


def hand_label(w: Window, labels: dict[str, Any]) -> int:
    """1 blink, 0 no_blink, -1 left out (see the module docstring)."""
    closed = [(int(b["closed_start"]), int(b["closed_end"])) for b in labels.get("blinks", [])]
    if _touches(w.centre_first, w.centre_last, closed):
        return 1
    moving = [label_span(b) for b in labels.get("blinks", []) + labels.get("partial", [])]
    moving += [label_span(r) for r in labels.get("unusable", []) + labels.get("other_events", [])]
    return -1 if _touches(w.centre_first - GUARD, w.centre_last + GUARD, moving) else 0


def weak_label(w: Window, track: TrackClip) -> int:
    """The same rule on the EAR events; -1 unless the eyes are assessable over the whole centre."""
    rows = np.searchsorted(track.frames, [w.centre_first - GUARD, w.centre_last + GUARD])
    lo, hi = int(np.clip(rows[0], 0, len(track.frames) - 1)), int(np.clip(rows[1], 0, len(track.frames) - 1))
    if not track.assessable[lo : hi + 1].all():
        return -1
    closed = [(max(s, a - 1), min(e, a + 1)) for s, a, e in track.ear_events]
    if _touches(w.centre_first, w.centre_last, closed):
        return 1
    return -1 if _touches(w.centre_first - GUARD, w.centre_last + GUARD, [(s, e) for s, _, e in track.ear_events]) else 0


@dataclass
class WindowRef:
    clip: int  # index into the list of ClipData
    track: int  # index into that clip's tracks
    window: Window
    label: int
    weak: bool


def clip_windows(items: list[ClipData], prep: Preprocessing, stride: int, idx: list[int] | None = None, keep_unlabelled: bool = False) -> list[WindowRef]:
    """Windows of the chosen clips with their labels (hand labels where the clip has them)."""
    out: list[WindowRef] = []
    for ci in range(len(items)) if idx is None else idx:
        cd = items[ci]
        for ti, t in enumerate(cd.tracks):
            for w in track_windows(t.frames, prep, stride, t.track_id):
                y = hand_label(w, cd.labels) if cd.labels is not None else weak_label(w, t)
                if y >= 0 or keep_unlabelled:
                    out.append(WindowRef(ci, ti, w, y, cd.labels is None))
    return out


def ear_window_score(w: Window, track: TrackClip) -> float:
    """EAR's reading for a window, to rank windows like P(blink): the deepest lid closure over the
    window's centre (0 where the eyes are not assessable: EAR sees nothing there)."""
    rows = np.searchsorted(track.frames, [w.centre_first, w.centre_last])
    c = track.closure[rows[0] : rows[1] + 1]
    return float(np.nanmax(c)) if np.isfinite(c).any() else 0.0


def split_clips(n: int, folds: int, seed: int = 0) -> list[list[int]]:
    """Clip indices in `folds` groups of near-equal size (a fixed, seeded shuffle)."""
    order = np.random.default_rng(seed).permutation(n)
    return [sorted(order[k::folds].tolist()) for k in range(max(folds, 1))]
