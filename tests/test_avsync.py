"""av_sync: weight-free audio-visual offset (core.signals.avsync + core.detectors.av_sync)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from core.detectors.av_sync import AVSyncDetector
from core.detectors.base import AnalysisContext
from core.evidence import probe
from core.face.facepass import FacePass, FaceTrack
from core.face.tracker import run_face_pass
from core.signals.avsync import FLAGGED, FOLLOWS, NO_FACE, NO_SPEECH, NOT_MEASURABLE, AVSyncParams, estimate_offset, speech_envelope
from core.video.reader import VideoReader
from tests.conftest import gradient_frames
from tests.factories import remux_shifted  # noqa: F401 - also imported from here

SR = 16000
FPS = 25.0





# ----------------------------------------------------------------------------------------------
# synthetic signals


def _speech_like(n_frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A syllable-rate mouth series and speech audio whose 1-4 kHz energy follows it."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / FPS
    # random syllables: smooth bumps at irregular times, with pauses
    mouth = np.zeros(n_frames)
    k = 0.3
    while k < t[-1] - 0.3:
        mouth += rng.uniform(0.3, 1.0) * np.exp(-0.5 * ((t - k) / 0.06) ** 2)
        k += rng.uniform(0.15, 0.45) + (0.6 if rng.random() < 0.15 else 0.0)
    ts = np.arange(int(t[-1] * SR) + SR // 5) / SR
    env = np.interp(ts, t, mouth)
    noise = rng.standard_normal(ts.size)
    spec = np.fft.rfft(noise)
    f = np.fft.rfftfreq(ts.size, 1 / SR)
    spec[(f < 1000) | (f > 4000)] = 0
    band = np.fft.irfft(spec, ts.size)
    audio = (0.3 * env * band / np.abs(band).max() + 1e-4 * noise).astype(np.float32)
    return 0.1 + 0.3 * mouth, audio


@pytest.mark.parametrize("shift_ms", [0, 80, 200, -200, 400])
def test_synthetic_offset_recovered(shift_ms: int) -> None:
    mouth, audio = _speech_like(200, seed=abs(shift_ms))
    times = np.arange(200) / FPS
    est = estimate_offset(times, mouth, audio, SR, audio_start_s=shift_ms / 1000, fps=FPS)
    assert est.offset_frames is not None
    assert abs(est.offset_frames - shift_ms / 1000 * FPS) <= 0.5
    assert est.p_value is not None and est.p_value <= 0.05
    assert est.confidence is not None and est.confidence > 0.3


def test_unrelated_audio_is_not_significant() -> None:
    mouth, _ = _speech_like(250, seed=1)
    _, audio = _speech_like(250, seed=2)
    est = estimate_offset(np.arange(250) / FPS, mouth, audio, SR, fps=FPS)
    assert est.p_value is not None and est.p_value > 0.05


def test_silence_is_silent_and_windows_unjudged() -> None:
    mouth, _ = _speech_like(100)
    est = estimate_offset(np.arange(100) / FPS, mouth, np.zeros(5 * SR, np.float32), SR, fps=FPS)
    assert est.silent and est.offset_frames is None and est.p_value is None


def test_speech_envelope_reads_dbfs() -> None:
    tone = 0.5 * np.sin(2 * np.pi * 2000 * np.arange(SR) / SR).astype(np.float32)
    _, level = speech_envelope(tone, SR)
    assert abs(np.median(level) - 20 * np.log10(0.5)) < 1.0
    _, low = speech_envelope(0.5 * np.sin(2 * np.pi * 200 * np.arange(SR) / SR).astype(np.float32), SR)
    assert np.median(low) < -40  # outside the speech band


# ----------------------------------------------------------------------------------------------
# detector on synthetic media


def _fake_facepass(n: int, mouth: np.ndarray, width: int = 96, height: int = 64) -> FacePass:
    frames = np.arange(n, dtype=np.int32)
    track = FaceTrack(
        0, frames, np.tile(np.array([10, 10, 60, 60], np.float32), (n, 1)), np.zeros((n, 68, 2), np.float32),
        np.full((n, 2), 0.3, np.float32), mouth.astype(np.float32), np.ones(n, bool),
    )
    return FacePass(n, FPS, frames / FPS, width, height, [track])


def _ctx(path: Path, fp: FacePass) -> AnalysisContext:
    return AnalysisContext(path=path, evidence=probe(path), sha256="0" * 64, facepass=fp, blinks={})


def test_detector_no_audio_unavailable(make_video) -> None:  # type: ignore[no-untyped-def]
    path = make_video("silent_video.mp4", gradient_frames(60))
    mouth, _ = _speech_like(60)
    res = AVSyncDetector()(_ctx(path, _fake_facepass(60, mouth)))
    assert res.status == "unavailable"
    assert "no audio" in res.note


def test_detector_silence_inconclusive(make_video) -> None:  # type: ignore[no-untyped-def]
    path = make_video("quiet.mp4", gradient_frames(75), audio=np.zeros(3 * SR, np.float32))
    mouth, _ = _speech_like(75)
    res = AVSyncDetector()(_ctx(path, _fake_facepass(75, mouth)))
    assert res.status == "ok"
    assert res.assessment == "inconclusive" and res.prediction == "inconclusive"
    assert "no speech" in res.note
    assert not res.segments


def test_detector_synced_and_offset(make_video) -> None:  # type: ignore[no-untyped-def]
    n = 200
    mouth, audio = _speech_like(n, seed=5)
    fp = _fake_facepass(n, mouth)
    path = make_video("sync.mp4", gradient_frames(n), audio=audio)
    res = AVSyncDetector()(_ctx(path, fp))
    assert res.status == "ok", res.note
    assert abs(res.metrics["offset_frames"]) <= 1.0
    assert res.assessment == "consistent"
    assert res.per_track["0"]["assessment"] == "consistent"
    d = res.to_dict()
    assert d["frame_predictions"] and {"index", "start_frame", "end_frame", "score"} <= set(d["frame_predictions"][0])
    assert len(d["curves"]["windows"]["score"]) == len(d["frame_predictions"])

    late = make_video("late.mp4", gradient_frames(n), audio=audio, audio_offset_s=0.4)
    res = AVSyncDetector()(_ctx(late, fp))
    assert res.status == "ok"
    assert abs(res.metrics["offset_ms"] - 400) <= 40
    assert res.assessment == "inconsistent"
    assert res.segments and all("offset" in s.reason for s in res.segments)


# ----------------------------------------------------------------------------------------------
# real clips with their audio shifted by remuxing

# (clip, shifts in ms): 10 cases, 4 speakers (3 GRID speakers, the video-retalking woman, Federer)
SHIFT_CASES = {
    "real/grid_bbaf2n.mpg": (80, 200, -200),
    "real/grid_lbax4n.mpg": (400, -200),
    "real/grid_id2_swwp2s.mpg": (80,),
    "real/retalking_face4_woman_blue.mp4": (200, -200),
    "real/avlips_real_1.mp4": (80, 400),
}


@pytest.fixture(scope="module")
def facepasses(media: Path) -> dict[str, FacePass]:
    out = {}
    for rel in SHIFT_CASES:
        with VideoReader(media / rel) as reader:
            out[rel] = run_face_pass(reader)
    return out


def _run_on(path: Path, fp: FacePass) -> dict:  # type: ignore[type-arg]
    """The detector on a remuxed copy, reusing the original's face track (same pictures)."""
    with VideoReader(path) as reader:
        times = reader.index.times_s
    assert times.size == fp.frame_count
    fp2 = dataclasses.replace(fp, times_s=times)
    return AVSyncDetector()(_ctx(path, fp2)).to_dict()


