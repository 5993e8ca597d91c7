"""LipFD's per-window scores on the timeline: bars over each window's frames, with the
preprocessing mode in the tooltip. The result comes from the detector's own result builder
(stub window scores, no model: this checks the display, not a reading)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")


def _lipfd_result(mode: str) -> dict:  # type: ignore[type-arg]
    from core.detectors.lipfd import LipFDDetector, LipFDParams, LoadedLipFD
    from core.detectors.lipfd_input import ClipWindows, LipFDPreprocessing, Window, upstream_preprocessing
    from core.models.lipfd import LipFDConfig

    prep = upstream_preprocessing() if mode == "upstream" else LipFDPreprocessing()
    loaded = LoadedLipFD(None, LipFDConfig(), prep, "lipfd_ckpt", "ab" * 32, {}, [], "cpu", f"mode {mode}")
    blank = np.zeros((2, 2, 3), np.uint8)
    clip = ClipWindows([Window(k, 10 * k, 10 * k + 4, blank, False) for k in range(3)], frame_count=40)
    res = LipFDDetector._result(loaded, prep, clip, [0.2, 0.7, 0.4], LipFDParams(), 0.1)
    res.detector, res.status = "lipfd", "ok"
    return res.to_dict()


@pytest.mark.parametrize("mode", ["upstream", "verity"])
def test_lipfd_windows_on_the_timeline_with_mode(qtbot, mode: str) -> None:  # type: ignore[no-untyped-def]
    import pyqtgraph as pg

    from desktop.review import build_review
    from desktop.timeline import Timeline

    review = build_review({"evidence": {"video": {"frame_count": 40}}, "detectors": {"lipfd": _lipfd_result(mode)}})
    (s,) = [s for s in review.series if s.detector == "lipfd"]
    assert s.kind == "bars" and s.is_score and s.x0.tolist() == [0, 10, 20] and s.x1.tolist() == [4, 14, 24]
    assert s.value_at(12) == pytest.approx(0.7) and s.value_at(7) is None
    tl = Timeline()
    qtbot.addWidget(tl)
    tl.set_clip(None, np.arange(40) / 25.0)
    tl.set_review(review)
    (bars,) = [i for i in tl.p_det.items if isinstance(i, pg.BarGraphItem) and i.name() == "lipfd: windows"]
    assert sorted(float(x) for x in bars.opts["x0"]) == [-0.5, 9.5, 19.5]
    assert f"{mode} preprocessing" in bars.toolTip() and "lipfd_ckpt" in bars.toolTip()
