"""Opening a media file for reading with PyAV, and finding its moving-picture stream.

Shared by the frame index, the reader, the audio decoder and the evidence probe; kept here (the
lowest media layer) so `core.evidence` may use `core.video` and never the other way round.
"""

from __future__ import annotations

import os
from pathlib import Path

import av

from core.errors import EvidenceError


def check_readable(path: str | os.PathLike[str]) -> Path:
    """Refuse paths that cannot be evidence, with a one-line reason."""
    p = Path(path)
    if not p.exists():
        raise EvidenceError(f"{p}: no such file")
    if p.is_dir():
        raise EvidenceError(f"{p}: is a directory, not a video file")
    if not p.is_file():  # a pipe or device would block or never end
        raise EvidenceError(f"{p}: not a regular file (a pipe, socket or device)")
    if not os.access(p, os.R_OK):
        raise EvidenceError(f"{p}: not readable (permission denied)")
    if p.stat().st_size == 0:
        raise EvidenceError(f"{p}: empty file (0 bytes)")
    return p


def open_container(path: str | os.PathLike[str]) -> av.container.InputContainer:
    p = check_readable(path)
    try:
        return av.open(str(p), mode="r")
    except av.FFmpegError as exc:
        raise EvidenceError(f"{p}: not a media file that can be read ({exc.strerror or exc})") from exc


def moving_picture_streams(container: av.container.InputContainer) -> list[av.video.stream.VideoStream]:
    """The video streams that are moving pictures: a cover picture attached to an audio file (an
    mjpeg/png "video" stream of one frame) is not video evidence."""
    return [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]


def video_stream(container: av.container.InputContainer, stream_index: int | None = None) -> av.video.stream.VideoStream | None:
    """The stream to analyse: the one numbered `stream_index` (the container's stream number), or
    the first moving-picture stream. EvidenceError when the number names no such stream."""
    streams = moving_picture_streams(container)
    if stream_index is None:
        return streams[0] if streams else None
    for s in streams:
        if s.index == stream_index:
            return s
    have = ", ".join(f"#{s.index}" for s in streams) or "none"
    raise EvidenceError(f"{container.name}: stream #{stream_index} is not a video stream of this file (video streams: {have})")


def stream_kind(s: av.stream.Stream) -> str:
    if s.type == "video" and s.disposition & av.stream.Disposition.attached_pic:
        return "cover picture"
    return str(s.type)
