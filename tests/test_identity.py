"""identity_reference: known exemplars in the case store, descriptors, the reading, the chosen track."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from core.cases import CaseStore, analyze_into_case, schema
from core.cases.references import add_reference, references_for, verify_reference
from core.cli import main as cli
from core.detectors.base import Exemplar
from core.detectors.identity_reference import compare, departures
from core.errors import EvidenceError, VerityError
from core.face.identity import FaceIdentity, IdentityParams, eligible_rows, robust_mean, sample_rows
from core.pipeline import AnalysisOptions, analyze
from tests.conftest import gradient_frames, write_video


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_png(path: Path, rgb: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


# -- the measurement and the rule, on synthetic descriptors ----------------------------------------
def face_of(descriptors: np.ndarray, frames: np.ndarray | None = None) -> FaceIdentity:
    k = descriptors.shape[0]
    frames = np.arange(0, 10 * k, 10) if frames is None else frames
    return FaceIdentity(frames, descriptors.astype(np.float32), np.tile([0, 0, 100, 100], (k, 1)).astype(np.float32), np.ones(k), k, {})


def cluster(centre: np.ndarray, n: int, rng: np.random.Generator, noise: float = 0.01) -> np.ndarray:
    return centre + rng.normal(0, noise, (n, 128))


def test_compare_reads_on_the_calibrated_thresholds() -> None:
    rng = np.random.default_rng(0)
    p = IdentityParams()
    ref_centre = rng.normal(0, 0.1, 128)
    unit = rng.normal(0, 1, 128)
    unit /= np.linalg.norm(unit)
    ref = cluster(ref_centre, 20, rng)
    for offset, expected in ((0.2, "consistent"), (0.45, "inconclusive"), (0.7, "inconsistent")):
        c = compare(face_of(cluster(ref_centre + offset * unit, 20, rng)), ref, p, 0, "Jane")
        assert c.reading == expected, (offset, c.note)
        assert c.distance == pytest.approx(offset, abs=0.02)
        assert "n = 20 questioned frames, 20 exemplar frames" in c.note
    far = compare(face_of(cluster(ref_centre + 0.7 * unit, 20, rng)), ref, p, 0, "Jane")
    assert len(far.segments) == 1 and far.segments[0].track_id == 0 and "departs from Jane" in far.segments[0].reason
    # too few usable frames on either side: no reading, with the distance and n in the note
    few = compare(face_of(cluster(ref_centre + 0.7 * unit, 3, rng)), ref, p, 0, "Jane")
    assert few.reading == "inconclusive" and "quality too low" in few.note and "n = 3 questioned" in few.note and "distance 0.7" in few.note
    # with fewer exemplar frames (one photo) a match can be read, a mismatch cannot
    one = compare(face_of(cluster(ref_centre + 0.7 * unit, 20, rng)), ref[:1], p, 0, "Jane", photos=1)
    assert one.reading == "inconclusive" and "only a match" in one.note and "(1 from photos)" in one.note
    assert compare(face_of(cluster(ref_centre + 0.2 * unit, 20, rng)), ref[:1], p, 0, "Jane", photos=1).reading == "consistent"
    # a face whose halves disagree is not one stable identity
    split = np.concatenate([cluster(ref_centre, 10, rng), cluster(ref_centre + 0.8 * unit, 10, rng)])
    c = compare(face_of(split), ref, p, 0, "Jane")
    assert c.reading == "inconclusive" and "not one stable identity" in c.note


def test_robust_mean_ignores_a_few_failing_frames() -> None:
    rng = np.random.default_rng(1)
    centre = rng.normal(0, 0.1, 128)
    d = cluster(centre, 30, rng)
    d[[3, 17, 25]] = centre + 0.8  # three frames where the face is someone else
    agg, kept = robust_mean(d)
    assert not kept[[3, 17, 25]].any() and kept.sum() == 27
    assert np.linalg.norm(agg - centre) < 0.05 < 0.5 < np.linalg.norm(d.mean(axis=0) - centre)  # a plain mean moves


def test_departures_are_runs_of_sampled_frames_split_at_gaps() -> None:
    p = IdentityParams(departure=0.6, departure_min_frames=2)
    frames = np.array([0, 10, 20, 30, 40, 50, 200, 210, 220])
    values = np.array([0.7, 0.3, 0.7, 0.8, 0.2, 0.9, 0.9, 0.9, 0.1])
    segs = departures(frames, values, p, 1, "Jane")
    # 0 alone is too short; 20-30 is a run; 50 and 200 are not neighbours (gap), 200-210 is a run
    assert [(s.start_frame, s.end_frame) for s in segs] == [(20, 30), (200, 210)]
    assert all(s.track_id == 1 and s.score is None for s in segs)


def test_frames_are_chosen_frontal_large_inside_and_evenly() -> None:
    base = np.zeros((68, 2))
    base[:, 0], base[:, 1] = 100.0, 100.0
    base[0], base[16], base[30] = (60, 100), (140, 100), (100, 110)  # jaw ends, nose tip: frontal
    base[36], base[45] = (75, 90), (125, 90)  # outer eye corners 50 px apart
    lm = np.repeat(base[None], 4, axis=0)
    lm[1, 30, 0] = 130  # nose towards a jaw end: turned
    lm[2] = 100 + (lm[2] - 100) * 0.4  # eyes 20 px apart: small
    lm[3, :, 0] += 150  # beyond the right edge of a 200 px frame
    ok, failed = eligible_rows(lm, 200, 200, IdentityParams())
    assert ok.tolist() == [True, False, False, False]
    assert failed["head_turned"].tolist() == [False, True, False, False]
    assert failed["face_small"].tolist() == [False, False, True, False]
    assert failed["outside_frame"].tolist() == [False, False, False, True]
    rows = sample_rows(np.ones(100, bool), 10)
    assert rows.size == 10 and rows[0] == 0 and rows[-1] == 99 and np.ptp(np.diff(rows)) <= 1


def test_a_changed_model_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.face import dlib_models as models

    models.model_path.cache_clear()
    monkeypatch.setitem(models.MODEL_SHA256, models.FACE_RECOGNITION, "0" * 64)
    try:
        with pytest.raises(VerityError, match="expected 0000"):
            models.model_sha256(models.FACE_RECOGNITION)
    finally:
        models.model_path.cache_clear()
    monkeypatch.undo()
    assert models.model_sha256(models.FACE_RECOGNITION) == models.MODEL_SHA256[models.FACE_RECOGNITION]


# -- known exemplars in the case store ------------------------------------------------------------
def test_exemplar_import_is_hashed_audited_and_never_written(tmp_path: Path, make_video: Any, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "c.sqlite"
    photo = write_png(tmp_path / "jane.png", gradient_frames(1, 64, 48)[0])
    video = make_video("jane.mp4", gradient_frames(12))
    before = {p: (sha(p), p.stat().st_mtime_ns) for p in (photo, video)}
    with CaseStore(db) as s:
        cid = s.create_case("2026-ID-1", examiner="Ana")
    assert cli(["--db", str(db), "case", "reference", "add", str(cid), "--person", "Jane Doe", str(photo), str(video), "--note", "press footage"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[2] for line in out] == ["photo", "video"]
    with CaseStore(db) as s:
        refs = references_for(s, cid)
        assert [(r["person"], r["kind"], r["sha256"]) for r in refs] == [("Jane Doe", "photo", sha(photo)), ("Jane Doe", "video", sha(video))]
        assert refs[0]["probe"]["width"] == 64 and refs[1]["probe"]["video"]["frame_count"] == 12
        rows = [a for a in s.audit_log(cid) if a["action"] == "reference imported"]
        assert [(a["object_id"], a["details"]["sha256"], a["details"]["person"]) for a in rows] == [(r["id"], r["sha256"], "Jane Doe") for r in refs]
        assert s.verify_audit(cid).ok
        # the same file again: the same row; for another person: refused
        assert add_reference(s, cid, "Jane Doe", photo)["id"] == refs[0]["id"]
        with pytest.raises(VerityError, match="already a known exemplar of 'Jane Doe'"):
            add_reference(s, cid, "John Roe", photo)
        with pytest.raises(VerityError, match="--person"):
            add_reference(s, cid, " ", photo)
        assert verify_reference(s, refs[1]["id"], "analysis") == sha(video)
    assert {p: (sha(p), p.stat().st_mtime_ns) for p in (photo, video)} == before  # only ever read
    assert cli(["--db", str(db), "case", "show", str(cid)]) == 0
    assert "known exemplars (2)" in capsys.readouterr().out
    # a changed exemplar is refused and the refusal is in the audit log
    photo.write_bytes(photo.read_bytes() + b"x")
    assert cli(["--db", str(db), "case", "verify", str(cid), "--hashes"]) == 1
    assert "CHANGED OR MISSING" in capsys.readouterr().out
    with CaseStore(db) as s:
        with pytest.raises(EvidenceError, match="changed since intake"):
            verify_reference(s, refs[0]["id"], "analysis")
        assert any(a["action"] == "analysis refused: reference hash mismatch" for a in s.audit_log(cid))
        assert s.verify_audit(cid).ok
    # a file that is neither a photo nor a video: one clear line, audited
    bad = tmp_path / "notes.txt"
    bad.write_text("not media")
    assert cli(["--db", str(db), "case", "reference", "add", str(cid), "--person", "Jane Doe", str(bad)]) == 2
    assert "verity: error:" in capsys.readouterr().err


def test_reference_table_is_added_to_an_older_case_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "old.sqlite"
    with monkeypatch.context() as m:  # a case file written before known exemplars existed
        m.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
        m.setattr(schema, "SCHEMA_VERSION", 1)
        CaseStore(db).close()
    with CaseStore(db) as s:
        assert s.schema_version_before == 1 and "reference_items" in s.db.table_names()


# -- on real faces (frames of the GRID clips in ../shared/media) ------------------------------------
@pytest.fixture(scope="module")
def grid_faces() -> dict[str, np.ndarray]:
    """RGB frames of two GRID speakers: a woman (brbk7n) and a man (bbaf2n)."""
    from tests.conftest import MEDIA

    if not (MEDIA / "MANIFEST.tsv").is_file():
        pytest.skip(f"test media not found at {MEDIA}")
    from core.video.reader import VideoReader

    out = {}
    for who, clip in (("woman", "grid_brbk7n.mpg"), ("man", "grid_bbaf2n.mpg")):
        with VideoReader(MEDIA / "real" / clip) as r:
            out[who] = np.stack([f for _, f in r.iter_frames(0, 60)])
    return out


def identity(analysis: dict[str, Any]) -> dict[str, Any]:
    return analysis["detectors"]["identity_reference"]


def options(tmp_path: Path, refs: list[Exemplar] | None = None, **params: Any) -> AnalysisOptions:
    # 8 descriptors a face keep the tests quick (each costs ~0.1 s on a CPU)
    return AnalysisOptions(detectors=["identity_reference"], work_dir=tmp_path / "work", references=refs or [],
                           detector_params={"identity_reference": {"max_frames": 8, **params}})


def exemplar(path: Path, person: str) -> Exemplar:
    return Exemplar(person=person, path=path, sha256=sha(path), kind="photo" if path.suffix == ".png" else "video", name=path.name)


def test_no_reference_is_inconclusive_with_the_reason(tmp_path: Path, grid_faces: dict[str, np.ndarray]) -> None:
    clip = write_video(tmp_path / "q.mp4", grid_faces["woman"][30:60])
    d = identity(analyze(clip, options(tmp_path)))
    assert d["status"] == "ok" and d["assessment"] == "inconclusive"
    assert "no known exemplar is attached" in d["note"]
    spread = d["per_track"]["0"]["stability"]
    assert spread["n"] >= 5 and 0 < spread["frame_to_frame_median"] < 0.3  # a measurement, not a reading
    assert "assessment" not in d["per_track"]["0"]
    assert d["weights_sha256"]["dlib_face_recognition_resnet_model_v1"] == "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"


def test_a_photo_and_a_video_exemplar_both_work(tmp_path: Path, grid_faces: dict[str, np.ndarray]) -> None:
    q = write_video(tmp_path / "q.mp4", grid_faces["woman"][30:60])
    photo = write_png(tmp_path / "woman.png", grid_faces["woman"][5])
    video = write_video(tmp_path / "woman_ref.mp4", grid_faces["woman"][0:25])
    other = write_png(tmp_path / "man.png", grid_faces["man"][5])
    other_video = write_video(tmp_path / "man_ref.mp4", grid_faces["man"][0:25])
    for ref, kind in ((photo, "photo"), (video, "video")):
        d = identity(analyze(q, options(tmp_path, [exemplar(ref, "B")])))
        assert d["assessment"] == "consistent", d["note"]
        assert d["metrics"]["distance"] < 0.4 and d["metrics"]["person"] == "B"
        (ex,) = d["metrics"]["exemplars"]
        assert ex["kind"] == kind and ex["sha256"] == sha(ref) and ex["frames_used"] >= 1 and ex["face_box"] is not None
        curve = d["curves"]["identity_distance"]
        assert curve["track_id"] == 0 and len(curve["frames"]) == len(curve["values"]) == d["frames_analyzed"] == 8
    # another person: footage reads inconsistent; one photo alone can only match, so it stays inconclusive
    d = identity(analyze(q, options(tmp_path, [exemplar(other_video, "A")])))
    assert d["assessment"] == "inconsistent" and d["metrics"]["distance"] >= 0.5, d["note"]
    assert d["segments"] and all(s["track_id"] == 0 for s in d["segments"])
    d = identity(analyze(q, options(tmp_path, [exemplar(other, "A")])))
    assert d["assessment"] == "inconclusive" and "only a match" in d["note"] and d["metrics"]["distance"] >= 0.5
    # several persons and none chosen: the distances to each, and no reading
    d = identity(analyze(q, options(tmp_path, [exemplar(photo, "B"), exemplar(other, "A")])))
    assert d["assessment"] == "inconclusive" and "choose which one" in d["note"]
    assert set(d["metrics"]["distances"]) == {"A", "B"} and d["metrics"]["distances"]["B"] < d["metrics"]["distances"]["A"]
    d = identity(analyze(q, options(tmp_path, [exemplar(photo, "B"), exemplar(other_video, "A")], person="A")))
    assert d["assessment"] == "inconsistent"


def test_a_two_face_clip_compares_the_chosen_track(tmp_path: Path, grid_faces: dict[str, np.ndarray]) -> None:
    # the woman large on the right, the man smaller on the left, in one picture
    frames = []
    for w, m in zip(grid_faces["woman"][30:55], grid_faces["man"][30:55]):
        canvas = np.full((288, 640, 3), 90, np.uint8)
        small = cv2.resize(m, (270, 216), interpolation=cv2.INTER_AREA)
        canvas[36:252, 0:270] = small
        canvas[:, 280:640] = w
        frames.append(canvas)
    q = write_video(tmp_path / "two.mp4", frames)
    ref = write_video(tmp_path / "woman_ref.mp4", grid_faces["woman"][0:25])
    d = identity(analyze(q, options(tmp_path, [exemplar(ref, "B")])))
    tracks = {int(k): v for k, v in d["per_track"].items()}
    assert len(tracks) == 2
    right = max(tracks, key=lambda k: tracks[k]["face_box"][0])
    left = min(tracks, key=lambda k: tracks[k]["face_box"][0])
    # default: the largest face (the woman) against the case's only person
    assert d["metrics"]["track_id"] == right and d["metrics"]["track_choice"] == "largest face"
    assert d["assessment"] == "consistent" and tracks[right]["assessment"] == "consistent"
    assert "assessment" not in tracks[left] and tracks[left]["distance_to"]["B"] > 0.5  # measured, not read
    # the examiner's choice: the man's face
    d = identity(analyze(q, options(tmp_path, [exemplar(ref, "B")], track=left)))
    assert d["metrics"]["track_id"] == left and d["metrics"]["track_choice"] == "examiner"
    assert d["assessment"] == "inconsistent" and d["per_track"][str(left)]["assessment"] == "inconsistent"
    assert all(s["track_id"] == left for s in d["segments"])
    d = identity(analyze(q, options(tmp_path, [exemplar(ref, "B")], track=7)))
    assert d["assessment"] == "inconclusive" and "no face track 7" in d["note"]


def test_case_analysis_and_report_use_the_case_exemplars(tmp_path: Path, grid_faces: dict[str, np.ndarray]) -> None:
    from core.report import export_report, validate_report
    from tests.test_report import pdf_pages_text

    db = tmp_path / "c.sqlite"
    q = write_video(tmp_path / "q.mp4", grid_faces["woman"][30:60])
    photo = write_png(tmp_path / "woman.png", grid_faces["woman"][5])
    with CaseStore(db) as s:
        cid = s.create_case("2026-ID-2", examiner="Ana")
        ref = add_reference(s, cid, "Jane Doe", photo, note="press photo")
    a = analyze_into_case(db, cid, q, options(tmp_path))
    d = identity(a)
    assert d["assessment"] == "consistent" and d["metrics"]["exemplars"][0]["id"] == ref["id"]
    with CaseStore(db) as s:
        assert any(x["action"] == "reference re-hashed before analysis" and x["object_id"] == ref["id"] for x in s.audit_log(cid))
        report = export_report(s, cid, tmp_path / "r.json", tmp_path / "r.pdf")
    validate_report(report)
    (known,) = report["references"]
    assert known["person"] == "Jane Doe" and known["sha256_export"] == known["sha256_intake"] == sha(photo) and known["hash_match"]
    assert json.loads((tmp_path / "r.json").read_text())["references"][0]["id"] == ref["id"]
    text = " ".join(pdf_pages_text(tmp_path / "r.pdf"))
    for phrase in ("Known exemplars", "Questioned face and known exemplars", "Identity against known exemplars", "99.38"):
        assert phrase in text, phrase
    # a changed exemplar: not used by the next analysis (it says why), and the export is refused
    photo.write_bytes(photo.read_bytes()[:-10])
    d = identity(analyze_into_case(db, cid, q, options(tmp_path)))
    assert d["assessment"] == "inconclusive" and "changed since intake" in d["note"]
    with CaseStore(db) as s, pytest.raises(EvidenceError, match="changed since intake"):
        export_report(s, cid, tmp_path / "r2.json")
    assert not (tmp_path / "r2.json").exists()


def test_case_tree_lists_and_adds_known_exemplars(qtbot: Any, tmp_path: Path) -> None:
    pytest.importorskip("pytestqt")
    from PySide6.QtCore import QSettings

    from desktop.case_tree import ROLE
    from desktop.main_window import MainWindow

    w = MainWindow(db_path=tmp_path / "cases.sqlite", settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    cid = w.create_case("T-ID", "identity", "examiner A")
    photo = write_png(tmp_path / "jane.png", gradient_frames(1, 64, 48)[0])
    task = w.add_references(cid, "Jane Doe", [str(photo)])
    assert task is not None
    qtbot.waitUntil(lambda: bool(references_for(w.store, cid)) and not task.running, timeout=30000)
    qtbot.waitUntil(lambda: w.case_tree.select("reference", references_for(w.store, cid)[0]["id"]), timeout=5000)
    item = w.case_tree.currentItem()
    assert item.text(0) == "Jane Doe: jane.png" and item.parent().text(0) == "Known exemplars"
    assert sha(photo) in item.toolTip(0) and item.data(0, ROLE)[2] == cid
    w.case_tree._on_item(item)  # selecting an exemplar selects its case
    assert w.case_id == cid
    w.close()


def test_window_shows_the_questioned_face_beside_the_exemplars(qtbot: Any, tmp_path: Path, grid_faces: dict[str, np.ndarray]) -> None:
    pytest.importorskip("pytestqt")
    from PySide6.QtCore import QSettings

    from desktop.main_window import MainWindow
    from desktop.review import build_review

    q = write_video(tmp_path / "q.mp4", grid_faces["woman"][30:60])
    photo = write_png(tmp_path / "woman.png", grid_faces["woman"][5])
    a = analyze(q, options(tmp_path, [exemplar(photo, "B")]))
    w = MainWindow(db_path=tmp_path / "cases.sqlite", settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.show_identity()  # nothing analysed yet: says what to do, no dialog
    assert w.last_error and "identity_reference" in w.last_error and not hasattr(w, "identity_dialog")
    w._show_review(a, build_review(a))
    assert w.act_identity.isEnabled()
    w.show_identity()
    qtbot.waitUntil(lambda: hasattr(w, "identity_dialog"), timeout=30000)
    caps = w.identity_dialog.captions
    assert len(caps) == 2 and caps[0].startswith("questioned: face 0") and "distance to B" in caps[0]
    assert caps[1].startswith("known: B, woman.png (photo)")
    w.close()


def test_a_tiny_photo_exemplar_never_reaches_dlib(tmp_path: Path) -> None:
    """Issue 13, item 7, for exemplars: dlib's detectors are never called below 32 px a side."""
    from core.face.detect import detect_faces, detect_hard
    from core.face.exemplars import describe_exemplar
    from core.face.facepass import FacePassParams

    gray = np.full((4, 4), 128, np.uint8)
    assert detect_faces(gray) == [] and detect_hard(gray) == []
    photo = write_png(tmp_path / "tiny.png", gradient_frames(1, 4, 4)[0])
    d = describe_exemplar(Exemplar.from_file("Jane Doe", photo), IdentityParams(), FacePassParams(), lambda p, s: None, tmp_path)
    assert d.face is None and "4x4 px, below the 32 px" in d.problem
