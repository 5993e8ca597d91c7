"""Issue 13 item 1: stored results are covered by the audit hash chain.

Editing a stored result with sqlite3 (the audit table untouched, no trigger to drop) must be
named by `case verify` (table, row, field) and must stop a report export; an old case file
(schema 1, written before result hashing) must still verify, its results marked as recorded
before result hashing, and be covered from then on.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core import detectors as registry
from core.cases import CaseStore, analyze_into_case
from core.cli import main as cli
from core.detectors.base import Detector, DetectorResult, Segment
from core.pipeline import AnalysisOptions
from tests.conftest import gradient_frames


class Flagger(Detector):
    """Test detector: a fixed reading, one flagged segment (frames 20-29)."""

    name = "test_flagger"
    needs_faces = False

    def run(self, ctx: Any) -> DetectorResult:
        return DetectorResult(
            prediction="REAL", confidence=0.25, assessment="consistent", frames_analyzed=40,
            metrics={"score": 0.25}, segments=[Segment(20, 29, 0.7, "test segment")],
        )


@pytest.fixture
def flagger() -> Iterator[list[str]]:
    registry.register(Flagger)
    yield [Flagger.name]
    registry._REGISTRY.pop(Flagger.name, None)


@pytest.fixture
def analysed(tmp_path: Path, make_video: Any, flagger: list[str]) -> tuple[Path, int, int]:
    """(case file, case id, run id) of one clip analysed into a case."""
    db = tmp_path / "c.sqlite"
    with CaseStore(db) as s:
        cid = s.create_case("T-1", examiner="E")
    video = make_video("a.mp4", gradient_frames(40, 96, 64))
    res = analyze_into_case(db, cid, video, AnalysisOptions(detectors=flagger, work_dir=tmp_path / "w"))
    return db, cid, res["case"]["run_id"]


def verify(db: Path, cid: int, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli(["--db", str(db), "case", "verify", str(cid)])
    return code, capsys.readouterr().out


def test_untouched_case_verifies(analysed: tuple[Path, int, int], capsys: pytest.CaptureFixture[str]) -> None:
    db, cid, _ = analysed
    code, out = verify(db, cid, capsys)
    assert code == 0 and "intact" in out and "stored objects match" in out


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        # the run's fused finding, as shown by `case show` and the report's conclusion
        ("UPDATE runs SET finding = json_set(finding, '$.value', 'inconsistent')", r"runs row \d+: finding changed"),
        # a detector's assessment (its reading for fusion)
        ("UPDATE results SET assessment = 'inconsistent'", r"results row \d+ \(run \d+, detector test_flagger\): assessment changed"),
        # the full result JSON (the report's numbers)
        ("UPDATE results SET result = replace(result, '0.25', '0.95')", r"results row \d+ \(run \d+, detector test_flagger\): result changed"),
        ("UPDATE segments SET start_frame = 0", r"segments row \d+ \(run \d+, detector test_flagger\): start_frame changed"),
        ("DELETE FROM segments", r"segments .*\(run \d+, detector test_flagger\): deleted outside Verity"),
        ("INSERT INTO results (run_id, detector, status, assessment, result) SELECT id, 'forged', 'ok', 'inconsistent', '{}' FROM runs",
         r"results row \d+ \(run \d+, detector forged\): no audit row records it"),
        ("UPDATE runs SET facepass_sha256 = '0000'", r"runs row \d+: facepass_sha256 changed"),
        ("UPDATE evidence SET sha256 = '00' || substr(sha256, 3)", r"evidence row \d+: sha256 changed"),
    ],
)
def test_edited_store_is_named_and_report_refused(
    analysed: tuple[Path, int, int], tmp_path: Path, capsys: pytest.CaptureFixture[str], sql: str, expected: str
) -> None:
    db, cid, _ = analysed
    with sqlite3.connect(db) as conn:  # the tamperer's tool; audit table and its triggers untouched
        conn.execute(sql)
    code, out = verify(db, cid, capsys)
    assert code == 1, out
    assert "intact" not in out
    import re

    assert re.search(expected, out), out
    # the report must not state an edited value: refused, nothing written, the refusal audited
    target = tmp_path / "r.json"
    code = cli(["--db", str(db), "report", str(cid), "--json", str(target)])
    err = capsys.readouterr().err
    assert code == 10 and "report refused" in err and re.search(expected, err), err
    assert not target.exists()
    with CaseStore(db) as s:
        assert s.audit_log(cid)[-1]["action"] == "report export refused: stored results changed"


def test_changed_facepass_file_is_named(analysed: tuple[Path, int, int], capsys: pytest.CaptureFixture[str]) -> None:
    db, cid, run_id = analysed
    with CaseStore(db) as s:
        fp = Path(s.get_run(run_id)["facepass_path"])
    fp.write_bytes(fp.read_bytes() + b"\0")
    code, out = verify(db, cid, capsys)
    assert code == 1 and f"runs row {run_id}: its face pass file {fp.name} changed" in out


def test_audit_row_records_the_stored_digest(analysed: tuple[Path, int, int]) -> None:
    """What the chain holds: the canonical-JSON sha256 of each object, in the row of its write."""
    db, cid, run_id = analysed
    with CaseStore(db) as s:
        row = next(r for r in s.audit_log(cid) if r["action"] == "detector result stored")
        recs = {r["table"]: r for r in row["details"]["stored"]}
        assert set(recs) == {"results", "segments"} and recs["results"]["key"] == [run_id, "test_flagger"]
        cols = ("run_id", "detector", "status", "prediction", "confidence", "assessment", "weights_sha256", "result", "stored_at")
        stored = s.db.conn.execute(f"SELECT {', '.join(cols)} FROM results WHERE run_id = ?", (run_id,)).fetchone()
        canonical = json.dumps([list(stored)], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert recs["results"]["sha256"] == hashlib.sha256(canonical.encode()).hexdigest()


# -- a case file from before result hashing (schema 1) ---------------------------------------------


def _legacy_row(conn: sqlite3.Connection, case_id: int, action: str, obj: tuple[str, int], details: dict[str, Any]) -> None:
    """An audit row exactly as schema-1 Verity wrote it (no `stored` digests)."""
    from core.cases.audit import GENESIS, details_json, row_hash

    last = conn.execute("SELECT seq, hash FROM audit WHERE case_id = ? ORDER BY seq DESC LIMIT 1", (case_id,)).fetchone()
    row = {"case_id": case_id, "seq": last[0] + 1 if last else 1, "at": "2026-01-02T10:00:00.000+00:00", "actor": "E",
           "action": action, "object_type": obj[0], "object_id": obj[1], "details": details_json(details),
           "prev_hash": last[1] if last else GENESIS}
    row["hash"] = row_hash(row)
    conn.execute("INSERT INTO audit (case_id, seq, at, actor, action, object_type, object_id, details, prev_hash, hash) "
                 "VALUES (:case_id, :seq, :at, :actor, :action, :object_type, :object_id, :details, :prev_hash, :hash)", row)
    conn.execute("UPDATE cases SET audit_head_seq = ?, audit_head_hash = ? WHERE id = ?", (row["seq"], row["hash"], case_id))


def make_schema1_file(db: Path) -> None:
    import sqlite_utils

    from core.cases import schema

    conn = sqlite3.connect(db, isolation_level=None)
    schema.MIGRATIONS[0](sqlite_utils.Database(conn))  # the schema-1 tables
    conn.execute("PRAGMA user_version = 1")
    t = "2026-01-02T10:00:00.000+00:00"
    conn.execute("INSERT INTO cases (id, number, examiner, created_at, created_by, audit_head_seq) VALUES (1, 'OLD-1', 'E', ?, 'E', 0)", (t,))
    _legacy_row(conn, 1, "case created", ("case", 1), {"number": "OLD-1"})
    conn.execute("INSERT INTO evidence (id, case_id, name, path, sha256, size_bytes, probe, imported_at, imported_by) "
                 "VALUES (1, 1, 'a.mp4', '/nowhere/a.mp4', ?, 10, '{}', ?, 'E')", ("ab" * 32, t))
    _legacy_row(conn, 1, "evidence imported", ("evidence", 1), {"sha256": "ab" * 32})
    conn.execute("INSERT INTO runs (id, case_id, evidence_id, status, started_at, finished_at, finding) "
                 "VALUES (1, 1, 1, 'done', ?, ?, '{\"value\": \"consistent\"}')", (t, t))
    conn.execute("INSERT INTO results (run_id, detector, status, assessment, result) VALUES (1, 'old_det', 'ok', 'consistent', '{}')")
    conn.execute("INSERT INTO segments (run_id, detector, start_frame, end_frame, reason) VALUES (1, 'old_det', 3, 9, 'old')")
    _legacy_row(conn, 1, "analysis done", ("run", 1), {"status": "done", "finding": "consistent"})
    conn.close()


def test_schema1_file_verifies_marked_pre_hashing_then_is_covered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "old.sqlite"
    make_schema1_file(db)
    code, out = verify(db, 1, capsys)  # opening upgrades the file
    assert code == 0 and "intact" in out, out
    assert "recorded before result hashing" in out  # honest about what the chain could not see
    with CaseStore(db) as s:
        assert s.db.conn.execute("PRAGMA user_version").fetchone()[0] >= 2
        assert s.audit_log(1)[-1]["action"] == "stored results sealed at upgrade"
    with sqlite3.connect(db) as conn:  # an edit after the upgrade is caught
        conn.execute("UPDATE results SET assessment = 'inconsistent'")
    code, out = verify(db, 1, capsys)
    assert code == 1 and "results row 1 (run 1, detector old_det): assessment changed" in out, out
