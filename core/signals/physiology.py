"""Blink physiology of one face track: rate, durations, intervals, completeness, asymmetry.

Weight-free measurements over the frames where both eyes are visible (finite EAR) and
assessable (`core.signals.eyes`: head not turned, eyes large enough, inside the frame, plausible
landmarks); the rest of the track counts as time without eyes. Everything
is measured on the track's own scale: the lid closure of a blink is how far each eye's EAR drops
below that eye's open baseline (the running upper percentile that `core.signals.blinks` uses),
so a narrow-eyed person and a wide-eyed one are judged alike.

Human norms (quoted with their source wherever a value is compared with them):

- Bentivoglio AR et al. (1997) Analysis of blink rate patterns in normal subjects.
  Mov Disord 12(6):1028-1034: mean ~17/min at rest, ~26/min in conversation, ~4.5/min reading.
- Doughty MJ (2001) Consideration of three types of spontaneous eyeblink activity in normal
  humans. Optom Vis Sci 78(10):712-725: 95% ranges 10.5-32.5/min in conversation and
  8-21/min in primary gaze.
- Blink duration about 100-400 ms (the range used across the blink literature; e.g. Caffier PP
  et al. (2003) Eur J Appl Physiol 89:319-325).

What a rate over a short clip can say: blink counts are at best Poisson (in practice clustered,
so more variable still). Two blinks in 8 s is 15/min with an exact 95% interval of 1.8-54/min:
it is compatible with every norm and every anomaly, so no rate is compared with the norms below
`min_rate_s` seconds of visible eyes (30 s by default, where ten blinks at a typical 20/min give
an interval of about 9.6-36.8/min, still wider than the conversational norm). Single blinks, in
contrast, are evidence at any length: an incomplete or one-eyed closure is visible in one event.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import chi2

from core.signals.blinks import BlinkEvent, BlinkParams, open_baseline
from core.signals.eye_quality import closure_noise
from core.signals.eyes import EyeParams

NORMS: dict[str, dict[str, Any]] = {
    "rate_rest": {"value_per_min": 17.0, "source": "Bentivoglio et al. 1997, Mov Disord 12:1028"},
    "rate_conversation": {"value_per_min": 26.0, "source": "Bentivoglio et al. 1997, Mov Disord 12:1028"},
    "rate_reading": {"value_per_min": 4.5, "source": "Bentivoglio et al. 1997, Mov Disord 12:1028"},
    "rate_conversation_95": {"range_per_min": [10.5, 32.5], "source": "Doughty 2001, Optom Vis Sci 78:712"},
    "rate_primary_gaze_95": {"range_per_min": [8.0, 21.0], "source": "Doughty 2001, Optom Vis Sci 78:712"},
    "duration": {"range_ms": [100.0, 400.0], "source": "blink literature, e.g. Caffier et al. 2003, Eur J Appl Physiol 89:319"},
}

# The flags a blink can carry; the first two are the kinds a generator produces systematically.
PATTERN_FLAGS = ("incomplete", "one_eyed")
BLINK_FLAGS = (*PATTERN_FLAGS, "out_of_step", "too_long", "too_short")


@dataclass
class PhysiologyParams:
    min_rate_s: float = 30.0  # visible-eye time below which no rate is compared with the norms
    rate_low_per_min: float = 8.0  # lowest 95% bound of the cited norms (Doughty, primary gaze)
    rate_high_per_min: float = 32.5  # highest 95% bound (Doughty, conversation)
    rate_reading_per_min: float = 4.5  # Bentivoglio's reading mean: a rate must fall below it to count
    min_duration_ms: float = 100.0
    max_duration_ms: float = 400.0
    incomplete_below: float = 0.5  # deeper eye's EAR drop below this fraction of its open level
    one_eyed_above: float = 0.5  # asymmetry index (0 = both eyes alike, 1 = one eye only)
    out_of_step_ms: float = 80.0  # one eye reaching half closure this much before the other
    # blink depth (completeness, asymmetry, lag) is judged only on eyes resolved well enough
    # (core.signals.eye_quality; docs/physiology.md "Blink depth" has the measurements behind them)
    min_eye_width_px: float = 30.0  # sharp genuine eyes of 17-24 px measure 0.35-0.52 deep on this media
    max_eye_blur_px: float = 1.5  # eye-region edge blur; FaceForensics++ c40 originals: 1.7-2.7 px
    max_closure_noise: float = 0.1  # open-eye closure spread: the resolution of any depth read from the EAR
    pattern_min_blinks: int = 3  # blinks needed before a repeated anomaly counts
    pattern_fraction: float = 0.75  # share of judged blinks that must carry the same anomaly
    normal_max_fraction: float = 0.25  # at most this share anomalous for a `consistent` reading
    blinks: BlinkParams = field(default_factory=BlinkParams)
    eyes: EyeParams = field(default_factory=EyeParams)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BlinkMeasure:
    start_frame: int
    apex_frame: int
    end_frame: int
    duration_ms: float
    closure_left: float  # 1 - min EAR / open baseline, image-left eye (0 = no movement, 1 = shut)
    closure_right: float
    completeness: float  # the deeper eye's closure
    asymmetry: float  # |closure_left - closure_right| / completeness
    lag_ms: float | None  # image-left eye reaches half its closure this long after the right one
    judged: bool  # the track's eyes resolved well enough for depth to be measured (DepthCheck)
    flags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DepthCheck:
    """Whether this track's eyes are resolved well enough for blink depth to be measured."""

    eye_width_px: float  # median width of the narrower eye over the visible frames
    blur_px: float | None  # eye-region edge blur (None: not measured by the caller)
    closure_noise: float | None  # open-eye closure spread (None: too few open frames)
    measurable: bool
    reasons: list[str] = field(default_factory=list)  # why not, in words (empty when measurable)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_depth(eye_width_px: float, blur_px: float | None, noise: float | None, p: PhysiologyParams) -> DepthCheck:
    """The three gates on blink depth. `blur_px` None skips the blur gate (a caller without
    frames, e.g. synthetic landmarks); `noise` None (too few open frames) fails its gate."""
    why = []
    if not eye_width_px >= p.min_eye_width_px:
        why.append(f"eyes {eye_width_px:.0f} px wide (< {p.min_eye_width_px:g} px)")
    if blur_px is not None and not np.isfinite(blur_px):
        why.append("the eye region's edge blur could not be measured on the decoded frames")
    elif blur_px is not None and not blur_px <= p.max_eye_blur_px:
        why.append(f"eye edges blurred over {blur_px:.2f} px (> {p.max_eye_blur_px:g} px: compression or focus)")
    if noise is None:
        why.append("too few open-eye frames to measure the EAR's noise")
    elif not noise <= p.max_closure_noise:
        why.append(f"open-eye closure noise {noise:.3f} (> {p.max_closure_noise:g})")
    r = lambda x: None if x is None or not np.isfinite(x) else round(float(x), 3)  # noqa: E731
    return DepthCheck(round(float(eye_width_px), 1), r(blur_px), r(noise), not why, why)


