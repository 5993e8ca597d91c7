"""The typed detector contract: parameters, method text, curves, segment kinds, cancellation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from core import detectors
from core.detectors.base import Detector, DetectorResult
from core.detectors.curves import Curve
from core.errors import CancelledError
from core.params import ParameterError, from_dict
from core.pipeline import AnalysisOptions, analyze
from core.report.methods import method_for
from desktop.review import parse_curve
from tests.conftest import gradient_frames


@dataclass
class _P:
    window_s: float = 2.0
    mode: str = "a"


def test_unknown_parameter_is_refused_with_the_known_names():
    assert from_dict(_P, {"window_s": 3.0}) == _P(3.0, "a")
    with pytest.raises(ParameterError, match=r"detector x: unknown parameter 'windows_s' \(known: window_s, mode\)"):
        from_dict(_P, {"windows_s": 3.0}, "detector x")
    assert from_dict(_P, {"windows_s": 3.0, "mode": "b"}, unknown="ignore") == _P(2.0, "b")  # a record of another version
    with pytest.raises(ParameterError, match="mapping"):
        from_dict(_P, [1, 2])  # type: ignore[arg-type]


def test_every_detector_declares_typed_params_and_reviewed_method_text():
    for name, cls in detectors.available().items():
        defaults = cls.default_params()
        assert cls.parse_params(defaults) == cls.parse_params({}), name  # the defaults read back as themselves
        with pytest.raises(ParameterError, match=f"detector {name}: unknown parameter 'no_such_knob'"):
            cls.parse_params({"no_such_knob": 1})
        assert cls.method is not None and method_for(name) is cls.method, name
        assert "No reviewed description" not in " ".join(method_for(name).limits)


def test_internal_params_cannot_be_set_by_the_examiner():
    cls = detectors.available()["blink_physiology"]
    assert "blinks" not in cls.default_params() and "eyes" not in cls.default_params()
    with pytest.raises(ParameterError, match="unknown parameter 'blinks'"):
        cls.parse_params({"blinks": {}})


def test_a_typo_in_detector_parameters_fails_before_any_work(make_video: Any):
    video = make_video("v.mp4", gradient_frames(10))
    calls: list[str] = []
    with pytest.raises(ParameterError, match="detector av_sync: unknown parameter 'windw_s'"):
        analyze(video, AnalysisOptions(detectors=["av_sync"], detector_params={"av_sync": {"windw_s": 1.0}}),
                progress=lambda stage, f, m="": calls.append(stage))
    assert calls == []  # not even hashed
    with pytest.raises(ParameterError, match="unknown detector 'av_snyc'"):
        analyze(video, AnalysisOptions(detectors=["av_sync"], detector_params={"av_snyc": {}}))


def test_curve_checks_its_shape_and_round_trips():
    with pytest.raises(ValueError, match="kind"):
        Curve("probability", [0.1])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="start_frame has 1 entries for 2 values"):
        Curve("score", [0.1, 0.2], start_frame=[0], end_frame=[9])
    with pytest.raises(ValueError, match="frames or over windows"):
        Curve("score", [0.1], frames=[3], start_frame=[0], end_frame=[9])
    c = Curve("score", [0.2, None], start_frame=[0, 10], end_frame=[9, 19], track_id=[0, 1], unmeasurable=[False, True],
              columns={"state": ["lips follow", "not measurable"]})
    d = c.to_dict()
    assert d["score"] == d["values"] == [0.2, None] and d["axis"] == "windows" and d["unit"] == ""
    assert Curve.from_dict(d) == c


def test_timeline_reads_typed_curves_without_guessing():
    n = 40
    # a measurement whose values happen to lie in 0..1 is not a score, whatever its key
    (m,) = parse_curve("d", "closure", Curve("measurement", [0.1, 0.9], frames=[5, 3], unit="fraction").to_dict(), n)
    assert m.kind == "line" and m.x0.tolist() == [3, 5] and m.y.tolist() == [0.9, 0.1] and not m.is_score
    (s,) = parse_curve("d", "w", Curve("score", [0.3, 0.8], start_frame=[0, 20], end_frame=[19, 39], unmeasurable=[True, False]).to_dict(), n)
    assert s.kind == "bars" and s.is_score and s.value_at(5) is None and s.value_at(25) == pytest.approx(0.8)
    (every,) = parse_curve("d", "db", Curve("measurement", np.zeros(n), unit="dB").to_dict(), n)
    assert every.x0.size == n and not every.is_score
    assert parse_curve("d", "db", Curve("measurement", np.zeros(n - 1), unit="dB").to_dict(), n) == []  # another video's length


class _Cancels(Detector):
    name = "cancels"
    needs_faces = False

    def run(self, ctx: Any) -> DetectorResult:
        raise CancelledError()


class _Breaks(Detector):
    name = "breaks"
    needs_faces = False

    def run(self, ctx: Any) -> DetectorResult:
        raise RuntimeError("boom")


def test_cancel_passes_through_a_detector_other_errors_become_failed():
    from tests.factories import make_context, make_facepass

    ctx = make_context(make_facepass([], frame_count=10))
    with pytest.raises(CancelledError):
        _Cancels()(ctx)
    r = _Breaks()(ctx)
    assert r.status == "failed" and r.note == "RuntimeError: boom" and r.parameters == {}
