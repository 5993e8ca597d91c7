"""Sub-ranged progress: the pipeline hands each stage and each detector its share of the bar."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from core import detectors as registry
from core.detectors.base import Detector, DetectorResult
from core.pipeline import AnalysisOptions, analyze
from core.progress import shares, sub_progress
from tests.conftest import gradient_frames


def test_sub_progress_maps_and_clamps():
    seen: list[tuple[str, float, str]] = []
    child = sub_progress(lambda s, f, m="": seen.append((s, f, m)), 0.2, 0.6)
    child("x", 0.5, "half")
    child("x", 2.0)
    grandchild = sub_progress(child, 0.5, 1.0)
    grandchild("y", 0.0)
    assert seen == [("x", pytest.approx(0.4), "half"), ("x", pytest.approx(0.6), ""), ("y", pytest.approx(0.4), "")]
    assert shares({"a": 1.0, "b": 3.0}) == {"a": (0.0, 0.25), "b": (0.25, 1.0)}


class _Counting(Detector):
    name = "test_counting"
    needs_faces = False

    def run(self, ctx: Any) -> DetectorResult:
        for k in range(3):
            ctx.progress(self.name, (k + 1) / 3, f"step {k + 1}")
        return DetectorResult()


@pytest.fixture
def counting() -> Iterator[str]:
    registry.register(_Counting)
    yield _Counting.name
    registry._REGISTRY.pop(_Counting.name, None)


def test_analysis_progress_is_overall_and_moves_inside_a_detector(make_video: Any, counting: str):
    seen: list[tuple[str, float]] = []
    analyze(make_video("g.mp4", gradient_frames(12)), AnalysisOptions(detectors=["landmark_motion", counting]),
            progress=lambda s, f, m="": seen.append((s, f)))
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)  # one bar, never back
    stages = list(dict.fromkeys(s for s, _ in seen))
    assert stages[:2] == ["hash", "faces"] and "detectors" in stages
    mine = [f for s, f in seen if s == counting]
    assert len(mine) == 3 and mine[0] < mine[1] < mine[2] == pytest.approx(1.0)
    assert mine[0] > 0.85  # the last of two detectors: inside the detectors' share (0.70..1.0), its second half
