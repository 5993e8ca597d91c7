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

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

ENVELOPE_HOP_S = 0.005  # fine grid of the speech envelope; lags are sampled from it
ENVELOPE_WIN_S = 0.025
SPEECH_BAND_HZ = (1000.0, 4000.0)


@dataclass
class AVSyncParams:
    max_offset_frames: int = 15  # lags searched: -max..+max frames
    window_s: float = 2.0  # sliding windows
    hop_s: float = 0.5
    detrend_s: float = 0.5  # moving average removed from both series (slow drifts, head motion)
    flag_offset_frames: int = 2  # an offset beyond this many whole frames (with sync established) is flagged
    # The detector reads `inconsistent` only from this offset on: a lip-sync error anyone can see
    # (ITU-R BT.1359 puts detectability at 45 ms audio early / 125 ms audio late). Smaller offsets
    # beyond 2 frames are flagged but occur in genuine broadcasts (the SyncNet example: -120 ms).
    inconsistent_offset_ms: float = 160.0
    alpha: float = 0.05  # sync is established when chance gives this confidence at most this often
    window_alpha: float = 0.1  # the same for one window (fewer frames: a looser test)
    flag_p_value: float = 0.5  # a speech window whose sync is this likely by chance is flagged (2 s is short: lenient)
    null_shifts: int = 40  # audio rotations for the chance level
    min_null_shift_s: float = 1.0
    silence_dbfs: float = -50.0  # a frame quieter than this is never speech
    speech_margin_db: float = 12.0  # speech: this far above the clip's noise floor (10th percentile)
    min_speech_fraction: float = 0.3  # of a window's frames, for the window to be judged
    min_face_fraction: float = 0.6  # of a window's frames with a mouth measurement
    min_track_s: float = 2.0  # shorter face tracks are not measured

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SyncWindow:
    start_frame: int
    end_frame: int  # inclusive
    speech_fraction: float
    offset_frames: float | None  # None: not judged (no speech or no face)
    confidence: float | None
    p_value: float | None
    flagged: bool
    score: float | None  # desync score in [0, 1] (heuristic, not a calibrated probability)
    reason: str = ""


@dataclass
class SyncEstimate:
    """Global and windowed offset of one face track against the audio."""

    fps: float
    offset_frames: float | None
    offset_ms: float | None
    confidence: float | None
    peak_correlation: float | None
    p_value: float | None  # chance of this confidence without sync (audio rotated far away)
    lags: np.ndarray  # (L,) frames
    correlation: np.ndarray  # (L,) global correlation per lag (NaN where not computable)
    speech_fraction: float
    silent: bool
    windows: list[SyncWindow] = field(default_factory=list)
    mouth: np.ndarray | None = None  # (N,) per frame, NaN without a face
    envelope_db: np.ndarray | None = None  # (N,) speech-band level at each frame time

    @property
    def judged_windows(self) -> list[SyncWindow]:
        return [w for w in self.windows if w.offset_frames is not None]


# --------------------------------------------------------------------------------------------
# series


