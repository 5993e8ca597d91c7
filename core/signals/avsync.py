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
from statistics import NormalDist
from typing import Any

import numpy as np

from core.signals.timebase import fps_from_times

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
    # Window flags are tests across all spans of a clip: the chance that an in-sync clip gets any
    # flagged window is held near `family_alpha` (Bonferroni over the spans' effective number:
    # overlapping spans of one length count as the disjoint spans that fit, see span_test_count).
    family_alpha: float = 0.05
    # Spread of the in-sync correlation between stretches of one genuine clip beyond the sampling
    # spread (pauses, closed-mouth consonants, head turns). Measured on the shared in-sync reals:
    # 0.25 over 2-s spans, 0.24 over 4-s, 0.29 over 8-s (one clip), so it does NOT shrink with the
    # span length and is applied in full to every span (docs/lipsync.md).
    between_window_sd: float = 0.25
    # A span is "measurable" when a span without sync would fall below the flag line with ~69 %
    # chance (0.5 sd of power beyond the line): otherwise it can show nothing either way.
    power_z: float = 0.5
    # A window's correlation at the clip's lag must also be unremarkable against chance (one-sided
    # z under this) for "the lips do not follow"; a window above it follows, only more weakly.
    follows_z: float = 1.645
    null_shifts: int = 40  # audio rotations for the chance level
    # The clip-level `inconsistent` reading needs robust evidence (the detector's _reading), not only
    # "beats 40 rotations" (p = 1/41 is their floor, and a genuine interview, avlips_real_0, reached it
    # with its peak on a side lobe of the speech rhythm at +5 frames). All three of:
    # - a fine p: at most inconsistent_alpha of clip_null_shifts rotations reach the confidence;
    clip_null_shifts: int = 400
    inconsistent_alpha: float = 0.01
    # - at least this much speech with a measured mouth (the 3-s GRID clips have 1.1-1.6 s);
    min_speech_face_s: float = 2.0
    # - the peak lag beats the best lag within +/-flag_offset_frames by margin_z_min jackknife standard
    #   errors (blocks of margin_block_s; offset_evidence). Side-lobe wins on genuine footage (the
    #   shared reals and their 3-/4-s pieces with the peak >= 4 frames off, 21 cases) reached at most
    #   2.23; audio shifted by 200-400 ms reached 2.6-5.6 where the reading held (docs/lipsync.md).
    margin_block_s: float = 0.5
    margin_z_min: float = 2.5
    # rotations per window: enough for an empirical p below family_alpha / windows (local offsets)
    window_null_shifts: int = 400
    # Flag a window whose own sync sits at another lag (rule 1 below). Off: on the shared in-sync
    # reals it flagged 6 of 12 clips, since a short window of real sync often peaks on a side lobe
    # of the syllable rhythm, which beats the rotated-audio chance level too (docs/lipsync.md).
    flag_local_offsets: bool = False
    # Over spans of at least this many touching windows (8 s) a local offset is tested instead. Over
    # 4 s, 2 of the shared in-sync reals showed "offsets" of +450..+495 ms beating 2000 rotations
    # (side lobes of the speech rhythm: rotations are no null for "sync at another lag"); over 8 s none did.
    local_offset_min_windows: int = 4
    local_null_shifts: int = 2000  # rotations for that test (an empirical p down to 1/2001; stops early)
    # Longest span tested, in touching windows (16 = 32 s); change-point spans only in runs shorter
    # than this (they keep the cost of a long recording linear in its length).
    max_span_windows: int = 16
    min_null_shift_s: float = 1.0
    silence_dbfs: float = -50.0  # a frame quieter than this is never speech
    speech_margin_db: float = 12.0  # speech: this far above the clip's noise floor (10th percentile)
    min_speech_fraction: float = 0.3  # of a window's frames, for the window to be judged
    min_face_fraction: float = 0.6  # of a window's frames with a mouth measurement
    min_track_s: float = 2.0  # shorter face tracks are not measured

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# window states (curves and frame_predictions): only FLAGGED is evidence of a sync problem
NO_SPEECH = "no speech"
NO_FACE = "face not tracked"
NOT_MEASURABLE = "not measurable"
FOLLOWS = "lips follow"
FLAGGED = "flagged"


