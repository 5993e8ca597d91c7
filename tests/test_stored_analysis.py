"""One way back from the store: CaseStore.stored_analysis, read by the GUI and by the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.cases import CaseStore, analyze_into_case
from core.pipeline import AnalysisOptions
from core.report import build_report
from desktop.review import build_review
from tests.factories import clip


def test_stored_run_comes_back_as_the_analysis_and_its_face_pass_is_checked(tmp_path: Path, make_video: Any, test_detector: list[str]) -> None:
    db = tmp_path / "c.sqlite"
    with CaseStore(db) as s:
        cid = s.create_case("N-1", examiner="E")
    res = analyze_into_case(db, cid, clip(make_video, "a.mp4"), AnalysisOptions(detectors=test_detector))
    rid = res["case"]["run_id"]
    with CaseStore(db) as s:
        a = s.stored_analysis(rid)
        assert a["schema"] == res["schema"] and a["detectors"]["test_windows"]["frame_predictions"] == res["detectors"]["test_windows"]["frame_predictions"]
        assert a["case"] == {"case_id": cid, "evidence_id": res["case"]["evidence_id"], "run_id": rid, "status": "done"}
        assert a["facepass"]["verified"] is True and a["facepass"]["sha256"] == s.get_run(rid)["facepass_sha256"]
        assert build_review(a).facepass is not None
        assert build_report(s, cid)["evidence"][0]["runs"][0]["facepass"]["verified"] is True

        Path(a["facepass"]["path"]).write_bytes(Path(a["facepass"]["path"]).read_bytes() + b"\0")  # the run's face pass changes
        changed = s.stored_analysis(rid)
        assert changed["facepass"]["verified"] is False
        assert build_review(changed).facepass is None  # the GUI shows no landmarks that are not this run's
        assert build_report(s, cid)["evidence"][0]["runs"][0]["facepass"]["verified"] is False  # nor does the PDF

        Path(a["facepass"]["path"]).unlink()
        assert s.stored_analysis(rid)["facepass"]["verified"] is False
