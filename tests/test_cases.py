"""Case store: schema and migrations, hash-chained audit log, chain of custody, runs and recovery."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core import detectors as registry
from core.cases import CaseStore, analyze_into_case, default_db_path, schema
from core.cli import main as cli
from core.detectors.base import Detector, DetectorResult, Segment
from core.errors import CancelledError, EvidenceError, VerityError
from core.pipeline import AnalysisOptions
from core.progress import CancelToken
from tests.conftest import gradient_frames

ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}$")
FAKE_WEIGHTS = hashlib.sha256(b"test weights").hexdigest()


class WindowScorer(Detector):
    """Test detector: scores 10-frame windows by mean brightness, flags windows above 0.5."""

    name = "test_windows"
    title = "Test window scorer"
    needs_faces = False

    def run(self, ctx: Any) -> DetectorResult:
        from core.video.reader import VideoReader

        with VideoReader(ctx.path) as reader:
            means = [float(f.mean()) / 255.0 for _, f in reader.iter_frames(fmt="gray")]
        preds, segs = [], []
        for k, a in enumerate(range(0, len(means), 10)):
            b = min(a + 9, len(means) - 1)
            score = round(sum(means[a : b + 1]) / (b - a + 1), 4)
            preds.append({"index": k, "start_frame": a, "end_frame": b, "score": score, "prediction": "FAKE" if score >= 0.5 else "REAL"})
            if score >= 0.5:
                segs.append(Segment(a, b, score, "window brightness above 0.5 (test detector)"))
        return DetectorResult(
            prediction="inconclusive", confidence=0.5, frames_analyzed=len(means), frame_predictions=preds,
            metrics={"windows": len(preds)}, assessment="inconclusive", weights_sha256={"test_head": FAKE_WEIGHTS},
            segments=segs, curves={"brightness": means},
        )


@pytest.fixture
def test_detector() -> Iterator[list[str]]:
    """Register the test detector for one test only (the registry is process-wide)."""
    registry.register(WindowScorer)
    yield [WindowScorer.name]
    registry._REGISTRY.pop(WindowScorer.name, None)


def clip(make_video: Any, name: str, n: int = 40, shift: int = 0) -> Path:
    frames = gradient_frames(n, 96, 64)
    frames[20:30] = 255 - shift  # a bright stretch: the test detector flags frames 20-29
    return make_video(name, frames)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def raw(db: Path) -> sqlite3.Connection:
    """A plain connection, as someone tampering with the file would use."""
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
    conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    return conn


# -- store basics -------------------------------------------------------------------------------


def test_default_db_in_data_dir_and_wal(tmp_path: Path) -> None:
    store = CaseStore()
    assert store.path == default_db_path() == Path(os.environ["VERITY_DATA_DIR"]) / "cases.sqlite"
    assert store.db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    store.close()


def test_cli_new_list_show_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "c.sqlite"
    assert cli(["--db", str(db), "case", "new", "--number", "2026-0042", "--title", "Clip from X", "--examiner", "A. Examiner"]) == 0
    assert capsys.readouterr().out.strip() == "1"
    assert cli(["--db", str(db), "case", "new", "--number", "2026-0042"]) == 2  # duplicate number: one clear line
    assert "already exists" in capsys.readouterr().err
    assert cli(["--db", str(db), "case", "list"]) == 0
    assert "2026-0042" in capsys.readouterr().out
    assert cli(["--db", str(db), "case", "show", "1"]) == 0
    out = capsys.readouterr().out
    assert "A. Examiner" in out and "case created" in out
    assert cli(["--db", str(db), "case", "verify", "1"]) == 0
    assert "intact: 1 rows" in capsys.readouterr().out
    assert cli(["--db", str(db), "case", "show", "1", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["case"]["number"] == "2026-0042" and shown["audit"][0]["details"]["examiner"] == "A. Examiner"
    assert cli(["--db", str(db), "case", "show", "7"]) == 2
    assert "no case with id 7" in capsys.readouterr().err


def test_newer_schema_refused_and_migrations_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "c.sqlite"
    CaseStore(db).close()
    n = schema.SCHEMA_VERSION  # the steps this Verity knows
    # a later version adds a column: reopening runs exactly the missing step
    calls = []

    def later(d: Any) -> None:
        calls.append(n + 1)
        d["cases"].add_column("agency", str)

    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, later])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", n + 1)
    with CaseStore(db) as s:
        assert s.schema_version_before == n
        assert "agency" in s.db["cases"].columns_dict
        assert s.db.conn.execute("PRAGMA user_version").fetchone()[0] == n + 1
    with CaseStore(db) as s:
        assert s.schema_version_before == n + 1
    assert calls == [n + 1]
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:n])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", n)
    with pytest.raises(VerityError, match=f"schema version {n + 1}"):
        CaseStore(db)


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(VerityError, match="not a Verity case file"):
        CaseStore(bad)


# -- audit log ------------------------------------------------------------------------------------


def _case_with_rows(db: Path, make_video: Any) -> tuple[int, int]:
    with CaseStore(db) as s:
        cid = s.create_case("N-1", "t", "Examiner One")
        ev = s.import_evidence(cid, clip(make_video, "a.mp4"))
        for f in (1, 2, 3):
            s.add_bookmark(ev["id"], f, f"note {f}")
    return cid, ev["id"]


def test_audit_rows_chain_time_zone_and_actor(tmp_path: Path, make_video: Any) -> None:
    db = tmp_path / "c.sqlite"
    cid, _ = _case_with_rows(db, make_video)
    with CaseStore(db) as s:
        rows = s.audit_log(cid)
        assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
        assert [r["action"] for r in rows[:2]] == ["case created", "evidence imported"]
        assert all(ISO_WITH_OFFSET.match(r["at"]) for r in rows)
        assert {r["actor"] for r in rows} == {"Examiner One"}
        assert all(b["prev_hash"] == a["hash"] for a, b in zip(rows, rows[1:]))
        assert s.verify_audit(cid).ok
        # no examiner on the case: the OS user acts; an explicit actor wins
        c2 = s.create_case("N-2")
        s.audit(c2, "note", details={"x": 1}, actor="Second Examiner")
        assert [r["actor"] for r in s.audit_log(c2)] == [s.actor_for(None), "Second Examiner"]


def test_audit_is_append_only_in_the_database(tmp_path: Path, make_video: Any) -> None:
    db = tmp_path / "c.sqlite"
    _case_with_rows(db, make_video)
    conn = sqlite3.connect(db)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit SET actor = 'x' WHERE seq = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit WHERE seq = 2")


def test_edited_audit_row_is_named(tmp_path: Path, make_video: Any, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "c.sqlite"
    cid, _ = _case_with_rows(db, make_video)
    conn = raw(db)
    conn.execute("UPDATE audit SET details = replace(details, 'note 2', 'note two') WHERE case_id = ? AND seq = 4", (cid,))
    conn.commit()
    with CaseStore(db) as s:
        v = s.verify_audit(cid)
    assert not v.ok and v.broken_seq == 4
    assert cli(["--db", str(db), "case", "verify", str(cid)]) == 1
    assert "audit row 4 (id 4) was changed" in capsys.readouterr().out


def test_edit_with_recomputed_hash_breaks_the_next_link(tmp_path: Path, make_video: Any) -> None:
    from core.cases.audit import row_hash

    db = tmp_path / "c.sqlite"
    cid, _ = _case_with_rows(db, make_video)
    conn = raw(db)
    conn.row_factory = sqlite3.Row
    row = dict(conn.execute("SELECT * FROM audit WHERE case_id = ? AND seq = 3", (cid,)).fetchone())
    row["actor"] = "Someone Else"
    conn.execute("UPDATE audit SET actor = ?, hash = ? WHERE id = ?", (row["actor"], row_hash(row), row["id"]))
    conn.commit()
    with CaseStore(db) as s:
        v = s.verify_audit(cid)
    assert not v.ok and v.broken_seq == 4 and "row 3 or this row was changed" in v.message


@pytest.mark.parametrize("seq", [2, 5])
def test_deleted_audit_row_is_named(tmp_path: Path, make_video: Any, capsys: pytest.CaptureFixture[str], seq: int) -> None:
    db = tmp_path / "c.sqlite"
    cid, _ = _case_with_rows(db, make_video)
    conn = raw(db)
    conn.execute("DELETE FROM audit WHERE case_id = ? AND seq = ?", (cid, seq))  # seq 5 is the newest row
    conn.commit()
    with CaseStore(db) as s:
        v = s.verify_audit(cid)
    assert not v.ok and v.broken_seq == seq
    assert cli(["--db", str(db), "case", "verify", str(cid)]) == 1
    assert f"audit row {seq} missing" in capsys.readouterr().out


# -- evidence and analysis -------------------------------------------------------------------------


def test_import_is_idempotent_and_read_only(tmp_path: Path, make_video: Any) -> None:
    v = clip(make_video, "a.mp4")
    before, mtime = sha(v), v.stat().st_mtime_ns
    with CaseStore(tmp_path / "c.sqlite") as s:
        cid = s.create_case("N-1", examiner="E")
        a = s.import_evidence(cid, v)
        b = s.import_evidence(cid, v)
        assert a["id"] == b["id"] and len(s.evidence_for(cid)) == 1
        assert a["sha256"] == before and a["probe"]["video"]["frame_count"] == 40
        bad = tmp_path / "bad.mp4"
        bad.write_bytes(b"\x00" * 100)
        with pytest.raises(EvidenceError):
            s.import_evidence(cid, bad)
        assert s.audit_log(cid)[-1]["action"] == "evidence import refused"
    assert sha(v) == before and v.stat().st_mtime_ns == mtime


def test_analyze_two_items_into_case(tmp_path: Path, make_video: Any, test_detector: list[str]) -> None:
    db = tmp_path / "c.sqlite"
    clips = [clip(make_video, "a.mp4"), clip(make_video, "b.mp4", n=30, shift=40)]
    hashes = [sha(c) for c in clips]
    with CaseStore(db) as s:
        cid = s.create_case("N-1", "two clips", "E")
    landed: list[str] = []
    results = [analyze_into_case(db, cid, c, AnalysisOptions(detectors=test_detector), on_result=lambda n, r: landed.append(n)) for c in clips]
    assert landed == ["test_windows", "test_windows"]
    with CaseStore(db) as s:
        items = s.evidence_for(cid)
        assert [e["sha256"] for e in items] == hashes
        for res, ev in zip(results, items):
            run = s.get_run(res["case"]["run_id"])
            assert run["status"] == "done" and run["evidence_id"] == ev["id"]
            assert run["software_version"] and run["parameters"]["blinks"]["mode"] == "adaptive"
            assert run["detectors_asked"] == ["test_windows"] and run["evidence_sha256"] == ev["sha256"]
            assert run["pid"] == os.getpid() and run["host"]
            assert run["finding"] == res.get("finding")  # stored when the fusion step gives one
            fp = Path(run["facepass_path"])
            assert fp.is_file() and fp.is_relative_to(db.parent) and run["facepass_sha256"] == sha(fp)
            assert fp.name == f"run-{run['id']}-facepass.npz"  # each run keeps its own face pass
            (stored,) = s.results_for(run["id"])
            assert stored["weights_sha256"] == {"test_head": FAKE_WEIGHTS}
            assert stored["result"]["frame_predictions"] == res["detectors"]["test_windows"]["frame_predictions"]
            segs = s.segments_for(run["id"])
            assert [(g["start_frame"], g["end_frame"]) for g in segs] == [(20, 29)]
        actions = [r["action"] for r in s.audit_log(cid)]
        assert actions.count("analysis done") == 2 and actions.count("evidence imported") == 2
        # analysing a known file again re-hashes it first and starts a new run
        analyze_into_case(db, cid, clips[0], AnalysisOptions(detectors=test_detector))
        assert s.audit_log(cid)[-3]["action"] == "evidence re-hashed before analysis"
        assert len(s.runs_for(evidence_id=items[0]["id"])) == 2
        assert s.verify_audit(cid).ok
    assert [sha(c) for c in clips] == hashes  # the evidence never changes


def test_cli_analyze_into_case(tmp_path: Path, make_video: Any, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "c.sqlite"
    v = clip(make_video, "a.mp4")
    assert cli(["--db", str(db), "case", "new", "--number", "N-9", "--examiner", "E"]) == 0
    capsys.readouterr()
    assert cli(["--db", str(db), "analyze", str(v), "--case", "1"]) == 0
    with CaseStore(db) as s:
        (run,) = s.runs_for(case_id=1)
        assert run["status"] == "done"
    capsys.readouterr()
    assert cli(["--db", str(db), "case", "bookmark", str(run["evidence_id"]), "12", "lips blur"]) == 0
    assert cli(["--db", str(db), "case", "import", "1", str(v)]) == 0  # already there: same item
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"{run['evidence_id']}\t")
    assert cli(["--db", str(db), "case", "verify", "1", "--hashes"]) == 0
    assert "sha256 matches intake" in capsys.readouterr().out


def test_changed_evidence_refuses_analysis(tmp_path: Path, make_video: Any, test_detector: list[str]) -> None:
    db = tmp_path / "c.sqlite"
    copy = tmp_path / "copy.mp4"
    shutil.copyfile(clip(make_video, "a.mp4"), copy)
    with CaseStore(db) as s:
        cid = s.create_case("N-1", examiner="E")
    analyze_into_case(db, cid, copy, AnalysisOptions(detectors=test_detector))
    with open(copy, "ab") as fh:  # someone alters the copy after intake
        fh.write(b"\x00")
    with pytest.raises(EvidenceError, match="changed since intake.*analysis refused"):
        analyze_into_case(db, cid, copy, AnalysisOptions(detectors=test_detector))
    with CaseStore(db) as s:
        assert len(s.runs_for(case_id=cid)) == 1  # no second run was started
        last = s.audit_log(cid)[-1]
        assert last["action"] == "analysis refused: evidence hash mismatch"
        assert last["details"]["sha256_now"] == sha(copy) != last["details"]["sha256_intake"]
        assert s.evidence_for(cid)[0]["sha256"] == last["details"]["sha256_intake"]  # intake hash untouched
        assert s.verify_audit(cid).ok
    assert cli(["--db", str(db), "case", "verify", str(cid), "--hashes"]) == 1  # the custody check says so too


def test_cancel_marks_run_cancelled(tmp_path: Path, make_video: Any, test_detector: list[str]) -> None:
    db = tmp_path / "c.sqlite"
    with CaseStore(db) as s:
        cid = s.create_case("N-1", examiner="E")
    token = CancelToken()

    def progress(stage: str, fraction: float, message: str = "") -> None:
        if stage == "faces":  # the examiner presses Cancel during the face pass
            token.cancel()

    with pytest.raises(CancelledError):
        analyze_into_case(db, cid, clip(make_video, "a.mp4"), AnalysisOptions(detectors=test_detector), progress, token)
    with CaseStore(db) as s:
        (run,) = s.runs_for(case_id=cid)
        assert run["status"] == "cancelled" and run["finished_at"]


# -- runs killed mid-way -------------------------------------------------------------------------

KILLED_CHILD = textwrap.dedent(
    """
    import sys, time
    from core import detectors
    from core.cases import CaseStore, analyze_into_case
    from core.detectors.base import Detector, DetectorResult
    from core.pipeline import AnalysisOptions

    @detectors.register
    class AFast(Detector):
        name = "a_fast"
        needs_faces = False
        def run(self, ctx):
            return DetectorResult(prediction="REAL", confidence=0.1)

    @detectors.register
    class BSlow(Detector):
        name = "b_slow"
        needs_faces = False
        def run(self, ctx):
            print("b_slow running", flush=True)
            time.sleep(120)
            return DetectorResult()

    db, video = sys.argv[1], sys.argv[2]
    with CaseStore(db) as s:
        cid = s.create_case("N-K", examiner="E")
    analyze_into_case(db, cid, video, AnalysisOptions(detectors=["a_fast", "b_slow"]))
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkilled_run_becomes_interrupted(tmp_path: Path, make_video: Any) -> None:
    db = tmp_path / "c.sqlite"
    script = tmp_path / "child.py"
    script.write_text(KILLED_CHILD)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, str(script), str(db), str(clip(make_video, "a.mp4"))], stdout=subprocess.PIPE, env=env, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.strip() == "b_slow running", f"child did not reach the slow detector (exit {proc.poll()})"
        with CaseStore(db) as s:  # while it runs: its pid is alive, so the run is left alone
            assert [r["status"] for r in s.runs_for()] == ["running"] and not s.interrupted_on_open
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with CaseStore(db) as s:
        assert s.db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        (run,) = s.runs_for()
        assert run["status"] == "interrupted" and s.interrupted_on_open == [run["id"]]
        assert [r["detector"] for r in s.results_for(run["id"])] == ["a_fast"]  # what landed before the kill stays
        log = s.audit_log(run["case_id"])
        assert log[-1]["action"] == "analysis interrupted" and log[-1]["details"]["pid"] == run["pid"]
        assert s.verify_audit(run["case_id"]).ok
    with CaseStore(db) as s:  # marked once only
        assert s.interrupted_on_open == []


