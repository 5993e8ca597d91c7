"""Throughput of `verity batch`: the same clips sequential (in process) vs `--ray local`.

    nice python tests/bench/batch_throughput.py [--media ../shared/media] [--long] [--n 10] [--json out.json]

Each mode runs as its own `verity batch` process with a fresh, empty cache folder, so both do the
whole work (hash, face pass, every detector); nothing is reused between them. Reported per mode:
the command's wall time (Python start, and for Ray the cluster's start and stop, included), the
batch's own wall time (first file handed out to last result in), files/min on each, and the
machine's load average before the run (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Short clips of several kinds (GRID 360x288, AVLips / VoxCeleb2 224x224, EMO 512x512): ten make a run of minutes.
CLIPS = [
    "real/grid_bbaf2n.mpg", "real/grid_brbk7n.mpg", "real/grid_id2_swwp2s.mpg", "real/grid_lbax4n.mpg", "real/avlips_real_0.mp4",
    "real/voxceleb2_pcavs_posesrc_620900105.mp4", "real/voxceleb2_pcavs_posesrc_517600055.mp4",
    "real/voxceleb2_pcavs_posesrc_731200067.mp4", "fake/emo_vexpress_talk_emotion.mp4", "fake/avlips_fake_0.mp4",
]

# --long: 4.6-8 s clips of 512x512 to 700x700 (and 50 fps): the face pass dominates, start-up matters less.
LONG_CLIPS = [
    "fake/emo_vexpress_talk_emotion.mp4", "fake/sadtalkervls_zzww_face_dain_50fps.mp4", "fake/sadtalkervls_zzww_sync_none_25fps.mp4",
    "fake/videoretalking_zzww_syncshow.mp4", "fake/wav2lip_zzww_syncshow.mp4", "real/retalking_face1_man_suit.mp4",
    "real/retalking_face4_woman_blue.mp4", "real/hdtf_katiehill_sadtalker_ref.mp4", "fake/wav2lip_wav2liphd_kennedy.mp4",
    "fake/sadtalker_art2_rdradio31.mp4",
]


def run_mode(manifest: Path, work: Path, ray: bool) -> dict[str, object]:
    name = "ray" if ray else "sequential"
    out = work / f"out-{name}"
    env = dict(os.environ, PYTHONPATH=str(ROOT), VERITY_CACHE_DIR=str(work / f"cache-{name}"), TQDM_DISABLE="1")
    cmd = [sys.executable, "-m", "core.cli", "batch", str(manifest), "--out", str(out)] + (["--ray", "local"] if ray else [])
    load = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{name}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    summary = json.loads((out / "batch-summary.json").read_text())
    done = summary["counts"]["done"]
    return {
        "mode": name, "runner": summary["runner"], "files": done, "load_before": [round(x, 2) for x in load],
        "command_wall_s": round(wall, 1), "command_files_per_min": round(60 * done / wall, 2),
        "batch_wall_s": summary["wall_s"], "batch_files_per_min": summary["files_per_min"],
        "per_file_s": [f["seconds"] for f in summary["files"]],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    ap.add_argument("--long", action="store_true", help="the longer, larger clips (LONG_CLIPS)")
    ap.add_argument("--n", type=int, default=len(CLIPS))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    clips = [args.media / c for c in (LONG_CLIPS if args.long else CLIPS)[: args.n]]
    missing = [str(c) for c in clips if not c.is_file()]
    if missing:
        sys.exit(f"clips not found: {', '.join(missing)}")
    with tempfile.TemporaryDirectory(prefix="verity-batch-bench-") as tmp:
        work = Path(tmp)
        manifest = work / "clips.txt"
        manifest.write_text("".join(f"{c}\n" for c in clips))
        rows = [run_mode(manifest, work, ray=False), run_mode(manifest, work, ray=True)]
    print(f"{'mode':<11} {'files':>5} {'command s':>9} {'files/min':>9} {'batch s':>8} {'files/min':>9}  load before (1/5/15 min)")
    for r in rows:
        print(f"{r['mode']:<11} {r['files']:>5} {r['command_wall_s']:>9} {r['command_files_per_min']:>9} {r['batch_wall_s']:>8} "
              f"{r['batch_files_per_min']:>9}  {r['load_before']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