@dataclass
class TrackPhysiology:
    track_id: int
    fps: float
    visible_s: float
    eye_width_px: float
    n_blinks: int
    observed_per_min: float | None  # count / visible time (always shown, with its interval)
    rate_ci95_per_min: tuple[float, float] | None  # exact Poisson interval
    rate_per_min: float | None  # the rate compared with the norms; None below min_rate_s
    rate_flag: str | None  # "low" / "high" / None
    rate_note: str
    mean_duration_ms: float | None
    ibi_mean_s: float | None
    ibi_cv: float | None
    longest_no_blink_s: float
    mean_completeness: float | None
    mean_asymmetry: float | None
    judged_blinks: int
    flag_counts: dict[str, int]
    blinks: list[BlinkMeasure]
    not_assessable_s: float = 0.0  # face seen but eyes not assessable (head turned, eyes small...)
    depth: DepthCheck | None = None  # whether blink depth could be measured (judged blinks)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["blinks"] = [b.to_dict() for b in self.blinks]
        return d


def poisson_rate_ci(count: int, minutes: float, level: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) interval of a Poisson rate, per minute."""
    a = 1.0 - level
    lo = 0.0 if count == 0 else chi2.ppf(a / 2, 2 * count) / 2
    hi = chi2.ppf(1 - a / 2, 2 * count + 2) / 2
    return float(lo / minutes), float(hi / minutes)


def _runs(frames: np.ndarray, mask: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges [a, b) of consecutive frame numbers where mask is True."""
    out: list[tuple[int, int]] = []
    a = None
    for k in range(frames.size):
        if mask[k] and a is not None and frames[k] == frames[k - 1] + 1:
            continue
        if a is not None:
            out.append((a, k))
            a = None
        if mask[k]:
            a = k
    if a is not None:
        out.append((a, frames.size))
    return out


