"""LipFD training data: find labelled clips, build their windows once (cached), serve tensors.

Layouts accepted (label 1 = lip-sync fake):

    AVLips (upstream):  ROOT/0_real/*.mp4, ROOT/1_fake/*.mp4, audio ROOT/wav/0_real/<stem>.wav ...
    plain:              ROOT/real/*.mp4,   ROOT/fake/*.mp4,   audio <stem>.wav beside the video
                        (or ROOT/wav/real/<stem>.wav); without a .wav the container's audio is used

Windows are made exactly as the detector makes them (core.detectors.lipfd.extract_windows:
face-centred, per-frame crops, mel by time) and cached as lossless PNG composites under the
cache folder, keyed by the clip's sha256 and the preprocessing, so a second run reuses them.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.detectors.lipfd import LipFDPreprocessing, composite_tensors, extract_windows
from core.digest import params_key, sha256_file
from core.errors import VerityError
from core.progress import no_progress

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".mpg", ".webm"}
LABEL_DIRS = {"0_real": 0, "1_fake": 1, "real": 0, "fake": 1}


@dataclass
class Clip:
    video: Path
    audio: Path | None  # None: decode the container's audio
    label: int

    @property
    def key(self) -> str:
        return f"{LABEL_DIRS_INV[self.label]}/{self.video.name}"


LABEL_DIRS_INV = {0: "real", 1: "fake"}


def discover(root: str | Path) -> list[Clip]:
    """Labelled clips under root in the AVLips or plain layout (symlinks are followed)."""
    root = Path(root)
    if not root.is_dir():
        raise VerityError(f"dataset folder not found: {root}")
    clips: list[Clip] = []
    for dirname, label in LABEL_DIRS.items():
        d = root / dirname
        if not d.is_dir():
            continue
        for v in sorted(d.iterdir()):
            if v.suffix.lower() not in VIDEO_EXTS or not v.is_file():
                continue
            wav = None
            for cand in (root / "wav" / dirname / f"{v.stem}.wav", v.with_suffix(".wav")):
                if cand.is_file():
                    wav = cand
                    break
            clips.append(Clip(v, wav, label))
    if not clips:
        raise VerityError(f"no labelled videos under {root} (expected 0_real/ and 1_fake/, or real/ and fake/)")
    return clips


def split(clips: list[Clip], val_fraction: float, seed: int = 0) -> tuple[list[Clip], list[Clip]]:
    """Hold out whole clips (never windows of a training clip), per class, at least one each."""
    rng = random.Random(seed)
    train, val = [], []
    for label in (0, 1):
        group = [c for c in clips if c.label == label]
        rng.shuffle(group)
        n_val = int(round(len(group) * val_fraction))
        if val_fraction > 0 and len(group) >= 2:
            n_val = max(n_val, 1)
        n_val = min(n_val, max(len(group) - 1, 0))
        val += group[:n_val]
        train += group[n_val:]
    return train, val


def _sha256(path: Path) -> str:
    return sha256_file(path)


def clip_cache_dir(clip: Clip, prep: LipFDPreprocessing, cache_root: Path) -> Path:
    key = params_key(prep.to_dict())
    vid = _sha256(clip.video)
    aud = _sha256(clip.audio)[:12] if clip.audio else "container"
    return cache_root / f"{vid}-{aud}-{key}"


def facepass_for(video: Path, cache_root: Path) -> Any:
    """The face pass of a clip: the pipeline's own stored pass (one per video and parameters)."""
    from core.pipeline import AnalysisOptions, load_or_run_facepass

    fp, _ = load_or_run_facepass(video, _sha256(video), AnalysisOptions(work_dir=cache_root), no_progress, None)
    return fp


def build_windows(clip: Clip, prep: LipFDPreprocessing, cache_root: Path) -> list[Path]:
    """PNG composites of the clip's windows (made once, then read from the cache)."""
    import cv2

    from core.audio import load_audio

    d = clip_cache_dir(clip, prep, cache_root)
    done = d / "windows.json"
    if done.is_file():
        names = json.loads(done.read_text())["files"]
        paths = [d / n for n in names]
        if all(p.is_file() for p in paths):
            return paths
    audio = load_audio(clip.audio or clip.video, sample_rate=prep.audio_sample_rate)
    # A separate .wav (AVLips) starts with the video; the container's audio keeps its own start.
    start = 0.0 if clip.audio else audio.start_time_s
    fp = facepass_for(clip.video, cache_root) if prep.face_centred else None
    windows = extract_windows(clip.video, audio.samples, audio.sample_rate, start, fp, prep)
    d.mkdir(parents=True, exist_ok=True)
    names = []
    for w in windows.windows:
        name = f"w{w.index:02d}_{w.start_frame}.png"
        cv2.imwrite(str(d / name), cv2.cvtColor(w.composite, cv2.COLOR_RGB2BGR))  # lossless
        names.append(name)
    done.write_text(json.dumps({"files": names, "video": str(clip.video), "frame_count": windows.frame_count, "note": windows.note}))
    return [d / n for n in names]


class WindowDataset:
    """(global tensor, crops tensor, label, clip index) for each cached window."""

    def __init__(self, clips: list[Clip], cfg: Any, prep: LipFDPreprocessing, cache_root: Path, progress: Any = None) -> None:
        self.cfg, self.prep = cfg, prep
        self.items: list[tuple[Path, int, int]] = []
        for i, clip in enumerate(clips):
            for p in build_windows(clip, prep, cache_root):
                self.items.append((p, clip.label, i))
            if progress is not None:
                progress(i + 1, len(clips))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> tuple[Any, Any, int, int]:
        import cv2

        path, label, clip = self.items[k]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise VerityError(f"cached window unreadable: {path}")
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        g, c = composite_tensors(rgb, self.cfg, self.prep)
        return g, c, label, clip
