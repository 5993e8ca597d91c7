"""EyeBlink-CNN-LSTM's input: from a face track and its blink events to sequences of eye crops
and their frozen-Xception features. Shared by the detector (core.detectors.eyeblink_cnn_lstm)
and training (core/train/eyeblink*.py), so training and analysis cut the same crops."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from core.digest import params_key
from core.face.eye_crop import crop_eyes, eye_crop_transform  # noqa: F401 - eye_crop_transform: also imported from here
from core.params import from_dict
from core.progress import CancelToken, Throttle

if TYPE_CHECKING:
    import torch

    from core.face.facepass import FacePass, FaceTrack
    from core.models.eyeblink_cnn_lstm import XceptionFeatures
    from core.video.reader import VideoReader

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the card's normalisation
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Preprocessing:
    """Everything that turns a face track into the head's input; stored in the head's metadata."""

    input_size: int = 299  # timm legacy_xception config
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)  # timm config for these weights; the card says ImageNet's
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    crop_margin: float = 0.15  # crop side = outer-eye-corner distance * (1 + 2 * margin)
    sequence_length: int = 8
    frame_skip: int = 1  # 1: every frame of a blink; 10: the card's sampling

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        # a head's record: fields of a newer version are ignored; mean/std become tuples
        out = from_dict(cls, {k: v for k, v in d.items() if k not in ("mean", "std")}, "EyeBlink preprocessing record", unknown="ignore")
        if "mean" in d:
            out.mean = tuple(float(v) for v in d["mean"])  # type: ignore[assignment]
        if "std" in d:
            out.std = tuple(float(v) for v in d["std"])  # type: ignore[assignment]
        return out

    def key(self) -> str:
        return params_key(self.to_dict())


@dataclass
class BlinkWindow:
    """One sequence for the head: `frames` (length sequence_length) of one track around one blink."""

    track_id: int
    blink_index: int
    frames: list[int]
    blink_start: int
    blink_end: int

    @property
    def start_frame(self) -> int:
        return min(self.frames)

    @property
    def end_frame(self) -> int:
        return max(self.frames)


def _runs_of(positions: np.ndarray, frames: np.ndarray, step: int) -> tuple[int, int]:
    """The run [lo, hi] of consecutive sampled frames (difference == step) containing positions."""
    lo, hi = int(positions[0]), int(positions[-1])
    while lo > 0 and frames[lo] - frames[lo - 1] == step:
        lo -= 1
    while hi < frames.size - 1 and frames[hi + 1] - frames[hi] == step:
        hi += 1
    return lo, hi


def blink_windows(
    track_frames: np.ndarray,
    events: Sequence[Any],
    sequence_length: int,
    frame_skip: int = 1,
    track_id: int = 0,
    assessable: np.ndarray | None = None,
) -> tuple[list[BlinkWindow], int]:
    """Sequences of `sequence_length` frames for each blink event; also the blink frames found.

    The blink's frames are those of the track within [start_frame, end_frame] (every
    `frame_skip`-th video frame when frame_skip > 1, as the card samples). Consistent rule for
    any blink length n and sequence length L:
    - n <= L: one window centred on the blink, filled out with the track's neighbouring sampled
      frames (the lids' descent and rise); where the track ends, the edge frame is repeated.
    - n > L: ceil(n / L) windows of L frames evenly spread over the blink, covering every frame.

    `assessable` (bool per track row, `core.signals.eyes`): frames whose eyes cannot be judged
    count as frames without a face. A sequence never contains one: the padding stops at them (the
    edge frame is repeated, as at a track end), and an event with an unassessable frame inside
    [start_frame, end_frame] is skipped and its frames not counted as found (the pipeline's
    masked events never have one; unmasked events from elsewhere may).
    """
    L = int(sequence_length)
    if L < 1:
        raise ValueError("sequence_length must be >= 1")
    step = max(int(frame_skip), 1)
    frames = np.asarray(track_frames)
    if assessable is not None:
        ok = np.asarray(assessable, bool).reshape(-1)
        if ok.size != frames.size:
            raise ValueError(f"{frames.size} track frames but {ok.size} assessable flags")
        bad = frames[~ok]
        frames = frames[ok]  # a removed frame breaks the run of consecutive frames, like a face lost
    else:
        bad = frames[:0]
    if step > 1:
        frames = frames[frames % step == 0]
    windows: list[BlinkWindow] = []
    found = 0
    for k, ev in enumerate(events):
        if bad.size and ((bad >= ev.start_frame) & (bad <= ev.end_frame)).any():
            continue  # eyes not judged during this "blink": no sequence from it
        pos = np.flatnonzero((frames >= ev.start_frame) & (frames <= ev.end_frame))
        n = int(pos.size)
        found += n
        if n == 0:
            continue
        a, b = int(pos[0]), int(pos[-1])
        if n <= L:
            lo, hi = _runs_of(pos, frames, step)
            before = (L - n) // 2
            start = a - before
            start = max(lo, min(start, hi - L + 1))
            idx = [min(max(j, lo), hi) for j in range(start, start + L)]  # clamped: edge repeated
            windows.append(BlinkWindow(track_id, k, [int(frames[j]) for j in idx], ev.start_frame, ev.end_frame))
        else:
            m = math.ceil(n / L)
            for s in np.round(np.linspace(a, b - L + 1, m)).astype(int):
                windows.append(BlinkWindow(track_id, k, [int(f) for f in frames[s : s + L]], ev.start_frame, ev.end_frame))
    return windows, found


def windows_for(
    facepass: FacePass,
    blinks: dict[int, list[Any]],
    prep: Preprocessing,
    tracks: str = "all",
    assessable: dict[int, np.ndarray] | None = None,
) -> tuple[list[BlinkWindow], int]:
    """Blink windows of every track (or only the track seen longest, as the card's single subject).
    `assessable`: track id -> bool per row (see `blink_windows`); a track missing from it is
    checked with `core.signals.eyes.eyes_assessable` at its default parameters, so no sequence
    ever holds a frame whose eyes cannot be judged."""
    from core.signals.eyes import eyes_assessable

    chosen = list(facepass.tracks)
    if tracks == "largest" and chosen:
        chosen = [max(chosen, key=lambda t: (len(t), -t.track_id))]
    out: list[BlinkWindow] = []
    found = 0
    for t in chosen:
        ok = (assessable or {}).get(t.track_id)
        if ok is None:
            ok = eyes_assessable(t, facepass.width, facepass.height, facepass.fps)
        w, n = blink_windows(t.frames, blinks.get(t.track_id, []), prep.sequence_length, prep.frame_skip, t.track_id, ok)
        out += w
        found += n
    return out, found


def iter_crops(
    reader: VideoReader,
    facepass: FacePass,
    windows: Iterable[BlinkWindow],
    prep: Preprocessing,
    cancel: CancelToken | None = None,
) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
    """((track, frame), eye crop uint8 HxWx3) for every crop the windows need, each frame decoded
    once, in increasing frame order (the reader decodes forward). A generator, so a long video's
    crops never all sit in memory at once."""
    need: dict[int, set[int]] = {}
    for w in windows:
        for f in w.frames:
            need.setdefault(f, set()).add(w.track_id)
    tracks: dict[int, FaceTrack] = {t.track_id: t for t in facepass.tracks}
    for f in sorted(need):
        if cancel is not None:
            cancel.raise_if_cancelled()
        rgb = reader.frame(f)
        for tid in sorted(need[f]):
            tr = tracks[tid]
            row = tr.row_of(f)
            if row is not None:  # always, for frames taken from the track
                yield (tid, f), crop_eyes(rgb, tr.landmarks[row], prep.input_size, prep.crop_margin)


def read_crops(
    reader: VideoReader, facepass: FacePass, windows: Iterable[BlinkWindow], prep: Preprocessing, cancel: CancelToken | None = None
) -> dict[tuple[int, int], np.ndarray]:
    """All crops the windows need, in memory (short clips, tests)."""
    return dict(iter_crops(reader, facepass, windows, prep, cancel))


def to_tensor(crops: np.ndarray, prep: Preprocessing) -> torch.Tensor:
    """uint8 (N, H, W, 3) RGB -> normalised float (N, 3, H, W)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(prep.mean).view(1, 3, 1, 1)
    std = torch.tensor(prep.std).view(1, 3, 1, 1)
    return (x - mean) / std


def backbone_features(
    backbone: XceptionFeatures,
    crops: dict[tuple[int, int], np.ndarray] | Iterable[tuple[tuple[int, int], np.ndarray]],
    prep: Preprocessing,
    device: str = "cpu",
    batch_size: int = 16,
    cancel: CancelToken | None = None,
    progress: Any = None,
    total: int | None = None,
    thumbnails: dict[tuple[int, int], np.ndarray] | None = None,
) -> dict[tuple[int, int], np.ndarray]:
    """2048-d Xception feature per crop (each crop through the backbone once), in batches.

    `thumbnails`: when given, a 128 px copy of every crop is kept there (for the visualisation).
    """
    import cv2
    import torch

    pairs = crops.items() if isinstance(crops, dict) else crops
    total = len(crops) if isinstance(crops, dict) else total
    tick = Throttle(progress, 0.2) if progress else None
    out: dict[tuple[int, int], np.ndarray] = {}
    keys: list[tuple[int, int]] = []
    imgs: list[np.ndarray] = []

    def flush() -> None:
        x = to_tensor(np.stack(imgs), prep).to(device)
        with torch.inference_mode():
            feats = backbone(x).float().cpu().numpy()
        out.update(zip(keys, feats))
        keys.clear()
        imgs.clear()
        if tick:
            tick("eyeblink", min(1.0, len(out) / total) if total else 0.0, f"Xception features {len(out)}/{total or '?'}")

    for key, crop in pairs:
        if cancel is not None:
            cancel.raise_if_cancelled()
        keys.append(key)
        imgs.append(crop)
        if thumbnails is not None:
            thumbnails[key] = cv2.resize(crop, (128, 128), interpolation=cv2.INTER_AREA)
        if len(imgs) == batch_size:
            flush()
    if imgs:
        flush()
    return out


def sequence_array(windows: Sequence[BlinkWindow], feats: dict[tuple[int, int], np.ndarray]) -> np.ndarray:
    """(S, L, 2048) float32 features of the windows, in window order."""
    if not windows:
        return np.zeros((0, 0, 2048), np.float32)
    return np.stack([np.stack([feats[(w.track_id, f)] for f in w.frames]) for w in windows]).astype(np.float32)