def _half_closure_row(closure: np.ndarray) -> int:
    peak = np.nanmax(closure)
    return int(np.flatnonzero(closure >= 0.5 * peak)[0]) if np.isfinite(peak) and peak > 0 else 0


def measure_blink(
    ev: BlinkEvent, frames: np.ndarray, ear: np.ndarray, base: np.ndarray, fps: float, judged: bool, p: PhysiologyParams
) -> BlinkMeasure:
    a = int(np.searchsorted(frames, ev.start_frame))
    b = int(np.searchsorted(frames, ev.end_frame)) + 1
    with np.errstate(divide="ignore", invalid="ignore"):
        closure = 1.0 - ear[a:b] / base[a:b]  # (n, 2) per-frame closure of each eye
    cl = float(np.nanmax(closure[:, 0])) if np.isfinite(closure[:, 0]).any() else 0.0
    cr = float(np.nanmax(closure[:, 1])) if np.isfinite(closure[:, 1]).any() else 0.0
    cl, cr = max(cl, 0.0), max(cr, 0.0)
    depth = max(cl, cr)
    asym = abs(cl - cr) / depth if depth > 0 else 0.0
    lag = None
    if min(cl, cr) > 0.1 and fps > 0:  # both eyes moved: compare when each passed half its depth
        lag = (_half_closure_row(closure[:, 0]) - _half_closure_row(closure[:, 1])) * 1000.0 / fps
    duration_ms = ev.duration_s * 1000.0
    frame_ms = 1000.0 / fps if fps else 0.0
    flags = []
    if judged and depth < p.incomplete_below:
        flags.append("incomplete")
    if judged and asym >= p.one_eyed_above:
        flags.append("one_eyed")
    if judged and lag is not None and abs(lag) > max(p.out_of_step_ms, frame_ms):
        flags.append("out_of_step")
    # one frame of tolerance: durations are counted in whole frames
    if duration_ms > p.max_duration_ms + frame_ms:
        flags.append("too_long")
    if duration_ms < p.min_duration_ms - frame_ms:
        flags.append("too_short")
    return BlinkMeasure(
        ev.start_frame, ev.apex_frame, ev.end_frame, round(duration_ms, 1), round(cl, 3), round(cr, 3),
        round(depth, 3), round(asym, 3), None if lag is None else round(lag, 1), judged, flags,
    )


