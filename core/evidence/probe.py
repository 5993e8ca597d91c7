"""Container probe with PyAV: format, streams, rates, variable frame rate, tags."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import av

from core.errors import EvidenceError
from core.video.container import check_readable, moving_picture_streams, open_container, stream_kind, video_stream
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


# Frame rates no camera or encoder produces: a rate outside these comes from a damaged header
# (an mp4 'mdhd' time scale of 0 reads as one frame every 512 s), never from the recording.
MIN_PLAUSIBLE_FPS = 0.1  # a slow time-lapse or slideshow still has a frame every 10 s
MAX_PLAUSIBLE_FPS = 1000.0


def timing_problem(fps: float, frame_count: int, video_s: float | None, container_s: float | None, declared: int) -> str | None:
    """Why the stream's timing is impossible, or None. Such timing must never feed a rate (blinks
    per minute, lip-sync lag) or a duration in a report."""
    problems = []
    if (frame_count >= 2 and not MIN_PLAUSIBLE_FPS <= fps <= MAX_PLAUSIBLE_FPS) or (frame_count == 1 and 0 < fps < MIN_PLAUSIBLE_FPS):
        problems.append(f"a frame rate of {fps:.4g} fps (no camera records outside {MIN_PLAUSIBLE_FPS:g}-{MAX_PLAUSIBLE_FPS:g} fps)")
    if video_s is not None and container_s and video_s > 2 * container_s + 1.0:
        problems.append(f"the video stream would last {video_s:.1f} s in a container of {container_s:.1f} s")
    if not problems:
        return None
    seen = f"{frame_count} of {declared} listed frames readable" if declared else f"{frame_count} frames readable"
    return "; ".join(problems) + f" ({seen})"


# Demuxers of bare elementary streams: no container, so no audio, no timestamps, no metadata.
RAW_STREAM_FORMATS = {"m4v", "h264", "hevc", "h263", "mpegvideo", "mjpeg", "cavsvideo", "vc1", "dirac", "obu", "rawvideo", "vvc"}
_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"moof")


def _mp4_boxes_in(p: os.PathLike[str], span: int = 4 << 20) -> list[str]:
    """MP4 box names found in the file's first and last `span` bytes (a damaged MP4 header)."""
    size = os.path.getsize(p)
    with open(p, "rb") as fh:
        head = fh.read(span)
        fh.seek(max(size - span, len(head)))
        tail = fh.read(span)
    return [b.decode() for b in _MP4_BOXES if b in head or b in tail]


def _raw_stream_warning(p: os.PathLike[str], fmt: str, fps: float) -> str:
    boxes = _mp4_boxes_in(p)
    read = f"only the video frames were read, timed at the stream's nominal {fps:.3f} fps (a bare stream carries no timestamps)"
    if boxes:
        return (
            f"the container header is damaged: FFmpeg could read the file only as a bare {fmt} video stream, although it holds "
            f"MP4 boxes ({', '.join(boxes)}); {read}; NOT read: any audio track, the container's timestamps and metadata"
        )
    return f"a bare {fmt} video stream without a container: {read}; a bare stream has no audio, timestamps or metadata"


def _stream_label(s: av.video.stream.VideoStream) -> str:
    cc = s.codec_context
    return f"#{s.index} {cc.name} {cc.width}x{cc.height}" + (f", {s.frames} frames" if s.frames else "")


def probe(path: str | os.PathLike[str], stream_index: int | None = None) -> EvidenceInfo:
    """Describe the container; frame count and VFR come from the packet index (no decoding).
    `stream_index`: the container's number of the video stream to analyse (default: the first)."""
    p = check_readable(path)
    with open_container(p) as container:
        vs = video_stream(container, stream_index)
        others = [_stream_label(s) for s in moving_picture_streams(container) if vs is not None and s.index != vs.index]
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
    index = build_index(p, stream_index)
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
    bad_timing = timing_problem(index.average_fps, index.frame_count, index.duration_s, duration, index.declared_frames)
    if bad_timing:
        raise EvidenceError(
            f"{p}: impossible timing in the video stream: {bad_timing}. The container's timing header is damaged "
            "(for example an mp4 'mdhd' time scale of 0), so frame times, rates and durations cannot be measured; "
            "analysis refused rather than reporting rates from it"
        )
    warnings = []
    if fmt in RAW_STREAM_FORMATS:
        warnings.append(_raw_stream_warning(p, fmt, index.average_fps))
    if others:
        warnings.append(
            f"the file holds {len(others) + 1} video streams: stream #{index.stream_index} was analysed; NOT analysed: "
            f"{'; '.join(others)} (choose one with `verity analyze --video-stream N`)"
        )
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
