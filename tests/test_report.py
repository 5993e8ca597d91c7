"""Reports: JSON against its schema, PDF rendered by pdftoppm, export refuses changed evidence."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from core.cases import CaseStore, analyze_into_case
from core.cases.audit import GENESIS, row_hash
from core.cli import main as cli
from core.errors import EvidenceError
from core.pipeline import AnalysisOptions
from core.report import export_report, load_schema, validate_report
from tests.factories import FAKE_WEIGHTS, clip, sha

SEED_FIELDS = ("prediction", "confidence", "processing_time", "note", "frame_count", "frames_analyzed",
               "frame_predictions", "metrics", "visualization_path", "status")


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not installed (Debian: apt-get install poppler-utils)")
    return path


def render_pages(pdf: Path, out: Path) -> list[Path]:
    """PDF -> one PNG per page with poppler's pdftoppm; fails when the PDF cannot be rendered."""
    out.mkdir(exist_ok=True)
    subprocess.run([need("pdftoppm"), "-r", "40", "-png", str(pdf), str(out / "page")], check=True, capture_output=True, timeout=120)
    return sorted(out.glob("page-*.png"))


def pdf_pages_text(pdf: Path) -> list[str]:
    text = subprocess.run([need("pdftotext"), "-layout", str(pdf), "-"], check=True, capture_output=True, text=True, timeout=60).stdout
    return [p for p in text.split("\f") if p.strip()]


@pytest.fixture
def analysed_case(tmp_path: Path, make_video: Any, test_detector: list[str]) -> tuple[Path, int, list[Path]]:  # noqa: F811
    db = tmp_path / "c.sqlite"
    clips = [clip(make_video, "first.mp4"), clip(make_video, "second.mp4", n=30, shift=40)]
    with CaseStore(db) as s:
        cid = s.create_case("2026-RPT-7", "Two synthetic clips", "Ana Examiner", request_id="REQ-9")
    for c in clips:
        analyze_into_case(db, cid, c, AnalysisOptions(detectors=test_detector))
    with CaseStore(db) as s:
        s.add_bookmark(s.evidence_for(cid)[0]["id"], 25, "bright frames start here")
    return db, cid, clips


def test_two_items_reported_json_valid_pdf_renders(tmp_path: Path, analysed_case: tuple[Path, int, list[Path]]) -> None:
    db, cid, clips = analysed_case
    hashes = [sha(c) for c in clips]
    out_json, out_pdf = tmp_path / "out" / "report.json", tmp_path / "out" / "report.pdf"
    assert cli(["--db", str(db), "report", str(cid), "--json", str(out_json), "--pdf", str(out_pdf)]) == 0
    report = json.loads(out_json.read_text())
    jsonschema.validate(report, load_schema())
    assert report["case"]["number"] == "2026-RPT-7" and report["case"]["examiner"] == "Ana Examiner"
    assert [e["sha256_intake"] for e in report["evidence"]] == [e["sha256_export"] for e in report["evidence"]] == hashes
    for e in report["evidence"]:
        (run,) = e["runs"]
        assert run["software"]["version"] and run["parameters"]["facepass"] and run["status"] == "done"
        assert run["weights_sha256"] == {"test_windows": {"test_head": FAKE_WEIGHTS}}
        res = run["results"]["test_windows"]
        assert all(k in res for k in SEED_FIELDS)
        assert [(s["start_frame"], s["end_frame"]) for s in run["segments"]] == [(20, 29)]
        assert max(p["score"] for p in res["frame_predictions"]) > 0.5
    assert [b["note"] for b in report["evidence"][0]["bookmarks"]] == ["bright frames start here"]
    # each item's conclusion is its latest run's fused finding (the test detector only reads inconclusive)
    assert [c["value"] for c in report["conclusions"]] == [(e["runs"][-1]["finding"] or {"value": "inconclusive"})["value"] for e in report["evidence"]]
    assert {c["value"] for c in report["conclusions"]} == {"inconclusive"}
    # the custody log in the report can be re-verified from the report alone
    rows = report["audit"]["rows"]
    assert report["audit"]["verified"] and rows[-1]["hash"] == report["audit"]["head_hash"]
    prev = GENESIS
    for row in rows:
        assert row["prev_hash"] == prev and row_hash(row) == row["hash"]
        prev = row["hash"]
    assert [r["action"] for r in rows][-3:] == ["evidence re-hashed before report export"] * 2 + ["report exported"]
    with CaseStore(db) as s:
        written = s.audit_log(cid)[-1]
        assert written["action"] == "report written" and written["details"]["pdf_sha256"] == sha(out_pdf)
    # the PDF renders; every page has the case number and "page X of Y"
    pages = render_pages(out_pdf, tmp_path / "png")
    texts = pdf_pages_text(out_pdf)
    assert len(pages) == len(texts) >= 4
    for k, text in enumerate(texts, 1):
        assert "Case 2026-RPT-7" in text and f"page {k} of {len(texts)}" in text
    whole = "\n".join(texts)
    for section in ("1. Case and request", "2. Evidence items", "3. Tools, parameters", "4. Methods", "5. Findings",
                    "6. Interpretation", "7. Limitations", "8. Conclusion", "9. Chain of custody"):
        assert section in whole
    assert hashes[0] in whole.replace(" ", "") and "Key frames of flagged segments" in whole
    assert sha(out_json) in whole.replace(" ", "")  # the PDF names the JSON written with it
    for word in ("proves", "definitely", "certainly", "100%"):
        assert word not in whole.lower()
    assert [sha(c) for c in clips] == hashes


