"""One GUI state: tasks that end on screen are fenced (the latest wins), and the progress bar
moves inside a detector. Plus the Qt-free state itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtCore import QSettings

from core import detectors as registry
from core.detectors.base import Detector, DetectorResult
from desktop.review import build_review
from desktop.state import GuiState
from tests.conftest import gradient_frames

pytest.importorskip("pytestqt")


@pytest.fixture
def window(qtbot, tmp_path):
    from desktop.main_window import MainWindow

    w = MainWindow(db_path=tmp_path / "cases.sqlite", settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


def _analysis(tag: str, start: int) -> dict[str, Any]:
    return {
        "tag": tag, "evidence": {"video": {"frame_count": 100}},
        "detectors": {f"det_{tag}": {"status": "ok", "segments": [{"start_frame": start, "end_frame": start + 5, "score": 0.9, "reason": tag}]}},
    }


def test_state_tells_observers_only_of_changes_and_fences_old_tickets():
    s = GuiState()
    seen: list[Any] = []
    s.observe("frame", seen.append)
    s.observe("track_id", seen.append)
    assert s.set("frame", 5) and not s.set("frame", 5) and s.set("track_id", 2)
    assert seen == [5, 2] and s.frame == 5 and s.track_id == 2
    asked: list[int] = []
    s.on_frame_request(asked.append)
    s.request_frame(40)
    assert asked == [40] and s.frame == 5  # a request is not the frame on screen
    a = s.fence.take("view")
    b = s.fence.take("view")
    assert not s.fence.current("view", a) and s.fence.current("view", b)
    with pytest.raises(KeyError):
        s.observe("zoom", print)


def test_slow_load_of_run_a_never_overwrites_run_b(window, qtbot):
    entered, gate = threading.Event(), threading.Event()

    def loader(analysis: dict[str, Any]) -> Any:
        if analysis["tag"] == "A":
            entered.set()
            assert gate.wait(20)  # A's face pass is slow: it finishes only after B is shown
        return build_review(analysis)

    window.review_loader = loader
    a, b = _analysis("A", 10), _analysis("B", 60)
    window.load_analysis(a)
    assert entered.wait(20)  # A is past any cancel check: only the fence can keep it off the screen
    window.load_analysis(b)
    qtbot.waitUntil(lambda: window.review is not None and window.review.analysis is b, timeout=20000)
    gate.set()
    assert window.wait_idle(20)
    qtbot.wait(50)  # any late delivery of A would have arrived by now
    assert window.review.analysis is b and window.analysis is b
    assert window.player.review is window.review and window.timeline.review is window.review
    assert [s.reason for s in window.review.segments] == ["B"]
    assert window.results.tree.topLevelItemCount() == 1 and "det_B" in window.results.tree.topLevelItem(0).text(0)


class _Stepping(Detector):
    """Test detector: four steps of work, each reported."""

    name = "test_stepping"
    needs_faces = False

    def run(self, ctx: Any) -> DetectorResult:
        for k in range(4):
            time.sleep(0.05)
            ctx.progress(self.name, (k + 1) / 4, f"step {k + 1}/4")
        return DetectorResult(prediction="inconclusive")


@pytest.fixture
def stepping() -> Iterator[str]:
    registry.register(_Stepping)
    yield _Stepping.name
    registry._REGISTRY.pop(_Stepping.name, None)


def test_progress_bar_moves_inside_one_detector(window, qtbot, make_video, stepping):
    from core.pipeline import AnalysisOptions

    window.open_clip(make_video("g.mp4", gradient_frames(20)))
    qtbot.waitUntil(lambda: window.player.index is not None, timeout=30000)
    bar: list[tuple[str, int]] = []
    task = window.run_analysis(AnalysisOptions(detectors=[stepping]))
    task.progress.connect(lambda stage, f, msg, overall, eta: bar.append((stage, window.progress.value())))
    assert window.wait_idle(60) and window.last_error is None
    inside = [v for stage, v in bar if stage == stepping]
    assert len(inside) == 4 and all(b > a for a, b in zip(inside, inside[1:])), bar  # it rose with each step
    before = [v for stage, v in bar if stage != stepping]
    assert max(before[:-1]) <= inside[0] and inside[-1] <= window.progress.maximum()
