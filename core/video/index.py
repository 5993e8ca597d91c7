"""The pts index: presentation timestamp and keyframe flag of every frame, in output order.

Built from demuxed packets (no decoding, fast). When packets lack timestamps or repeat them
(some MPEG-PS/AVI files) the index is built by decoding instead, which is always right.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from core.errors import EvidenceError
from core.video.container import open_container, video_stream
from core.video.decoding import tolerant_frames


@dataclass
class FrameIndex:
    stream_index: int
    time_base: Fraction
    pts: np.ndarray  # int64 (N,), strictly increasing
    keyframe: np.ndarray  # bool (N,)
    decoded: bool  # True when the index came from a full decode
    declared_frames: int = 0  # frame count the container header claims (0: not stated)
    nominal_fps: float = 0.0  # the container's stated rate: used only when timestamps cannot tell
    rotation_cw: int = 0  # degrees clockwise the decoded picture is turned for display (0/90/180/270)

    @property
    def truncated(self) -> bool:
        """The header promises more frames than the file holds (a cut-off copy)."""
        return self.declared_frames > self.frame_count

    @property
    def frame_count(self) -> int:
        return int(self.pts.size)

    @property
    def times_s(self) -> np.ndarray:
        return self.pts.astype(np.float64) * float(self.time_base)

    @property
    def start_time_s(self) -> float:
        return float(self.times_s[0]) if self.pts.size else 0.0

    @property
    def duration_s(self) -> float | None:
        if self.pts.size < 2:  # one frame: it lasts one nominal frame interval, if stated
            return self.pts.size / self.nominal_fps if self.pts.size and self.nominal_fps > 0 else None
        t = self.times_s
        return float(t[-1] - t[0] + np.median(np.diff(t)))

    @property
    def average_fps(self) -> float:
        d = self.duration_s
        return float(self.pts.size / d) if d else 0.0

    @property
    def variable_frame_rate(self) -> bool:
        """True when frame intervals vary by more than 10% of the median (beyond rounding)."""
        if self.pts.size < 3:
            return False
        d = np.diff(self.pts)
        med = float(np.median(d))
        tol = max(0.1 * med, 1.0)
        return bool(np.any(np.abs(d - med) > tol))

    def frame_at_time(self, t_s: float) -> int:
        """Index of the frame shown at time t (the last frame whose pts <= t)."""
        i = int(np.searchsorted(self.times_s, t_s + 1e-9, side="right")) - 1
        return min(max(i, 0), self.frame_count - 1)

    def keyframe_at_or_before(self, i: int) -> int:
        keys = np.flatnonzero(self.keyframe[: i + 1])
        return int(keys[-1]) if keys.size else 0


def display_rotation(frame: av.VideoFrame) -> int:
    """Clockwise degrees (0/90/180/270) a player turns this frame by, from the container's display
    matrix: phones store portrait video as landscape pictures plus this matrix. FFmpeg gives the
    matrix's counter-clockwise angle (-90 for a phone's "rotate=90")."""
    try:
        angle = float(frame.rotation or 0)
    except (AttributeError, ValueError, TypeError):
        return 0
    return int(round(-angle / 90.0)) % 4 * 90


def _nominal(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.base_rate or stream.guessed_rate
    return float(rate) if rate else 0.0


def _from_packets(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> FrameIndex | None:
    pts: list[int] = []
    keys: list[bool] = []
    for packet in container.demux(stream):
        if packet.size == 0:  # the flush packet at the end
            continue
        if packet.pts is None:
            return None
        pts.append(packet.pts)
        keys.append(bool(packet.is_keyframe))
    if not pts:
        return None
    order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
    p = np.asarray(pts, dtype=np.int64)[order]
    if np.any(np.diff(p) <= 0):
        return None
    k = np.asarray(keys, dtype=bool)[order]
    k[0] = True  # decoding always starts somewhere: treat the first frame as a seek point
    return FrameIndex(stream.index, stream.time_base, p, k, decoded=False, declared_frames=int(stream.frames or 0), nominal_fps=_nominal(stream))


def _from_decoding(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> FrameIndex:
    stream.thread_type = "AUTO"  # as the reader decodes: the same frames come out before an error
    pts: list[int] = []
    keys: list[bool] = []
    last = -1
    rotation = 0
    for frame in tolerant_frames(container, stream):  # a damaged packet costs only its frames
        if not pts:
            rotation = display_rotation(frame)
        p = frame.pts if frame.pts is not None else last + 1
        if p <= last:  # missing or repeated timestamps: keep the output order
            p = last + 1
        pts.append(p)
        keys.append(bool(frame.key_frame))
        last = p
    tb = stream.time_base or Fraction(1, 1)
    k = np.asarray(keys, dtype=bool)
    if k.size:
        k[0] = True
    return FrameIndex(
        stream.index, tb, np.asarray(pts, dtype=np.int64), k, decoded=True, declared_frames=int(stream.frames or 0),
        nominal_fps=_nominal(stream), rotation_cw=rotation,
    )


def _decoder_agrees(container: av.container.InputContainer, stream: av.video.stream.VideoStream, index: FrameIndex) -> bool:
    """Spot-check on a freshly opened container: the decoder's first frames carry the index's
    first timestamps."""
    got: list[int | None] = []
    try:
        for frame in container.decode(stream):
            if not got:
                index.rotation_cw = display_rotation(frame)
            got.append(frame.pts)
            if len(got) >= 3:
                break
    except av.FFmpegError:
        return False
    n = min(len(got), index.frame_count)
    return n > 0 and all(g == int(e) for g, e in zip(got[:n], index.pts[:n]))


def build_index(path: str | os.PathLike[str], stream_index: int | None = None) -> FrameIndex:
    """The index of the file's video stream numbered `stream_index` (default: the first one),
    cached per path, size, modification time and stream: probe and reader share one build."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns, stream_index)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    index = _build_index(p, stream_index)
    with _CACHE_LOCK:
        _CACHE[key] = index
        while len(_CACHE) > 16:
            _CACHE.pop(next(iter(_CACHE)))
    return index


_CACHE: dict[tuple[str, int, int, int | None], FrameIndex] = {}
_CACHE_LOCK = threading.Lock()


def _by_index(container: av.container.InputContainer, index: int) -> av.video.stream.VideoStream:
    return next(s for s in container.streams.video if s.index == index)


def _build_index(path: Path, stream_index: int | None) -> FrameIndex:
    # Each step opens the file afresh: seeking back to 0 is not reliable in every container
    # (MPEG-PS lands on a later GOP).
    with open_container(path) as container:
        stream = video_stream(container, stream_index)
        if stream is None:
            raise EvidenceError(f"{path}: no video stream")
        si = stream.index  # a plain int: the stream object dies with its container
        try:
            index = _from_packets(container, stream)
        except av.FFmpegError:
            index = None  # truncated or corrupt packets: decode what can be decoded
    if index is not None and index.truncated:
        # The header lists frames whose data is missing and the last packet may be cut short:
        # only a decode tells which frames really exist.
        index = None
    if index is not None:
        with open_container(path) as container:
            if _decoder_agrees(container, _by_index(container, si), index):
                return index
    with open_container(path) as container:
        return _from_decoding(container, _by_index(container, si))
