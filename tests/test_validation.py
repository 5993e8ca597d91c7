"""Method validation: interval and AUC figures, resumable runs over a manifest, records cited by reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.cli import main as cli
from core.errors import VerityError
from core.labelled_manifest import read_manifest
from core.pipeline import AnalysisOptions
from core.validation import run as vrun
from core.validation.build import build_record
from core.validation.figures import all_figures
from core.validation.stats import auc_with_interval, wilson_interval
from core.validation_records import citation, lookup
from tests.conftest import gradient_frames

# --- the figures against textbook values ------------------------------------------------------


def test_wilson_interval_matches_newcombe_1998() -> None:
    # Newcombe RG (1998) Stat Med 17:857, Table I, method 3 (Wilson score)
    for (k, n), (lo, hi) in {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605), (0, 20): (0.0, 0.1611), (1, 29): (0.0061, 0.1718)}.items():
        got = wilson_interval(k, n)
        assert got == pytest.approx((lo, hi), abs=1e-4), (k, n)
    assert wilson_interval(0, 0) == (0.0, 1.0)  # nothing measured: nothing known


def test_auc_matches_hanley_mcneil_1982() -> None:
    # Hanley JA, McNeil BJ (1982) Radiology 143:29, Table 1: 58 normal and 51 abnormal CT
    # images rated 1-5; trapezoidal area 0.893
    normal = np.repeat([1, 2, 3, 4, 5], [33, 6, 6, 11, 2])
    abnormal = np.repeat([1, 2, 3, 4, 5], [3, 2, 2, 11, 33])
    auc = auc_with_interval(list(normal) + list(abnormal), [False] * normal.size + [True] * abnormal.size)
    assert auc is not None and auc["value"] == pytest.approx(0.893, abs=0.001)
    assert auc["ci95"][0] < 0.893 < auc["ci95"][1] and auc["ci95"][1] - auc["ci95"][0] < 0.2
    assert auc["roc"]["fpr"][0] == 0 and auc["roc"]["tpr"][-1] == 1
    assert auc_with_interval([0.1, 0.2], [False, False]) is None  # one class only: no AUC


# --- runs over a manifest --------------------------------------------------------------------


@pytest.fixture
def small_set(tmp_path: Path, make_video: Any) -> Path:
    """A manifest of three faceless synthetic clips, a missing file and a file that is not a video."""
    for k, name in enumerate(("a.mp4", "b.mp4", "c.mp4")):
        make_video(name, gradient_frames(10 + k, 64, 48))  # distinct files: same bytes would share one analysis
    (tmp_path / "notvideo.mp4").write_bytes(b"this is not a video file at all" * 20)
    rows = ["path\tlabel\tkind", "a.mp4\treal\tgenuine", "b.mp4\tfake\tface-swap", "missing.mp4\treal\tgenuine", "notvideo.mp4\tfake\tlip-sync", "c.mp4\treal\tgenuine"]
    (tmp_path / "set.tsv").write_text("\n".join(rows) + "\n")
    return tmp_path / "set.tsv"


OPTIONS = AnalysisOptions(detectors=["blink_physiology", "landmark_motion"])


def test_missing_and_undecodable_files_are_listed_and_the_rest_validated(small_set: Path, tmp_path: Path) -> None:
    m = read_manifest(small_set)
    outcomes = vrun.analyse_items(list(m.items), tmp_path / "out", OPTIONS)
    failed = {o.item.name: o.error for o in outcomes if o.analysis is None}
    assert set(failed) == {"missing.mp4", "notvideo.mp4"}
    assert "No such file" in failed["missing.mp4"] and "not a media file" in failed["notvideo.mp4"]
    figures = all_figures(outcomes)
    assert figures["n"] == {"listed": 5, "analysed": 3, "real": 2, "fake": 1}
    assert [Path(f["path"]).name for f in figures["failed"]] == ["missing.mp4", "notvideo.mp4"]
    fi = figures["finding"]["false_inconsistent"]
    assert fi["k"] == 0 and fi["n"] == 2 and fi["ci95"][1] == pytest.approx(wilson_interval(0, 2)[1], abs=1e-4)


def test_a_killed_run_resumes_and_only_new_files_are_analysed(small_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core import pipeline

    m = read_manifest(small_set)
    out = tmp_path / "out"
    real_analyze = pipeline.analyze
    calls: list[str] = []

    class Killed(BaseException):
        """What a kill looks like from inside: nothing below catches it."""

    def dies_on_the_second(path: Any, *a: Any, **kw: Any) -> dict[str, Any]:
        calls.append(Path(path).name)
        if len(calls) == 2:
            raise Killed  # the run is killed while analysing b.mp4
        return real_analyze(path, *a, **kw)

    monkeypatch.setattr(pipeline, "analyze", dies_on_the_second)
    with pytest.raises(Killed):
        vrun.analyse_items(list(m.items), out, OPTIONS)
    assert calls == ["a.mp4", "b.mp4"] and len(list((out / "analyses").glob("a.mp4.json"))) == 1
    assert not list((out / "analyses").glob(".*.tmp"))  # nothing half-written

    def counting(path: Any, *a: Any, **kw: Any) -> dict[str, Any]:
        calls.append(Path(path).name)
        return real_analyze(path, *a, **kw)

    calls.clear()
    monkeypatch.setattr(pipeline, "analyze", counting)
    outcomes = vrun.analyse_items(list(m.items), out, OPTIONS)
    assert calls == ["b.mp4", "notvideo.mp4", "c.mp4"]  # a.mp4 reused; the missing file never reaches analysis
    assert [o.item.name for o in outcomes if o.reused] == ["a.mp4"]
    assert [o.item.name for o in outcomes] == [i.name for i in m.items]  # the manifest's order
    calls.clear()
    vrun.analyse_items(list(m.items), out, OPTIONS)
    assert calls == ["notvideo.mp4"]  # every finished analysis reused; a refused file is tried again
    calls.clear()
    changed = AnalysisOptions(detectors=["blink_physiology"])  # other parameters: nothing reused
    vrun.analyse_items(list(m.items), out, changed)
    assert calls == ["a.mp4", "b.mp4", "notvideo.mp4", "c.mp4"]


def test_bad_manifests_are_refused_with_the_line(tmp_path: Path) -> None:
    (tmp_path / "a.tsv").write_text("path\tlabel\nx.mp4\tmaybe\n")
    with pytest.raises(VerityError, match="line 2: label 'maybe'"):
        read_manifest(tmp_path / "a.tsv")
    (tmp_path / "b.csv").write_text("file,truth\nx.mp4,real\n")
    with pytest.raises(VerityError, match="'path' and 'label'"):
        read_manifest(tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("path,label,kind\nx.mp4,genuine,\ny.mp4,manipulated,lip-sync\n")
    items = read_manifest(tmp_path / "c.csv").items
    assert [(i.label, i.kind) for i in items] == [("real", "genuine"), ("fake", "lip-sync")]


def test_validate_command_writes_record_plots_and_summary(small_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "val"
    assert cli(["validate", str(small_set), "--out", str(out), "--name", "tiny set", "--detectors", "blink_physiology,landmark_motion"]) == 0
    rec = json.loads((out / "record.json").read_text())
    assert rec["schema"] == "verity.validation/1" and rec["name"] == "tiny set" and rec["independent"] is False
    assert rec["manifest"]["sha256"] == read_manifest(small_set).sha256
    assert {f["path"]: f["analysed"] for f in rec["files"]} == {"a.mp4": True, "b.mp4": True, "missing.mp4": False, "notvideo.mp4": False, "c.mp4": True}
    assert all(len(f["sha256"]) == 64 for f in rec["files"] if f["analysed"])
    assert rec["detectors"]["blink_physiology"]["parameters"]["min_eye_width_px"] == 30.0
    assert rec["finding"]["table"]["overall"]["inconclusive"] == {"real": 2, "fake": 1}
    assert (out / "coverage_by_kind.png").stat().st_size > 1000 and (out / "summary.pdf").read_bytes()[:4] == b"%PDF"
    printed = capsys.readouterr().out
    assert "3 of 5 files analysed" in printed and "development record" in printed


# --- records: which result may cite which record ---------------------------------------------


def _record(tmp_path: Path, small_set: Path, name: str, independent: bool = False) -> dict[str, Any]:
    m = read_manifest(small_set)
    outcomes = vrun.analyse_items(list(m.items), tmp_path / "out", OPTIONS)
    return build_record(name, m, outcomes, OPTIONS, independent, {})


def test_a_result_cites_only_a_record_with_its_version_and_parameters(tmp_path: Path, small_set: Path) -> None:
    rec = _record(tmp_path, small_set, "lab set")
    params = rec["detectors"]["blink_physiology"]["parameters"]
    results = {"blink_physiology": {"parameters": params}, "landmark_motion": {"parameters": {"unknown": 1}}}
    found = lookup(results, OPTIONS.parameters(), records=[rec])
    assert set(found) == {"blink_physiology"} and found["blink_physiology"]["record"] == "lab set"
    assert found["blink_physiology"]["genuine_n"] == 2 and found["blink_physiology"]["independent"] is False
    other = {**params, "min_eye_width_px": 20.0}
    assert lookup({"blink_physiology": {"parameters": other}}, OPTIONS.parameters(), records=[rec]) == {}
    assert lookup(results, OPTIONS.parameters(), records=[rec], version="0.0.1") == {}
    text = citation(found["blink_physiology"])
    assert "'lab set'" in text and "0 of 2 genuine" in text and "Development set" in text
    assert citation(None).startswith("No validation record")


def test_report_methods_cite_the_matching_record(tmp_path: Path, small_set: Path, monkeypatch: pytest.MonkeyPatch, make_video: Any) -> None:
    from core.cases import CaseStore, analyze_into_case
    from tests.test_report import pdf_pages_text

    db = tmp_path / "c.sqlite"
    with CaseStore(db) as s:
        cid = s.create_case("2026-VAL-1", "validation citation", "Ana Examiner")
    analyze_into_case(db, cid, make_video("q.mp4", gradient_frames(12, 64, 48)), OPTIONS)
    records = tmp_path / "records"
    records.mkdir()
    rec = _record(tmp_path, small_set, "lab set 7")
    rec["detectors"]["landmark_motion"]["parameters"] = {"window_s": 99}  # recorded with other parameters
    (records / "lab.json").write_text(json.dumps(rec))
    monkeypatch.setenv("VERITY_VALIDATION_DIRS", str(records))
    out_json, out_pdf = tmp_path / "r.json", tmp_path / "r.pdf"
    assert cli(["--db", str(db), "report", str(cid), "--json", str(out_json), "--pdf", str(out_pdf)]) == 0
    run = json.loads(out_json.read_text())["evidence"][0]["runs"][0]
    assert set(run["validation"]) == {"blink_physiology"}
    text = " ".join(" ".join(pdf_pages_text(out_pdf)).split())
    assert "Validation record 'lab set 7': n = 2 genuine / 1 manipulated" in text
    assert "No validation record matches this method's software version and parameters" in text  # landmark_motion


def test_the_score_is_the_probability_of_manipulation_not_the_cards_confidence() -> None:
    from core.validation.figures import p_manipulated

    assert p_manipulated({"status": "ok", "prediction": "FAKE", "confidence": 0.9}) == pytest.approx(0.9)
    assert p_manipulated({"status": "ok", "prediction": "REAL", "confidence": 0.9}) == pytest.approx(0.1)
    assert p_manipulated({"status": "ok", "prediction": None, "confidence": None}) is None  # weight-free: no score
    assert p_manipulated({"status": "unavailable", "prediction": "FAKE", "confidence": 0.9}) is None


def test_the_shipped_development_record_matches_todays_defaults(make_video, monkeypatch, tmp_path) -> None:
    """resources/validation/ holds the record made on ../shared/media with this version's default
    parameters: a default analysis cites it (and says it is a development set). A change of a
    default parameter without a new record makes this fail."""
    from core.pipeline import AnalysisOptions, analyze
    from core.validation_records import citation, load_records

    monkeypatch.delenv("VERITY_NO_SHIPPED_VALIDATION")
    shipped = [r for r in load_records() if r["name"] == "shared-media development set"]
    assert len(shipped) == 1 and shipped[0]["independent"] is False and shipped[0]["n"]["analysed"] == 65
    names = ["av_sync", "blink_physiology", "landmark_motion"]
    result = analyze(make_video("d.mp4", gradient_frames(12, 64, 48)), AnalysisOptions(detectors=names, work_dir=tmp_path))
    assert set(result["validation"]) == set(names)
    line = citation(result["validation"]["blink_physiology"])
    assert "'shared-media development set': n = 32 genuine / 33 manipulated" in line and "Development set" in line
    # identity_reference is measured where the clips have exemplars of their person: its own record
    ids = [r for r in load_records() if r["name"] == "shared-media identity set"]
    assert len(ids) == 1 and set(ids[0]["detectors"]) == {"identity_reference"}
    assert "identity_reference" not in shipped[0]["detectors"]  # measured without exemplars it would say nothing
    result = analyze(make_video("e.mp4", gradient_frames(12, 64, 48)), AnalysisOptions(detectors=["identity_reference"], work_dir=tmp_path))
    assert result["validation"]["identity_reference"]["record"] == "shared-media identity set"


def test_manifest_references_reach_the_analysis_and_key_its_reuse(tmp_path: Path, make_video: Any) -> None:
    """A `reference` column gives identity_reference the row's known exemplars: the analysis records
    them by sha256, the record lists them, and other exemplars mean a new analysis."""
    from core.digest import sha256_file

    make_video("q.mp4", gradient_frames(10, 64, 48))
    make_video("ref1.mp4", gradient_frames(11, 64, 48))
    make_video("ref2.mp4", gradient_frames(12, 64, 48))
    make_video("plain.mp4", gradient_frames(13, 64, 48))

    def manifest(ref: str) -> Path:
        rows = ["path\tlabel\tkind\tgroup\tperson\treference", f"q.mp4\treal\tgenuine\tg1\tJane Doe\t{ref}", "plain.mp4\treal\tgenuine\tg2\t\t"]
        (tmp_path / "id.tsv").write_text("\n".join(rows) + "\n")
        return tmp_path / "id.tsv"

    m = read_manifest(manifest("ref1.mp4;ref2.mp4"))
    assert m.items[0].person == "Jane Doe" and [p.name for p in m.items[0].references] == ["ref1.mp4", "ref2.mp4"]
    assert m.items[1].references == ()
    options = AnalysisOptions(detectors=["identity_reference"])
    outcomes = vrun.analyse_items(list(m.items), tmp_path / "out", options)
    expected = sorted(sha256_file(tmp_path / n) for n in ("ref1.mp4", "ref2.mp4"))
    assert outcomes[0].analysis["parameters"]["references"] == expected
    assert "references" not in outcomes[1].analysis["parameters"]
    rec = build_record("ids", m, outcomes, options, False, {})
    assert rec["files"][0]["references"] == {"paths": ["ref1.mp4", "ref2.mp4"], "sha256": expected} and rec["files"][0]["person"] == "Jane Doe"
    again = vrun.analyse_items(list(read_manifest(manifest("ref1.mp4;ref2.mp4")).items), tmp_path / "out", options)
    assert [o.reused for o in again] == [True, True]
    other = vrun.analyse_items(list(read_manifest(manifest("ref1.mp4")).items), tmp_path / "out", options)
    assert [o.reused for o in other] == [False, True]  # other exemplars: the first clip is analysed again
    with pytest.raises(VerityError, match="line 2: reference .*missing.mp4 not found"):
        read_manifest(manifest("missing.mp4"))
