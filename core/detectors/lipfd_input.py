"""LipFD's input: windows of a clip -> composite images -> the network's tensors, in two modes.

A checkpoint is fed the way it was trained, so the mode comes from the checkpoint
(`LipFDPreprocessing.mode`, chosen in core.detectors.lipfd.load_model), never from the examiner:

`upstream` reproduces AaronComo/LipFD's `preprocess.py` + `data/datasets.py` (commit 3ed140a),
which its published `ckpt.pth` was trained and validated on, defects included:
- frame count: the container's declared count (OpenCV's CAP_PROP_FRAME_COUNT);
- window starts: `np.linspace(0, n - 6, 10, dtype=np.uint8)`, sorted. Past 255 the starts wrap
  modulo 256 (a clip longer than 261 frames has windows moved back to its start; its end is never
  examined), and overlapping windows (a clip under ~50 frames, or wrapped starts) share frames, so
  later windows take frames and mel columns that do not belong together (`upstream_plan`);
- frames: the whole decoded frame resized to 500x500 (cv2 bilinear), no face framing;
- audio: the container's track read as `librosa.load` reads upstream's separate .wav (own rate,
  channel mean, soxr to 22.05 kHz); `power_to_db(melspectrogram, ref=np.min)` written with
  `plt.imsave` (viridis) and read back with `plt.imread` * 255 -> uint8 (which truncates);
- mel columns: `round(frame * mel_width / frame_count)`, by frame index, not by time;
- tensors: BGR 0-255 (cv2.imread of the composite; its CLIP normalisation is computed and
  discarded), bilinear resizes without antialiasing (torchvision 0.16 on tensors), and the five
  regional crops are frame 0 shifted by 0..4 pixels (`img[:, 500:, i:i + 500]`), not the five frames;
- inference in float32.

`verity` is what Verity's own trainer uses (and records): each window cut to a square around the
tracked face (1.6x the box) when a track covers it, mel columns by frame and audio timestamps,
16 kHz audio from FFmpeg's resampler, one crop per window frame, antialiased resizes, RGB with
CLIP's normalisation, int64 window starts, mixed precision on CUDA.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.params import from_dict
from core.signals.timebase import usable_fps

MODES = ("upstream", "verity")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# The card's face and lip crops, as fractions of the 224-px full-frame crop: [28:196], [61:163].
FACE_CROP = (28 / 224, 196 / 224)
LIP_CROP = (61 / 224, 163 / 224)


@dataclass
class LipFDPreprocessing:
    mode: str = "verity"  # "upstream" or "verity": which input path (module docstring)
    audio_sample_rate: int = 16000  # card: 16 kHz (upstream code: 22050)
    colour_order: str = "RGB"  # card: RGB (upstream code: BGR, cv2.imread of the composite)
    normalisation: str = "clip"  # "clip": 0-1 then CLIP mean/std; "none": raw 0-255 (upstream)
    frame_size: int = 500
    window_len: int = 5
    n_extract: int = 10
    face_centred: bool = True  # verity mode: square crop around the tracked face
    face_scale: float = 1.6  # side of that square / the larger side of the face box
    mel_hop: int = 512
    mel_by_time: bool = True  # verity mode: mel columns from timestamps

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown LipFD preprocessing mode {self.mode!r} (known: {', '.join(MODES)})")

    @property
    def upstream(self) -> bool:
        return self.mode == "upstream"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LipFDPreprocessing:
        """A record without `mode` predates the modes: Verity wrote it, on the verity path."""
        # a checkpoint's record: fields of a newer version are ignored, not refused
        return from_dict(cls, {"mode": "verity", **d}, "LipFD preprocessing record", unknown="ignore")


def upstream_preprocessing(**kw: Any) -> LipFDPreprocessing:
    base = {"mode": "upstream", "audio_sample_rate": 22050, "colour_order": "BGR", "normalisation": "none",
            "face_centred": False, "mel_by_time": False}
    return LipFDPreprocessing(**{**base, **kw})


UPSTREAM_PREPROCESSING = upstream_preprocessing()


# --------------------------------------------------------------------------------------------
# windows


@dataclass
class Window:
    index: int
    start_frame: int
    end_frame: int  # inclusive
    composite: np.ndarray  # uint8 (2fs, fs*W, 3) RGB
    face_centred: bool
    track_id: int | None = None
    mel_start_frame: int | None = None  # upstream: the frame its mel columns start at (see upstream_plan)


@dataclass
class ClipWindows:
    windows: list[Window] = field(default_factory=list)
    frame_count: int = 0
    note: str = ""


def window_starts(frame_count: int, window_len: int = 5, n_extract: int = 10) -> np.ndarray:
    """Verity mode: linearly spaced starts in [0, frame_count - window_len - 1], int64, unique."""
    if frame_count < window_len:
        return np.zeros(0, np.int64)
    last = max(frame_count - window_len - 1, 0)
    return np.unique(np.linspace(0, last, n_extract).astype(np.int64))


def upstream_window_starts(frame_count: int, window_len: int = 5, n_extract: int = 10) -> np.ndarray:
    """Upstream: `np.linspace(0, n - window_len - 1, n_extract, dtype=np.uint8)`, sorted.

    The float -> uint8 cast keeps the floor modulo 256 (numpy on x86-64): written out so it does
    not depend on the platform. Fewer than window_len + 1 frames: no window (upstream breaks).
    """
    last = frame_count - window_len - 1
    if last < 0:
        return np.zeros(0, np.int64)
    return np.sort(np.floor(np.linspace(0, last, n_extract)).astype(np.int64) % 256)


def upstream_plan(frame_count: int, window_len: int = 5, n_extract: int = 10) -> list[tuple[list[int], int]]:
    """Upstream's windows as (frames, frame its mel columns start at), in its order.

    preprocess.py reads each wanted frame once (overlapping windows share frames), cuts that list
    into runs of window_len, and takes the mel start of run k from its k*window_len-th wanted
    index: with overlaps the two disagree. A short last run is dropped (its concatenation fails).
    """
    starts = upstream_window_starts(frame_count, window_len, n_extract)
    sequence = [int(i) for s in starts for i in range(s, s + window_len)]
    frames = sorted(set(sequence))
    return [(frames[i : i + window_len], sequence[i]) for i in range(0, len(frames), window_len) if len(frames[i : i + window_len]) == window_len]


def face_square(box: np.ndarray, scale: float) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the square around a face box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return (x0 + x1) / 2, (y0 + y1) / 2, scale * max(x1 - x0, y1 - y0)


def crop_square(frame: np.ndarray, cx: float, cy: float, side: float) -> np.ndarray:
    """Square crop, padded with black where it leaves the picture."""
    import cv2

    h, w = frame.shape[:2]
    s = max(int(round(side)), 2)
    x0, y0 = int(round(cx - s / 2)), int(round(cy - s / 2))
    pad = max(0, -x0, -y0, x0 + s - w, y0 + s - h)
    if pad:
        frame = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        x0, y0 = x0 + pad, y0 + pad
    return frame[y0 : y0 + s, x0 : x0 + s]


def window_boxes(facepass: Any, start: int, window_len: int) -> tuple[list[np.ndarray | None], int | None]:
    """Face box for each window frame from the track that covers the window best.

    Frames the track misses take the nearest tracked box. (None, None) when no track is near.
    """
    frames = np.arange(start, start + window_len)
    best, best_cover = None, 0
    for t in facepass.tracks:
        cover = int(np.isin(frames, t.frames).sum())
        near = t.first_frame - window_len <= start <= t.last_frame + window_len
        if (cover > best_cover) or (best is None and near and len(t)):
            best, best_cover = t, cover
    if best is None:
        return [None] * window_len, None
    out: list[np.ndarray | None] = []
    for f in frames:
        k = int(np.argmin(np.abs(best.frames - f)))
        out.append(best.boxes[k] if abs(int(best.frames[k]) - int(f)) <= 2 * window_len else None)
    return out, best.track_id


def compose_window(frames_rgb: list[np.ndarray], mel_segment: np.ndarray, frame_size: int = 500) -> np.ndarray:
    """The card's composite: mel (frame_size x frame_size*W) on top, frames side by side below.

    cv2 bilinear resizes, as upstream's preprocess.py. -> uint8 (2*frame_size, frame_size*W, 3), RGB.
    """
    import cv2

    w = len(frames_rgb)
    row = np.concatenate([cv2.resize(f, (frame_size, frame_size)) for f in frames_rgb], axis=1)
    if mel_segment.shape[1] == 0:
        mel_segment = np.zeros((mel_segment.shape[0] or 1, 1, 3), np.uint8)
    mel = cv2.resize(mel_segment, (frame_size * w, frame_size))
    return np.ascontiguousarray(np.concatenate([mel, row], axis=0))


def upstream_mel_image(samples: np.ndarray, sample_rate: int, hop_length: int = 512) -> np.ndarray:
    """Upstream's mel picture, uint8 (128, T, 3) RGB: the same PNG round trip through matplotlib.

    `plt.imread` returns value / 255 in float32 and upstream multiplies by 255 and casts to uint8,
    which truncates (some levels come back one lower): reproduced by doing the same.
    """
    from matplotlib import image as mpimg

    from core.audio.mel import mel_db

    db = mel_db(samples, sample_rate, hop_length=hop_length)
    if db.shape[1] == 0:
        return np.zeros((db.shape[0], 0, 3), np.uint8)
    buf = io.BytesIO()
    mpimg.imsave(buf, db, cmap="viridis", format="png")
    buf.seek(0)
    rgba = mpimg.imread(buf, format="png")
    return np.ascontiguousarray((rgba[..., :3] * 255).astype(np.uint8))


def clip_audio(path: str | Path, prep: LipFDPreprocessing, shared: Any = None) -> Any:
    """The audio a mode reads from the evidence (the detector and the trainer both call this).

    `shared`: the analysis' 16 kHz track (AnalysisContext.audio), reused where it is the same.
    Raises EvidenceError when the container has no decodable audio.
    """
    from core.audio import load_audio
    from core.audio.decode import load_audio_as_librosa

    if prep.upstream:
        return load_audio_as_librosa(path, prep.audio_sample_rate)
    if shared is not None and shared.sample_rate == prep.audio_sample_rate:
        return shared
    return load_audio(path, sample_rate=prep.audio_sample_rate)


def clip_windows(
    video: str | Path, audio: Any, facepass: Any, prep: LipFDPreprocessing, cancel: Any = None, video_stream: int | None = None
) -> ClipWindows:
    """The windows of one clip, made as the checkpoint's mode says. `audio`: a core.audio.AudioTrack.
    A window holding a frame that cannot be decoded is left out (no window reads across damage)."""
    if prep.upstream:
        return _upstream_windows(video, audio.samples, audio.sample_rate, prep, cancel, video_stream)
    return _verity_windows(video, audio.samples, audio.sample_rate, audio.start_time_s, facepass, prep, cancel, video_stream)


def _read_all(reader: Any, frames: Any) -> list[np.ndarray] | None:
    """The frames, or None when one of them cannot be decoded (damaged or missing data)."""
    from core.errors import EvidenceError

    try:
        return [reader.frame(int(i)) for i in frames]
    except EvidenceError:
        return None


def _upstream_windows(
    video: str | Path, samples: np.ndarray, sample_rate: int, prep: LipFDPreprocessing, cancel: Any, video_stream: int | None = None
) -> ClipWindows:
    from core.video.reader import VideoReader

    mel = upstream_mel_image(samples, sample_rate, prep.mel_hop)
    out = ClipWindows()
    with VideoReader(video, stream_index=video_stream) as reader:
        n = reader.index.declared_frames or reader.frame_count  # what OpenCV's CAP_PROP_FRAME_COUNT says
        out.frame_count = n
        plan = upstream_plan(n, prep.window_len, prep.n_extract)
        if not plan:
            out.note = f"the video has {n} frames, too few for upstream's windows of {prep.window_len}"
            return out
        mapping = mel.shape[1] / n
        lost = 0
        for frames, mel_start in plan:
            if cancel is not None:
                cancel.raise_if_cancelled()
            c0 = int(np.round(mel_start * mapping))
            c1 = int(np.round((mel_start + prep.window_len) * mapping))
            if frames[-1] >= reader.frame_count or c1 <= c0 or c0 >= mel.shape[1]:
                lost += 1  # upstream: the frame read fails, or an empty mel slice stops its run
                continue
            pictures = _read_all(reader, frames)
            if pictures is None:
                lost += 1
                continue
            comp = compose_window(pictures, mel[:, c0:c1], prep.frame_size)
            out.windows.append(Window(len(out.windows), frames[0], frames[-1], comp, False, None, mel_start))
        notes = []
        if lost:
            notes.append(f"{lost} upstream window(s) could not be made (frames or audio missing, or frames that cannot be decoded)")
        if any(w.mel_start_frame != w.start_frame for w in out.windows):
            notes.append("upstream's overlapping windows pair some frames with other frames' audio (reproduced)")
        if n - prep.window_len - 1 > 255:
            notes.append("upstream's uint8 window starts wrap past frame 255: the end of the clip is not examined (reproduced)")
        out.note = "; ".join(notes)
    return out


def _verity_windows(
    video: str | Path, samples: np.ndarray, sample_rate: int, audio_start_s: float, facepass: Any, prep: LipFDPreprocessing,
    cancel: Any = None, video_stream: int | None = None,
) -> ClipWindows:
    """Face-centred composites with the mel segment aligned by time."""
    from core.audio.mel import mel_image
    from core.video.reader import VideoReader

    mel = mel_image(samples, sample_rate, audio_start_s, hop_length=prep.mel_hop)
    out = ClipWindows(frame_count=facepass.frame_count if facepass is not None else 0)
    damaged = 0
    with VideoReader(video, stream_index=video_stream) as reader:
        n = reader.frame_count
        out.frame_count = n
        times = reader.index.times_s
        fps = usable_fps(reader.fps)
        starts = window_starts(n, prep.window_len, prep.n_extract)
        if starts.size == 0:
            out.note = f"the video has {n} frames, fewer than one window of {prep.window_len}"
            return out
        for k, s in enumerate(starts):
            if cancel is not None:
                cancel.raise_if_cancelled()
            idx = list(range(int(s), int(s) + prep.window_len))
            read = _read_all(reader, idx)
            if read is None:
                damaged += 1
                continue
            frames = read
            boxes, tid = window_boxes(facepass, int(s), prep.window_len) if (facepass is not None and prep.face_centred) else ([None] * len(idx), None)
            centred = all(b is not None for b in boxes)
            if prep.face_centred and centred:
                # one square per window (mean of its boxes): the face stays still, the lips move
                cx, cy, side = np.mean([face_square(b, prep.face_scale) for b in boxes], axis=0)  # type: ignore[arg-type]
                frames = [crop_square(f, cx, cy, side) for f in frames]
            if prep.mel_by_time:
                t0 = float(times[idx[0]])
                t1 = float(times[idx[-1]]) + 1.0 / fps
                c0, c1 = mel.column_at(t0), mel.column_at(t1)
            else:  # columns per frame = mel width / frame count
                mapping = mel.rgb.shape[1] / n
                c0, c1 = int(round(s * mapping)), int(round((s + prep.window_len) * mapping))
            c1 = max(c1, c0 + 1)
            seg = mel.rgb[:, c0:c1]
            out.windows.append(Window(k, int(s), int(s) + prep.window_len - 1, compose_window(frames, seg, prep.frame_size), centred, tid))
        n_off = sum(not w.face_centred for w in out.windows)
        notes = [f"{n_off} window(s) without a tracked face used the whole frame"] if prep.face_centred and n_off else []
        if damaged:
            notes.append(f"{damaged} window(s) left out: they hold frames that cannot be decoded")
        out.note = "; ".join(notes)
    return out


# --------------------------------------------------------------------------------------------
# tensors


def composite_tensors(composite: np.ndarray, cfg: Any, prep: LipFDPreprocessing) -> tuple[Any, Any]:
    """Composite (2fs, fs*W, 3) RGB uint8 -> (global (3, 5n, 5n), crops (3 scales, W, 3, s, s)).

    Colour order and value range follow the checkpoint's record. Upstream mode: resizes without
    antialiasing and the regional crops of frame 0 at shifts 0..W-1 px, as its datasets.py.
    """
    import torch

    from core.models.lipfd import resize

    fs = prep.frame_size
    w = composite.shape[1] // fs
    x = torch.from_numpy(np.ascontiguousarray(composite)).permute(2, 0, 1).float()  # (3, H, W), RGB 0-255
    bgr = prep.colour_order.upper() == "BGR"
    if bgr:
        x = x.flip(0)
    if prep.normalisation == "clip":
        mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
        std = torch.tensor(CLIP_STD).view(3, 1, 1)
        if bgr:
            mean, std = mean.flip(0), std.flip(0)
        x = (x / 255.0 - mean) / std
    aa = not prep.upstream
    glob = resize(x, cfg.composite_size, antialias=aa)
    s = cfg.crop_size
    if prep.upstream:  # upstream's `img[:, 500:, i:i + 500]`: frame 0, shifted i pixels
        regions = [x[:, fs:, k : k + fs] for k in range(w)]
    else:
        regions = [x[:, fs:, k * fs : (k + 1) * fs] for k in range(w)]
    full = resize(torch.stack(regions), s, antialias=aa)  # (W, 3, s, s)
    a0, a1 = (int(round(v * s)) for v in FACE_CROP)
    b0, b1 = (int(round(v * s)) for v in LIP_CROP)
    face = resize(full[:, :, a0:a1, a0:a1], s, antialias=aa)
    lips = resize(full[:, :, b0:b1, b0:b1], s, antialias=aa)
    return glob, torch.stack([full, face, lips])


def with_windows(prep: LipFDPreprocessing, n_extract: int | None) -> LipFDPreprocessing:
    """The same record with another number of windows per clip."""
    return prep if n_extract is None else replace(prep, n_extract=int(n_extract))
