"""Decode the first audio stream to mono float32 at a chosen rate, in memory (no temp files)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import av
import numpy as np

from core.errors import EvidenceError
from core.video.container import open_container


@dataclass
class AudioTrack:
    samples: np.ndarray  # float32 (S,), mono, in [-1, 1]
    sample_rate: int
    start_time_s: float  # stream time of the first sample; align with video frame times by it

    @property
    def duration_s(self) -> float:
        return self.samples.size / self.sample_rate


def load_audio(path: str | os.PathLike[str], sample_rate: int = 16000) -> AudioTrack:
    with open_container(path) as container:
        if not container.streams.audio:
            raise EvidenceError(f"{path}: no audio track")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        start: float | None = None
        try:
            for frame in container.decode(stream):
                if start is None and frame.pts is not None and frame.time_base is not None:
                    start = float(frame.pts * frame.time_base)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.FFmpegError:
            pass  # truncated audio: keep what decoded
    if start is None:
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return AudioTrack(samples, sample_rate, start)
