"""Container probe with PyAV: format, streams, rates, variable frame rate, tags."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import av

from core.errors import EvidenceError
from core.video.container import check_readable, open_container, stream_kind, video_stream
from core.video.index import build_index


@dataclass
class VideoStreamInfo:
    index: int
    codec: str
    width: int
    height: int
    fps: float  # average frame rate (frames / duration), what an examiner calls "the fps"
    real_frame_rate: float | None  # the container's base (r_frame_rate) guess
    frame_count: int  # decoded frames, counted from the packet index
    variable_frame_rate: bool
    start_time_s: float
    duration_s: float | None
    pix_fmt: str | None
    declared_frame_count: int = 0  # what the container header claims (0: not stated)
    rotation: int = 0  # degrees clockwise a player turns the picture; width/height are as displayed


@dataclass
class AudioStreamInfo:
    index: int
    codec: str
    sample_rate: int
    channels: int
    start_time_s: float
    duration_s: float | None


@dataclass
class EvidenceInfo:
    path: str
    size_bytes: int
    format: str
    duration_s: float | None
    video: VideoStreamInfo
    audio: AudioStreamInfo | None
    streams: list[dict[str, Any]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # readable, but the examiner should know

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _seconds(value: int | None, time_base: Any) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def probe(path: str | os.PathLike[str]) -> EvidenceInfo:
    """Describe the container; frame count and VFR come from the packet index (no decoding)."""
    p = check_readable(path)
    with open_container(p) as container:
        vs = video_stream(container)
        if vs is None:
            kinds = ", ".join(stream_kind(s) for s in container.streams) or "none"
            raise EvidenceError(f"{p}: no video stream (streams: {kinds})")
        streams = [
            {"index": s.index, "type": s.type, "codec": s.codec_context.name if s.codec_context else None}
            for s in container.streams
        ]
        tags = {str(k): str(v) for k, v in (container.metadata or {}).items()}
        fmt = container.format.name
        duration = container.duration / av.time_base if container.duration else None
        audio_info = None
        if container.streams.audio:
            a = container.streams.audio[0]
            audio_info = AudioStreamInfo(
                index=a.index,
                codec=a.codec_context.name,
                sample_rate=int(a.codec_context.sample_rate or 0),
                channels=int(a.codec_context.channels or 0),
                start_time_s=_seconds(a.start_time, a.time_base) or 0.0,
                duration_s=_seconds(a.duration, a.time_base),
            )
        width, height = vs.codec_context.width, vs.codec_context.height
        codec = vs.codec_context.name
        pix_fmt = vs.codec_context.pix_fmt
        base_rate = float(vs.base_rate) if vs.base_rate else None
    index = build_index(p)
    if index.frame_count == 0:
        raise EvidenceError(f"{p}: the video stream holds no decodable frames (truncated or corrupt)")
    if index.rotation_cw in (90, 270):
        width, height = height, width
    video = VideoStreamInfo(
        index=index.stream_index,
        codec=codec,
        width=width,
        height=height,
        fps=index.average_fps,
        real_frame_rate=base_rate,
        frame_count=index.frame_count,
        variable_frame_rate=index.variable_frame_rate,
        start_time_s=index.start_time_s,
        duration_s=index.duration_s,
        pix_fmt=pix_fmt,
        declared_frame_count=index.declared_frames,
        rotation=index.rotation_cw,
    )
    warnings = []
    if index.truncated:
        warnings.append(
            f"file appears truncated: the container lists {index.declared_frames} video frames, "
            f"only {index.frame_count} can be decoded; the analysis covers those"
        )
    return EvidenceInfo(
        path=str(p.resolve()),
        size_bytes=p.stat().st_size,
        format=fmt,
        duration_s=duration,
        video=video,
        audio=audio_info,
        streams=streams,
        tags=tags,
        warnings=warnings,
    )
