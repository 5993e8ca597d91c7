"""av_sync's window rules: measure each sliding window, then flag only what is evidence against
the clip's own sync.

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

The statistics (null model, p-values, Bonferroni, jackknife) are in `avsync_stats`; here each
rule is one function over `Judgement`, the clip's judgement in progress.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from core.signals.avsync_records import (
    ENVELOPE_HOP_S,
    FLAGGED,
    FOLLOWS,
    NO_FACE,
    NO_SPEECH,
    NOT_MEASURABLE,
    AVSyncParams,
    SyncEstimate,
    SyncWindow,
    offset_evidence_missing,
)
from core.signals.avsync_stats import (
    confidences,
    correlation_peak,
    null_rows,
    p_value,
    pearson_rows,
    rotations,
    span_test_count,
    z_crit_for,
)

Span = tuple[int, int, list[int]]  # first frame, end frame (exclusive), the windows in it


@dataclass
class ClipSeries:
    """What the window rules read of one clip (per video frame unless said)."""

    hp_mouth: np.ndarray  # (N,) detrended mouth aperture, NaN without a face
    x_glob: np.ndarray  # (N,) hp_mouth near speech, NaN elsewhere: what the clip's correlation used
    shifted: np.ndarray  # (L, N) detrended speech envelope at each frame time + lag
    speech: np.ndarray  # (N,) bool
    env_t: np.ndarray  # (E,) times of the fine envelope (s)
    hp_env: np.ndarray  # (E,) detrended envelope
    times_s: np.ndarray  # (N,)
    lags: np.ndarray  # (L,) frames
    min_n: int  # fewest frames a clip-level correlation needs


@dataclass
class Judgement:
    """One clip's window judgement in progress: its windows, its sync, its spans and flag lines."""

    est: SyncEstimate
    p: AVSyncParams
    s: ClipSeries
    judged: list[int]  # windows with speech and a face (indexes into est.windows)
    hop: int  # frames between window starts
    d: int | None = None  # the clip's established lag (whole frames), None without sync
    di: int | None = None  # its row in s.lags
    spans: list[Span] = field(default_factory=list)
    z_crit: float = 0.0  # flag line of rule 2 (Bonferroni over the span tests)
    alpha_span: float = 0.0  # significance of rule 1 over spans (Bonferroni)
    above: dict[int, float] = field(default_factory=dict)  # window -> z of its r at d above chance

    @property
    def fps(self) -> float:
        return self.est.fps

    @property
    def min_shift(self) -> int:
        """Fewest envelope samples a null rotation moves the audio (no true sync survives it)."""
        return int(self.p.min_null_shift_s / ENVELOPE_HOP_S)

    def null(self, x: np.ndarray, lags: np.ndarray, min_n: int, shifts: np.ndarray, frames: slice) -> np.ndarray:
        return null_rows(x, self.s.env_t, self.s.hp_env, self.s.times_s, lags, self.fps, min_n, shifts, frames)


def judge_windows(est: SyncEstimate, p: AVSyncParams, s: ClipSeries, progress: Callable[[float], None] | None = None) -> None:
    """Fill est.windows (and est.spans): every window measured, flags only by the rules above.
    `progress(fraction)` is told after each window is measured (the long part)."""
    judged, hop = _make_windows(est, p, s)
    if not judged:
        return
    j = Judgement(est, p, s, judged, hop)
    if est.p_value is not None and est.p_value <= p.alpha and est.offset_frames is not None:
        j.d = int(round(est.offset_frames))
        j.di = int(np.argmin(np.abs(s.lags - j.d)))
    j.spans = _spans(j)
    n_tests = span_test_count(j.spans, est.windows)
    j.z_crit = z_crit_for(n_tests, p.family_alpha)
    j.alpha_span = p.family_alpha / n_tests
    _measure_windows(j, progress)
    if j.di is None:
        for k in judged:
            w = est.windows[k]
            if not w.flagged and w.offset_frames is not None:
                w.reason = "not measurable (no clip-level sync to compare with)"
        return
    n_meas, flagged_spans = _span_rules(j)
    _take_span_flags(j, n_meas, flagged_spans)
    _rule_clip_offset(j)


