"""`verity batch`: inputs, the in-process runner, and the Ray runner on a local 2-CPU cluster.

The Ray tests share one cluster (module fixture) and skip, saying why, where the `lab` extra (ray)
is not installed. Its worker processes run `install_worker_hooks` at start: test-only behaviour
keyed by file name (a worker that kills itself mid-analysis, a file that takes long) and a log of
every checkpoint load, so the tests can see what happened inside the workers.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from core import detectors as registry
from core.batch import run_batch, table
from core.batch.inputs import expand, items
from core.batch.task import run_key
from core.cases import CaseStore
from core.cli import main as cli
from core.detectors.base import Detector, DetectorResult
from core.errors import VerityError
from core.pipeline import AnalysisOptions
from core.progress import CancelToken, no_progress
from tests.conftest import gradient_frames, write_video

WEIGHT_FREE = ["av_sync", "blink_physiology", "landmark_motion"]
HOOK = "tests.test_batch.install_worker_hooks"


# ---------------------------------------------------------------------------------------------
# helpers


def clip(folder: Path, name: str, shift: int = 0, n: int = 20, audio: bool = False) -> Path:
    """A small face-free clip; `shift` makes its content (and sha256) differ from its siblings'."""
    folder.mkdir(parents=True, exist_ok=True)
    sound = None
    if audio:
        sound = (0.1 * np.random.default_rng(shift).standard_normal(int(n / 25 * 16000))).astype(np.float32)
    return write_video(folder / name, np.roll(gradient_frames(n), shift, axis=2), audio=sound)


def face_clips(media: Path, folder: Path, n: int = 40, side: int = 192) -> list[Path]:
    """The first n frames (and audio) of three real clips, downscaled: faces, blinks, av_sync at small cost."""
    import av

    from core.audio import load_audio

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for src in ("real/retalking_face1_man_suit.mp4", "real/hdtf_katiehill_sadtalker_ref.mp4", "fake/avlips_fake_0.mp4"):
        frames = []
        with av.open(str(media / src)) as c:
            for f in c.decode(video=0):
                frames.append(f.to_ndarray(format="rgb24", width=side, height=side))
                if len(frames) == n:
                    break
        sound = load_audio(media / src).samples[: int(n / 25 * 16000)]
        out.append(write_video(folder / Path(src).name, frames, audio=sound))
    return out


def comparable(d: dict[str, Any]) -> dict[str, Any]:
    """An analysis JSON without what differs between two runs of the same analysis: timings, the
    face pass file's location, the case block."""
    def strip(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k != "processing_time"}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    d = strip(json.loads(json.dumps(d)))
    d.pop("case", None)
    d["facepass"].pop("path")
    return d


def actions(store: CaseStore, case_id: int, evidence_id: int) -> list[str]:
    """The audit actions about one evidence item and its runs, in order."""
    runs = {r["id"] for r in store.runs_for(evidence_id=evidence_id)}
    return [
        r["action"] for r in store.audit_log(case_id)
        if (r["object_type"] == "evidence" and r["object_id"] == evidence_id) or (r["object_type"] == "run" and r["object_id"] in runs)
    ]


def new_case(db: Path) -> int:
    with CaseStore(db) as s:
        return s.create_case("B-1", "batch", examiner="Examiner")


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.mp4.json")}


# ---------------------------------------------------------------------------------------------
# inputs


def test_folders_manifests_and_json_names(tmp_path: Path) -> None:
    a = clip(tmp_path / "in" / "x", "same.mp4")
    b = clip(tmp_path / "in" / "y", "same.mp4", shift=3)
    c = clip(tmp_path / "in", "c.mp4", shift=5)
    (tmp_path / "in" / "notes.txt").write_text("not a video")
    assert expand([tmp_path / "in"]) == sorted([a, b, c])
    tsv = tmp_path / "list.tsv"
    tsv.write_text("path\tlabel\nin/c.mp4\treal\nin/x/same.mp4\tfake\nin/missing.mp4\treal\n")
    plain = tmp_path / "list.txt"
    plain.write_text(f"# evidence\n{c}\n\n{c}\n")
    assert expand([tsv]) == [c, a, tmp_path / "in" / "missing.mp4"]  # a listed missing file is kept: it fails, the rest runs
    assert expand([plain, c]) == [c]  # one file named three times is analysed once
    names = [i.out_name for i in items(expand([tmp_path / "in"]))]
    assert names[0] == "c.mp4.json" and len(set(names)) == 3
    assert all(n.startswith("same.mp4.") and n.endswith(".json") and len(n) == len("same.mp4.") + 8 + 5 for n in names[1:])
    assert names == [i.out_name for i in items(expand([tmp_path / "in"]))]  # stable across runs
    with pytest.raises(VerityError, match="no such file or folder"):
        expand([tmp_path / "nowhere"])
    bad = tmp_path / "bad.csv"
    bad.write_text("name,label\nc.mp4,real\n")
    with pytest.raises(VerityError, match="'path' or 'file' column"):
        expand([bad])


