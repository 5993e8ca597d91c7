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

from core.errors import EvidenceError
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

    def __init__(self, path: str | os.PathLike[str], budget_bytes: int | None = None, stream_index: int | None = None) -> None:
        self.path = Path(path)
        self.reader = _Reader(self.path, stream_index=stream_index)  # serves requests
        self._filler: _Reader | None = None  # the idle-time fill's own decoder (never disturbed by seeks)
        self.budget = default_budget_bytes() if budget_bytes is None else budget_bytes
        self._cache: OrderedDict[int, av.VideoFrame] = OrderedDict()
        self._bytes = 0
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
    def _decode(self, i: int, abort: Callable[[], bool] | None, reader: _Reader | None = None) -> av.VideoFrame:
        """Decode to frame i, caching every frame decoded on the way; cheapest start point."""
        reader = reader or self.reader
        pos = reader.position
        key = reader.index.keyframe_at_or_before(i)
        start = pos if pos is not None and key <= pos <= i else key
        for j in range(start, i + 1):
            try:
                frame = reader.raw(j)
            except EvidenceError:
                if j == i:
                    raise
                continue  # a damaged frame on the way: the frames after it may still decode
            self._put(j, frame, recent=(j == i and reader is self.reader))
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

    def _first_missing(self, start: int) -> int | None:
        n = self.frame_count
        for j in (*range(start, n), *range(0, min(start, n))):
            if j not in self._cache:
                return j
        return None

    def prefetch_step(self, around: int, abort: Callable[[], bool] | None = None) -> bool:
        """Decode frames the examiner is likely to want next; returns False when there is nothing
        left to do (all cached, or the budget is spent). Stops early when `abort()` is true."""
        n = self.frame_count
        if len(self._cache) >= n:
            return False
        full = bool(self._cache) and self._bytes + frame_bytes(next(reversed(self._cache.values()))) > self.budget
        # 1. The frames just after the cursor (stepping, playing), from the request decoder.
        ahead = next((j for j in range(around, min(around + 8, n)) if j not in self._cache), None)
        pos = self.reader.position
        if ahead is not None and (full or (pos is not None and pos <= ahead)):
            try:
                self._decode(ahead, abort)
            except Aborted:
                pass
            return True
        if full:
            return False  # keep what the examiner looked at
        # 2. The whole clip in decode order, by a second decoder that seeks only when it must.
        if self._filler is None:
            self._filler = _Reader(self.path, self.reader.index)
        target = self._first_missing(self._filler.position or 0)
        if target is None:
            return False
        try:
            self._decode(target, abort, self._filler)
        except Aborted:
            pass  # a request is waiting: what was decoded so far stays cached
        return True

    def close(self) -> None:
        self._cache.clear()
        self._bytes = 0
        self.reader.close()
        if self._filler is not None:
            self._filler.close()
