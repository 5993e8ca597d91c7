"""Decode the first audio stream to mono float32 at a chosen rate, in memory (no temp files).

`load_audio` resamples with FFmpeg (what every detector uses); `load_audio_as_librosa` reads the
track the way `librosa.load` reads a sound file, for models trained on librosa's audio.
"""

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


class _Samples:
    """Decoded float32 chunks written into one buffer sized from the stream's declared duration, so
    a long track is held once while it decodes (a list of chunks and their concatenation held it
    twice: 460 MB for an hour). Past the estimate, further chunks are kept and joined at the end."""

    def __init__(self, expected: int) -> None:
        self.buf = np.empty(max(expected, 0), np.float32)
        self.n = 0
        self.extra: list[np.ndarray] = []

    def add(self, chunk: np.ndarray) -> None:
        if not self.extra and self.n + chunk.size <= self.buf.size:
            self.buf[self.n:self.n + chunk.size] = chunk
            self.n += chunk.size
        else:
            self.extra.append(chunk)

    def array(self) -> np.ndarray:
        if self.extra:
            return np.concatenate([self.buf[:self.n], *self.extra]).astype(np.float32, copy=False)
        if self.n == self.buf.size:
            return self.buf
        # the estimate's margin is small: a view; a far too long estimate: the samples copied out
        return self.buf[:self.n] if self.buf.size - self.n <= max(self.n // 20, 1 << 16) else self.buf[:self.n].copy()


def _expected_samples(container: av.container.InputContainer, stream: av.audio.stream.AudioStream, sample_rate: int) -> int:
    """The track's declared length in samples at sample_rate, plus 1 s (0 when nothing is declared)."""
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / 1_000_000
    else:
        return 0
    return int(seconds * sample_rate) + sample_rate if 0 < seconds < 48 * 3600 else 0


def load_audio(path: str | os.PathLike[str], sample_rate: int = 16000) -> AudioTrack:
    with open_container(path) as container:
        if not container.streams.audio:
            raise EvidenceError(f"{path}: no audio track")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        samples = _Samples(_expected_samples(container, stream, sample_rate))
        start: float | None = None
        try:
            for frame in container.decode(stream):
                if start is None and frame.pts is not None and frame.time_base is not None:
                    start = float(frame.pts * frame.time_base)
                for out in resampler.resample(frame):
                    samples.add(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                samples.add(out.to_ndarray().reshape(-1))
        except av.FFmpegError:
            pass  # truncated audio: keep what decoded
    if start is None:
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    return AudioTrack(samples.array(), sample_rate, start)


def load_audio_as_librosa(path: str | os.PathLike[str], sample_rate: int = 22050) -> AudioTrack:
    """The container's first audio track as `librosa.load(file, sr=sample_rate)` reads a sound file.

    librosa decodes at the file's own rate, averages the channels (`to_mono`) and resamples with
    soxr "HQ" (its default `res_type`); this does the same with the decoded track. The decoded
    samples are cut at the track's declared end (the last packet's pts + duration): AAC decoders
    return whole 1024-sample frames, so without the cut the track runs up to 63 ms past the audio
    it holds (and past a .wav made from the same source).
    """
    with open_container(path) as container:
        if not container.streams.audio:
            raise EvidenceError(f"{path}: no audio track")
        stream = container.streams.audio[0]
        rate = int(stream.rate or stream.codec_context.sample_rate or 0)
        if rate <= 0:
            raise EvidenceError(f"{path}: the audio track states no sample rate")
        tb = stream.time_base
        # planar float at the track's own rate and layout: a format change, no resampling
        to_float = av.AudioResampler(format="fltp", layout=stream.layout, rate=rate)
        chunks: list[np.ndarray] = []
        start: float | None = None
        end: float | None = None
        try:
            for packet in container.demux(stream):
                if packet.pts is not None and packet.duration and tb is not None:
                    t = float((packet.pts + packet.duration) * tb)
                    end = t if end is None else max(end, t)
                for frame in packet.decode():
                    if start is None and frame.pts is not None and frame.time_base is not None:
                        start = float(frame.pts * frame.time_base)
                    for out in to_float.resample(frame):
                        chunks.append(out.to_ndarray())  # (channels, samples)
            for out in to_float.resample(None):
                chunks.append(out.to_ndarray())
        except av.FFmpegError:
            pass  # truncated audio: keep what decoded
    start = 0.0 if start is None else start
    y = np.concatenate(chunks, axis=1).mean(axis=0).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if end is not None:
        keep = int(round((end - start) * rate))
        if 0 < keep < y.size:
            y = y[:keep]
    if rate != sample_rate and y.size:
        import librosa

        y = librosa.resample(y, orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq").astype(np.float32)
    return AudioTrack(y, sample_rate, start)
