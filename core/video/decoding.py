"""Decoding that survives damage: one bad packet costs its own frames, not the rest of the file.

`container.decode(stream)` stops at the first packet the decoder rejects. A forensic reader must
go on: it sends packet by packet, notes the packets the decoder refused, and keeps FFmpeg's error
messages (concealed macroblocks, broken references) with the frame whose packet caused them, so
the examiner sees which frames decoded with errors.

With a log, decoding runs in the calling thread only (no frame or slice threads) and only that
thread's messages are captured: each message then belongs to the packet just sent, and a message
from another decoder in the same process (the GUI scrubbing another file) can never be attributed
to this evidence. Single-threaded H.264 decoding of 1080p runs at about 300 fps here, far above
the face pass's rate, so the cost is small.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import av
import av.logging

MAX_MESSAGES = 500  # kept per file; a badly damaged file repeats the same few


@dataclass
class DecodeLog:
    """What the decoder said while a file was read: per packet pts, its error messages."""

    errors: dict[int | None, list[str]] = field(default_factory=dict)  # packet pts -> messages
    refused_packets: int = 0  # packets the decoder rejected outright
    demux_error: str | None = None  # the container could not be read past some point
    dropped_messages: int = 0

    def add(self, pts: int | None, message: str) -> None:
        if sum(len(v) for v in self.errors.values()) >= MAX_MESSAGES:
            self.dropped_messages += 1
            return
        self.errors.setdefault(pts, []).append(message.strip())


def _messages(logs: list[tuple[int, str, str]], seen: int) -> list[str]:
    return [f"{name}: {msg.strip()}" for level, name, msg in logs[seen:] if level <= av.logging.ERROR]


def tolerant_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream, log: DecodeLog | None = None) -> Iterator[av.VideoFrame]:
    """Every frame the decoder outputs, in output order, going on past packets it rejects.

    With `log`, FFmpeg's error messages are collected (logging is switched on at ERROR level for
    the duration: PyAV leaves FFmpeg's log off by default). The stream must not have decoded yet
    (its threading is set before the decoder opens)."""
    if log is None:
        yield from _frames(container, stream, None, None)
        return
    stream.thread_type = "NONE"  # every message from this thread, right after its packet
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture(local=True) as logs:
            yield from _frames(container, stream, log, logs)
    finally:
        av.logging.set_level(previous)


def _frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, log: DecodeLog | None, logs: list[tuple[int, str, str]] | None
) -> Iterator[av.VideoFrame]:
    seen = 0
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as exc:  # the container itself is damaged from here on
            if log is not None:
                log.demux_error = str(exc)
            return
        try:
            frames = packet.decode()
        except av.FFmpegError as exc:
            frames = []
            if log is not None:
                log.refused_packets += 1
                log.add(packet.pts, f"packet refused by the decoder ({exc.strerror or exc})")
        if log is not None and logs is not None and len(logs) > seen:
            for m in _messages(logs, seen):
                log.add(packet.pts, m)
            seen = len(logs)
        yield from frames
