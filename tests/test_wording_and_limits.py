"""Issue 13 item 11: what `case show` and the summary line say, limits on examiner input, SIGTERM
recorded as a cancellation, and a moved evidence file relinked with an audit row.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from core.cases import CaseStore
from core.cli import build_parser
from core.cli import main as cli
from tests.conftest import gradient_frames

ROOT = Path(__file__).resolve().parents[1]


def case_with_item(tmp_path: Path, make_video: Any, n: int = 30) -> tuple[Path, int, int, Path]:
    db = tmp_path / "c.sqlite"
    video = make_video("a.mp4", gradient_frames(n, 64, 48))
    with CaseStore(db) as s:
        cid = s.create_case("W-1", examiner="E")
        ev = s.import_evidence(cid, video)
    return db, cid, ev["id"], video


def test_case_show_prints_the_assessment(tmp_path: Path, make_video: Any, capsys: pytest.CaptureFixture[str]) -> None:
    db, cid, eid, _ = case_with_item(tmp_path, make_video)
    with CaseStore(db) as s:
        run = s.start_run(eid, {}, ["blink_physiology", "av_sync"], s.get_evidence(eid)["sha256"])
        # a measurement with no label of its own whose reading is inconsistent, and a label that says more than the reading
        s.add_result(run, "blink_physiology", {"status": "ok", "prediction": None, "assessment": "inconsistent"})
        s.add_result(run, "av_sync", {"status": "ok", "prediction": "out of sync", "assessment": "inconclusive"})
        s.finish_run(run, "done")
    assert cli(["--db", str(db), "case", "show", str(cid)]) == 0
    out = capsys.readouterr().out
    assert "blink_physiology: assessment inconsistent" in out
    assert "av_sync: assessment inconclusive (prediction out of sync)" in out


def test_summary_line_prints_the_reading() -> None:
    from core.commands.analyze import summary_line

    result = {
        "evidence": {"video": {"frame_count": 75, "fps": 25.0, "variable_frame_rate": False}},
        "faces": [],
        "detectors": {
            "av_sync": {"status": "ok", "prediction": "out of sync", "assessment": "inconclusive", "note": ""},
            "lipfd": {"status": "unavailable", "prediction": None, "assessment": None, "note": "no verified weights: lipfd_ckpt missing"},
        },
    }
    line = summary_line(Path("x.mp4"), result)
    assert "av_sync: inconclusive" in line and "out of sync" not in line
    assert "lipfd: unavailable (no verified weights)" in line


def test_bookmark_must_be_a_frame_of_the_item(tmp_path: Path, make_video: Any, capsys: pytest.CaptureFixture[str]) -> None:
    db, _, eid, _ = case_with_item(tmp_path, make_video, n=30)
    assert cli(["--db", str(db), "case", "bookmark", str(eid), "999999", "past the end"]) == 2
    assert "frame 999999 is not a frame of evidence" in capsys.readouterr().err
    assert cli(["--db", str(db), "case", "bookmark", str(eid), "30", "one past the end"]) == 2
    capsys.readouterr()
    assert cli(["--db", str(db), "case", "bookmark", str(eid), "29", "last frame"]) == 0
    with CaseStore(db) as s:
        assert [b["frame"] for b in s.list_bookmarks(evidence_id=eid)] == [29]


@pytest.mark.parametrize("value", ["-1", "0", "1", "1.5", "nan", "inf", "x"])
def test_blink_threshold_outside_an_ear_is_refused(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["analyze", "v.mp4", "--blink-threshold", value])
    assert stop.value.code == 2
    assert "--blink-threshold" in capsys.readouterr().err


def test_blink_threshold_in_range_is_taken() -> None:
    assert build_parser().parse_args(["analyze", "v.mp4", "--blink-threshold", "0.2"]).blink_threshold == 0.2


def test_random_bytes_are_not_called_code(tmp_path: Path) -> None:
    from core.weights import WeightsError, load_state_dict

    junk = tmp_path / "junk.pth"
    junk.write_bytes(random.Random(5).randbytes(4096))
    with pytest.raises(WeightsError) as err:
        load_state_dict(junk)
    assert "arbitrary code" not in str(err.value) and "junk.pth" in str(err.value)


TERMINATED_CHILD = textwrap.dedent(
    """
    import sys, time
    from core import detectors
    from core.cli import main
    from core.detectors.base import Detector, DetectorResult

    @detectors.register
    class Slow(Detector):
        name = "t_slow"
        needs_faces = False
        def run(self, ctx):
            print("t_slow running", flush=True)
            time.sleep(120)
            return DetectorResult()

    sys.exit(main(["--db", sys.argv[1], "analyze", sys.argv[2], "--case", "1", "--detectors", "t_slow", "--work-dir", sys.argv[3]]))
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX")
def test_sigterm_is_recorded_as_a_cancellation(tmp_path: Path, make_video: Any) -> None:
    db, cid, eid, video = case_with_item(tmp_path, make_video)
    script = tmp_path / "child.py"
    script.write_text(TERMINATED_CHILD)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(script), str(db), str(video), str(tmp_path / "w")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "t_slow running", proc.poll()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, (proc.returncode, err)
    assert "SIGTERM" in err and "Traceback" not in err
    with CaseStore(db) as s:
        (run,) = s.runs_for(case_id=cid)
        assert run["status"] == "cancelled" and "SIGTERM" in run["error"]
        assert s.audit_log(cid)[-1]["action"] == "analysis cancelled"
        assert not s.interrupted_on_open


def test_moved_evidence_is_relinked_with_an_audit_row(tmp_path: Path, make_video: Any, capsys: pytest.CaptureFixture[str]) -> None:
    db, cid, eid, video = case_with_item(tmp_path, make_video)
    moved = tmp_path / "archive" / "a-renamed.mp4"
    moved.parent.mkdir()
    video.rename(moved)
    assert cli(["--db", str(db), "case", "relink", str(eid), str(moved)]) == 0
    assert "matches intake" in capsys.readouterr().out
    with CaseStore(db) as s:
        ev = s.get_evidence(eid)
        assert ev["path"] == str(moved.resolve()) and ev["name"] == moved.name and len(s.evidence_for(cid)) == 1
        row = s.audit_log(cid)[-1]
        assert row["action"] == "evidence relinked" and row["object_id"] == eid
        assert row["details"]["old_path"] == str(video.resolve()) and row["details"]["new_path"] == str(moved.resolve())
        assert s.verify_evidence(eid, "check")  # the custody re-hash finds it at its new place
        assert s.verify_audit(cid).ok
    # a different file is not relinked, and the refusal is audited
    other = make_video("b.mp4", gradient_frames(12, 64, 48))
    assert cli(["--db", str(db), "case", "relink", str(eid), str(other)]) == 2
    assert "differs from the intake" in capsys.readouterr().err
    with CaseStore(db) as s:
        assert s.get_evidence(eid)["path"] == str(moved.resolve())
        assert s.audit_log(cid)[-1]["action"] == "relink refused: evidence hash mismatch"
