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


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    """The first moving-picture stream: a cover picture attached to an audio file (an mjpeg/png
    "video" stream of one frame) is not video evidence."""
    for s in container.streams.video:
        if not s.disposition & av.stream.Disposition.attached_pic:
            return s
    return None


def stream_kind(s: av.stream.Stream) -> str:
    if s.type == "video" and s.disposition & av.stream.Disposition.attached_pic:
        return "cover picture"
    return str(s.type)
