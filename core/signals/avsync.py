"""Audio-visual offset without trained weights: mouth aperture against the speech envelope.

The mouth opens as speech energy rises, so the (detrended) mouth-aperture series of a speaking
face and the (detrended) log-energy envelope of the speech band are correlated, with the peak of
their cross-correlation at the lag between them. We evaluate the correlation at lags of -15..+15
frames, globally and in sliding windows, and report the peak lag as the offset and the height of
the peak over the median correlation as the confidence (in the spirit of SyncNet's
offset/confidence: min distance against the median distance).

Sign convention: a positive offset means the audio is LATE relative to the lips (the sound of a
mouth movement comes `offset_ms` after the movement); audio muxed +80 ms later gives +80 ms.

Times are absolute stream times: frame i is shown at `times_s[i]`, audio sample n plays at
`start_time_s + n / sample_rate`; a container that starts its audio late is therefore measured
correctly (this is how muxing offsets appear in real files).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from core.signals.avsync_records import (  # noqa: F401 - the measurement's vocabulary, imported from here
    ENVELOPE_HOP_S,
    ENVELOPE_WIN_S,
    FLAGGED,
    FOLLOWS,
    NO_FACE,
    NO_SPEECH,
    NOT_MEASURABLE,
    SPEECH_BAND_HZ,
    AVSyncParams,
    SyncEstimate,
    SyncWindow,
    offset_evidence_missing,
)
from core.signals.avsync_stats import correlation_peak, null_confidences, offset_evidence, p_value, pearson_rows, rotations
from core.signals.avsync_windows import ClipSeries, judge_windows
from core.signals.timebase import fps_from_times

# --------------------------------------------------------------------------------------------
# series


_ENVELOPE_BLOCK = 4096  # envelope frames (of 5 ms) transformed at once: ~15 MB of spectrum


def speech_envelope(samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Speech-band level in dBFS on a fine time grid: (times_s from the first sample, level_db)."""
    x = np.asarray(samples, np.float32)
    win = max(int(round(ENVELOPE_WIN_S * sample_rate)), 16)
    hop = max(int(round(ENVELOPE_HOP_S * sample_rate)), 1)
    if x.size < win:
        return np.zeros(0), np.zeros(0)
    n_fft = 1 << (win - 1).bit_length()
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop]  # a view: no copy of the audio
    window = np.hanning(win).astype(np.float32)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    band = (freqs >= SPEECH_BAND_HZ[0]) & (freqs <= min(SPEECH_BAND_HZ[1], sample_rate / 2))
    # one-sided spectral power of a full-scale sine (Parseval), so the level reads as dBFS
    ref = n_fft * float((np.hanning(win) ** 2).sum()) / 4
    # in blocks of rows: the whole file's spectrum at once took ~1 GB per 10 minutes of audio;
    # every row is transformed and summed on its own, so the blocks give the same values
    blocks = []
    for a in range(0, frames.shape[0], _ENVELOPE_BLOCK):
        spec = np.abs(np.fft.rfft(frames[a:a + _ENVELOPE_BLOCK] * window, n=n_fft, axis=1)) ** 2
        blocks.append(spec[:, band].sum(axis=1) / ref)
    power = np.concatenate(blocks)
    level = 10 * np.log10(power + 1e-12)
    times = (np.arange(level.size) * hop + win / 2) / sample_rate
    return times, level


def envelope_feature(level_db: np.ndarray) -> np.ndarray:
    """Compressed amplitude (power^(1/6)): follows syllables without the noise of dB in pauses."""
    return np.power(10.0, level_db / 60.0)


def _moving_mean(x: np.ndarray, n: int) -> np.ndarray:
    """NaN-aware centred moving average over n samples."""
    n = max(int(n), 1)
    valid = np.isfinite(x)
    v = np.where(valid, x, 0.0)
    k = np.ones(n)
    s = np.convolve(v, k, mode="same")
    c = np.convolve(valid.astype(float), k, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, s / np.maximum(c, 1), np.nan)


def _fill_short_gaps(x: np.ndarray, max_gap: int = 3) -> np.ndarray:
    """Linearly fill NaN runs of at most max_gap between valid values (tracker drop-outs)."""
    x = x.copy()
    isn = ~np.isfinite(x)
    if not isn.any() or isn.all():
        return x
    idx = np.arange(x.size)
    k = 0
    while k < x.size:
        if isn[k]:
            j = k
            while j < x.size and isn[j]:
                j += 1
            if k > 0 and j < x.size and j - k <= max_gap:
                x[k:j] = np.interp(idx[k:j], [k - 1, j], [x[k - 1], x[j]])
            k = j
        else:
            k += 1
    return x


def mouth_series(frame_count: int, frames: np.ndarray, mouth: np.ndarray) -> np.ndarray:
    """Per-frame mouth aperture of one track (NaN where the track has no face)."""
    out = np.full(frame_count, np.nan)
    out[np.asarray(frames, int)] = mouth
    return _fill_short_gaps(out)