@pytest.mark.media
@pytest.mark.slow
def test_real_clips_unshifted_and_shifted(media: Path, facepasses: dict[str, FacePass], tmp_path: Path) -> None:
    rows = []
    for rel, shifts in SHIFT_CASES.items():
        fp = facepasses[rel]
        base = _run_on(media / rel, fp)
        assert base["status"] == "ok", base["note"]
        assert abs(base["metrics"]["offset_frames"]) <= 1.0, (rel, base["metrics"])
        for sh in shifts:
            copy = remux_shifted(media / rel, tmp_path / f"{Path(rel).stem}_{sh:+d}.mkv", sh / 1000)
            res = _run_on(copy, fp)
            expected = sh / 1000 * fp.fps
            got = res["metrics"]["offset_frames"]
            rows.append((rel, sh, got, expected, got is not None and abs(got - expected) <= 1.0))
    assert len(rows) == 10
    hits = sum(r[-1] for r in rows)
    assert hits >= 9, rows
    assert len({r[0] for r in rows if r[-1]}) >= 3


@pytest.mark.media
def test_analyze_pipeline_on_shifted_copy(media: Path, tmp_path: Path) -> None:
    """Through `analyze` (face pass included): a +200 ms remux reads as an audio offset.

    avlips_real_1 (7 s, ~3.5 s of speech with a face): long enough for robust offset evidence. The
    3-s GRID clips (~1.4 s of speech) measure the offset but read inconclusive (too little speech).
    """
    from core.pipeline import AnalysisOptions, analyze

    copy = remux_shifted(media / "real/avlips_real_1.mp4", tmp_path / "late.mkv", 0.2)
    res = analyze(copy, AnalysisOptions(detectors=["av_sync"]))["detectors"]["av_sync"]
    assert res["status"] == "ok", res["note"]
    assert abs(res["metrics"]["offset_ms"] - 200) <= 40
    assert res["assessment"] == "inconsistent" and res["prediction"] == "out of sync", res["note"]
    assert res["metrics"]["margin_z"] >= AVSyncParams().margin_z_min
    assert res["segments"] and "offset" in res["segments"][0]["reason"]

    short = remux_shifted(media / "real/grid_id2_swwp2s.mpg", tmp_path / "late_grid.mkv", 0.2)
    res = analyze(short, AnalysisOptions(detectors=["av_sync"]))["detectors"]["av_sync"]
    assert abs(res["metrics"]["offset_ms"] - 200) <= 40  # measured ...
    assert res["assessment"] == "inconclusive" and "not robust" in res["note"]  # ... but not enough to accuse


