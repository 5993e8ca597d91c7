"""Why blinks measure shallow: per clip, the eye-quality measures behind the blink-depth gate.

Usage:  python tests/bench/blink_depth.py RUN_DIR [--manifest validation.tsv] [--media DIR]

RUN_DIR: analysis JSONs of `verity analyze ... --json RUN_DIR/` (their face passes are read from
the paths they record). For the main face track of every clip with blinks: the blinks' mean
depth (completeness: the deeper eye's EAR drop below its open level), the eye width, the eye
region's edge blur (measured here on every clip, also where an earlier gate already failed),
the open-eye closure noise, the eye-landmark jitter (median distance of the 12 eye points from
the midpoint of their previous and next positions, per mille of the eye width, open frames), and
whether the detector judged depth and why not.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from core.detectors.blink_physiology import measure_eye_blur
from core.face.facepass import FacePass
from core.signals.eyes import check_eyes
from core.signals.physiology import near_events

MEDIA = Path(__file__).resolve().parents[3] / "shared" / "media"


class _Event:
    def __init__(self, b: dict) -> None:
        self.start_frame, self.end_frame = b["start_frame"], b["end_frame"]


def jitter_permille(frames: np.ndarray, landmarks: np.ndarray, rows: np.ndarray, width: float) -> float:
    lm = landmarks[:, 36:48].astype(np.float64)
    consec = (np.diff(frames[:-1]) == 1) & (np.diff(frames[1:]) == 1) & rows[1:-1]
    if not consec.any() or width <= 0:
        return float("nan")
    flick = np.linalg.norm(lm[1:-1] - 0.5 * (lm[:-2] + lm[2:]), axis=-1).mean(axis=1)
    return float(np.median(flick[consec]) / width * 1000)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--manifest", type=Path, default=MEDIA / "validation.tsv")
    ap.add_argument("--media", type=Path, default=MEDIA)
    args = ap.parse_args()
    print("| clip | label | blinks | mean depth | incomplete | eye px | edge blur px | closure noise | jitter ‰ | depth judged |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in csv.DictReader(args.manifest.open(), delimiter="\t"):
        p = args.run / f"{Path(row['path']).name}.json"
        if not p.is_file():
            continue
        a = json.loads(p.read_text())
        bp = a["detectors"].get("blink_physiology") or {}
        if bp.get("status") != "ok":
            continue
        tr = bp["per_track"][str(bp["metrics"]["main_track"])]
        if not tr["blinks"]:
            continue
        fp = FacePass.load(a["facepass"]["path"])
        t = fp.track(int(bp["metrics"]["main_track"]))
        ok = check_eyes(t.frames, t.landmarks, fp.width, fp.height, fp.fps, t.ear).assessable
        open_rows = ok & ~near_events(t.frames, [_Event(b) for b in tr["blinks"]], 3)
        blur = measure_eye_blur(args.media / row["path"], t.frames, t.landmarks, open_rows)
        depth = tr.get("depth") or {}
        depths = [b["completeness"] for b in tr["blinks"]]
        shallow = sum(d < 0.5 for d in depths)
        why = "yes" if depth.get("measurable") else "no: " + "; ".join(depth.get("reasons") or ["(older run)"])
        print(
            f"| {Path(row['path']).name} | {row['label']} | {len(depths)} | {np.mean(depths):.2f} | {shallow} | "
            f"{depth.get('eye_width_px', tr.get('eye_width_px'))} | {blur:.2f} | {depth.get('closure_noise')} | "
            f"{jitter_permille(t.frames, t.landmarks, open_rows, float(tr['eye_width_px'])):.0f} | {why} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