def test_invalid_report_is_not_written(tmp_path: Path, analysed_case: tuple[Path, int, list[Path]]) -> None:
    from core.errors import VerityError

    db, cid, _ = analysed_case
    with CaseStore(db) as s:
        run = s.runs_for(case_id=cid)[0]
        bad = s.results_for(run["id"])[0]["result"] | {"weights_sha256": {"head": "not a hash"}}
        s.add_result(run["id"], "test_windows", bad)
        with pytest.raises(VerityError, match="does not follow its schema.*weights_sha256"):
            export_report(s, cid, json_path=tmp_path / "r.json", pdf_path=tmp_path / "r.pdf")
        assert s.audit_log(cid)[-1]["action"] == "report export failed"
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "r.pdf").exists()


def test_conclusion_without_finding_is_inconclusive(tmp_path: Path, make_video: Any) -> None:
    from core.report import build_report

    with CaseStore(tmp_path / "c.sqlite") as s:
        cid = s.create_case("N-1", examiner="E")
        a, b, c = (s.import_evidence(cid, clip(make_video, f"{k}.mp4"))["id"] for k in "abc")
        for eid, finding in ((a, None), (b, {"value": "inconsistent", "reasons": ["test"]})):
            rid = s.start_run(eid, {}, [], s.get_evidence(eid)["sha256"])
            s.finish_run(rid, "done", finding=finding)
        report = build_report(s, cid)
    validate_report(report)
    values = {x["evidence_id"]: x for x in report["conclusions"]}
    assert values[a]["value"] == "inconclusive" and "no fused finding" in values[a]["basis"]
    assert values[b]["value"] == "inconsistent"
    assert values[c]["value"] == "inconclusive" and "no analysis" in values[c]["basis"]


def test_evidence_filter(tmp_path: Path, analysed_case: tuple[Path, int, list[Path]]) -> None:
    db, cid, _ = analysed_case
    with CaseStore(db) as s:
        second = s.evidence_for(cid)[1]["id"]
        report = export_report(s, cid, json_path=tmp_path / "r.json", evidence_ids=[second])
    assert [e["id"] for e in report["evidence"]] == [second]
    assert cli(["--db", str(db), "report", str(cid), "--json", str(tmp_path / "x.json"), "--evidence", "99"]) == 2


def test_schema_rejects_what_it_must(analysed_case: tuple[Path, int, list[Path]], tmp_path: Path) -> None:
    db, cid, _ = analysed_case
    with CaseStore(db) as s:
        report = export_report(s, cid, json_path=tmp_path / "r.json")
    for mutate in (
        lambda r: r["conclusions"][0].update(value="FAKE"),  # off the three-value scale
        lambda r: r["evidence"][0].update(sha256_export="0" * 64, hash_match=False),  # a mismatched export
        lambda r: r["evidence"][0]["runs"][0]["results"]["test_windows"].pop("frame_predictions"),  # seed shape broken
        lambda r: r["audit"]["rows"][0].update(at="2026-01-01 10:00:00"),  # time without zone
    ):
        bad = copy.deepcopy(report)
        mutate(bad)
        with pytest.raises(jsonschema.ValidationError):
            validate_report(bad)


