"""LipFD training data: find labelled clips, build their windows once (cached), serve tensors.

Layouts accepted (label 1 = lip-sync fake):

    AVLips (upstream):  ROOT/0_real/*.mp4, ROOT/1_fake/*.mp4   (ROOT/wav/ is not read)
    plain:              ROOT/real/*.mp4,   ROOT/fake/*.mp4

Audio always comes from the clip's own container track, read as the detector reads evidence
(`core.detectors.lipfd_input.clip_audio`): a model must be trained on the audio it will be given,
and evidence has no separate .wav. A clip without an audio track is skipped, and the trainer
reports it.

Windows are made exactly as the detector makes them in the chosen mode (`clip_windows`) and
cached as lossless PNG composites under the cache folder, keyed by the clip's sha256 and the
preprocessing record, so a second run reuses them.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.detectors.lipfd_input import LipFDPreprocessing, clip_audio, clip_windows, composite_tensors
from core.digest import params_key, sha256_file
from core.errors import VerityError
from core.progress import no_progress

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".mpg", ".webm"}
LABEL_DIRS = {"0_real": 0, "1_fake": 1, "real": 0, "fake": 1}


@dataclass
class Clip:
    video: Path
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
            if v.suffix.lower() in VIDEO_EXTS and v.is_file():
                clips.append(Clip(v, label))
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
    return cache_root / f"{_sha256(clip.video)}-{prep.mode}-{params_key(prep.to_dict())}"


def facepass_for(video: Path, cache_root: Path) -> Any:
    """The face pass of a clip: the pipeline's own stored pass (one per video and parameters)."""
    from core.pipeline import AnalysisOptions, load_or_run_facepass

    fp, _ = load_or_run_facepass(video, _sha256(video), AnalysisOptions(work_dir=cache_root), no_progress, None)
    return fp


def build_windows(clip: Clip, prep: LipFDPreprocessing, cache_root: Path) -> tuple[list[Path], str]:
    """PNG composites of the clip's windows (made once, then read from the cache), and a note
    (why there are none: no audio track, too few frames)."""
    import cv2

    from core.errors import EvidenceError

    d = clip_cache_dir(clip, prep, cache_root)
    done = d / "windows.json"
    if done.is_file():
        rec = json.loads(done.read_text())
        paths = [d / n for n in rec["files"]]
        if all(p.is_file() for p in paths):
            return paths, rec.get("note", "")
    try:
        audio = clip_audio(clip.video, prep)
    except EvidenceError as exc:
        return [], f"{clip.key}: {exc}"
    fp = facepass_for(clip.video, cache_root) if (prep.face_centred and not prep.upstream) else None
    windows = clip_windows(clip.video, audio, fp, prep)
    d.mkdir(parents=True, exist_ok=True)
    names = []
    for w in windows.windows:
        name = f"w{w.index:02d}_{w.start_frame}.png"
        cv2.imwrite(str(d / name), cv2.cvtColor(w.composite, cv2.COLOR_RGB2BGR))  # lossless
        names.append(name)
    done.write_text(json.dumps({"files": names, "video": str(clip.video), "frame_count": windows.frame_count, "note": windows.note}))
    return [d / n for n in names], windows.note


class WindowDataset:
    """(global tensor, crops tensor, label, clip index) for each cached window."""

    def __init__(self, clips: list[Clip], cfg: Any, prep: LipFDPreprocessing, cache_root: Path, progress: Any = None) -> None:
        self.cfg, self.prep = cfg, prep
        self.items: list[tuple[Path, int, int]] = []
        self.skipped: list[str] = []  # clips that gave no window, with the reason
        for i, clip in enumerate(clips):
            paths, note = build_windows(clip, prep, cache_root)
            if not paths:
                self.skipped.append(note or f"{clip.key}: no window")
            for p in paths:
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