def estimate_offset(
    times_s: np.ndarray,
    mouth: np.ndarray,
    samples: np.ndarray,
    sample_rate: int,
    audio_start_s: float = 0.0,
    fps: float | None = None,
    params: AVSyncParams | None = None,
    progress: Callable[[float], None] | None = None,
) -> SyncEstimate:
    """Offset of the audio against one mouth-aperture series (per frame, NaN without a face).

    times_s: presentation time of every frame (N,); mouth: (N,). `progress(fraction)`: told as the
    sliding windows are judged (core.signals.avsync_windows).
    """
    p = params or AVSyncParams()
    times_s = np.asarray(times_s, np.float64)
    mouth = np.asarray(mouth, np.float64)
    n = times_s.size
    if fps is None or not fps > 0:
        fps = fps_from_times(times_s)
    lags = np.arange(-p.max_offset_frames, p.max_offset_frames + 1, dtype=np.float64)

    env_t, env_db = speech_envelope(samples, sample_rate)
    env_t = env_t + audio_start_s
    empty = SyncEstimate(fps, None, None, None, None, None, lags, np.full(lags.size, np.nan), 0.0, True, mouth=mouth)
    if env_t.size < 2:
        return empty

    def level_at(t: np.ndarray) -> np.ndarray:
        return np.interp(t, env_t, env_db, left=np.nan, right=np.nan)

    frame_db = level_at(times_s)
    empty.envelope_db = frame_db
    audible = frame_db[np.isfinite(frame_db)]
    if audible.size == 0 or float(np.max(audible)) < p.silence_dbfs:
        return empty
    floor = float(np.percentile(audible, 10))
    speech = np.isfinite(frame_db) & (frame_db > max(p.silence_dbfs, floor + p.speech_margin_db))
    speech_fraction = float(speech.mean())
    if not speech.any():
        empty.speech_fraction = 0.0
        return empty

    # Detrend both series: what follows the lips is the fast modulation, not the slow level.
    feat = envelope_feature(env_db)
    hp_env = feat - _moving_mean(feat, p.detrend_s / ENVELOPE_HOP_S)
    hp_env = np.where(np.isfinite(hp_env), hp_env, 0.0)
    hp_mouth = mouth - _moving_mean(mouth, p.detrend_s * fps)
    # Envelope sampled at each frame time shifted by each lag: row l is audio at t + lag/fps.
    shifted = np.interp(times_s[None, :] + lags[:, None] / fps, env_t, hp_env, left=np.nan, right=np.nan)

    # Only frames around speech carry the sync; silence (closed mouth, noise) only dilutes it.
    near_speech = _moving_mean(speech.astype(float), max(int(round(0.3 * fps)), 1)) > 0
    x_glob = np.where(near_speech, hp_mouth, np.nan)
    min_n = max(int(round(1.0 * fps)), 10)
    r = pearson_rows(x_glob, shifted, min_n)
    off, conf, peak = correlation_peak(lags, r)

    # Null: the same mouth against the audio rotated far away (>= min_null_shift_s), where no
    # true sync exists. The p-value says how often chance alone gives this confidence.
    span = env_t.size
    lo = int(p.min_null_shift_s / ENVELOPE_HOP_S)
    shifts = rotations(span, lo, p.null_shifts)
    p_glob = None
    if conf is not None and shifts.size:
        p_glob = p_value(conf, null_confidences(x_glob, env_t, hp_env, times_s, lags, fps, min_n, shifts, slice(0, n)))

    sf_s = float(np.sum(speech & np.isfinite(hp_mouth))) / fps
    p_fine = None
    if conf is not None and p_glob is not None and p_glob <= p.alpha and off is not None \
            and abs(round(off)) > p.flag_offset_frames and span > 2 * lo:
        # only an offset claim needs the fine p: rotations are cheap but not free
        fine = rotations(span, lo, p.clip_null_shifts)
        p_fine = p_value(conf, null_confidences(x_glob, env_t, hp_env, times_s, lags, fps, min_n, fine, slice(0, n)))
    in_lag, margin, mz = offset_evidence(x_glob, shifted, lags, r, fps, p, min_n)

    est = SyncEstimate(
        fps=fps,
        offset_frames=off,
        offset_ms=None if off is None else 1000.0 * off / fps,
        confidence=conf,
        peak_correlation=peak,
        p_value=p_glob,
        lags=lags,
        correlation=r,
        speech_fraction=speech_fraction,
        silent=False,
        mouth=mouth,
        envelope_db=frame_db,
        speech_face_s=sf_s,
        p_value_fine=p_fine,
        in_sync_lag=in_lag,
        in_sync_margin=margin,
        margin_z=mz,
    )

    judge_windows(est, p, ClipSeries(hp_mouth, x_glob, shifted, speech, env_t, hp_env, times_s, lags, min_n), progress)
    return est
