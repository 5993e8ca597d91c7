"""Frame-exact random access with a memory-bounded cache of decoded frames (no Qt here).

A cold seek in a long-GOP file decodes from the keyframe before the wanted frame: on the 1080p
DFDC clip (keyframes at 0 and 163) that is hundreds of milliseconds. Every frame decoded on the
way is kept (as the decoder's own `av.VideoFrame`, i.e. YUV, half the size of RGB) in an LRU
cache bounded in bytes, and idle time is spent decoding forward to fill it. A cached frame is
converted with the same `to_ndarray("rgb24")` call `core.video.VideoReader.frame` uses, so the
pixels are identical to the core reader's.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from core.video.reader import VideoReader

DEFAULT_BUDGET_MB = 1024


def default_budget_bytes() -> int:
    """Cache budget: VERITY_FRAME_CACHE_MB or 1 GiB (a 10 s 1080p clip fits whole)."""
    try:
        mb = int(os.environ.get("VERITY_FRAME_CACHE_MB", DEFAULT_BUDGET_MB))
    except ValueError:
        mb = DEFAULT_BUDGET_MB
    return max(mb, 16) * 1024 * 1024


def frame_bytes(frame: av.VideoFrame) -> int:
    return sum(p.buffer_size for p in frame.planes)


class _Reader(VideoReader):
    """The core reader, exposing the decoded `av.VideoFrame` and where the live decoder is."""

    def raw(self, i: int) -> av.VideoFrame:
        return self._decode_to(i)

    @property
    def position(self) -> int | None:
        """Index the live decoder outputs next (None right after a seek)."""
        return self._next_i if self._decoder is not None else None


class Aborted(Exception):
    """A newer request arrived while decoding towards an older one."""


class FrameServer:
    """`rgb(i)` gives frame i exactly; decoding is planned to reuse the live decoder and cache.

    Not thread-safe: one thread (the loader) owns it.
    """

    def __init__(self, path: str | os.PathLike[str], budget_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.reader = _Reader(self.path)
        self.budget = default_budget_bytes() if budget_bytes is None else budget_bytes
        self._cache: OrderedDict[int, av.VideoFrame] = OrderedDict()
        self._bytes = 0
        self._fill_next = 0  # the background fill decodes the clip in order from here
        self.hits = 0
        self.misses = 0

    # -- properties -------------------------------------------------------------------------
    @property
    def frame_count(self) -> int:
        return self.reader.frame_count

    @property
    def cached_bytes(self) -> int:
        return self._bytes

    def is_cached(self, i: int) -> bool:
        return i in self._cache

    def time_of(self, i: int) -> float:
        return self.reader.time_of(i)

    # -- cache ------------------------------------------------------------------------------
    def _put(self, i: int, frame: av.VideoFrame, *, recent: bool) -> None:
        if i in self._cache:
            if recent:
                self._cache.move_to_end(i)
            return
        size = frame_bytes(frame)
        while self._cache and self._bytes + size > self.budget:
            _, old = self._cache.popitem(last=False)
            self._bytes -= frame_bytes(old)
        self._cache[i] = frame
        if not recent:  # prefetched: first in line for eviction, after nothing
            self._cache.move_to_end(i, last=False)
        self._bytes += size

    # -- decoding ---------------------------------------------------------------------------
    def _decode(self, i: int, abort: Callable[[], bool] | None) -> av.VideoFrame:
        """Decode to frame i, caching every frame decoded on the way; cheapest start point."""
        pos = self.reader.position
        key = self.reader.index.keyframe_at_or_before(i)
        start = pos if pos is not None and key <= pos <= i else key
        for j in range(start, i + 1):
            frame = self.reader.raw(j)
            self._put(j, frame, recent=(j == i))
            if j < i and abort is not None and abort():
                raise Aborted()
        return self._cache[i]

    def raw(self, i: int, abort: Callable[[], bool] | None = None) -> av.VideoFrame:
        if not 0 <= i < self.frame_count:
            raise IndexError(f"frame {i} out of range 0..{self.frame_count - 1}")
        frame = self._cache.get(i)
        if frame is not None:
            self.hits += 1
            self._cache.move_to_end(i)
            return frame
        self.misses += 1
        return self._decode(i, abort)

    def rgb(self, i: int, abort: Callable[[], bool] | None = None) -> np.ndarray:
        """Frame i as RGB (H, W, 3) uint8; the same pixels as `VideoReader.frame(i)`."""
        return self.raw(i, abort).to_ndarray(format="rgb24")

    def prefetch_step(self, around: int) -> bool:
        """Decode one frame the examiner is likely to want next. False when there is nothing
        left to do (all cached, or the budget is spent)."""
        n = self.frame_count
        if len(self._cache) >= n:
            return False
        if self._cache and self._bytes + frame_bytes(next(reversed(self._cache.values()))) > self.budget:
            # Full: keep what the examiner looked at; only refill right after the cursor.
            ahead = next((j for j in range(around, min(around + 8, n)) if j not in self._cache), None)
            if ahead is None:
                return False
            self._decode(ahead, None)
            return True
        # First the frames just after the cursor, then the whole clip in decode order.
        pos = self.reader.position
        if pos is not None and pos < n and pos not in self._cache and around <= pos < around + 64:
            self._decode(pos, None)
            return True
        while self._fill_next < n and self._fill_next in self._cache:
            self._fill_next += 1
        if self._fill_next >= n:
            # Fill order passed the end: anything still missing was evicted; look once more.
            missing = next((j for j in range(n) if j not in self._cache), None)
            if missing is None:
                return False
            self._fill_next = missing
        self._decode(self._fill_next, None)
        return True

    def close(self) -> None:
        self._cache.clear()
        self._bytes = 0
        self.reader.close()