def test_liveness_rules(tmp_path: Path, make_video: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "c.sqlite"
    with CaseStore(db) as s:
        cid = s.create_case("N-1", examiner="E")
        ev = s.import_evidence(cid, clip(make_video, "a.mp4"))
        live = s.start_run(ev["id"], {}, [], ev["sha256"])
        dead = s.start_run(ev["id"], {}, [], ev["sha256"])
        elsewhere = s.start_run(ev["id"], {}, [], ev["sha256"])
        reused = s.start_run(ev["id"], {}, [], ev["sha256"])
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
        s.db["runs"].update(dead, {"pid": int(gone)})
        s.db["runs"].update(elsewhere, {"pid": int(gone), "host": "another-host"})
        s.db["runs"].update(reused, {"proc_start": "some-other-boot:1"})  # our pid, but another process lifetime
    with CaseStore(db) as s:
        status = {r["id"]: r["status"] for r in s.runs_for()}
    expected_reused = "interrupted" if sys.platform.startswith("linux") else "running"
    assert status == {live: "running", dead: "interrupted", elsewhere: "running", reused: expected_reused}


def test_concurrent_writers_keep_one_chain(tmp_path: Path) -> None:
    """Threads sharing one store and a second connection (as another process would) append at once."""
    import threading

    db = tmp_path / "c.sqlite"
    with CaseStore(db) as s:
        cid = s.create_case("N-1", examiner="E")
    shared, other = CaseStore(db), CaseStore(db)
    errors: list[BaseException] = []

    def work(store: CaseStore, tag: str) -> None:
        try:
            for k in range(15):
                store.audit(cid, "note", details={"from": tag, "k": k})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(st, f"{name}{n}")) for n in range(2) for name, st in (("shared", shared), ("other", other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    v = shared.verify_audit(cid)
    assert v.ok and v.rows_checked == 1 + 4 * 15
    shared.close()
    other.close()


def test_bookmarks(tmp_path: Path, make_video: Any) -> None:
    with CaseStore(tmp_path / "c.sqlite") as s:
        cid = s.create_case("N-1", examiner="E")
        ev = s.import_evidence(cid, clip(make_video, "a.mp4"))
        b1 = s.add_bookmark(ev["id"], 12, "mouth blurs", track_id=0)
        s.add_bookmark(ev["id"], 3, "start")
        assert [b["frame"] for b in s.list_bookmarks(evidence_id=ev["id"])] == [3, 12]
        s.update_bookmark(b1, "mouth blurs at the chin")
        assert s.list_bookmarks(case_id=cid)[1]["note"] == "mouth blurs at the chin"
        s.delete_bookmark(b1)
        assert len(s.list_bookmarks(case_id=cid)) == 1
        assert [r["action"] for r in s.audit_log(cid)][-4:] == ["bookmark added", "bookmark added", "bookmark edited", "bookmark deleted"]
        assert s.verify_audit(cid).ok
