"""Blink physiology and landmark motion on every clip in ../shared/media, real and fake side by side.

Usage:  python tests/bench/physiology.py [--media DIR] [--clip SUBSTRING] [--json OUT] [--markdown]

For each clip: run (or reuse from the user cache) the one face pass, the pipeline's blink events
(over the frames whose eyes are assessable, core.signals.eyes), then the `blink_physiology` and `landmark_motion` detectors and the fusion of those two. Prints:

1. one row per clip (the main face track): share of face frames with assessable eyes (eyes%),
   blinks found without the eye mask (n0), assessable visible-eye time, blink count, observed rate with its
   exact 95% Poisson interval, mean duration, completeness (deeper eye's EAR drop below its open
   level, mean and range), asymmetry, flag counts, eye width, the blink reading, and the landmark-
   motion scores (irregularity median/max, mouth-jaw coupling, jaw ratio, mouth/anchor flicker,
   irregular and rigid-jaw windows), then the fused finding;
2. the same measures as real-vs-fake medians with the ROC AUC of each (fake scored as the
   positive class, > 0.5 = higher on fakes), to say what separates and what does not: with 7
   fakes and 11 reals these are descriptions of this media, not estimates of performance;
3. completeness and asymmetry of the detected events that overlap a hand-labelled blink
   (../shared/media/labels), by clip: whether the measures see the SadTalker blinks the labeller
   saw as incomplete and lopsided.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from core.detectors.base import AnalysisContext
from core.detectors.blink_physiology import BlinkPhysiology
from core.detectors.landmark_motion import LandmarkMotion
from core.evidence import probe, sha256_file
from core.fusion import fuse
from core.pipeline import AnalysisOptions, eye_checks, load_or_run_facepass
from core.progress import no_progress
from core.signals.blinks import detect_blinks

MEDIA = Path(__file__).resolve().parents[3] / "shared" / "media"
EXTS = {".mp4", ".mpg", ".avi", ".mov", ".mkv"}


def clips(media: Path, needle: str | None) -> list[Path]:
    out = sorted(p for d in ("real", "fake") if (media / d).is_dir() for p in (media / d).iterdir() if p.suffix.lower() in EXTS)
    return [p for p in out if needle is None or needle in p.name]


def run_clip(path: Path) -> dict[str, Any]:
    sha = sha256_file(path)
    fp, _ = load_or_run_facepass(path, sha, AnalysisOptions(), no_progress, None)
    eyes = eye_checks(fp)
    blinks = {t.track_id: detect_blinks(t.frames, t.ear, fp.fps, mask=eyes[t.track_id].assessable)[0] for t in fp.tracks}
    unmasked = {t.track_id: len(detect_blinks(t.frames, t.ear, fp.fps)[0]) for t in fp.tracks}
    share = {t.track_id: float(eyes[t.track_id].assessable.mean()) for t in fp.tracks}
    ctx = AnalysisContext(path=path, evidence=probe(path), sha256=sha, facepass=fp, blinks=blinks)
    row: dict[str, Any] = {
        "clip": f"{path.parent.name}/{path.name}", "label": path.parent.name, "frames": fp.frame_count,
        "eyes_share": share, "unmasked_blinks": unmasked,
    }
    results = {}
    for det in (BlinkPhysiology(), LandmarkMotion()):
        if not fp.tracks:
            row[det.name] = {"status": "unavailable", "note": "no face found"}
            continue
        t0 = time.perf_counter()
        r = det(ctx)
        row[f"{det.name}_s"] = time.perf_counter() - t0
        results[det.name] = r
        row[det.name] = r.to_dict()
    finding = fuse(results, [t.track_id for t in fp.tracks], learned=set())
    row["finding"] = finding["value"]
    row["tracks"] = len(fp.tracks)
    return row


def _get(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def summary(row: dict[str, Any]) -> dict[str, Any]:
    bp, lm = row.get("blink_physiology") or {}, row.get("landmark_motion") or {}
    main = str(_get(bp, "metrics", "main_track"))
    tr = _get(bp, "per_track", main) or {}
    comp = [b["completeness"] for b in tr.get("blinks", []) if b.get("judged")]
    lmm = lm.get("metrics") or {}
    tid = _get(bp, "metrics", "main_track")
    return {
        "clip": row["clip"],
        "label": row["label"],
        "eyes": row["eyes_share"].get(tid),
        "n0": row["unmasked_blinks"].get(tid),
        "visible_s": tr.get("visible_s"),
        "blinks": tr.get("n_blinks"),
        "rate": tr.get("observed_per_min"),
        "rate_ci": tr.get("rate_ci95_per_min"),
        "dur_ms": tr.get("mean_duration_ms"),
        "compl": tr.get("mean_completeness"),
        "compl_rng": (min(comp), max(comp)) if comp else None,
        "asym": tr.get("mean_asymmetry"),
        "incompl": _get(tr, "flag_counts", "incomplete"),
        "one_eyed": _get(tr, "flag_counts", "one_eyed"),
        "eye_px": tr.get("eye_width_px"),
        "blink_reading": bp.get("assessment") or bp.get("status"),
        "irr_med": lmm.get("median_irregularity"),
        "irr_max": lmm.get("max_irregularity"),
        "irr_win": None if not lmm else f"{lmm.get('irregular_windows')}/{lmm.get('windows')}",
        "coupling": lmm.get("median_coupling"),
        "jaw_ratio": lmm.get("median_jaw_ratio"),
        "mouth_flk": lmm.get("mouth_to_anchor_flicker"),
        "rigid_win": None if not lmm else f"{lmm.get('decoupled_windows')}/{lmm.get('mouth_moving_windows')}",
        "finding": row["finding"],
    }


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    if isinstance(v, (tuple, list)):
        return "-".join(f"{x:.2f}" if isinstance(x, float) else str(x) for x in v)
    return str(v)


COLUMNS = [
    ("clip", 36), ("eyes", 5), ("n0", 3), ("visible_s", 6), ("blinks", 3), ("rate", 6), ("rate_ci", 12), ("dur_ms", 6), ("compl", 5), ("compl_rng", 9),
    ("asym", 5), ("incompl", 3), ("one_eyed", 3), ("eye_px", 5), ("blink_reading", 12), ("irr_med", 5), ("irr_max", 5),
    ("irr_win", 5), ("coupling", 5), ("jaw_ratio", 5), ("mouth_flk", 5), ("rigid_win", 5), ("finding", 12),
]
HEAD = {
    "eyes": "eyes%", "visible_s": "vis_s", "blinks": "n", "rate_ci": "rate 95%CI", "compl_rng": "compl rng", "incompl": "inc", "one_eyed": "1eye",
    "blink_reading": "blink read", "irr_win": "irrW", "coupling": "coupl", "jaw_ratio": "jawR", "mouth_flk": "mFlk", "rigid_win": "rigW",
}


def print_table(rows: list[dict[str, Any]]) -> None:
    print("  ".join(HEAD.get(c, c)[:w].ljust(w) for c, w in COLUMNS))
    for label in ("real", "fake"):
        for r in rows:
            if r["label"] == label:
                print("  ".join(fmt(r[c])[:w].ljust(w) for c, w in COLUMNS))
        print()


def print_markdown(rows: list[dict[str, Any]]) -> None:
    cols = [c for c, _ in COLUMNS]
    print("| " + " | ".join(HEAD.get(c, c) for c in cols) + " |")
    print("|" + "---|" * len(cols))
    for label in ("real", "fake"):
        for r in rows:
            if r["label"] == label:
                cells = [fmt(r[c]) for c in cols]
                cells[0] = Path(r["clip"]).parent.name + "/" + Path(r["clip"]).stem
                print("| " + " | ".join(cells) + " |")


def separation(rows: list[dict[str, Any]]) -> None:
    print("measure      real median   fake median   AUC(fake higher)  n real/fake")
    for key in ("rate", "dur_ms", "compl", "asym", "irr_med", "irr_max", "coupling", "jaw_ratio", "mouth_flk"):
        vals = [(r[key], r["label"] == "fake") for r in rows if isinstance(r[key], (int, float))]
        real = [v for v, f in vals if not f]
        fake = [v for v, f in vals if f]
        auc = roc_auc_score([f for _, f in vals], [v for v, _ in vals]) if real and fake else float("nan")
        print(f"{key:12s} {np.median(real) if real else float('nan'):11.3f}   {np.median(fake) if fake else float('nan'):11.3f}   {auc:15.2f}  {len(real)}/{len(fake)}")


def labelled_blinks(rows: list[dict[str, Any]], media: Path) -> None:
    print("detected events overlapping a hand-labelled blink: completeness (L/R closure), asymmetry, lag")
    for r in rows:
        lab = media / "labels" / (Path(r["clip"]).name + ".json")
        bp = r.get("blink_physiology") or {}
        main = str(_get(bp, "metrics", "main_track"))
        tr = _get(bp, "per_track", main)
        if not lab.is_file() or not tr:
            continue
        labels = json.loads(lab.read_text())
        cells = []
        for kind in ("blinks", "partial"):
            for lb in labels.get(kind, []):
                hit = [b for b in tr["blinks"] if b["start_frame"] <= lb["offset"] and b["end_frame"] >= lb["onset"]]
                if not hit:
                    cells.append(f"{lb['onset']}-{lb['offset']}{'p' if kind == 'partial' else ''}: missed")
                    continue
                b = hit[0]
                lag = "-" if b["lag_ms"] is None else f"{b['lag_ms']:+.0f}ms"
                cells.append(
                    f"{lb['onset']}-{lb['offset']}{'p' if kind == 'partial' else ''}: {b['completeness']:.2f} "
                    f"({b['closure_left']:.2f}/{b['closure_right']:.2f}) a={b['asymmetry']:.2f} {lag}"
                    f"{'' if b['judged'] else ' [not judged]'}"
                )
        print(f"  {r['clip']} (eyes {tr['eye_width_px']:.0f} px):")
        for c in cells:
            print(f"      {c}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--media", type=Path, default=MEDIA)
    ap.add_argument("--clip", default=None, help="only clips whose name contains this")
    ap.add_argument("--json", type=Path, default=None, help="write the full per-clip results here")
    ap.add_argument("--markdown", action="store_true", help="print the per-clip table as Markdown too")
    args = ap.parse_args(argv)
    if not (args.media / "MANIFEST.tsv").is_file():
        print(f"media not found at {args.media}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    rows = [run_clip(p) for p in clips(args.media, args.clip)]
    table = [summary(r) for r in rows]
    print_table(table)
    if args.markdown:
        print_markdown(table)
        print()
    separation(table)
    print()
    labelled_blinks(rows, args.media)
    times = [r.get(k) for r in rows for k in ("blink_physiology_s", "landmark_motion_s") if r.get(k) is not None]
    bp_t = [r["blink_physiology_s"] for r in rows if "blink_physiology_s" in r]
    lm_t = [r["landmark_motion_s"] for r in rows if "landmark_motion_s" in r]
    frames = sum(r["frames"] for r in rows if "landmark_motion_s" in r)
    print(
        f"\ntime: blink_physiology {sum(bp_t):.2f} s, landmark_motion {sum(lm_t):.2f} s over {frames} frames "
        f"({1000 * sum(times) / max(frames, 1):.2f} ms/frame both); whole bench {time.perf_counter() - t0:.1f} s incl. face passes"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