def _make_windows(est: SyncEstimate, p: AVSyncParams, s: ClipSeries) -> tuple[list[int], int]:
    """The sliding windows; those with enough speech and face frames are to be judged."""
    n = s.times_s.size
    mouth = est.mouth if est.mouth is not None else s.hp_mouth
    win = max(int(round(p.window_s * est.fps)), 5)
    hop = max(int(round(p.hop_s * est.fps)), 1)
    starts = list(range(0, max(n - win, 0) + 1, hop)) if n >= win else [0]
    judged: list[int] = []
    for a in starts:
        e = min(a + win, n)
        sf = float(s.speech[a:e].mean())
        ff = float(np.isfinite(mouth[a:e]).mean())
        w = SyncWindow(a, e - 1, round(sf, 3), None, None, None, False, None)
        est.windows.append(w)
        if sf < p.min_speech_fraction:
            w.reason = w.state = NO_SPEECH
        elif ff < p.min_face_fraction:
            w.reason = w.state = NO_FACE
        else:
            judged.append(len(est.windows) - 1)
    return judged, hop


def _spans(j: Judgement) -> list[Span]:
    """Spans for rule 2: chains of 1, 2, 4, 8... touching judged windows (2, 4, 8, 16 s), longest
    first (a window's reason comes from the longest flagged span). A long stretch without sync is
    told from genuine speech far more surely than one window."""
    windows, judged, p = j.est.windows, j.judged, j.p
    # the next window of a chain starts where the previous ends (within one hop)
    by_start = {windows[k].start_frame: k for k in judged}
    follow = {k: next((by_start[f] for f in range(windows[k].end_frame + 1, windows[k].end_frame + 1 + j.hop) if f in by_start), None)
              for k in judged}
    before = {f: k for k, f in follow.items() if f is not None}

    def span(chain: list[int]) -> Span:
        return (windows[chain[0]].start_frame, windows[chain[-1]].end_frame + 1, list(chain))

    spans: list[Span] = []
    for k in judged:
        chain = [k]
        while len(chain) < p.max_span_windows:
            if len(chain) & (len(chain) - 1) == 0:  # a power of two
                spans.append(span(chain))
            nxt = follow[chain[-1]]
            if nxt is None:
                break
            chain.append(nxt)
        else:
            spans.append(span(chain))
            continue  # a long run: spans of up to max_span_windows, no change points
        # change points: from this window to the end of its run, and from the run's start to it
        # (the rest of the clip is then the other side of the change, a clean reference)
        if len(chain) & (len(chain) - 1) != 0:
            spans.append(span(chain))
        back = [k]
        while back[0] in before and len(back) < p.max_span_windows:
            back.insert(0, before[back[0]])
        if len(back) > 1 and len(back) & (len(back) - 1) != 0:
            spans.append(span(back))
    spans.sort(key=lambda t: -len(t[2]))
    return spans


def _measure_windows(j: Judgement, progress: Callable[[float], None] | None) -> None:
    """Each judged window's own sync against chance, and its correlation at the clip's lag."""
    p = j.p
    n_rot = p.window_null_shifts if p.flag_local_offsets else p.null_shifts  # window p: reported, flagged only by rule 1
    shifts = rotations(j.s.env_t.size, j.min_shift, n_rot)
    for done, k in enumerate(j.judged, 1):
        w = j.est.windows[k]
        w.state, w.reason, w.z_crit = NOT_MEASURABLE, NOT_MEASURABLE, round(j.z_crit, 3)
        measured = _measure_window(j, k, w, shifts)
        if measured is not None:
            _rule_window_offset(j, w, *measured)
        if progress is not None:
            progress(done / len(j.judged))


def _measure_window(j: Judgement, k: int, w: SyncWindow, shifts: np.ndarray) -> tuple[float, float | None] | None:
    """The window's offset, confidence and p-value; (offset, p) or None when it cannot be measured."""
    s, lags = j.s, j.s.lags
    sl = slice(w.start_frame, w.end_frame + 1)
    wmin = max(int(0.5 * (sl.stop - sl.start)), 5)
    rw = pearson_rows(s.hp_mouth[sl], s.shifted[:, sl], wmin)
    wo, wc, _ = correlation_peak(lags, rw)
    if wo is None or wc is None:
        w.reason = "not measurable (too few frames with a face)"
        return None
    null = j.null(s.hp_mouth, lags, wmin, shifts, sl)
    wp = p_value(wc, confidences(lags, null))
    w.offset_frames, w.confidence, w.p_value = round(wo, 2), round(wc, 4), wp
    if j.di is not None:
        nd = null[:, j.di][np.isfinite(null[:, j.di])]
        if np.isfinite(rw[j.di]) and nd.size >= 5 and nd.std() > 0:
            j.above[k] = float((rw[j.di] - nd.mean()) / nd.std())
    return wo, wp


