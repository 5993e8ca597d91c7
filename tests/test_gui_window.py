"""The main window offscreen (pytest-qt): case, evidence, frame-exact player, analysis in the
worker, cancel, jumping to flagged segments, bookmarks and exhibits."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt

from core.video import VideoReader

pytest.importorskip("pytestqt")

CLIP = "real/grid_bbaf2n.mpg"  # 3 s, 360x288, one face, audio


@pytest.fixture
def window(qtbot, tmp_path):
    from desktop.main_window import MainWindow

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(db_path=tmp_path / "cases.sqlite", settings=settings)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    yield w
    w.close()


def _open_evidence(window, qtbot, path):
    cid = window.create_case("T-1", "test case", "examiner A")
    assert cid is not None
    window.import_evidence(path)
    qtbot.waitUntil(lambda: window.evidence is not None and window.player.index is not None, timeout=30000)
    assert window.evidence["sha256"] == __import__("core.evidence", fromlist=["sha256_file"]).sha256_file(path)
    return cid


def _wait_frame(window, qtbot, i):
    qtbot.waitUntil(lambda: window.player.frame_index == i and window.player.frame_item.index == i, timeout=10000)


def test_step_frames_pixels_equal_core(window, qtbot, media):
    path = media / CLIP
    _open_evidence(window, qtbot, path)
    ref = VideoReader(path)
    _wait_frame(window, qtbot, 0)
    window.activateWindow()
    for i in (1, 2, 3):
        qtbot.keyClick(window.player.view, Qt.Key.Key_Right)
        _wait_frame(window, qtbot, i)
    qtbot.keyClick(window.player.view, Qt.Key.Key_Left)
    _wait_frame(window, qtbot, 2)
    for i in (2, 40, 13, 74):
        window.player.seek(i)
        _wait_frame(window, qtbot, i)
        assert np.array_equal(window.player.frame_item._array, ref.frame(i))
        assert window.timeline.cursor_frame == i
        assert window.status_label.text().startswith(f"frame {i} / 74")
    assert window.player.goto_text("0:01.000")
    _wait_frame(window, qtbot, 25)  # 25 fps: 1 s is frame 25
    # the painted item shows the pixels of core frame(i) (no smoothing, no reformatting)
    img = window.player.frame_item.image
    px = img.pixelColor(100, 50)
    assert (px.red(), px.green(), px.blue()) == tuple(int(v) for v in ref.frame(25)[50, 100])
    qtbot.keyClick(window.player.view, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    _wait_frame(window, qtbot, 50)  # +1 s
    window.player.step_seconds(-1.0)
    _wait_frame(window, qtbot, 25)
    # zoom shows the real pixels: scaled view, no smoothing
    window.player.view.zoom(4.0)
    assert window.player.view.transform().m11() > 1.0 and not window.player.view.fit
    from PySide6.QtGui import QPainter

    assert not window.player.view.renderHints() & QPainter.RenderHint.SmoothPixmapTransform
    window.player.fit()
    # playback advances by the clock and stops on pause
    window.player.play()
    qtbot.waitUntil(lambda: window.player.frame_index >= 35, timeout=10000)
    window.player.pause()
    qtbot.wait(100)
    stopped = window.player.frame_index
    qtbot.wait(300)
    assert window.player.frame_index == stopped


def test_analysis_lands_in_timeline_and_store(window, qtbot, media, tmp_path):
    from core import detectors
    from core.pipeline import AnalysisOptions

    cid = _open_evidence(window, qtbot, media / CLIP)
    qtbot.waitUntil(lambda: window.models_ready, timeout=60000)
    names = [n for n in ("blink_physiology", "landmark_motion") if n in detectors.available()]
    partial: list[str] = []
    # the GUI thread keeps running its event loop while the worker analyses
    from PySide6.QtCore import QElapsedTimer, QTimer

    ticks: list[int] = []
    clock = QElapsedTimer()
    clock.start()
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(clock.elapsed()))
    timer.start(20)
    task = window.run_analysis(AnalysisOptions(detectors=names))
    task.partial.connect(lambda name, d: partial.append(name))
    progress: list[float] = []
    task.progress.connect(lambda stage, f, msg, overall, eta: progress.append(overall))
    qtbot.waitUntil(lambda: window.review is not None and bool(window.review.tracks), timeout=120000)
    timer.stop()
    assert partial == names  # each detector arrived as it finished
    gaps = np.diff(ticks)
    assert len(ticks) >= 5 and gaps.max() < 1500, f"GUI thread stalled {gaps.max()} ms"
    print(f"GUI event loop during analysis: {len(ticks)} ticks, longest gap {gaps.max()} ms")
    assert progress and max(progress) > 0.9
    run = window.store.runs_for(case_id=cid)[-1]
    assert run["status"] == "done"
    assert sorted(r["detector"] for r in window.store.results_for(run["id"])) == sorted(names)
    assert window.results.tree.topLevelItemCount() == len(names)
    # the timeline shows the face track's EAR and the detectors' curves
    assert window.timeline.track_id == window.review.tracks[0].track_id
    assert len(window.timeline._dynamic) > 3
    # the case tree lists the run under the evidence
    window.case_tree.populate(window.store)
    assert window.case_tree.select("run", run["id"])
    # bookmarks are stored in the case
    window.player.seek(30)
    _wait_frame(window, qtbot, 30)
    bid = window.add_bookmark("mouth opens before the sound")
    rows = window.store.list_bookmarks(evidence_id=window.evidence["id"])
    assert [(b["id"], b["frame"]) for b in rows] == [(bid, 30)]
    assert window.bookmarks.tree.topLevelItemCount() == 1
    # re-hash on demand, then the audit log shows it with the chain intact
    window.verify_evidence()
    assert window.wait_idle(60) and window.last_error is None
    from desktop.dialogs import AnalysisDialog, AuditDialog

    audit = AuditDialog(window.store, cid)
    qtbot.addWidget(audit)
    actions = [audit.tree.topLevelItem(k).text(3) for k in range(audit.tree.topLevelItemCount())]
    assert audit.ok and "evidence re-hashed before examiner check" in actions and "bookmark added" in actions
    dlg = AnalysisDialog()
    qtbot.addWidget(dlg)
    for n, c in dlg.checks.items():
        c.setChecked(n == names[0])
    dlg.fixed.setChecked(True)
    opts = dlg.options()
    assert opts.detectors == names[:1] and opts.blinks.mode == "fixed"
    # the report (core.report) from the menu action's code path, in a worker
    report = tmp_path / "report.pdf"
    window.export_report(report)
    assert window.wait_idle(120)
    assert window.last_error is None, window.last_error
    assert report.is_file() and report.with_suffix(".json").is_file()
    assert "mouth opens before the sound" in report.with_suffix(".json").read_text()


def test_cancel_stops_the_analysis(window, qtbot, media):
    cid = _open_evidence(window, qtbot, media / "real/hdtf_katiehill_sadtalker_ref.mp4")
    from core.pipeline import AnalysisOptions

    task = window.run_analysis(AnalysisOptions(detectors=[], reuse_facepass=False))
    cancelled: list[bool] = []
    task.cancelled.connect(lambda: cancelled.append(True))
    qtbot.waitUntil(lambda: task.stages.done.get("faces", 0) > 0, timeout=60000)
    window.cancel_task()
    qtbot.waitUntil(lambda: not task.running, timeout=30000)
    assert cancelled == [True]
    assert window.store.runs_for(case_id=cid)[-1]["status"] == "cancelled"
    assert not window.cancel_button.isVisible()


def test_jump_to_flagged_segments_moves_player_and_cursor(window, qtbot, media, tmp_path):
    path = media / CLIP
    window.open_clip(path)
    qtbot.waitUntil(lambda: window.player.index is not None, timeout=30000)
    analysis = {
        "evidence": {"video": {"frame_count": 75}},
        "detectors": {
            "synthetic": {
                "status": "ok", "prediction": None, "confidence": 0.7, "note": "", "assessment": "inconsistent",
                "segments": [{"start_frame": 20, "end_frame": 29, "score": 0.9, "reason": "test", "track_id": None},
                             {"start_frame": 50, "end_frame": 55, "score": 0.6, "reason": "test 2", "track_id": None}],
                "curves": {"windows": {"start_frame": [20, 50], "end_frame": [29, 55], "score": [0.9, 0.6]}},
            }
        },
    }
    window.load_analysis(analysis)
    qtbot.waitUntil(lambda: window.review is not None, timeout=10000)
    _wait_frame(window, qtbot, 0)
    qtbot.keyClick(window.player.view, Qt.Key.Key_PageDown)
    _wait_frame(window, qtbot, 20)
    assert window.timeline.cursor_frame == 20
    window.player.next_segment()
    _wait_frame(window, qtbot, 50)
    window.player.previous_segment()
    _wait_frame(window, qtbot, 20)
    # a click on the timeline inside a segment jumps to its start
    window.timeline.click_frame(53)
    _wait_frame(window, qtbot, 50)
    assert window.timeline.cursor_frame == 50
    assert "synthetic:windows 0.60" in window.status_label.text()
    # dragging the cursor scrubs the player
    window.timeline.cursors[0].setValue(33.2)
    _wait_frame(window, qtbot, 33)
    # exhibits: PNG with overlays and the segment as MP4 (no case: not audited)
    window.export_png(tmp_path / "f.png")
    window.wait_idle(30)
    assert window.last_export["frame"] == 33 and (tmp_path / "f.png").is_file()
    window.export_segment(tmp_path / "s.mp4", 50, 55, "synthetic")
    window.wait_idle(60)
    assert VideoReader(tmp_path / "s.mp4").frame_count == 6


def test_layout_and_recent_cases_are_remembered(qtbot, tmp_path):
    from desktop.main_window import MainWindow

    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    w = MainWindow(db_path=tmp_path / "c.sqlite", settings=settings)
    qtbot.addWidget(w)
    cid = w.create_case("R-7", "recent")
    w.results_dock.hide()
    w.close()
    w2 = MainWindow(settings=settings)  # no db given: the last case file is reopened
    qtbot.addWidget(w2)
    assert str(w2.store.path) == str(tmp_path / "c.sqlite")
    w2.show_weights()
    assert w2.wait_idle(30)
    assert w2.weights_dialog.tree.topLevelItemCount() >= 1
    assert [(r["case_id"], r["label"]) for r in w2.recent_cases()] == [(cid, "R-7 recent")]
    assert w2.results_dock.isHidden()
    w2.close()


def test_bad_evidence_gives_an_error_dialog_not_a_crash(window, qtbot, tmp_path):
    window.create_case("E-1")
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    task = window.import_evidence(bad)
    qtbot.waitUntil(lambda: not task.running, timeout=20000)
    assert window.last_error and "notes.mp4" in window.last_error
    assert window.evidence is None and window.isVisible()


def test_closing_during_an_analysis_cancels_it_promptly(qtbot, tmp_path, media):
    import time

    from core.cases import CaseStore
    from core.pipeline import AnalysisOptions
    from desktop.main_window import MainWindow

    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    w = MainWindow(db_path=tmp_path / "c.sqlite", settings=settings)
    qtbot.addWidget(w)
    w.show()
    _open_evidence(w, qtbot, media / "real/hdtf_katiehill_sadtalker_ref.mp4")
    task = w.run_analysis(AnalysisOptions(detectors=[], reuse_facepass=False))
    qtbot.waitUntil(lambda: task.stages.done.get("faces", 0) > 0, timeout=60000)
    t0 = time.monotonic()
    w.close()
    assert time.monotonic() - t0 < 8.0
    with CaseStore(tmp_path / "c.sqlite") as store:
        assert [r["status"] for r in store.runs_for()] == ["cancelled"]


def test_status_bar_says_why_eyes_are_not_assessable(window, qtbot, media, tmp_path):
    from core.face.facepass import FacePass
    from tests.factories import FPS, SIZE, blink_ear, track

    path = media / CLIP
    window.open_clip(path)
    qtbot.waitUntil(lambda: window.player.index is not None, timeout=30000)
    yaw = np.zeros(75)
    yaw[30:50] = 35.0  # a synthetic face pass on the clip's frame axis, head turned in frames ~30-49
    store = tmp_path / "fp.npz"
    FacePass(75, FPS, np.arange(75) / FPS, SIZE, SIZE, [track(yaw, blink_ear(75, [10]))]).save(store)
    window.load_analysis({"evidence": {"video": {"frame_count": 75}}, "facepass": {"path": str(store)}, "detectors": {}})
    qtbot.waitUntil(lambda: window.review is not None and bool(window.review.tracks), timeout=10000)
    window.player.seek(40)
    _wait_frame(window, qtbot, 40)
    assert "eyes not assessable (head turned)" in window.status_label.text()
    assert "eyes assessable in 73% of face frames" in window.timeline.info.text()
    window.player.seek(5)
    _wait_frame(window, qtbot, 5)
    assert "EAR L" in window.status_label.text() and "not assessable" not in window.status_label.text()
