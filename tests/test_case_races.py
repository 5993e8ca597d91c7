"""Issue 13 item 9: two `analyze --case` of the same new file at once both succeed, with one
evidence item between them (today one of them failed with `UNIQUE constraint failed`).

Each worker has its own connection (as two processes would); a barrier inside the intake hash
holds both until each has looked the file up and found it new, which is the losing interleaving
that happened 2 times in 3 by chance.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import core.evidence
from core import detectors as registry
from core.cases import CaseStore, analyze_into_case
from core.detectors.base import Detector, DetectorResult
from core.pipeline import AnalysisOptions
from tests.conftest import gradient_frames


class Quick(Detector):
    name = "test_quick"
    needs_faces = False

    def run(self, ctx: Any) -> DetectorResult:
        return DetectorResult(prediction="REAL", assessment="consistent")


@pytest.fixture
def quick() -> Iterator[list[str]]:
    registry.register(Quick)
    yield [Quick.name]
    registry._REGISTRY.pop(Quick.name, None)


def test_concurrent_analyze_of_one_new_file(tmp_path: Path, make_video: Any, quick: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "c.sqlite"
    with CaseStore(db) as s:
        cid = s.create_case("R-1", examiner="E")
    video = make_video("a.mp4", gradient_frames(20, 64, 48))
    barrier = threading.Barrier(2, timeout=20)
    held: set[int] = set()
    real_hash = core.evidence.sha256_file

    def hash_then_wait(*args: Any, **kw: Any) -> str:
        digest = real_hash(*args, **kw)
        if threading.get_ident() not in held:  # the intake hash of each worker: both have found the file new
            held.add(threading.get_ident())
            barrier.wait()
        return digest

    monkeypatch.setattr(core.evidence, "sha256_file", hash_then_wait)
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(analyze_into_case(db, cid, video, AnalysisOptions(detectors=quick, work_dir=tmp_path / "w")))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    monkeypatch.setattr(core.evidence, "sha256_file", real_hash)
    assert not errors, errors
    assert len(results) == 2 and len(held) == 2
    assert {r["case"]["evidence_id"] for r in results} == {1}  # one item, imported once
    with CaseStore(db) as s:
        assert len(s.evidence_for(cid)) == 1
        assert [r["status"] for r in s.runs_for(case_id=cid)] == ["done", "done"]
        assert [r["action"] for r in s.audit_log(cid)].count("evidence imported") == 1
        assert s.verify_audit(cid).ok


def test_concurrent_case_creation_of_one_number(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same race on a case number: one case, and a clear 'already exists' for the other."""
    from core.errors import VerityError

    db = tmp_path / "c.sqlite"
    CaseStore(db).close()
    outcomes: list[Any] = []
    barrier = threading.Barrier(2, timeout=20)

    def work() -> None:
        with CaseStore(db) as s:
            barrier.wait()
            try:
                outcomes.append(s.create_case("SAME", examiner="E"))
            except VerityError as exc:
                outcomes.append(str(exc))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(map(str, outcomes))[0] == "1" and "already exists" in sorted(map(str, outcomes))[1], outcomes
