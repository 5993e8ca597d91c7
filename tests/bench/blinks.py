"""Blink-event quality against the hand labels in ../shared/media/labels.

Usage:  python tests/bench/blinks.py [--media DIR] [--verbose] [--clip SUBSTRING] [--fresh]

For every labelled clip: run (or reuse from the user cache) the one face pass, detect blinks
with the adaptive default over the frames whose eyes are assessable (core.signals.eyes: what
`verity analyze` reports), the same without that mask, and the EyeBlink card's fixed EAR 0.2
(masked), and score events against the labels. `eyes` is the share of face frames whose eyes
are assessable. With --all the unlabelled clips of the media folder are listed too: blinks
with and without the mask and the assessable share, per track. Prints per-clip counts and precision / recall / F1, then overall figures separately
for real/ and fake/ clips (micro-averaged over events).

Matching: core/signals/event_matching.py (its docstring has the rules; `verity eval vivit` and
tests/bench/vivit_blink.py score with the same code): one-to-one pairing by overlap with the
labels' onset..offset; unpaired detections on partial blinks, unusable frames or other events are
neutral; every other unpaired detection is a false positive, every unpaired blink a miss.
Events from all face tracks of a clip are pooled (the labelled clips show one person).
Boundary error (detected start - labelled onset, detected end - labelled offset) is reported for
the matched events. With --verbose each detection shows which eye closed: no mark = both,
L / R = only the image-left / image-right eye, - = neither eye alone crossed its threshold.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from core.evidence import sha256_file
from core.face.facepass import FacePass
from core.pipeline import AnalysisOptions, load_or_run_facepass
from core.progress import no_progress
from core.signals.blinks import BlinkEvent, BlinkParams, detect_blinks
from core.signals.event_matching import Score, score_events
from core.signals.eyes import check_eyes

MEDIA = Path(__file__).resolve().parents[3] / "shared" / "media"

def clip_events(fp: FacePass, params: BlinkParams, masked: bool = True) -> list[BlinkEvent]:
    events: list[BlinkEvent] = []
    for t in fp.tracks:
        mask = check_eyes(t.frames, t.landmarks, fp.width, fp.height, fp.fps, t.ear).assessable if masked else None
        events += detect_blinks(t.frames, t.ear, fp.fps, params, mask=mask)[0]
    return sorted(events, key=lambda e: e.start_frame)


def assessable_share(fp: FacePass) -> float:
    n = sum(len(t) for t in fp.tracks)
    k = sum(int(check_eyes(t.frames, t.landmarks, fp.width, fp.height, fp.fps, t.ear).assessable.sum()) for t in fp.tracks)
    return k / n if n else 0.0


def list_unlabelled(media: Path, labelled: set[str], options: AnalysisOptions) -> None:
    """Every other clip of the media folder: blinks without / with the mask, assessable share."""
    exts = {".mp4", ".mpg", ".avi", ".mov", ".mkv"}
    print("\nunlabelled clips (per track: blinks without mask -> with mask, eyes assessable)")
    for d in ("real", "fake"):
        for clip in sorted((media / d).glob("*")):
            name = f"{d}/{clip.name}"
            if clip.suffix.lower() not in exts or name in labelled:
                continue
            fp, _ = load_or_run_facepass(clip, sha256_file(clip), options, no_progress, None)
            cells = []
            for t in fp.tracks:
                ok = check_eyes(t.frames, t.landmarks, fp.width, fp.height, fp.fps, t.ear).assessable
                raw = len(detect_blinks(t.frames, t.ear, fp.fps)[0])
                masked = len(detect_blinks(t.frames, t.ear, fp.fps, mask=ok)[0])
                cells.append(f"track {t.track_id}: {raw} -> {masked} blinks, eyes {ok.mean():.0%} of {len(t)} frames")
            print(f"{name:42s} " + ("; ".join(cells) or "no face"))


def _fmt(s: Score) -> str:
    return f"{s.tp:3d} {s.fp:3d} {s.fn:3d} {s.neutral:3d}  {s.precision:5.2f} {s.recall:5.2f} {s.f1:5.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--media", type=Path, default=MEDIA)
    ap.add_argument("--clip", default="", help="only clips whose path contains this")
    ap.add_argument("--verbose", "-v", action="store_true", help="list missed and false events")
    ap.add_argument("--fresh", action="store_true", help="recompute the face passes (after face-pass code changes)")
    ap.add_argument("--all", action="store_true", help="also list the unlabelled clips (blinks with/without the eye mask)")
    args = ap.parse_args(argv)
    label_dir = args.media / "labels"
    if not label_dir.is_dir():
        print(f"no labels at {label_dir}", file=sys.stderr)
        return 2
    options = AnalysisOptions(reuse_facepass=not args.fresh)
    # name -> (parameters, apply the eyes-assessable mask)
    methods = {
        "adaptive": (BlinkParams(), True),
        "adaptive, no eye mask": (BlinkParams(), False),
        "fixed0.2": (BlinkParams(mode="fixed", fixed_threshold=0.2), True),
    }
    totals = {(g, m): Score() for g in ("real", "fake") for m in methods}
    no_blink_fp: dict[str, list[tuple[str, int]]] = {m: [] for m in methods}
    head = f"{'clip':42s} {'frames':>6s} {'face':>5s} {'eyes':>5s} {'lab':>3s} {'par':>3s} | " + " | ".join(
        f"{m:^30s}" for m in methods
    )
    sub = f"{'':42s} {'':6s} {'':5s} {'':5s} {'':3s} {'':3s} | " + " | ".join(
        f"{'TP  FP  FN neu  P     R     F1':30s}" for _ in methods
    )
    print(head)
    print(sub)
    t_all = time.perf_counter()
    labelled: set[str] = set()
    for lab_path in sorted(label_dir.glob("*.json")):
        labels = json.loads(lab_path.read_text())
        clip = args.media / labels["clip"]
        if args.clip not in labels["clip"]:
            continue
        if not clip.is_file():
            print(f"{labels['clip']}: clip missing, skipped", file=sys.stderr)
            continue
        labelled.add(labels["clip"])
        group = labels["clip"].split("/")[0]
        fp, _ = load_or_run_facepass(clip, sha256_file(clip), options, no_progress, None)
        cells = []
        details = []
        for m, (params, masked) in methods.items():
            events = clip_events(fp, params, masked)
            s = score_events([(e.start_frame, e.end_frame) for e in events], labels)
            totals[(group, m)].add(s)
            if not labels.get("blinks"):
                no_blink_fp[m].append((labels["clip"], s.fp))
            cells.append(_fmt(s))
            if args.verbose:
                eyes = {(True, True): "", (True, False): "L", (False, True): "R", (False, False): "-"}
                dets = ", ".join(f"{e.start_frame}-{e.end_frame}{eyes[(e.closed_left, e.closed_right)]}" for e in events)
                details.append(f"    {m}: detected [{dets}]  missed {s.fn_spans}  false {s.fp_spans}")
        coverage = fp.frames_with_face / max(fp.frame_count, 1)
        print(
            f"{labels['clip']:42s} {fp.frame_count:6d} {coverage:5.0%} {assessable_share(fp):5.0%} {len(labels.get('blinks', [])):3d} "
            f"{len(labels.get('partial', [])):3d} | " + " | ".join(cells)
        )
        for line in details:
            print(line)
    print()
    for g in ("real", "fake"):
        line = " | ".join(f"{m}: {_fmt(totals[(g, m)])}" for m in methods)
        print(f"overall {g:4s} (TP FP FN neutral P R F1)  {line}")
    for g in ("real", "fake"):
        parts = []
        for m in methods:
            t = totals[(g, m)]
            if t.start_err:
                parts.append(
                    f"{m}: start-onset median {np.median(t.start_err):+.0f} (mean |err| {np.mean(np.abs(t.start_err)):.1f}), "
                    f"end-offset median {np.median(t.end_err):+.0f} (mean |err| {np.mean(np.abs(t.end_err)):.1f}) frames"
                )
        print(f"boundaries {g}: " + " | ".join(parts))
    for m in methods:
        worst = max((n for _, n in no_blink_fp[m]), default=None)
        if worst is None:
            print(f"{m}: no labelled clip without blinks")
        else:
            print(f"{m}: most false blinks on a clip labelled without blinks: {worst}")
    if args.all:
        list_unlabelled(args.media, labelled, options)
    print(f"({time.perf_counter() - t_all:.1f} s; face passes cached under the user cache)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