def speech_envelope(samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Speech-band level in dBFS on a fine time grid: (times_s from the first sample, level_db)."""
    x = np.asarray(samples, np.float32)
    win = max(int(round(ENVELOPE_WIN_S * sample_rate)), 16)
    hop = max(int(round(ENVELOPE_HOP_S * sample_rate)), 1)
    if x.size < win:
        return np.zeros(0), np.zeros(0)
    n_fft = 1 << (win - 1).bit_length()
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop]
    spec = np.abs(np.fft.rfft(frames * np.hanning(win).astype(np.float32), n=n_fft, axis=1)) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    band = (freqs >= SPEECH_BAND_HZ[0]) & (freqs <= min(SPEECH_BAND_HZ[1], sample_rate / 2))
    # one-sided spectral power of a full-scale sine (Parseval), so the level reads as dBFS
    ref = n_fft * float((np.hanning(win) ** 2).sum()) / 4
    power = spec[:, band].sum(axis=1) / ref
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


def _pearson_rows(x: np.ndarray, y: np.ndarray, min_n: int) -> np.ndarray:
    """Pearson correlation of x (N,) with each row of y (L, N) over positions valid in both."""
    valid = np.isfinite(x)[None, :] & np.isfinite(y)
    n = valid.sum(axis=1)
    xs = np.where(valid, x[None, :], 0.0)
    ys = np.where(valid, y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = xs.sum(1) / n
        my = ys.sum(1) / n
        dx = np.where(valid, xs - mx[:, None], 0.0)
        dy = np.where(valid, ys - my[:, None], 0.0)
        r = (dx * dy).sum(1) / np.sqrt((dx * dx).sum(1) * (dy * dy).sum(1))
    r[(n < min_n) | ~np.isfinite(r)] = np.nan
    return r


def _peak(lags: np.ndarray, r: np.ndarray) -> tuple[float | None, float | None, float | None]:
    """(offset in frames with parabolic refinement, confidence = peak - median, peak value)."""
    if not np.isfinite(r).any() or np.isfinite(r).sum() < 3:
        return None, None, None
    k = int(np.nanargmax(r))
    peak = float(r[k])
    off = float(lags[k])
    if 0 < k < r.size - 1 and np.isfinite(r[k - 1]) and np.isfinite(r[k + 1]):
        den = r[k - 1] - 2 * r[k] + r[k + 1]
        if den < 0:
            off += float(np.clip(0.5 * (r[k - 1] - r[k + 1]) / den, -0.5, 0.5)) * float(lags[1] - lags[0])
    conf = peak - float(np.nanmedian(r))
    return off, conf, peak


def _null_confidences(x: np.ndarray, env_t: np.ndarray, hp_env: np.ndarray, times_s: np.ndarray, lags: np.ndarray, fps: float,
                      min_n: int, shifts: np.ndarray, frames: slice) -> np.ndarray:
    """Confidence of x against the envelope rotated by each far shift (no true sync): the null."""
    out = np.full(shifts.size, np.nan)
    t = times_s[frames]
    xs = x[frames]
    for k, sh in enumerate(shifts):
        rolled = np.roll(hp_env, int(sh))
        y = np.interp(t[None, :] + lags[:, None] / fps, env_t, rolled, left=np.nan, right=np.nan)
        _, c, _ = _peak(lags, _pearson_rows(xs, y, min_n))
        if c is not None:
            out[k] = c
    return out


def _p_value(conf: float, null: np.ndarray) -> float | None:
    null = null[np.isfinite(null)]
    if null.size < 5:
        return None
    return float((1 + np.sum(null >= conf)) / (1 + null.size))


def estimate_offset(
    times_s: np.ndarray,
    mouth: np.ndarray,
    samples: np.ndarray,
    sample_rate: int,
    audio_start_s: float = 0.0,
    fps: float | None = None,
    params: AVSyncParams | None = None,
) -> SyncEstimate:
    """Offset of the audio against one mouth-aperture series (per frame, NaN without a face).

    times_s: presentation time of every frame (N,); mouth: (N,).
    """
    p = params or AVSyncParams()
    times_s = np.asarray(times_s, np.float64)
    mouth = np.asarray(mouth, np.float64)
    n = times_s.size
    if fps is None or not fps > 0:
        fps = float(1.0 / np.median(np.diff(times_s))) if n > 1 else 25.0
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
    r = _pearson_rows(x_glob, shifted, min_n)
    off, conf, peak = _peak(lags, r)

    # Null: the same mouth against the audio rotated far away (>= min_null_shift_s), where no
    # true sync exists. The p-value says how often chance alone gives this confidence.
    span = env_t.size
    lo = int(p.min_null_shift_s / ENVELOPE_HOP_S)
    shifts = np.unique(np.linspace(lo, span - lo, p.null_shifts).astype(int)) if span > 2 * lo else np.zeros(0, int)
    p_glob = None
    if conf is not None and shifts.size:
        p_glob = _p_value(conf, _null_confidences(x_glob, env_t, hp_env, times_s, lags, fps, min_n, shifts, slice(0, n)))

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
    )

    win = max(int(round(p.window_s * fps)), 5)
    hop = max(int(round(p.hop_s * fps)), 1)
    starts = list(range(0, max(n - win, 0) + 1, hop)) if n >= win else [0]
    for s in starts:
        e = min(s + win, n)
        sl = slice(s, e)
        sf = float(speech[sl].mean())
        ff = float(np.isfinite(mouth[sl]).mean())
        w = SyncWindow(s, e - 1, round(sf, 3), None, None, None, False, None)
        if sf < p.min_speech_fraction:
            w.reason = "no speech"
        elif ff < p.min_face_fraction:
            w.reason = "face not tracked"
        else:
            wmin = max(int(0.5 * (e - s)), 5)
            rw = _pearson_rows(hp_mouth[sl], shifted[:, sl], wmin)
            wo, wc, _ = _peak(lags, rw)
            if wo is None or wc is None:
                w.reason = "not measurable"
            else:
                wp = _p_value(wc, _null_confidences(hp_mouth, env_t, hp_env, times_s, lags, fps, wmin, shifts, sl)) if shifts.size else None
                w.offset_frames, w.confidence, w.p_value = round(wo, 2), round(wc, 4), wp
                synced = wp is not None and wp <= p.window_alpha
                off_bad = synced and abs(round(wo)) > p.flag_offset_frames  # whole frames, as SyncNet reports
                # desync score in [0, 1]: the window's p-value (high: the lips do not follow the
                # speech better than chance), 1 when the lips follow it at an offset beyond the
                # tolerance. A heuristic for the timeline, not a calibrated probability.
                w.score = 1.0 if off_bad else (1.0 if wp is None else round(wp, 4))
                if off_bad:
                    w.flagged, w.reason = True, f"audio offset {1000 * wo / fps:+.0f} ms ({wo:+.1f} frames)"
                elif wp is not None and wp > p.flag_p_value:
                    w.flagged, w.reason = True, f"speech present but the lips do not follow it (p={wp:.2f}, confidence {wc:.2f})"
        est.windows.append(w)
    return est
