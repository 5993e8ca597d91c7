"""Issue 13 item 8: each fault of the case file is one line on stderr with its own exit code.

Read-only file 7, full disk 8, damaged file 6 (and `case verify` runs SQLite's integrity check),
foreign SQLite file 5 (never written into), missing file for a read command 4 (never created),
a closed output pipe 141 (silent). Faults SQLite would need real hardware for are simulated at
the connection: a read-only open (`mode=ro`) and a page limit (`max_page_count`).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core import detectors as registry
from core.cases import CaseStore
from core.cli import main as cli
from core.detectors.base import Detector, DetectorResult
from tests.conftest import gradient_frames

ROOT = Path(__file__).resolve().parents[1]


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err and "Error:" not in lines[0].split("error:", 1)[-1], err
    return lines[0]


def make_case(db: Path) -> None:
    assert cli(["--db", str(db), "case", "new", "--number", "F-1", "--examiner", "E"]) == 0


@pytest.fixture
def patch_connect(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path, Callable[[sqlite3.Connection], None] | None, bool], None]:
    """Wrap sqlite3.connect for one case file: open it read-only, or run `after` on each new connection."""
    real = sqlite3.connect

    def install(db: Path, after: Callable[[sqlite3.Connection], None] | None = None, read_only: bool = False) -> None:
        def connect(database: Any, *args: Any, **kw: Any) -> sqlite3.Connection:
            if Path(str(database)).resolve() != db.resolve():
                return real(database, *args, **kw)
            conn = real(f"file:{db}?mode=ro", *args, **{**kw, "uri": True}) if read_only else real(database, *args, **kw)
            if after is not None:
                after(conn)
            return conn

        monkeypatch.setattr(sqlite3, "connect", connect)

    return install


def test_read_only_case_file(tmp_path: Path, patch_connect: Any, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "c.sqlite"
    make_case(db)
    capsys.readouterr()
    patch_connect(db, read_only=True)
    assert cli(["--db", str(db), "case", "show", "1"]) == 0  # reading works
    assert "F-1" in capsys.readouterr().out
    assert cli(["--db", str(db), "case", "new", "--number", "F-2"]) == 7
    line = one_line(capsys.readouterr().err)
    assert "read-only" in line and str(db) in line


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes read-only files anyway")
def test_read_only_case_file_by_permissions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "c.sqlite"
    make_case(db)
    capsys.readouterr()
    db.chmod(0o444)
    try:
        assert cli(["--db", str(db), "case", "new", "--number", "F-2"]) == 7
        assert "read-only" in one_line(capsys.readouterr().err)
    finally:
        db.chmod(0o644)


class Big(Detector):
    """A result too large for the space left."""

    name = "test_big"
    needs_faces = False

    def run(self, ctx: Any) -> DetectorResult:
        return DetectorResult(prediction="REAL", assessment="consistent", curves={"noise": [k / 7 for k in range(200_000)]})


@pytest.fixture
def big() -> Iterator[str]:
    registry.register(Big)
    yield Big.name
    registry._REGISTRY.pop(Big.name, None)


def test_full_disk_during_a_run(tmp_path: Path, make_video: Any, patch_connect: Any, big: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "c.sqlite"
    make_case(db)
    video = make_video("a.mp4", gradient_frames(20, 64, 48))

    def few_pages_left(conn: sqlite3.Connection) -> None:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 12}")  # room for small rows, not for a 3 MB result

    patch_connect(db, few_pages_left)
    capsys.readouterr()
    code = cli(["--db", str(db), "analyze", str(video), "--case", "1", "--detectors", big, "--work-dir", str(tmp_path / "w")])
    line = one_line(capsys.readouterr().err)
    assert code == 8 and "disk is full" in line, line
    with CaseStore(db) as s:  # the run is not left `running` with its cause lost
        (run,) = s.runs_for()
        assert run["status"] == "failed" and "disk is full" in run["error"]
        assert s.verify_audit(1).ok


def corrupt(db: Path) -> None:
    """Overwrite the middle of every page after the first two (the header and schema stay)."""
    size = db.stat().st_size
    with open(db, "r+b") as fh:
        for offset in range(2 * 4096, size, 4096):
            fh.seek(offset + 300)
            fh.write(b"\xa5" * 3000)


def test_damaged_case_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "c.sqlite"
    make_case(db)
    with CaseStore(db) as s:
        for k in range(200):
            s.audit(1, "note", "case", 1, {"text": f"{k} " + "x" * 300})
        s.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    corrupt(db)
    capsys.readouterr()
    code = cli(["--db", str(db), "case", "verify", "1"])
    out, err = capsys.readouterr()
    assert code == 6 and "intact" not in out, (out, err)
    assert "damaged" in one_line(err)
    assert cli(["--db", str(db), "case", "show", "1"]) == 6
    assert "damaged" in one_line(capsys.readouterr().err)


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.parametrize("args", [["case", "list"], ["case", "show", "1"], ["case", "verify", "1"], ["case", "new", "--number", "X"]])
def test_foreign_sqlite_file_is_never_written(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    db = tmp_path / "photos.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO photos (name) VALUES ('holiday.jpg')")
    conn.close()
    before = sha(db)
    assert cli(["--db", str(db), *args]) == 5
    line = one_line(capsys.readouterr().err)
    assert "not a Verity case file" in line and "photos" in line
    assert sha(db) == before and not Path(f"{db}-wal").exists()
    with sqlite3.connect(db) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["photos"]


@pytest.mark.parametrize(
    "args",
    [["case", "list"], ["case", "show", "1"], ["case", "verify", "1"], ["case", "bookmark", "1", "0", "n"], ["report", "1", "--json", "r.json"]],
)
def test_mistyped_db_is_not_created(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    db = tmp_path / "typo" / "cases.sqlit"
    assert cli(["--db", str(db), *args]) == 4
    line = one_line(capsys.readouterr().err)
    assert "no case file" in line and str(db) in line
    assert not db.exists() and not db.parent.exists()


def test_case_new_still_creates_the_file(tmp_path: Path) -> None:
    db = tmp_path / "new" / "cases.sqlite"
    make_case(db)
    assert db.is_file()


def test_broken_pipe_is_quiet(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite"
    assert cli(["--db", str(db), "case", "new", "--number", "P-1", "--title", "t" * 400_000]) == 0  # more than a pipe holds
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "--db", str(db), "case", "show", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(100)  # `| head -c 100`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert proc.returncode == 141 and err == "", (proc.returncode, err)