def per_eye_baseline(
    frames: np.ndarray, ear: np.ndarray, fps: float, bp: BlinkParams, assessable: np.ndarray | None = None
) -> np.ndarray:
    """Open-eye EAR level of each eye (M, 2), computed per gap-free stretch like the blink events.

    Rows where an eye is unknown are filled with the stretch's median for the baseline only (the
    closure there stays NaN because the EAR is NaN). With `assessable` (bool (M,)), stretches
    also end at unassessable rows, which stay NaN."""
    base = np.full(ear.shape, np.nan)
    ok = np.ones(frames.size, bool) if assessable is None else np.asarray(assessable, bool)
    for a, b in _runs(frames, ok):
        for eye in (0, 1):
            x = ear[a:b, eye]
            if not np.isfinite(x).any():
                continue
            base[a:b, eye] = open_baseline(np.where(np.isfinite(x), x, np.nanmedian(x)), fps, bp)
    return base


def measure_track(
    track_id: int,
    frames: np.ndarray,
    ear: np.ndarray,
    landmarks: np.ndarray,
    events: list[BlinkEvent],
    fps: float,
    params: PhysiologyParams | None = None,
    assessable: np.ndarray | None = None,
    eye_blur_px: float | None = None,
) -> TrackPhysiology:
    """All blink measurements of one track (frames (M,), ear (M, 2), landmarks (M, 68, 2)).

    assessable: optional bool (M,) from `core.signals.eyes.eyes_assessable`; rows where it is
    False count as time without visible eyes (events should come from `detect_blinks` with the
    same mask). eye_blur_px: the eye region's edge blur measured on decoded frames
    (`core.signals.eye_quality`); None skips that gate, so callers with frames must pass it."""
    p = params or PhysiologyParams()
    frames = np.asarray(frames)
    ear = np.asarray(ear, np.float64)
    seen = np.isfinite(ear).all(axis=1) if ear.size else np.zeros(0, bool)
    visible = seen if assessable is None else seen & np.asarray(assessable, bool).reshape(-1)
    visible_s = float(visible.sum() / fps) if fps > 0 else 0.0
    not_assessable_s = float((seen & ~visible).sum() / fps) if fps > 0 else 0.0
    widths = np.linalg.norm(landmarks[:, 39] - landmarks[:, 36], axis=1) if len(landmarks) else np.zeros(0)
    widths2 = np.linalg.norm(landmarks[:, 45] - landmarks[:, 42], axis=1) if len(landmarks) else np.zeros(0)
    narrower = np.minimum(widths, widths2)
    if assessable is not None and visible.any():
        narrower = narrower[visible]  # the eye size where the eyes were measured
    eye_width = float(np.median(narrower)) if narrower.size else 0.0
    base = per_eye_baseline(frames, ear, fps, p.blinks, assessable) if frames.size else np.zeros((0, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        noise = closure_noise(1.0 - ear / base, visible & ~near_events(frames, events, 3)) if frames.size else None
    depth = check_depth(eye_width, eye_blur_px, noise, p)
    judged = depth.measurable
    blinks = [measure_blink(ev, frames, ear, base, fps, judged, p) for ev in events]

    n = len(blinks)
    minutes = visible_s / 60.0
    observed = ci = rate = None
    flag = None
    if minutes > 0:
        observed = n / minutes
        ci = poisson_rate_ci(n, minutes)
    if visible_s < p.min_rate_s:
        note = (
            f"{n} blink(s) in {visible_s:.1f} s of visible eyes: below {p.min_rate_s:.0f} s a rate is not "
            f"compared with the norms (95% interval {_fmt_ci(ci)})"
        )
    else:
        rate = observed
        assert ci is not None
        if ci[1] < p.rate_low_per_min:
            flag = "low"
        elif ci[0] > p.rate_high_per_min:
            flag = "high"
        note = (
            f"{rate:.1f}/min over {visible_s:.1f} s (95% interval {_fmt_ci(ci)}); norms: "
            f"{p.rate_low_per_min:g}-{p.rate_high_per_min:g}/min ({NORMS['rate_primary_gaze_95']['source']}, primary gaze "
            f"and conversation), reading ~{p.rate_reading_per_min:g}/min ({NORMS['rate_reading']['source']})"
        )

    # inter-blink intervals only between blinks with no gap in visibility between them
    run_of = np.full(frames.size, -1)
    for k, (a, b) in enumerate(_runs(frames, visible)):
        run_of[a:b] = k
    ibis: list[float] = []
    for prev, cur in zip(blinks, blinks[1:]):
        ra, rb = run_of[np.searchsorted(frames, prev.start_frame)], run_of[np.searchsorted(frames, cur.start_frame)]
        if ra == rb and ra >= 0:
            ibis.append((cur.start_frame - prev.start_frame) / fps)
    ibi_mean = float(np.mean(ibis)) if ibis else None
    ibi_cv = float(np.std(ibis) / np.mean(ibis)) if len(ibis) >= 3 and np.mean(ibis) > 0 else None

    # longest stretch of visible eyes without a blink (stretches at the clip edges are censored)
    in_blink = np.zeros(frames.size, bool)
    for bm in blinks:
        in_blink[np.searchsorted(frames, bm.start_frame) : np.searchsorted(frames, bm.end_frame) + 1] = True
    longest = 0
    for a, b in _runs(frames, visible & ~in_blink):
        longest = max(longest, b - a)

    judged_blinks = [b for b in blinks if b.judged]
    counts = {f: sum(f in b.flags for b in blinks) for f in BLINK_FLAGS}
    return TrackPhysiology(
        track_id=track_id,
        fps=fps,
        visible_s=round(visible_s, 3),
        eye_width_px=round(eye_width, 1),
        n_blinks=n,
        observed_per_min=None if observed is None else round(observed, 2),
        rate_ci95_per_min=None if ci is None else (round(ci[0], 2), round(ci[1], 2)),
        rate_per_min=None if rate is None else round(rate, 2),
        rate_flag=flag,
        rate_note=note,
        mean_duration_ms=round(float(np.mean([b.duration_ms for b in blinks])), 1) if blinks else None,
        ibi_mean_s=None if ibi_mean is None else round(ibi_mean, 3),
        ibi_cv=None if ibi_cv is None else round(ibi_cv, 3),
        longest_no_blink_s=round(longest / fps, 3) if fps else 0.0,
        mean_completeness=round(float(np.mean([b.completeness for b in judged_blinks])), 3) if judged_blinks else None,
        mean_asymmetry=round(float(np.mean([b.asymmetry for b in judged_blinks])), 3) if judged_blinks else None,
        judged_blinks=len(judged_blinks),
        flag_counts=counts,
        blinks=blinks,
        not_assessable_s=round(not_assessable_s, 3),
        depth=depth,
    )


def near_events(frames: np.ndarray, events: list[BlinkEvent], margin: int) -> np.ndarray:
    """bool (M,): rows within `margin` frames of a blink event (not open-eye rows)."""
    near = np.zeros(frames.size, bool)
    for ev in events:
        near |= (frames >= ev.start_frame - margin) & (frames <= ev.end_frame + margin)
    return near


def _fmt_ci(ci: tuple[float, float] | None) -> str:
    return "n/a" if ci is None else f"{ci[0]:.1f}-{ci[1]:.1f}/min"


def assess(tp: TrackPhysiology, p: PhysiologyParams | None = None) -> tuple[str, list[str]]:
    """The track's reading on the examiner's scale and the reasons (see `assess_rules`)."""
    value, reasons, _ = assess_rules(tp, p)
    return value, reasons


# the rules that can make a track inconsistent, as `assess_rules` names them
RULES = ("incomplete_pattern", "one_eyed_pattern", "rate_below_reading", "rate_above_conversation")


def assess_rules(tp: TrackPhysiology, p: PhysiologyParams | None = None) -> tuple[str, list[str], list[str]]:
    """The track's reading on the examiner's scale, the reasons, and the RULES that fired.

    inconsistent: the same generator-type anomaly (incomplete or one-eyed) in at least
        `pattern_fraction` of at least `pattern_min_blinks` judged blinks; or a rate whose 95%
        interval lies wholly above the highest norm, or wholly below the reading mean.
    consistent: at least `min_rate_s` of visible eyes, a rate whose interval overlaps the norms,
        at least `pattern_min_blinks` judged blinks and at most `normal_max_fraction` anomalous.
    inconclusive: everything else (short clips, few blinks, small eyes), with the reason.
    """
    p = p or PhysiologyParams()
    reasons: list[str] = []
    judged = [b for b in tp.blinks if b.judged]
    fired: list[str] = []
    if tp.not_assessable_s > 0:
        reasons.append(
            f"eyes not assessable in {tp.not_assessable_s:.1f} s of the track (head turned, eyes too small or "
            f"outside the frame, implausible landmarks): left out of every measure"
        )
    if tp.blinks and not judged:
        why = "; ".join(tp.depth.reasons) if tp.depth is not None else f"eyes {tp.eye_width_px:.0f} px wide"
        reasons.append(
            f"blink depth not measurable ({why}): dlib's lid points do not follow the lids down on such eyes, so "
            f"lid closure and asymmetry are shown as measurements and not judged"
        )
    if len(judged) >= p.pattern_min_blinks:
        for flag in PATTERN_FLAGS:
            k = sum(flag in b.flags for b in judged)
            if k / len(judged) >= p.pattern_fraction:
                fired.append(f"{flag}_pattern")
                reasons.append(_pattern_reason(flag, k, judged, p))
            elif k:
                reasons.append(f"{k} of {len(judged)} blinks {flag.replace('_', '-')} (below the {p.pattern_fraction:.0%} of a pattern)")
    elif judged:
        for flag in PATTERN_FLAGS:
            k = sum(flag in b.flags for b in judged)
            if k:
                reasons.append(
                    f"{k} of {len(judged)} blink(s) {flag.replace('_', '-')} (too few blinks for a pattern; "
                    f"{p.pattern_min_blinks} needed)"
                )
    if tp.rate_per_min is not None and tp.rate_ci95_per_min is not None:
        lo, hi = tp.rate_ci95_per_min
        if hi < p.rate_reading_per_min:
            fired.append("rate_below_reading")
            reasons.append(f"blink rate {tp.rate_note}: below even the reading rate")
        elif lo > p.rate_high_per_min:
            fired.append("rate_above_conversation")
            reasons.append(f"blink rate {tp.rate_note}: above the conversational 95% range")
        elif tp.rate_flag == "low":
            reasons.append(f"blink rate low, {tp.rate_note}; reading (e.g. a teleprompter) can explain it")
    else:
        reasons.append(tp.rate_note)
    if fired:
        return "inconsistent", reasons, fired
    anomalous = sum(any(f in b.flags for f in PATTERN_FLAGS) for b in judged)
    if (
        tp.rate_per_min is not None
        and tp.rate_flag is None
        and len(judged) >= p.pattern_min_blinks
        and anomalous / len(judged) <= p.normal_max_fraction
    ):
        return "consistent", [f"blink rate {tp.rate_note}; {anomalous} of {len(judged)} blinks anomalous"], fired
    if not tp.blinks:
        reasons.append(f"no blink in {tp.visible_s:.1f} s of visible eyes")
    return "inconclusive", reasons, fired


def _pattern_reason(flag: str, k: int, judged: list[BlinkMeasure], p: PhysiologyParams) -> str:
    if flag == "incomplete":
        depth = np.mean([b.completeness for b in judged])
        return (
            f"{k} of {len(judged)} blinks incomplete: the deeper eye's EAR drops on average {depth:.0%} below its open "
            f"level (< {p.incomplete_below:.0%})"
        )
    asym = np.mean([b.asymmetry for b in judged])
    return f"{k} of {len(judged)} blinks one-eyed: mean asymmetry {asym:.2f} (>= {p.one_eyed_above:g}; 0 = both eyes alike)"