def _rule_window_offset(j: Judgement, w: SyncWindow, wo: float, wp: float | None) -> None:
    """Rule 1, per window (off by default): a confident local sync at a lag of its own."""
    p = j.p
    ref = j.d if j.d is not None else 0  # local offsets are measured from the clip's lag, or from 0
    if p.flag_local_offsets and wp is not None and wp <= p.family_alpha / len(j.judged) and abs(round(wo) - ref) > p.flag_offset_frames:
        w.flagged, w.state, w.measurable, w.score, w.flag = True, FLAGGED, True, 1.0, "window_offset"
        w.reason = (f"audio offset {1000 * wo / j.fps:+.0f} ms in this window ({wo:+.1f} frames; clip {1000 * ref / j.fps:+.0f} ms; "
                    f"p={wp:.3f})")


def _span_rules(j: Judgement) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
    """Rules 1 (over spans) and 2 on every span: the frames inside a measurable span, and the spans
    whose lips do not follow the speech (with their reasons)."""
    n_meas = np.zeros(j.s.times_s.size, bool)  # frames inside a measurable span
    span_shifts = rotations(j.s.env_t.size, j.min_shift, 100)
    flagged_spans: list[tuple[int, int, str]] = []
    local_spans: list[tuple[int, int]] = []
    for a, b, ks in j.spans:
        stats = _span_statistics(j, a, b, span_shifts)
        if stats is None:
            continue
        if len(ks) >= j.p.local_offset_min_windows and not any(fa <= a and b <= fb for fa, fb in local_spans) \
                and _rule_local_offset_span(j, a, b):
            n_meas[a:b] = True
            local_spans.append((a, b))  # its sub-spans need no test of their own
            continue
        measurable, reason = _rule_lips_do_not_follow(j, a, b, ks, *stats)
        if measurable:
            n_meas[a:b] = True
        if reason is not None:
            flagged_spans.append((a, b, reason))
    return n_meas, flagged_spans


def _span_statistics(j: Judgement, a: int, b: int, shifts: np.ndarray) -> tuple[float, float, float, float] | None:
    """At the clip's lag: the span's r, the clip's r outside the span, and the chance mean and spread
    of the span's r (rotated audio). None when any is not computable."""
    s, di = j.s, j.di
    assert di is not None
    sl = slice(a, b)
    smin = max(int(0.5 * (b - a)), 5)
    r_d = float(pearson_rows(s.hp_mouth[sl], s.shifted[di:di + 1, sl], smin)[0])
    x_out = s.x_glob.copy()
    x_out[sl] = np.nan  # the clip outside this span: what in-sync speech of this face gives
    r_ref = float(pearson_rows(x_out, s.shifted[di:di + 1], s.min_n)[0])
    nd = j.null(s.hp_mouth, s.lags[di:di + 1], smin, shifts, sl)[:, 0]
    nd = nd[np.isfinite(nd)]
    if not np.isfinite(r_d) or not np.isfinite(r_ref) or nd.size < 5 or nd.std() <= 0:
        return None
    return r_d, r_ref, float(nd.mean()), float(nd.std())


def _rule_local_offset_span(j: Judgement, a: int, b: int) -> bool:
    """Rule 1 over a long span: its own sync at another lag, beyond chance. Flags the span's windows
    that themselves prefer that lag to the clip's; True when the span showed a local offset."""
    s, di = j.s, j.di
    assert j.d is not None and di is not None
    local = _local_offset(j, slice(a, b), max(int(0.5 * (b - a)), 5))
    if local is None:
        return False
    reason, lag = local
    li = int(np.argmin(np.abs(s.lags - round(lag))))
    for k in j.judged:
        w = j.est.windows[k]
        if a <= w.start_frame and w.end_frame < b and not w.flagged:
            rw = pearson_rows(s.hp_mouth[w.start_frame:w.end_frame + 1], s.shifted[:, w.start_frame:w.end_frame + 1],
                              max(int(0.5 * (w.end_frame + 1 - w.start_frame)), 5))
            if np.isfinite(rw[li]) and (not np.isfinite(rw[di]) or rw[li] > rw[di]):
                w.flagged, w.state, w.measurable, w.score, w.reason, w.flag = True, FLAGGED, True, 1.0, reason, "local_offset"
    return True


