"""What av_sync measures and decides with: its parameters, the window and estimate records, the
window states, and the rule for robust offset evidence. Shared by the measurement
(`core.signals.avsync`), the window rules (`avsync_windows`) and the detector."""

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