def test_key_ignores_order_and_tracks_parameters() -> None:
    o = AnalysisOptions()
    k = run_key(o.parameters(), ["b", "a"])
    assert k == run_key(json.loads(json.dumps(o.parameters())), ["a", "b"])
    o.detector_params = {"av_sync": {"window_s": 3.0}}
    assert run_key(o.parameters(), ["a", "b"]) != k
    assert run_key(AnalysisOptions().parameters(), ["a"]) != k


# ---------------------------------------------------------------------------------------------
# the in-process runner: the case writer, resume, custody refusal, cancel


class CancelsMidway(Detector):
    """Test detector: acts as the examiner's Ctrl-C in the middle of the first file's analysis."""

    name = "test_cancels_midway"
    needs_faces = False

    def run(self, ctx: Any) -> DetectorResult:
        ctx.cancel.cancel()
        ctx.check_cancel()
        raise AssertionError("not reached")


@pytest.fixture
def cancelling_detector() -> Iterator[str]:
    registry.register(CancelsMidway)
    yield CancelsMidway.name
    registry._REGISTRY.pop(CancelsMidway.name, None)


def test_local_case_batch_resume_and_custody(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, out = tmp_path / "cases.sqlite", tmp_path / "out"
    cid = new_case(db)
    a, b = clip(tmp_path / "in", "a.mp4"), clip(tmp_path / "in", "b.mp4", shift=7)
    manifest = tmp_path / "m.txt"
    manifest.write_text(f"{a}\n{b}\n{tmp_path / 'in' / 'gone.mp4'}\n")
    opts = AnalysisOptions(detectors=WEIGHT_FREE)

    report = run_batch([manifest], out, opts, db=db, case_id=cid)
    assert [r.status for r in report.rows] == ["done", "done", "failed"]
    assert "gone.mp4" in report.rows[2].reason and "\n" not in report.rows[2].reason
    with CaseStore(db) as s:
        assert s.verify_audit(cid).ok
        evs = s.evidence_for(cid)
        assert [Path(e["path"]).name for e in evs] == ["a.mp4", "b.mp4"]
        for ev in evs:
            assert actions(s, cid, ev["id"]) == ["evidence imported", "analysis started", "evidence re-hashed before analysis", "analysis done"]
            (run,) = s.runs_for(evidence_id=ev["id"])
            assert run["status"] == "done" and run["detectors_asked"] == WEIGHT_FREE
            assert sorted(r["detector"] for r in s.results_for(run["id"])) == WEIGHT_FREE
            assert Path(run["facepass_path"]).is_file()
            written = json.loads((out / f"{Path(ev['path']).name}.json").read_text())
            assert written["case"] == {"case_id": cid, "evidence_id": ev["id"], "run_id": run["id"]}
            assert written["evidence"]["sha256"] == ev["sha256"] and written["finding"] == run["finding"]
        assert s.audit_log(cid)[-1]["action"] == "evidence import refused"
    assert cli(["--db", str(db), "case", "verify", str(cid)]) == 0
    assert "audit log intact" in capsys.readouterr().out

    # a re-run skips every finished file: no new run, no new audit row, the JSON untouched
    before, n_audit = mtimes(out), len(CaseStore(db).audit_log(cid))
    report = run_batch([manifest], out, opts, db=db, case_id=cid)
    assert [r.status for r in report.rows] == ["skipped", "skipped", "failed"]
    assert report.rows[0].finding == "inconclusive" and report.rows[0].detectors
    assert mtimes(out) == before
    with CaseStore(db) as s:
        assert len(s.runs_for(case_id=cid)) == 2
        assert len(s.audit_log(cid)) == n_audit + 1  # only the missing file's refused intake again

    # the evidence changed since intake: the worker's re-hash differs, the driver refuses and audits it
    clip(tmp_path / "in", "b.mp4", shift=9)
    report = run_batch([a, b], out, opts, db=db, case_id=cid)
    assert [r.status for r in report.rows] == ["skipped", "refused"]
    assert "has changed since intake" in report.rows[1].reason
    with CaseStore(db) as s:
        assert s.audit_log(cid)[-1]["action"] == "analysis refused: evidence hash mismatch"
        assert s.verify_audit(cid).ok
    text = table(report.rows)
    assert "refused" in text and "has changed since intake" in text

    # evidence gone from where the worker reads it: listed failed, and the refusal is in the audit log
    a.unlink()
    report = run_batch([manifest], out, opts, db=db, case_id=cid)
    assert report.rows[0].status == "failed" and "cannot be read" in report.rows[0].reason
    with CaseStore(db) as s:
        assert [r["action"] for r in s.audit_log(cid)].count("analysis refused") == 1 and s.verify_audit(cid).ok


def test_local_cancel_midway_then_resume(tmp_path: Path, cancelling_detector: str) -> None:
    db, out = tmp_path / "cases.sqlite", tmp_path / "out"
    cid = new_case(db)
    files = [clip(tmp_path / "in", f"{k}.mp4", shift=k) for k in range(3)]
    report = run_batch([tmp_path / "in"], out, AnalysisOptions(detectors=["blink_physiology", cancelling_detector]), db=db, case_id=cid)
    assert report.cancelled and [r.status for r in report.rows] == ["cancelled", "not run", "not run"]
    assert not list(out.glob("*.mp4.json")) and not list(out.glob(".*.tmp"))
    with CaseStore(db) as s:
        assert [r["status"] for r in s.runs_for(case_id=cid)] == ["cancelled"]
        assert len(s.evidence_for(cid)) == 1  # files the batch never reached were not taken in
        assert s.verify_audit(cid).ok
    report = run_batch([tmp_path / "in"], out, AnalysisOptions(detectors=["blink_physiology"]), db=db, case_id=cid)
    assert [r.status for r in report.rows] == ["done"] * 3 and not report.cancelled
    assert sorted(mtimes(out)) == sorted(f"{f.name}.json" for f in files)
    summary = json.loads((out / "batch-summary.json").read_text())
    assert summary["counts"]["done"] == 3 and summary["files_per_min"] > 0


def test_cli_batch_without_ray(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip(tmp_path / "in", "a.mp4")
    args = ["batch", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--detectors", "blink_physiology", "--work-dir", str(tmp_path / "w")]
    assert cli(args) == 0
    text = capsys.readouterr().out
    assert "a.mp4" in text and "done" in text and "1 done" in text
    assert cli(args) == 0 and "1 skipped" in capsys.readouterr().out
    assert cli([*args[:-4], "--detectors", "nonsense"]) == 2
    assert "unknown detector" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Ray: one local cluster with 2 CPUs for the module


def install_worker_hooks() -> None:
    """Run by every worker process of the test cluster (Ray's worker_process_setup_hook)."""
    from core import pipeline, weights

    marks = Path(os.environ["VERITY_TEST_MARKS"])
    real_analyze, real_load = pipeline.analyze, weights.load_state_dict

    def analyze(path: Any, options: Any = None, progress: Any = no_progress, cancel: Any = None, **kw: Any) -> Any:
        name = Path(path).name
        if name.startswith("crash_"):
            attempts = marks / f"attempts-{name}"
            first = not attempts.exists()
            with open(attempts, "a") as fh:
                fh.write(f"{os.getpid()}\n")
            if first or name.startswith("crash_always"):
                def progress(stage: str, fraction: float, message: str = "") -> None:  # noqa: ARG001
                    if stage == "detectors":  # the face pass is done and stored: die in the middle
                        os.kill(os.getpid(), signal.SIGKILL)
        if name.startswith("slow_") and (marks / "slow").exists():
            time.sleep(120)  # until ray.cancel interrupts it
        return real_analyze(path, options, progress, cancel, **kw)

    def load_state_dict(source: Any, *a: Any, **k: Any) -> Any:
        with open(marks / f"loads-{os.getpid()}", "a") as fh:
            fh.write(f"{source}\n")
        return real_load(source, *a, **k)

    pipeline.analyze, weights.load_state_dict = analyze, load_state_dict


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    ray = pytest.importorskip("ray", reason="Ray is not installed (the `lab` extra: pip install -e \".[lab]\")")
    base = tmp_path_factory.mktemp("ray")
    env = {"VERITY_DATA_DIR": base / "data", "VERITY_CACHE_DIR": base / "cache", "VERITY_WEIGHTS_DIR": base / "weights", "VERITY_TEST_MARKS": base / "marks"}
    env["VERITY_TEST_MARKS"].mkdir()
    root = str(Path(__file__).resolve().parents[1])  # workers import this module (tests.test_batch) by name
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():  # the workers inherit the environment the cluster starts with
            mp.setenv(k, str(v))
        mp.setenv("VERITY_NO_SHIPPED_VALIDATION", "1")  # as tests/conftest.py sets for the driver
        mp.setenv("PYTHONPATH", os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p))
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                 runtime_env={"worker_process_setup_hook": HOOK})
    yield SimpleNamespace(ray=ray, env=env, marks=env["VERITY_TEST_MARKS"])
    ray.shutdown()


@pytest.fixture
def lab(cluster: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """The driver sees the folders the workers see; lab(**kw) makes a RayRunner on the shared cluster."""
    from core.batch import RayRunner

    for k, v in cluster.env.items():
        monkeypatch.setenv(k, str(v))
    return lambda **kw: RayRunner("local", **kw)


@pytest.mark.media
def test_ray_batch_json_equals_sequential_analyze(media: Path, tmp_path: Path, lab: Callable[..., Any]) -> None:
    videos = face_clips(media, tmp_path / "in")
    seq = tmp_path / "seq"
    assert cli(["analyze", *map(str, videos), "--json", str(seq), "--detectors", ",".join(WEIGHT_FREE), "--work-dir", str(tmp_path / "w1")]) == 0
    runner = lab()
    assert runner.slots == 2
    report = run_batch([tmp_path / "in"], tmp_path / "out", AnalysisOptions(detectors=WEIGHT_FREE, work_dir=tmp_path / "w2"), runner=runner)
    assert [r.status for r in report.rows] == ["done"] * 3
    for v in videos:
        ours = json.loads((tmp_path / "out" / f"{v.name}.json").read_text())
        theirs = json.loads((seq / f"{v.name}.json").read_text())
        assert ours["faces"] and ours["detectors"]["blink_physiology"]["status"] == "ok"  # a real analysis, not empty
        assert comparable(ours) == comparable(theirs), v.name
        assert ours["facepass"]["path"].startswith(str(tmp_path / "w2"))  # computed by the worker, not reused
    assert all(r.worker and not r.worker.startswith(f"{os.uname().nodename}:{os.getpid()}") for r in report.rows)


def test_ray_killed_worker_is_retried(tmp_path: Path, lab: Callable[..., Any], cluster: SimpleNamespace) -> None:
    for k, name in enumerate(("crash_once.mp4", "crash_always.mp4", "fine.mp4")):
        clip(tmp_path / "in", name, shift=k)
    report = run_batch([tmp_path / "in"], tmp_path / "out", AnalysisOptions(detectors=["blink_physiology"]), runner=lab(retries=1))
    rows = {Path(r.file).name: r for r in report.rows}
    assert rows["fine.mp4"].status == "done"
    once = (cluster.marks / "attempts-crash_once.mp4").read_text().split()
    assert rows["crash_once.mp4"].status == "done" and len(once) == 2 and once[0] != once[1]  # died, retried in a new process
    assert rows["crash_once.mp4"].worker.endswith(f":{once[1]}")
    assert rows["crash_always.mp4"].status == "failed" and "worker died 2 time(s)" in rows["crash_always.mp4"].reason
    assert len((cluster.marks / "attempts-crash_always.mp4").read_text().split()) == 2
    assert sorted(p.name for p in (tmp_path / "out").glob("*.mp4.json")) == ["crash_once.mp4.json", "fine.mp4.json"]
    assert not list((tmp_path / "out").glob(".*.tmp"))
    assert "crash_always.mp4: the worker died" in table(report.rows)


def _tiny_lipfd(folder: Path) -> None:
    """A randomly initialised tiny LipFD, saved and registered as `lipfd_local`: proves loading, not accuracy."""
    import torch

    from core.detectors.lipfd import LipFDPreprocessing
    from core.models.lipfd import LipFD, LipFDConfig
    from core.weights import register_local, save_checkpoint

    cfg = LipFDConfig(clip_model="tiny", clip_image_size=32, crop_size=32)
    torch.manual_seed(0)
    path = folder / "tiny_lipfd.safetensors"
    meta = {"architecture": {**cfg.to_dict(), "model": "LipFD"}, "preprocessing": LipFDPreprocessing(frame_size=64).to_dict()}
    sha = save_checkpoint(path, LipFD(cfg).state_dict(), meta)
    register_local("lipfd_local", path, detector="lipfd", kind="full", sha256=sha)


def test_ray_case_import_rerun_and_one_model_load_per_worker(
    tmp_path: Path, lab: Callable[..., Any], cluster: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    _tiny_lipfd(tmp_path)
    db, out = tmp_path / "cases.sqlite", tmp_path / "out"
    cid = new_case(db)
    for k in range(3):
        clip(tmp_path / "in", f"talk{k}.mp4", shift=k, n=30, audio=True)
    opts = AnalysisOptions(detectors=["av_sync", "blink_physiology", "lipfd"], detector_params={"lipfd": {"n_extract": 2}})
    runner = lab(cpus_per_file=2, gpus_per_file=0.5)  # one file at a time: one worker process serves all three
    assert runner.gpus_per_file == 0.0 and runner.slots == 1  # no GPU in this cluster: the tasks ask for CPUs only
    report = run_batch([tmp_path / "in"], out, opts, runner=runner, db=db, case_id=cid)
    assert [r.status for r in report.rows] == ["done"] * 3
    with CaseStore(db) as s:
        assert s.verify_audit(cid).ok
        for ev in s.evidence_for(cid):
            assert actions(s, cid, ev["id"]) == ["evidence imported", "analysis started", "evidence re-hashed before analysis", "analysis done"]
            (run,) = s.runs_for(evidence_id=ev["id"])
            res = {r["detector"]: r for r in s.results_for(run["id"])}
            assert sorted(res) == ["av_sync", "blink_physiology", "lipfd"]
            assert res["lipfd"]["status"] == "ok" and list(res["lipfd"]["weights_sha256"]) == ["lipfd_local"]
            rehash = [r for r in s.audit_log(cid) if r["action"] == "evidence re-hashed before analysis" and r["object_id"] == ev["id"]][0]
            assert rehash["details"]["sha256"] == ev["sha256"] and "pid" in rehash["details"]["hashed_by"]
    assert cli(["--db", str(db), "case", "verify", str(cid)]) == 0
    assert "audit log intact" in capsys.readouterr().out

    # the checkpoint was loaded once per worker process, not once per file
    pids = [int(r.worker.rsplit(":", 1)[1]) for r in report.rows]
    loads = {pid: (cluster.marks / f"loads-{pid}").read_text().split() for pid in set(pids)}
    assert all(n == ["lipfd_local"] for n in loads.values()), loads
    assert len(pids) == 3 > len(loads)

    before = mtimes(out)
    report = run_batch([tmp_path / "in"], out, opts, runner=lab(), db=db, case_id=cid)
    assert [r.status for r in report.rows] == ["skipped"] * 3
    assert mtimes(out) == before
    with CaseStore(db) as s:
        assert len(s.runs_for(case_id=cid)) == 3 and s.verify_audit(cid).ok


def test_ray_cancel_leaves_store_and_folder_consistent(tmp_path: Path, lab: Callable[..., Any], cluster: SimpleNamespace) -> None:
    db, out = tmp_path / "cases.sqlite", tmp_path / "out"
    cid = new_case(db)
    for k, name in enumerate(("a_fast.mp4", "slow_b.mp4", "slow_c.mp4")):
        clip(tmp_path / "in", name, shift=k)
    (cluster.marks / "slow").touch()
    cancel = CancelToken()
    opts = AnalysisOptions(detectors=["blink_physiology"])

    def on_row(row: Any) -> None:  # the examiner's Ctrl-C (the CLI's SIGINT handler sets this token) after the first result
        cancel.cancel()

    report = run_batch([tmp_path / "in"], out, opts, runner=lab(), db=db, case_id=cid, cancel=cancel, on_row=on_row)
    assert report.cancelled and [r.status for r in report.rows] == ["done", "cancelled", "not run"]
    assert sorted(p.name for p in out.glob("*.mp4.json")) == ["a_fast.mp4.json"] and not list(out.glob(".*.tmp"))
    with CaseStore(db) as s:
        assert [r["status"] for r in s.runs_for(case_id=cid)] == ["done", "cancelled"]
        assert s.verify_audit(cid).ok

    (cluster.marks / "slow").unlink()  # (resuming after a cancel: test_local_cancel_midway_then_resume)