def test_changed_evidence_refuses_export(tmp_path: Path, make_video: Any, test_detector: list[str], capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    db = tmp_path / "c.sqlite"
    copy_ = tmp_path / "copy.mp4"
    shutil.copyfile(clip(make_video, "a.mp4"), copy_)
    with CaseStore(db) as s:
        cid = s.create_case("N-1", examiner="E")
    analyze_into_case(db, cid, copy_, AnalysisOptions(detectors=test_detector))
    data = bytearray(copy_.read_bytes())
    data[-10] ^= 0xFF  # one flipped byte, same size
    copy_.write_bytes(bytes(data))
    out_json, out_pdf = tmp_path / "r.json", tmp_path / "r.pdf"
    assert cli(["--db", str(db), "report", str(cid), "--json", str(out_json), "--pdf", str(out_pdf)]) == 2
    err = capsys.readouterr().err
    assert "changed since intake" in err and "report export refused" in err
    assert not out_json.exists() and not out_pdf.exists()
    with CaseStore(db) as s:
        last = s.audit_log(cid)[-1]
        assert last["action"] == "report export refused: evidence hash mismatch"
        with pytest.raises(EvidenceError):
            export_report(s, cid, json_path=out_json)
    copy_.unlink()  # a missing file is refused too
    with CaseStore(db) as s:
        with pytest.raises(EvidenceError, match="file not found"):
            export_report(s, cid, json_path=out_json)
        assert s.audit_log(cid)[-1]["action"] == "report export refused: evidence file missing"


@pytest.mark.media
@pytest.mark.slow
def test_report_on_two_real_clips(tmp_path: Path, media: Path) -> None:
    clips = [media / "real" / "grid_bbaf2n.mpg", media / "fake" / "sadtalker_art2_rdradio31.mp4"]
    manifest = {line.split("\t")[0]: line.split("\t")[5] for line in (media / "MANIFEST.tsv").read_text().splitlines()[1:] if "\t" in line}
    db = tmp_path / "c.sqlite"
    with CaseStore(db) as s:
        cid = s.create_case("2026-REAL-1", "Real clips", "Ana Examiner")
    for c in clips:
        analyze_into_case(db, cid, c, AnalysisOptions())
    out_json, out_pdf = tmp_path / "r.json", tmp_path / "r.pdf"
    with CaseStore(db) as s:
        report = export_report(s, cid, out_json, out_pdf)
    validate_report(json.loads(out_json.read_text()))
    for e, c in zip(report["evidence"], clips):
        assert e["sha256_intake"] == e["sha256_export"] == manifest[f"{c.parent.name}/{c.name}"]
        (run,) = e["runs"]
        assert run["faces"] and run["facepass"]["sha256"] == hashlib.sha256(Path(run["facepass"]["path"]).read_bytes()).hexdigest()
    pages = render_pages(out_pdf, tmp_path / "png")
    whole = "\n".join(pdf_pages_text(out_pdf))
    assert len(pages) >= 4
    assert whole.count("eye aspect ratio of face 0") == 2  # one EAR timeline per clip
    assert "Eyes assessable" in whole and "under 1 s of face)" not in whole
    assert all(hashlib.sha256(c.read_bytes()).hexdigest() == manifest[f"{c.parent.name}/{c.name}"] for c in clips)


def _turned_track_pass() -> Any:
    """A frontal face turned away for frames 70-129, with blinks at 30, 100 (turned) and 160."""
    import numpy as np

    from core.face.facepass import FacePass
    from tests.factories import FPS, SIZE, blink_ear, track

    n = 200
    yaw = np.zeros(n)
    yaw[70:130] = 35.0
    return FacePass(n, FPS, np.arange(n) / FPS, SIZE, SIZE, [track(yaw, blink_ear(n, [30, 100, 160]))])


def test_ear_plot_uses_the_masked_blink_events() -> None:
    import numpy as np

    from core.report.plots import ear_plot_data, ear_timeline
    from core.signals.blinks import detect_blinks
    from core.signals.eyes import stored_params, track_blinks

    fp = _turned_track_pass()
    t = fp.tracks[0]
    assert len(detect_blinks(t.frames, t.ear, fp.fps)[0]) == 3  # unmasked, the dip on the turned head counts
    params, eyes = stored_params(AnalysisOptions().parameters())
    reported = [e.to_dict() for e in track_blinks(t, fp.width, fp.height, fp.fps, params, eyes)[0]]  # what the JSON holds
    for stored in (None, reported):
        d = ear_plot_data(fp, t, params, stored, eyes)
        assert d.blinks == reported and [e["apex_frame"] for e in d.blinks] == [32, 162]
        (a, b, why), = d.unassessable
        assert 68 <= a <= 72 and 127 <= b <= 131 and why == "head turned"
        assert np.isnan(d.threshold[a:b + 1]).all() and np.isfinite(d.threshold[:60]).all()
        assert d.assessable_fraction == pytest.approx(1 - (b - a + 1) / 200)
    # the run's stored eye parameters are honoured: a run that let turned heads through had 3 blinks
    loose = stored_params({"eyes": {"max_yaw": 5.0}})[1]
    assert [e["apex_frame"] for e in ear_plot_data(fp, t, params, None, loose).blinks] == [32, 102, 162]
    assert ear_timeline(fp, t, params, None, [], eyes)[:8] == b"\x89PNG\r\n\x1a\n"


def test_faces_table_states_assessable_eyes() -> None:
    from core.report.pdf_style import eyes_assessable as _eyes_assessable

    face = {"eyes_assessable_frames": 50, "eyes_assessable_fraction": 0.25,
            "eyes_not_assessable": {"head_turned": 150, "eyes_small": 0, "outside_frame": 12, "landmarks_implausible": 0}}
    assert _eyes_assessable(face) == "25% (50 frames); not: head turned 150, face outside the frame 12"
    assert _eyes_assessable({**face, "eyes_assessable_fraction": 0.999}).startswith("99%")
    assert _eyes_assessable({}) == "-"  # a run from before the mask
