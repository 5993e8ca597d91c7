"""Frame-exact reader: `frame(i)` seeks to the keyframe before i and decodes forward to i."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from core.errors import EvidenceError
from core.video.container import open_container
from core.video.decoding import DecodeLog, tolerant_frames
from core.video.index import FrameIndex, build_index

# Pixel formats whose first plane is luma: the face pass reads it without conversion.
_PLANAR_YUV = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv410p", "yuv411p", "nv12"}


def to_array(frame: av.VideoFrame, fmt: str = "rgb24", rotation_cw: int = 0) -> np.ndarray:
    """RGB (H, W, 3) uint8, or luma (H, W) uint8 for fmt='gray', turned `rotation_cw` degrees
    clockwise (as a player shows it)."""
    if fmt == "gray" and frame.format.name in _PLANAR_YUV:
        plane = frame.planes[0]
        buf = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)
        a = buf[:, : frame.width]
    else:
        a = frame.to_ndarray(format=fmt)
    if rotation_cw:
        a = np.ascontiguousarray(np.rot90(a, k=-(rotation_cw // 90)))
    return a


class VideoReader:
    """Random and sequential access to one video stream, numbered in decoder output order.

    Not thread-safe: give each thread its own reader (they share nothing but the file).
    """

    def __init__(self, path: str | os.PathLike[str], index: FrameIndex | None = None, stream_index: int | None = None) -> None:
        """`stream_index`: the container's number of the video stream to read (default: the first);
        ignored when `index` is given (it names its stream)."""
        self.path = Path(path)
        self.index = index if index is not None else build_index(self.path, stream_index)
        if self.index.frame_count == 0:
            raise EvidenceError(f"{self.path}: no decodable video frames")
        self._open()
        self._pts_to_i = {int(p): i for i, p in enumerate(self.index.pts)}
        self._decoder: Iterator[av.VideoFrame] | None = None
        self._next_i: int | None = None  # index the live decoder will output next
        self.missing: list[int] = []  # frames the last `scan` could not decode
        self._unreadable: set[int] = set()  # frames found not to decode (asked again: refused at once)

    def _open(self) -> None:
        self._container = open_container(self.path)
        self._stream = next(s for s in self._container.streams.video if s.index == self.index.stream_index)
        self._stream.thread_type = "AUTO"
        self._decoder = None
        self._next_i = None
        self._primed = False  # the decoder has decoded the stream's first frame since opening

    def _prime(self) -> None:
        """Decode frame 0 once before the first seek. FFmpeg's H.264 decoder reads the encoder's
        version from an SEI message in the first packet only, and switches on its work-arounds
        for old x264 bugs from it (they change the pixels of High 4:4:4 streams, as in the
        FaceForensics++ c40 files); a decoder that seeks before seeing it decodes every frame
        after a keyframe wrongly, without an error. The setting survives later seeks (not a
        reopen, which makes a new decoder)."""
        self._rewind()
        assert self._decoder is not None
        try:
            next(self._decoder)
            self._next_i = 1
        except (StopIteration, av.FFmpegError):
            self._decoder, self._next_i = None, None
        self._primed = True

    def _rewind(self) -> None:
        """Back to frame 0 by reopening: seek(0) is not exact in every container (MPEG-PS)."""
        self._container.close()
        self._open()  # a new decoder: not primed until it decodes frame 0 again (see _prime)
        self._decoder = self._frames()
        self._next_i = 0

    # -- properties -------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.index.frame_count

    @property
    def frame_count(self) -> int:
        return self.index.frame_count

    @property
    def fps(self) -> float:
        return self.index.average_fps

    @property
    def rotation_cw(self) -> int:
        """Degrees clockwise every frame is turned (the container's display matrix), already
        applied to what `frame` and `iter_frames` return."""
        return self.index.rotation_cw

    @property
    def width(self) -> int:
        """Width of the frames as returned (displayed orientation)."""
        cc = self._stream.codec_context
        return cc.height if self.index.rotation_cw in (90, 270) else cc.width

    @property
    def height(self) -> int:
        cc = self._stream.codec_context
        return cc.width if self.index.rotation_cw in (90, 270) else cc.height

    def time_of(self, i: int) -> float:
        """Presentation time of frame i in seconds (stream clock, not shifted to zero)."""
        return float(self.index.pts[i] * self.index.time_base)

    # -- decoding ---------------------------------------------------------------------------
    def _frames(self) -> Iterator[av.VideoFrame]:
        return tolerant_frames(self._container, self._stream)

    def _seek_decoder(self, i: int) -> None:
        """Position the decoder so the next frame it outputs is frame i (or earlier)."""
        k = self.index.keyframe_at_or_before(i)
        if k == 0:
            self._rewind()
            return
        if not self._primed:
            self._prime()
        self._container.seek(int(self.index.pts[k]), stream=self._stream, backward=True, any_frame=False)
        self._decoder = self._frames()
        self._next_i = None

    def _identify(self, frame: av.VideoFrame, fallback: int | None) -> int | None:
        if frame.pts is not None and not self.index.decoded:
            return self._pts_to_i.get(int(frame.pts))
        if frame.pts is not None and int(frame.pts) in self._pts_to_i:
            return self._pts_to_i[int(frame.pts)]
        return fallback

    def _decode_to(self, i: int) -> av.VideoFrame:
        if not 0 <= i < self.frame_count:
            raise IndexError(f"frame {i} out of range 0..{self.frame_count - 1}")
        # Reuse the live decoder when i is ahead of it and no keyframe lies between (decoding
        # forward is then no slower than seeking), or when i is just ahead (strided reads).
        ahead = self._decoder is not None and self._next_i is not None and self._next_i <= i
        if not (ahead and (i < self._next_i + 64 or self.index.keyframe_at_or_before(i) <= self._next_i)):
            self._seek_decoder(i)
        unreadable = EvidenceError(f"{self.path}: frame {i} of {self.frame_count} cannot be decoded (damaged or missing data)")
        if i in self._unreadable:
            raise unreadable
        for _ in range(2):
            assert self._decoder is not None
            first: int | None = None  # the first frame this pass of the decoder gave
            try:
                for frame in self._decoder:
                    j = self._identify(frame, self._next_i)
                    if j is None:
                        continue
                    first = j if first is None else first
                    self._next_i = j + 1
                    if j == i:
                        return frame
                    if j > i:
                        break  # seek landed after i, or the decoder skipped i
            except av.FFmpegError:
                pass
            if first is not None and first <= i:  # decoded through i's place without it: i does not decode
                self._unreadable.add(i)
                raise unreadable
            # Seek overshot or the container cannot seek precisely: decode from the start.
            self._rewind()
        self._unreadable.add(i)
        raise unreadable

    def frame(self, i: int, fmt: str = "rgb24") -> np.ndarray:
        """Frame i as an array (RGB by default). Exact: the same pixels as sequential decoding."""
        a = to_array(self._decode_to(i), fmt, self.index.rotation_cw)
        return a if self.index.rotation_cw else a.copy()

    def iter_frames(
        self, start: int = 0, stop: int | None = None, step: int = 1, fmt: str = "rgb24"
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (i, frame) for i in range(start, stop, step), decoding forward once.

        Arrays for fmt='gray' may be views into the decoder's buffer: copy to keep them.
        """
        stop = self.frame_count if stop is None else min(stop, self.frame_count)
        if step < 1:
            raise ValueError("step must be >= 1")
        if start >= stop:
            return
        if start == 0:
            self._rewind()
        for i in range(start, stop, step):
            yield i, to_array(self._decode_to(i), fmt, self.index.rotation_cw)

    def scan(self, fmt: str = "gray", log: DecodeLog | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Every frame that decodes, once, in order, from the start: the face pass's read.

        Frames of the index the decoder never outputs (damaged or missing data) are skipped and
        listed in `self.missing`; with `log`, the decoder's error messages are collected per packet.
        Arrays for fmt='gray' may be views into the decoder's buffer: copy to keep them.
        """
        self.missing = []
        self._rewind()
        self._decoder = None  # the scan owns the container until it ends
        expected = 0
        for frame in tolerant_frames(self._container, self._stream, log):
            j = self._identify(frame, expected)
            if j is None or j < expected:
                continue  # a timestamp the index does not hold, or a repeat
            self.missing.extend(range(expected, j))
            expected = j + 1
            yield j, to_array(frame, fmt, self.index.rotation_cw)
        self.missing.extend(range(expected, self.frame_count))
        self._rewind()

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