@dataclass
class SyncWindow:
    start_frame: int
    end_frame: int  # inclusive
    speech_fraction: float
    offset_frames: float | None  # None: not judged (no speech or no face)
    confidence: float | None
    p_value: float | None  # the window's own sync against chance (audio rotations)
    flagged: bool
    score: float | None  # desync score in [0, 1] (heuristic, not a calibrated probability); None: not measurable
    reason: str = ""
    state: str = NO_SPEECH  # NO_SPEECH, NO_FACE, NOT_MEASURABLE, FOLLOWS or FLAGGED
    measurable: bool = False  # a window without sync would have been told from the clip's sync
    flag: str = ""  # the rule that flagged it: window_offset, local_offset, lips_do_not_follow, clip_offset
    r_at_clip_lag: float | None = None  # correlation at the clip's established lag in this window
    r_expected: float | None = None  # the clip's correlation at that lag outside this window
    r_chance: float | None = None  # mean correlation at that lag against rotated audio (no sync)
    deviation_z: float | None = None  # (r_at_clip_lag - r_expected) / in-sync spread; flagged at <= -z_crit
    z_crit: float | None = None  # the flag line (Bonferroni over the clip's judged windows)


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
    spans: list[dict[str, Any]] = field(default_factory=list)  # every "lips do not follow" test made (diagnostics)
    # Evidence for an offset (see offset_evidence): what the clip-level `inconsistent` reading needs.
    speech_face_s: float = 0.0  # seconds of speech frames with a measured mouth
    p_value_fine: float | None = None  # the clip's confidence against clip_null_shifts rotations
    in_sync_lag: float | None = None  # best lag within +/-flag_offset_frames
    in_sync_margin: float | None = None  # correlation at the peak minus the best in-sync correlation
    margin_z: float | None = None  # that margin over its jackknife standard error (time blocks)

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


def _null_rows(x: np.ndarray, env_t: np.ndarray, hp_env: np.ndarray, times_s: np.ndarray, lags: np.ndarray, fps: float,
               min_n: int, shifts: np.ndarray, frames: slice) -> np.ndarray:
    """Correlation by lag of x against the envelope rotated by each far shift (no true sync): (S, L)."""
    out = np.full((shifts.size, lags.size), np.nan)
    t = times_s[frames]
    xs = x[frames]
    for k, sh in enumerate(shifts):
        rolled = np.roll(hp_env, int(sh))
        y = np.interp(t[None, :] + lags[:, None] / fps, env_t, rolled, left=np.nan, right=np.nan)
        out[k] = _pearson_rows(xs, y, min_n)
    return out


def _null_confidences(x: np.ndarray, env_t: np.ndarray, hp_env: np.ndarray, times_s: np.ndarray, lags: np.ndarray, fps: float,
                      min_n: int, shifts: np.ndarray, frames: slice) -> np.ndarray:
    """Confidence of x against the envelope rotated by each far shift (no true sync): the null."""
    return _confidences(lags, _null_rows(x, env_t, hp_env, times_s, lags, fps, min_n, shifts, frames))


