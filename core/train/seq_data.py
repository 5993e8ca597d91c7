"""Dataset preparation for the frame-sequence classifiers (`verity prepare`), and their datasets.

Input: `DIR/{train,test}/{real,fake}/*` (FaceForensics++ style), `DIR/{real,fake}/*`, or a TSV/CSV
manifest (path, label; core.labelled_manifest). Each video goes through Verity's own face pass
(every face, tracked; reused from the cache when present), frames are sampled at `fps`
(core.face.align.sample_frames) and every tracked face on a sampled frame is cut out as the
detector will cut it (core.face.align: aligned by the eyes to 224x224, plain crop as fallback,
counted). Per video, under OUT/clips/<sha256>-<crop key>/:

    crops.npy     uint8 (K, 224, 224, 3) RGB, uncompressed (memory-mapped while training)
    index.npz     frame, track, aligned (per crop) and the sampled frames of the video
    manifest.json source path and sha256, label, split, frames sampled and kept, faces found,
                  alignment fallbacks, frames that failed to decode; written last, so a folder
                  without it is incomplete and is redone

OUT/dataset.json lists every input with its status; a video already prepared with the same
parameters is reused (the run is resumable), and a corrupt or unreadable video is listed under
`failures` and skipped, never fatal. Augmentation (torchvision transforms v2, one draw of
parameters per sequence so the frames of a window stay consistent) and normalisation happen
when the sequences are read for training, not on disk.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from core.detectors.sequence_cnn import Window, track_windows
from core.detectors.sequence_model import SeqPreprocessing, normalise, resize
from core.errors import CancelledError, VerityError
from core.train.eyeblink_data import VIDEO_EXTS, split_by_video

log = logging.getLogger("verity.train.seq")

DATASET_FORMAT = "verity.seq_dataset/1"
CLIP_FORMAT = "verity.seq_clip/1"
LABELS = ("real", "fake")


@dataclass
class Entry:
    path: Path
    label: int  # 1 = manipulated
    split: str  # "train" / "test"


def _folder_videos(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTS) if d.is_dir() else []


def list_inputs(source: str | os.PathLike[str], test_fraction: float = 0.2, seed: int = 0) -> list[Entry]:
    """The labelled videos of a folder or manifest. Without a train/test layout, a stratified
    `test_fraction` of the videos (by video, never by frame) is held out as "test"."""
    src = Path(source)
    if src.is_file():
        from core.labelled_manifest import read_manifest

        items = [Entry(it.path, int(it.label == "fake"), "") for it in read_manifest(src).items]
    elif src.is_dir():
        if (src / "train").is_dir() or (src / "test").is_dir():
            items = [Entry(p, k, split) for split in ("train", "test") for k, lab in enumerate(LABELS) for p in _folder_videos(src / split / lab)]
        else:
            items = [Entry(p, k, "") for k, lab in enumerate(LABELS) for p in _folder_videos(src / lab)]
    else:
        raise VerityError(f"{src}: neither a folder nor a manifest file")
    if not items:
        raise VerityError(f"{src}: no videos found (expected {src}/[train|test/]real|fake/*.mp4 or a TSV manifest with path and label)")
    loose = [i for i, e in enumerate(items) if not e.split]
    if loose:
        train, test = split_by_video([items[i].label for i in loose], test_fraction, seed)
        for k in train:
            items[loose[k]].split = "train"
        for k in test:
            items[loose[k]].split = "test"
    return items


# ----------------------------------------------------------------------------------------------
# preparation


def clip_dir(out: Path, sha256: str, prep: SeqPreprocessing) -> Path:
    return out / "clips" / f"{sha256}-{prep.crop_key()}"


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        m = json.loads((folder / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return m if m.get("format") == CLIP_FORMAT else None


def prepare_video(entry: Entry, out: Path, prep: SeqPreprocessing, cancel: Any = None) -> dict[str, Any]:
    """Crops of one video (reused when already prepared); EvidenceError when it cannot be read."""
    from core.evidence import sha256_file
    from core.face.align import iter_track_crops, sample_frames
    from core.pipeline import AnalysisOptions, load_or_run_facepass
    from core.video.reader import VideoReader

    t0 = time.perf_counter()
    sha = sha256_file(entry.path)
    folder = clip_dir(out, sha, prep)
    done = _read_manifest(folder)
    if done is not None and done.get("sha256") == sha:
        return {**done, "label": LABELS[entry.label], "split": entry.split, "path": str(entry.path), "reused": True}
    fp, _ = load_or_run_facepass(entry.path, sha, AnalysisOptions(), lambda *a: None, cancel)
    sampled = sample_frames(fp.times_s, prep.fps)
    wanted: dict[int, list[int]] = {}
    for t in fp.tracks:
        for f in np.intersect1d(sampled, t.frames):
            wanted.setdefault(int(f), []).append(t.track_id)
    crops, frames, tracks, aligned = [], [], [], []
    failed: list[int] = []
    if wanted:
        with VideoReader(entry.path) as reader:
            for c in iter_track_crops(reader, fp.tracks, wanted, prep.crop_spec(), cancel, undecodable=failed):
                crops.append(c.image)
                frames.append(c.frame)
                tracks.append(c.track_id)
                aligned.append(c.aligned)
    folder.mkdir(parents=True, exist_ok=True)
    arr = np.stack(crops) if crops else np.zeros((0, prep.size, prep.size, 3), np.uint8)
    with open(folder / "crops.npy.part", "wb") as fh:
        np.save(fh, arr)
    os.replace(folder / "crops.npy.part", folder / "crops.npy")
    with open(folder / "index.npz.part", "wb") as fh:
        np.savez(fh, frame=np.asarray(frames, np.int32), track=np.asarray(tracks, np.int32), aligned=np.asarray(aligned, bool),
                 sampled=np.asarray(sampled, np.int32))
    os.replace(folder / "index.npz.part", folder / "index.npz")
    manifest = {
        "format": CLIP_FORMAT, "source": str(entry.path.resolve()), "sha256": sha, "label": LABELS[entry.label], "split": entry.split,
        "preprocessing": prep.to_dict(), "crop_key": prep.crop_key(), "frame_count": fp.frame_count, "fps": fp.fps,
        "frames_sampled": int(len(sampled)), "frames_kept": len(set(frames)), "faces_found": len(fp.tracks),
        "tracks_with_crops": len(set(tracks)), "crops": len(crops), "alignment_fallbacks": int(len(aligned) - sum(aligned)),
        "decode_failures": failed, "seconds": round(time.perf_counter() - t0, 2),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))  # last: marks the folder complete
    return {**manifest, "path": str(entry.path), "reused": False}


def prepare(entries: list[Entry], out: str | os.PathLike[str], prep: SeqPreprocessing, source: str = "",
            cancel: Any = None) -> dict[str, Any]:
    """Prepare every entry (progress bar on stderr); writes and returns OUT/dataset.json."""
    from tqdm import tqdm

    from core.errors import EvidenceError

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    videos: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    bar = tqdm(entries, desc="preparing", unit="video", file=sys.stderr, disable=None)
    for e in bar:
        bar.set_postfix_str(e.path.name)
        try:
            v = prepare_video(e, out, prep, cancel)
        except CancelledError:
            raise
        except (EvidenceError, VerityError, OSError) as exc:  # corrupt, truncated, unreadable: listed, never fatal
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("%s skipped: %s", e.path, reason)
            failures.append({"path": str(e.path), "label": LABELS[e.label], "split": e.split, "reason": reason})
            continue
        videos.append({k: v[k] for k in ("path", "sha256", "label", "split", "crops", "faces_found", "frames_sampled", "frames_kept",
                                         "alignment_fallbacks", "decode_failures", "reused")} | {"clip": str(clip_dir(out, v["sha256"], prep).relative_to(out))})
        _write_index(out, source, prep, videos, failures, t0)
    bar.close()
    return _write_index(out, source, prep, videos, failures, t0)


def _write_index(out: Path, source: str, prep: SeqPreprocessing, videos: list[dict[str, Any]], failures: list[dict[str, Any]], t0: float) -> dict[str, Any]:
    crops = sum(v["crops"] for v in videos)
    stats = {
        "videos_ok": sum(1 for v in videos if v["crops"]), "videos_without_face": sum(1 for v in videos if not v["crops"]),
        "videos_failed": len(failures), "videos_reused": sum(1 for v in videos if v["reused"]), "crops": crops,
        "alignment_fallbacks": sum(v["alignment_fallbacks"] for v in videos),
        "fallback_fraction": round(sum(v["alignment_fallbacks"] for v in videos) / crops, 4) if crops else None,
        "by_split_label": {f"{s}/{lab}": sum(1 for v in videos if v["split"] == s and v["label"] == lab and v["crops"])
                           for s in ("train", "test") for lab in LABELS},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    index = {"format": DATASET_FORMAT, "source": source, "preprocessing": prep.to_dict(), "crop_key": prep.crop_key(),
             "videos": videos, "failures": failures, "stats": stats}
    tmp = out / "dataset.json.part"
    tmp.write_text(json.dumps(index, indent=1))
    os.replace(tmp, out / "dataset.json")
    return index


# ----------------------------------------------------------------------------------------------
# reading for training and evaluation


@dataclass
class Clip:
    sha256: str
    path: str
    label: int
    split: str
    crops: np.ndarray  # (K, S, S, 3) uint8, memory-mapped
    frame: np.ndarray
    track: np.ndarray
    sampled: np.ndarray

    def windows(self, length: int, stride: int, min_frames: int) -> list[Window]:
        """The detector's windows (same rule, `sequence_cnn.track_windows`) over this clip's crops."""
        out: list[Window] = []
        for tid in np.unique(self.track):
            out += track_windows(_Track(int(tid), np.sort(self.frame[self.track == tid])), self.sampled, length, stride, min_frames)
        return out

    @cached_property
    def _rows(self) -> dict[tuple[int, int], int]:
        return {(int(t), int(f)): k for k, (t, f) in enumerate(zip(self.track, self.frame))}

    def window_crops(self, w: Window) -> np.ndarray:
        """(T, S, S, 3) uint8 crops of a window."""
        return np.asarray(self.crops[[self._rows[(w.track_id, f)] for f in w.frames]])


@dataclass
class _Track:
    track_id: int
    frames: np.ndarray


def load_dataset(folder: str | os.PathLike[str]) -> tuple[dict[str, Any], list[Clip]]:
    """(dataset.json, the clips with crops) of a prepared folder."""
    root = Path(folder)
    try:
        index = json.loads((root / "dataset.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise VerityError(f"{root}: not a prepared dataset (no readable dataset.json; run 'verity prepare' first): {exc}") from None
    if index.get("format") != DATASET_FORMAT:
        raise VerityError(f"{root}/dataset.json is not a {DATASET_FORMAT} index")
    clips = []
    for v in index["videos"]:
        if not v["crops"]:
            continue
        d = root / v["clip"]
        with np.load(d / "index.npz", allow_pickle=False) as z:
            frame, track, sampled = z["frame"], z["track"], z["sampled"]
        crops = np.load(d / "crops.npy", mmap_mode="r", allow_pickle=False)
        clips.append(Clip(v["sha256"], v["path"], LABELS.index(v["label"]), v["split"], crops, frame, track, sampled))
    return index, clips


def augmentation() -> Any:
    """Training augmentation on uint8 (T, 3, H, W): rotation +-15 degrees, horizontal flip,
    brightness/contrast +-20 %, blur, JPEG compression. torchvision v2 draws the parameters once
    per call, so all frames of a sequence get the same transform (no flicker for the LSTM to learn)."""
    from torchvision.transforms import v2

    return v2.Compose([
        v2.RandomHorizontalFlip(0.5),
        v2.RandomRotation(15),
        v2.ColorJitter(brightness=0.2, contrast=0.2),
        v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.3),
        v2.RandomApply([v2.JPEG((40, 95))], p=0.3),
    ])


class SequenceDataset:
    """(window tensor (T, 3, s, s) float, label) items; augmented when `augment` is given."""

    def __init__(self, clips: list[Clip], items: list[tuple[int, Window]], prep: SeqPreprocessing, augment: Any = None) -> None:
        self.clips, self.items, self.prep, self.augment = clips, items, prep, augment

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        import torch

        ci, w = self.items[i]
        x = torch.from_numpy(self.clips[ci].window_crops(w)).permute(0, 3, 1, 2).float()  # (T, 3, S, S) 0..255
        x = resize(x, self.prep.input_size)  # first: augmenting the smaller picture is cheaper
        if self.augment is not None:
            x = self.augment(x.round_().clamp_(0, 255).to(torch.uint8)).float()
        return normalise(x.div_(255.0), self.prep.normalisation), self.clips[ci].label
