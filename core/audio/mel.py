"""Mel spectrogram as a colour image, in memory (the LipFD card's audio picture).

The card renders `power_to_db(melspectrogram(y, sr), ref=np.min)` with matplotlib's `imsave`
(viridis, scaled between the clip's min and max) and reads the PNG back. We apply the same
colour map to the same array directly: no PNG round trip, no temporary file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class MelImage:
    rgb: np.ndarray  # uint8 (n_mels, T, 3); row 0 = lowest mel band (imsave's upper origin)
    sample_rate: int
    hop_length: int
    start_time_s: float  # stream time of column 0's first sample

    @property
    def columns_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    def column_at(self, t_s: float) -> int:
        """The column that covers stream time t (clipped to the image)."""
        c = int(round((t_s - self.start_time_s) * self.columns_per_second))
        return min(max(c, 0), self.rgb.shape[1])


def mel_db(samples: np.ndarray, sample_rate: int, n_fft: int = 2048, hop_length: int = 512, n_mels: int = 128) -> np.ndarray:
    """librosa's mel spectrogram in dB relative to its minimum (card: power_to_db(ref=np.min))."""
    import librosa

    y = np.asarray(samples, np.float32)
    if y.size == 0:
        return np.zeros((n_mels, 0), np.float32)
    mel = librosa.feature.melspectrogram(y=y, sr=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    return librosa.power_to_db(mel, ref=np.min).astype(np.float32)


def colourise(values: np.ndarray, cmap: str = "viridis") -> np.ndarray:
    """Min-max scale and colour map a 2-D array to uint8 RGB, as plt.imsave does."""
    from matplotlib import colormaps

    v = np.asarray(values, np.float64)
    lo, hi = (float(np.min(v)), float(np.max(v))) if v.size else (0.0, 1.0)
    norm = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
    rgba = colormaps[cmap](norm, bytes=True)
    return np.ascontiguousarray(rgba[..., :3])


def mel_image(samples: np.ndarray, sample_rate: int, start_time_s: float = 0.0, hop_length: int = 512) -> MelImage:
    return MelImage(colourise(mel_db(samples, sample_rate, hop_length=hop_length)), sample_rate, hop_length, start_time_s)