@pytest.mark.media
def test_avlips_real_0_is_not_inconsistent(media: Path) -> None:
    """A genuine interview whose correlation peaks on a side lobe (+5 frames, p at the 40-rotation floor).

    It once read "out of sync, inconsistent" (+205 ms); a genuine clip must never read that way.
    """
    path = media / "real/avlips_real_0.mp4"
    with VideoReader(path) as reader:
        fp = run_face_pass(reader)
    res = AVSyncDetector()(_ctx(path, fp))
    assert res.status == "ok", res.note
    assert res.assessment != "inconsistent", (res.note, res.metrics)
    assert not any("the clip's offset" in s.reason for s in res.segments)  # no red segment for that offset either


# ----------------------------------------------------------------------------------------------
# window flags: only evidence against the clip's own sync is flagged


def test_in_sync_clip_has_no_flagged_windows() -> None:
    n = 400
    mouth, audio = _speech_like(n, seed=3)
    est = estimate_offset(np.arange(n) / FPS, mouth, audio, SR, fps=FPS)
    assert est.p_value is not None and est.p_value <= 0.05
    judged = [w for w in est.windows if w.offset_frames is not None]
    assert len(judged) >= 20
    assert not any(w.flagged for w in est.windows)
    assert all(w.state in (FOLLOWS, NOT_MEASURABLE, NO_SPEECH) for w in est.windows)
    assert sum(w.measurable for w in judged) >= len(judged) // 2  # a strong signal: the test had power


