"""Frame-exact video access: frames are numbered 0..N-1 in the order the decoder outputs them."""

from core.video.index import FrameIndex, build_index
from core.video.reader import VideoReader

__all__ = ["FrameIndex", "VideoReader", "build_index"]