def _confidences(lags: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = np.full(rows.shape[0], np.nan)
    for k, r in enumerate(rows):
        _, c, _ = _peak(lags, r)
        if c is not None:
            out[k] = c
    return out


def span_test_count(spans: list[tuple[int, int, list[int]]], windows: list[SyncWindow]) -> int:
    """Effective number of span tests: per span length, the disjoint spans that fit in the judged frames.

    Spans of one length overlap by up to 75 % (hop 0.5 s, window 2 s) and their statistics move
    together; counting every overlapping span would make Bonferroni needlessly blind.
    """
    judged_frames = len({f for _, _, ks in spans if len(ks) == 1 for k in ks for f in range(windows[k].start_frame, windows[k].end_frame + 1)})
    win = max((b - a for a, b, ks in spans if len(ks) == 1), default=1)
    total = 0
    powers = [k for k in sorted({len(ks) for _, _, ks in spans}) if k & (k - 1) == 0]
    for k in powers:
        length = max(b - a for a, b, ks in spans if len(ks) == k)
        total += max(judged_frames // max(length, 1), 1)
    # change-point spans (run start to a window, a window to run end): one pair per window length
    if any(len(ks) & (len(ks) - 1) != 0 for _, _, ks in spans):
        total += 2 * max(judged_frames // max(win, 1), 1)
    return total


def z_crit_for(n_windows: int, family_alpha: float) -> float:
    """One-sided normal quantile with Bonferroni over n_windows tests (overlap makes it conservative)."""
    return float(NormalDist().inv_cdf(1.0 - family_alpha / max(n_windows, 1)))


def _p_value(conf: float, null: np.ndarray) -> float | None:
    null = null[np.isfinite(null)]
    if null.size < 5:
        return None
    return float((1 + np.sum(null >= conf)) / (1 + null.size))


def offset_evidence(x: np.ndarray, shifted: np.ndarray, lags: np.ndarray, r: np.ndarray, fps: float, p: AVSyncParams,
                    min_n: int) -> tuple[float | None, float | None, float | None]:
    """How surely the correlation peak beats every in-sync lag: (best in-sync lag, margin, margin z).

    Speech has a syllable rhythm, so the correlation by lag of genuine, in-sync footage has side
    lobes ~4-6 frames from its true lag, and over a few seconds a side lobe can win. Rotated audio
    is no null for that (it has no sync at any lag). The margin (r at the peak minus the best r
    within +/-flag_offset_frames) is instead judged against its own variability over time: a
    delete-one-block jackknife over blocks of `margin_block_s` (r recomputed without each block).
    A real offset wins in every stretch of speech; a side lobe wins by the luck of a few syllables.
    """
    fin = np.isfinite(r)
    near = fin & (np.abs(lags) <= p.flag_offset_frames)
    if not fin.any() or not near.any():
        return None, None, None
    k = int(np.nanargmax(r))
    near_idx = np.flatnonzero(near)
    j = int(near_idx[np.argmax(r[near_idx])])
    margin = float(r[k] - r[j])
    if k in near_idx:
        return float(lags[j]), margin, None  # the peak is in sync: nothing to test
    valid = np.flatnonzero(np.isfinite(x))
    # at most 200 blocks: longer blocks on a long recording keep the cost linear (still a valid jackknife)
    block = max(int(round(p.margin_block_s * fps)), -(-int(np.isfinite(x).sum()) // 200), 1)
    if valid.size == 0:
        return float(lags[j]), margin, None
    # blocks of the frames that carry the correlation (speech with a face), in time order
    groups = [valid[i:i + block] for i in range(0, valid.size, block)]
    if len(groups) < 3:
        return float(lags[j]), margin, None
    rows = np.concatenate([[k], near_idx])
    reps = []
    for g in groups:
        xb = x.copy()
        xb[g] = np.nan
        rb = _pearson_rows(xb, shifted[rows], min_n)
        if not np.isfinite(rb).all():
            return float(lags[j]), margin, None
        reps.append(rb[0] - np.max(rb[1:]))
    reps_a = np.asarray(reps)
    b = reps_a.size
    se = float(np.sqrt((b - 1) / b * np.sum((reps_a - reps_a.mean()) ** 2)))
    return float(lags[j]), margin, (float(min(margin / se, 99.0)) if se > 0 else 99.0)


def offset_evidence_missing(est: SyncEstimate, p: AVSyncParams) -> list[str]:
    """What an `inconsistent` offset reading lacks (empty: robust). See AVSyncParams and offset_evidence."""
    missing = []
    if est.speech_face_s < p.min_speech_face_s:
        missing.append(f"only {est.speech_face_s:.1f} s of speech with a tracked mouth (needs {p.min_speech_face_s:.0f} s)")
    if est.p_value_fine is None or est.p_value_fine > p.inconsistent_alpha:
        fine = "not computable" if est.p_value_fine is None else f"{est.p_value_fine:.3f}"
        missing.append(f"p against {p.clip_null_shifts} audio rotations {fine} (needs <= {p.inconsistent_alpha})")
    if est.margin_z is None or est.margin_z < p.margin_z_min:
        z = "not computable" if est.margin_z is None else f"{est.margin_z:.1f}"
        missing.append(f"the offset lag beats the best in-sync lag by {z} standard errors (needs {p.margin_z_min:.1f})")
    return missing


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

    sf_s = float(np.sum(speech & np.isfinite(hp_mouth))) / fps
    p_fine = None
    if conf is not None and p_glob is not None and p_glob <= p.alpha and off is not None \
            and abs(round(off)) > p.flag_offset_frames and span > 2 * lo:
        # only an offset claim needs the fine p: rotations are cheap but not free
        fine = np.unique(np.linspace(lo, span - lo, p.clip_null_shifts).astype(int))
        p_fine = _p_value(conf, _null_confidences(x_glob, env_t, hp_env, times_s, lags, fps, min_n, fine, slice(0, n)))
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

    _judge_windows(est, p, hp_mouth, x_glob, shifted, speech, env_t, hp_env, times_s, lags, min_n)
    return est


def _local_offset(est: SyncEstimate, p: AVSyncParams, hp_mouth: np.ndarray, shifted: np.ndarray, env_t: np.ndarray,
                  hp_env: np.ndarray, times_s: np.ndarray, lags: np.ndarray, sl: slice, smin: int, d: int,
                  alpha_span: float) -> tuple[str, float] | None:
    """A span whose own sync sits more than flag_offset_frames from the clip's lag d, beyond chance.

    The span's confidence (peak - median correlation) must be reached by at most alpha_span of the
    audio rotations (empirical p; Bonferroni over the clip's spans). Returns the flag's reason.
    """
    rs = _pearson_rows(hp_mouth[sl], shifted[:, sl], smin)
    lo, conf, _ = _peak(lags, rs)
    if lo is None or conf is None or abs(round(lo) - d) <= p.flag_offset_frames:
        return None
    lo_s = int(p.min_null_shift_s / ENVELOPE_HOP_S)
    if env_t.size <= 2 * lo_s or 1.0 / (p.local_null_shifts + 1) > alpha_span:
        return None
    rot = np.unique(np.linspace(lo_s, env_t.size - lo_s, p.local_null_shifts).astype(int))
    if 1.0 / (rot.size + 1) > alpha_span:
        return None  # too short a clip for this many tests: cannot be significant
    # rotations in chunks, in a shuffled order: stop as soon as too many reach the confidence
    rot = np.random.default_rng(0).permutation(rot)
    allowed = int(np.floor(alpha_span * (rot.size + 1))) - 1  # rotations that may reach it
    hits, done = 0, 0
    for c in range(0, rot.size, 200):
        nc = _confidences(lags, _null_rows(hp_mouth, env_t, hp_env, times_s, lags, est.fps, smin, rot[c:c + 200], sl))
        hits += int(np.sum(nc[np.isfinite(nc)] >= conf))
        done += int(np.isfinite(nc).sum())
        if hits > allowed:
            return None
    pv = (1 + hits) / (1 + done)
    if pv > alpha_span:
        return None
    fps = est.fps
    return (f"audio offset {1000 * lo / fps:+.0f} ms here ({lo:+.1f} frames, found over frames {sl.start}-{sl.stop - 1}; "
            f"the clip elsewhere {1000 * d / fps:+.0f} ms; p={pv:.4f} <= {alpha_span:.4f})"), lo


def _judge_windows(est: SyncEstimate, p: AVSyncParams, hp_mouth: np.ndarray, x_glob: np.ndarray, shifted: np.ndarray,  # noqa: C901 - split in the next commit
                   speech: np.ndarray, env_t: np.ndarray, hp_env: np.ndarray, times_s: np.ndarray, lags: np.ndarray,
                   min_n: int) -> None:
    """Sliding windows: measure each, then flag only what is evidence against the clip's own sync.

    A 2-s window of genuine, in-sync speech often shows no sync better than chance (few syllables,
    a still mouth, a head turn): that is "not measurable" or "lips follow", never a flag. Flags:
    1. local offset: over a span of >= local_offset_min_windows touching windows (8 s) the lips
       follow the audio best at a lag more than flag_offset_frames from the clip's established
       lag (or from 0 without one), with a confidence reached by at most alpha_span of up to
       local_null_shifts audio rotations; the span's windows that prefer that lag are flagged.
       (The same test per 2-s window, `flag_local_offsets`, is off: side lobes of real sync.)
    2. the lips do not follow: the clip's sync is established (p <= alpha) at lag d; over a span of
       touching windows (2, 4, 8, 16 windows, or a change point: run start to a window, a window
       to run end) the correlation at d falls more than z_crit in-sync spreads below the clip's
       correlation outside the span, and is not beyond chance itself. Only "measurable" spans
       count: a span without sync would fall below that line with ~69 % chance (power_z);
    3. the clip's offset: the clip's sync is established at |d| > flag_offset_frames and the window
       follows it (its correlation at d beyond chance, one-sided z >= follows_z).
    The in-sync spread is the span's sampling spread (audio rotations) plus `between_window_sd`,
    the spread between stretches of genuine speech (measured on the shared reals; not shrinking
    with the span length). z_crit and alpha_span are Bonferroni over span_test_count.
    """
    n = times_s.size
    fps = est.fps
    mouth = est.mouth if est.mouth is not None else hp_mouth
    win = max(int(round(p.window_s * fps)), 5)
    hop = max(int(round(p.hop_s * fps)), 1)
    starts = list(range(0, max(n - win, 0) + 1, hop)) if n >= win else [0]
    judged: list[int] = []
    for s in starts:
        e = min(s + win, n)
        sf = float(speech[s:e].mean())
        ff = float(np.isfinite(mouth[s:e]).mean())
        w = SyncWindow(s, e - 1, round(sf, 3), None, None, None, False, None)
        est.windows.append(w)
        if sf < p.min_speech_fraction:
            w.reason = w.state = NO_SPEECH
        elif ff < p.min_face_fraction:
            w.reason = w.state = NO_FACE
        else:
            judged.append(len(est.windows) - 1)
    if not judged:
        return
    lo = int(p.min_null_shift_s / ENVELOPE_HOP_S)
    span = env_t.size
    n_rot = p.window_null_shifts if p.flag_local_offsets else p.null_shifts  # window p: reported, flagged only by rule 1
    shifts = np.unique(np.linspace(lo, span - lo, n_rot).astype(int)) if span > 2 * lo else np.zeros(0, int)
    established = est.p_value is not None and est.p_value <= p.alpha and est.offset_frames is not None
    d = int(round(est.offset_frames)) if established and est.offset_frames is not None else None
    di = None if d is None else int(np.argmin(np.abs(lags - d)))
    ref = d if d is not None else 0  # local offsets are measured from the clip's lag, or from 0
    alpha_local = p.family_alpha / len(judged)

    # spans for rule 2: chains of 1, 2, 4, 8... touching judged windows (2, 4, 8, 16 s): a long
    # stretch without sync is told from genuine speech far more surely than one window
    # the next window of a chain starts where the previous ends (within one hop)
    by_start = {est.windows[k].start_frame: k for k in judged}
    follow = {k: next((by_start[f] for f in range(est.windows[k].end_frame + 1, est.windows[k].end_frame + 1 + hop) if f in by_start), None)
              for k in judged}
    before = {f: k for k, f in follow.items() if f is not None}
    spans: list[tuple[int, int, list[int]]] = []
    for k in judged:
        chain = [k]
        while len(chain) < p.max_span_windows:
            if len(chain) & (len(chain) - 1) == 0:  # a power of two
                spans.append((est.windows[chain[0]].start_frame, est.windows[chain[-1]].end_frame + 1, list(chain)))
            nxt = follow[chain[-1]]
            if nxt is None:
                break
            chain.append(nxt)
        else:
            spans.append((est.windows[chain[0]].start_frame, est.windows[chain[-1]].end_frame + 1, list(chain)))
            continue  # a long run: spans of up to max_span_windows, no change points
        # change points: from this window to the end of its run, and from the run's start to it
        # (the rest of the clip is then the other side of the change, a clean reference)
        if len(chain) & (len(chain) - 1) != 0:
            spans.append((est.windows[chain[0]].start_frame, est.windows[chain[-1]].end_frame + 1, list(chain)))
        back = [k]
        while back[0] in before and len(back) < p.max_span_windows:
            back.insert(0, before[back[0]])
        if len(back) > 1 and len(back) & (len(back) - 1) != 0:
            spans.append((est.windows[back[0]].start_frame, est.windows[back[-1]].end_frame + 1, list(back)))
    spans.sort(key=lambda t: -len(t[2]))  # a window's reason comes from the longest flagged span
    n_tests = span_test_count(spans, est.windows)
    z_crit = z_crit_for(n_tests, p.family_alpha)
    alpha_span = p.family_alpha / n_tests
    above: dict[int, float] = {}

    for k in judged:
        w = est.windows[k]
        sl = slice(w.start_frame, w.end_frame + 1)
        w.state, w.reason, w.z_crit = NOT_MEASURABLE, NOT_MEASURABLE, round(z_crit, 3)
        wmin = max(int(0.5 * (sl.stop - sl.start)), 5)
        rw = _pearson_rows(hp_mouth[sl], shifted[:, sl], wmin)
        wo, wc, _ = _peak(lags, rw)
        if wo is None or wc is None:
            w.reason = "not measurable (too few frames with a face)"
            continue
        null = _null_rows(hp_mouth, env_t, hp_env, times_s, lags, fps, wmin, shifts, sl)
        wp = _p_value(wc, _confidences(lags, null))
        w.offset_frames, w.confidence, w.p_value = round(wo, 2), round(wc, 4), wp
        if di is not None:
            nd = null[:, di][np.isfinite(null[:, di])]
            if np.isfinite(rw[di]) and nd.size >= 5 and nd.std() > 0:
                above[k] = float((rw[di] - nd.mean()) / nd.std())
        # 1. a confident local sync at a lag of its own
        if p.flag_local_offsets and wp is not None and wp <= alpha_local and abs(round(wo) - ref) > p.flag_offset_frames:
            w.flagged, w.state, w.measurable, w.score, w.flag = True, FLAGGED, True, 1.0, "window_offset"
            w.reason = (f"audio offset {1000 * wo / fps:+.0f} ms in this window ({wo:+.1f} frames; clip {1000 * ref / fps:+.0f} ms; "
                        f"p={wp:.3f})")
    if di is None:
        for k in judged:
            w = est.windows[k]
            if not w.flagged and w.offset_frames is not None:
                w.reason = "not measurable (no clip-level sync to compare with)"
        return

    # 2. spans whose lips do not follow the speech at the clip's lag
    n_meas = np.zeros(n, bool)  # frames inside a measurable span
    span_shifts = np.unique(np.linspace(lo, span - lo, 100).astype(int)) if span > 2 * lo else np.zeros(0, int)
    flagged_spans: list[tuple[int, int, str]] = []
    local_spans: list[tuple[int, int]] = []
    for a, b, ks in spans:
        sl = slice(a, b)
        smin = max(int(0.5 * (b - a)), 5)
        r_d = float(_pearson_rows(hp_mouth[sl], shifted[di:di + 1, sl], smin)[0])
        x_out = x_glob.copy()
        x_out[sl] = np.nan  # the clip outside this span: what in-sync speech of this face gives
        r_ref = float(_pearson_rows(x_out, shifted[di:di + 1], min_n)[0])
        nd = _null_rows(hp_mouth, env_t, hp_env, times_s, lags[di:di + 1], fps, smin, span_shifts, sl)[:, 0]
        nd = nd[np.isfinite(nd)]
        if not np.isfinite(r_d) or not np.isfinite(r_ref) or nd.size < 5 or nd.std() <= 0:
            continue
        mu0, sd0 = float(nd.mean()), float(nd.std())
        if len(ks) >= p.local_offset_min_windows and not any(fa <= a and b <= fb for fa, fb in local_spans):
            local = _local_offset(est, p, hp_mouth, shifted, env_t, hp_env, times_s, lags, sl, smin, d, alpha_span)
            if local is not None:
                reason, lo = local
                n_meas[sl] = True
                local_spans.append((a, b))  # its sub-spans need no test of their own
                # localise: only the span's windows that themselves prefer the span's lag to the clip's
                for k in judged:
                    w = est.windows[k]
                    if a <= w.start_frame and w.end_frame < b and not w.flagged:
                        rw = _pearson_rows(hp_mouth[w.start_frame:w.end_frame + 1], shifted[:, w.start_frame:w.end_frame + 1], max(int(0.5 * (w.end_frame + 1 - w.start_frame)), 5))
                        li = int(np.argmin(np.abs(lags - round(lo))))
                        if np.isfinite(rw[li]) and (not np.isfinite(rw[di]) or rw[li] > rw[di]):
                            w.flagged, w.state, w.measurable, w.score, w.reason, w.flag = True, FLAGGED, True, 1.0, reason, "local_offset"
                continue
        sd_h0 = float(np.sqrt(sd0 ** 2 + p.between_window_sd ** 2))
        dev = (r_d - r_ref) / sd_h0
        measurable = (r_ref - mu0) / sd_h0 >= z_crit + p.power_z
        est.spans.append({"start_frame": a, "end_frame": b - 1, "windows": len(ks), "r": r_d, "r_expected": r_ref, "r_chance": mu0,
                          "chance_sd": sd0, "deviation_z": dev, "measurable": bool(measurable)})
        if len(ks) == 1:
            w = est.windows[ks[0]]
            w.r_at_clip_lag, w.r_expected, w.r_chance, w.deviation_z = round(r_d, 4), round(r_ref, 4), round(mu0, 4), round(dev, 3)
            w.score = None if not measurable else round(float(np.clip(-dev / z_crit, 0.0, 0.99)), 4)
        if measurable:
            n_meas[sl] = True
            if dev <= -z_crit and (r_d - mu0) / sd0 < p.follows_z:
                flagged_spans.append((a, b, (
                    f"speech present but the lips do not follow it ({(b - a) / fps:.0f} s from frame {a}: r={r_d:+.2f} at the "
                    f"clip's lag {d:+d} frames, clip elsewhere {r_ref:+.2f}, chance {mu0:+.2f}; z={dev:.1f} <= -{z_crit:.1f})")))
    # a window takes the flag of the spans covering most of its frames (at least half)
    for k in judged:
        w = est.windows[k]
        lo_f, hi_f = w.start_frame, w.end_frame + 1
        w.measurable = w.measurable or bool(n_meas[lo_f:hi_f].mean() >= 0.5)
        if w.flagged or not flagged_spans:
            continue
        cover = np.zeros(hi_f - lo_f, bool)
        best = max(flagged_spans, key=lambda t: min(t[1], hi_f) - max(t[0], lo_f))
        for a, b, _ in flagged_spans:
            cover[max(a - lo_f, 0):max(min(b, hi_f) - lo_f, 0)] = True
        if cover.mean() >= 0.5:
            w.flagged, w.state, w.score, w.reason, w.flag = True, FLAGGED, 1.0, best[2], "lips_do_not_follow"

    # 3. the clip's own offset, where the window follows it; otherwise the window's state. An offset
    # the detector reads as a visible error (>= inconsistent_offset_ms) flags windows only with the
    # same robust evidence as that reading: else red segments would accuse a side lobe.
    side_lobe = abs(est.offset_ms or 0.0) >= p.inconsistent_offset_ms and bool(offset_evidence_missing(est, p))
    for k in judged:
        w = est.windows[k]
        if w.flagged or w.offset_frames is None:
            continue
        follows = above.get(k, -np.inf) >= p.follows_z
        if abs(d) > p.flag_offset_frames and follows and side_lobe:
            w.state = FOLLOWS
            w.reason = (f"lips follow the clip's peak lag ({est.offset_ms or 0.0:+.0f} ms), but that offset is not robust "
                        "evidence (it may be a side lobe of the speech rhythm)")
        elif abs(d) > p.flag_offset_frames and follows:
            w.flagged, w.state, w.measurable, w.score, w.flag = True, FLAGGED, True, 1.0, "clip_offset"
            w.reason = f"audio offset {est.offset_ms or 0.0:+.0f} ms (the clip's offset, {d:+d} frames; this window follows it)"
        elif w.measurable or follows:
            w.state = FOLLOWS
            w.reason = "lips follow the speech" if follows else "consistent with the clip's sync"
        else:
            w.reason = "not measurable (weak lip/speech signal in this window)"