def test_second_half_shifted_audio_is_flagged_there_only() -> None:
    """The audio of the second half slips 400 ms late (an edit): flags there, none before."""
    n = 600
    mouth, audio = _speech_like(n, seed=3)
    mid, d = int(n / 2 / FPS * SR), int(0.4 * SR)
    slipped = np.concatenate([audio[:mid], np.zeros(d, np.float32), audio[mid:-d]])
    est = estimate_offset(np.arange(n) / FPS, mouth, slipped, SR, fps=FPS)
    assert est.p_value is not None and est.p_value <= 0.05
    flagged = [w for w in est.windows if w.flagged]
    assert flagged
    for w in flagged:  # the local offset, as measured over the tested span
        m = re.match(r"audio offset ([+-]\d+) ms here", w.reason)
        assert m and 360 <= int(m.group(1)) <= 440, w.reason
    assert not any(w.flagged for w in est.windows if w.end_frame < n // 2)
    second = [w for w in est.windows if w.start_frame >= n // 2 and w.offset_frames is not None]
    assert second and all(w.flagged for w in second)


def test_weak_signal_window_is_not_measurable_not_flagged() -> None:
    """Lips in sync but a mouth measurement drowned in noise: grey (not measurable), never red."""
    n = 400
    mouth, audio = _speech_like(n, seed=3)
    noisy = mouth + np.random.default_rng(0).normal(0.0, 0.25, n)
    est = estimate_offset(np.arange(n) / FPS, noisy, audio, SR, fps=FPS)
    judged = [w for w in est.windows if w.offset_frames is not None]
    assert judged and not any(w.flagged for w in est.windows)
    weak = [w for w in judged if w.state == NOT_MEASURABLE]
    assert weak and all(not w.measurable and w.score is None for w in weak)
    # without any sync in the clip there is nothing to compare with: every window not measurable
    _, other = _speech_like(n, seed=9)
    est = estimate_offset(np.arange(n) / FPS, mouth, other, SR, fps=FPS)
    assert not any(w.flagged for w in est.windows)
    if est.p_value is not None and est.p_value > 0.05:
        assert all(w.state in (NOT_MEASURABLE, NO_SPEECH) for w in est.windows)


def test_detector_exposes_measurability_curve(make_video) -> None:  # type: ignore[no-untyped-def]
    n = 200
    mouth, audio = _speech_like(n, seed=5)
    path = make_video("sync_meas.mp4", gradient_frames(n), audio=audio)
    res = AVSyncDetector()(_ctx(path, _fake_facepass(n, mouth))).to_dict()
    fpw = res["frame_predictions"]
    meas = res["curves"]["measurable"]
    assert len(meas["values"]) == len(fpw) == len(res["curves"]["windows"]["state"])
    assert set(meas["values"]) <= {0.0, 1.0} and "score" not in meas  # a measure, not a probability
    assert all(w["state"] in (FOLLOWS, NOT_MEASURABLE, NO_SPEECH, NO_FACE, FLAGGED) for w in fpw)
    assert all((w["state"] == FLAGGED) == w["flagged"] for w in fpw)
    assert res["metrics"]["windows_flagged"] == 0


# ----------------------------------------------------------------------------------------------
# the clip-level `inconsistent` reading needs robust evidence


def _periodic_speech(n_frames: int, seed: int, period_frames: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Syllables at a steady rhythm (one per period_frames), audio in sync (true lag 0), a noisy mouth.

    Its correlation by lag has side lobes every period_frames; over a short clip one can win.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / FPS
    mouth = np.zeros(n_frames)
    k = 0.3
    while k < t[-1] - 0.3:
        mouth += rng.uniform(0.6, 1.0) * np.exp(-0.5 * ((t - k) / 0.05) ** 2)
        k += period_frames / FPS * rng.uniform(0.9, 1.1)
    ts = np.arange(int(t[-1] * SR) + SR // 5) / SR
    noise = rng.standard_normal(ts.size)
    spec = np.fft.rfft(noise)
    f = np.fft.rfftfreq(ts.size, 1 / SR)
    spec[(f < 1000) | (f > 4000)] = 0
    band = np.fft.irfft(spec, ts.size)
    audio = (0.3 * np.interp(ts, t, mouth) * band / np.abs(band).max() + 1e-4 * noise).astype(np.float32)
    return 0.1 + 0.3 * mouth + 0.09 * rng.standard_normal(n_frames), audio


def test_side_lobe_peak_is_not_read_inconsistent() -> None:
    """True lag 0, but a side lobe of the rhythm wins the correlation, beating every rotation (like avlips_real_0)."""
    p = AVSyncParams()
    mouth, audio = _periodic_speech(100, seed=37)
    est = estimate_offset(np.arange(100) / FPS, mouth, audio, SR, fps=FPS, params=p)
    # the situation: a peak far from 0 that the old rule (p <= 0.05, >= 160 ms) read as inconsistent
    assert est.offset_ms is not None and abs(est.offset_ms) >= p.inconsistent_offset_ms
    assert est.p_value is not None and est.p_value <= p.alpha
    assert est.in_sync_margin is not None and est.margin_z is not None
    assert est.margin_z < p.margin_z_min  # the win over the in-sync lags is not stable over time
    prediction, assessment, note = AVSyncDetector._reading(est, p)
    assert assessment == "inconclusive" and prediction == "out of sync"
    assert "not robust" in note and "standard errors" in note
    assert not any(w.flagged for w in est.windows)  # nor a window flagged for that offset


def test_real_offset_on_rhythmic_speech_is_read_inconsistent() -> None:
    """The same kind of speech, longer, with the audio really 400 ms late: robust evidence, inconsistent."""
    p = AVSyncParams()
    mouth, audio = _speech_like(400, seed=11)
    est = estimate_offset(np.arange(400) / FPS, mouth, audio, SR, audio_start_s=0.4, fps=FPS, params=p)
    assert est.offset_frames is not None and abs(est.offset_frames - 10) <= 1
    assert est.speech_face_s >= p.min_speech_face_s
    assert est.p_value_fine is not None and est.p_value_fine <= p.inconsistent_alpha
    assert est.margin_z is not None and est.margin_z >= p.margin_z_min
    assert AVSyncDetector._reading(est, p)[1] == "inconsistent"


def test_too_little_speech_is_not_read_inconsistent() -> None:
    """A clear 400 ms offset but under min_speech_face_s of speech with a face: measured, not accused."""
    p = AVSyncParams()
    mouth, audio = _speech_like(400, seed=11)
    est = estimate_offset(np.arange(400) / FPS, mouth, audio, SR, audio_start_s=0.4, fps=FPS,
                          params=dataclasses.replace(p, min_speech_face_s=60.0))
    assert est.offset_frames is not None and abs(est.offset_frames - 10) <= 1
    _, assessment, note = AVSyncDetector._reading(est, dataclasses.replace(p, min_speech_face_s=60.0))
    assert assessment == "inconclusive" and "of speech with a tracked mouth" in note


def test_blocks_give_the_same_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounded memory (issue 13): the envelope and the correlations are computed in blocks; tiny
    blocks give the very same estimate as whole arrays, to the bit."""
    import core.signals.avsync as avsync_mod
    import core.signals.avsync_stats as stats_mod

    n = 400
    mouth, audio = _speech_like(n, seed=3)
    half = audio.size // 2
    audio = np.concatenate([audio[:half], np.zeros(int(0.4 * SR), np.float32), audio[half:]])[: audio.size]  # windows flagged too
    whole = estimate_offset(np.arange(n) / FPS, mouth, audio, SR, fps=FPS)
    monkeypatch.setattr(avsync_mod, "_ENVELOPE_BLOCK", 7)
    monkeypatch.setattr(stats_mod, "_CELLS_AT_ONCE", 50)
    blocks = estimate_offset(np.arange(n) / FPS, mouth, audio, SR, fps=FPS)
    assert blocks.offset_frames == whole.offset_frames and blocks.p_value == whole.p_value
    assert np.array_equal(blocks.correlation, whole.correlation, equal_nan=True)
    assert np.array_equal(blocks.envelope_db, whole.envelope_db, equal_nan=True)
    assert [dataclasses.asdict(w) for w in blocks.windows] == [dataclasses.asdict(w) for w in whole.windows]
    assert blocks.spans == whole.spans