def _local_offset(j: Judgement, sl: slice, smin: int) -> tuple[str, float] | None:
    """A span whose own sync sits more than flag_offset_frames from the clip's lag d, beyond chance.

    The span's confidence (peak - median correlation) must be reached by at most alpha_span of the
    audio rotations (empirical p; Bonferroni over the clip's spans). Returns the flag's reason.
    """
    p, s, d, alpha_span = j.p, j.s, j.d, j.alpha_span
    assert d is not None
    rs = pearson_rows(s.hp_mouth[sl], s.shifted[:, sl], smin)
    lo, conf, _ = correlation_peak(s.lags, rs)
    if lo is None or conf is None or abs(round(lo) - d) <= p.flag_offset_frames:
        return None
    if s.env_t.size <= 2 * j.min_shift or 1.0 / (p.local_null_shifts + 1) > alpha_span:
        return None
    rot = rotations(s.env_t.size, j.min_shift, p.local_null_shifts)
    if 1.0 / (rot.size + 1) > alpha_span:
        return None  # too short a clip for this many tests: cannot be significant
    # rotations in chunks, in a shuffled order: stop as soon as too many reach the confidence
    rot = np.random.default_rng(0).permutation(rot)
    allowed = int(np.floor(alpha_span * (rot.size + 1))) - 1  # rotations that may reach it
    hits, done = 0, 0
    for c in range(0, rot.size, 200):
        nc = confidences(s.lags, j.null(s.hp_mouth, s.lags, smin, rot[c:c + 200], sl))
        hits += int(np.sum(nc[np.isfinite(nc)] >= conf))
        done += int(np.isfinite(nc).sum())
        if hits > allowed:
            return None
    pv = (1 + hits) / (1 + done)
    if pv > alpha_span:
        return None
    fps = j.fps
    return (f"audio offset {1000 * lo / fps:+.0f} ms here ({lo:+.1f} frames, found over frames {sl.start}-{sl.stop - 1}; "
            f"the clip elsewhere {1000 * d / fps:+.0f} ms; p={pv:.4f} <= {alpha_span:.4f})"), lo


def _rule_lips_do_not_follow(j: Judgement, a: int, b: int, ks: list[int], r_d: float, r_ref: float, mu0: float,
                             sd0: float) -> tuple[bool, str | None]:
    """Rule 2 on one span: (measurable, the flag's reason or None). A one-window span also gives
    that window its readings and desync score."""
    p = j.p
    sd_h0 = float(np.sqrt(sd0 ** 2 + p.between_window_sd ** 2))
    dev = (r_d - r_ref) / sd_h0
    measurable = (r_ref - mu0) / sd_h0 >= j.z_crit + p.power_z
    j.est.spans.append({"start_frame": a, "end_frame": b - 1, "windows": len(ks), "r": r_d, "r_expected": r_ref, "r_chance": mu0,
                        "chance_sd": sd0, "deviation_z": dev, "measurable": bool(measurable)})
    if len(ks) == 1:
        w = j.est.windows[ks[0]]
        w.r_at_clip_lag, w.r_expected, w.r_chance, w.deviation_z = round(r_d, 4), round(r_ref, 4), round(mu0, 4), round(dev, 3)
        w.score = None if not measurable else round(float(np.clip(-dev / j.z_crit, 0.0, 0.99)), 4)
    if not (measurable and dev <= -j.z_crit and (r_d - mu0) / sd0 < p.follows_z):
        return bool(measurable), None
    return True, (f"speech present but the lips do not follow it ({(b - a) / j.fps:.0f} s from frame {a}: r={r_d:+.2f} at the "
                  f"clip's lag {j.d:+d} frames, clip elsewhere {r_ref:+.2f}, chance {mu0:+.2f}; z={dev:.1f} <= -{j.z_crit:.1f})")


def _take_span_flags(j: Judgement, n_meas: np.ndarray, flagged_spans: list[tuple[int, int, str]]) -> None:
    """A window is measurable inside measurable spans, and takes the flag of the spans covering
    most of its frames (at least half), with the reason of the one covering most."""
    for k in j.judged:
        w = j.est.windows[k]
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


def _rule_clip_offset(j: Judgement) -> None:
    """Rule 3: the clip's own offset, where the window follows it; otherwise the window's state. An
    offset the detector reads as a visible error (>= inconsistent_offset_ms) flags windows only with
    the same robust evidence as that reading: else red segments would accuse a side lobe."""
    est, p, d = j.est, j.p, j.d
    assert d is not None
    side_lobe = abs(est.offset_ms or 0.0) >= p.inconsistent_offset_ms and bool(offset_evidence_missing(est, p))
    for k in j.judged:
        w = est.windows[k]
        if w.flagged or w.offset_frames is None:
            continue
        follows = j.above.get(k, -np.inf) >= p.follows_z
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
