"""ViViT blinks against the hand labels, beside Verity's EAR events, on clean and degraded clips.

Usage:  python tests/bench/vivit_blink.py [--media DIR] [--folds 2] [--epochs 8] [--no-degraded] [--json OUT]

K-fold by clip over the hand-labelled clips of ../shared/media/labels: for each fold a small
ViViT is trained (`core.train.vivit.train`, not registered) on the other folds' hand labels plus
weak labels from the EAR events of every unlabelled clip, and scored on the fold's clips. Clips
that show the same footage stay together: a labelled clip and the lip-sync fakes made from it
(the Wav2Lip pair; retalking_face1 and the zzww sync_show fakes) are never on both sides.

Degraded copies of every labelled clip are made with ffmpeg in a temporary folder (never in the
project; removed at the end) with every frame kept (`-fps_mode passthrough`, checked), so the
labels' frame numbers hold: half resolution, CRF 40 (heavy H.264 compression), and darkened with
noise. Each copy gets its own face pass (landmarks fail where they fail) and eye crops.

Reported per condition, for ViViT and EAR on the same clips and the same labelled windows:
window AP (ViViT: P(blink); EAR: the deepest lid closure over the window's centre, 0 where the
eyes are not assessable) and event precision / recall / F1 with tests/bench/blinks.py's matching
(core.signals.event_matching). Also: training time per fold, CPU time per window, load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from core.detectors.vivit_blink import load_model
from core.train.vivit import _cache, add_train_args, format_summary, score_clip, summarise, train
from core.train.vivit_data import LabelledClip, clip_data, read_labels, split_clips

MEDIA = Path(__file__).resolve().parents[3] / "shared" / "media"

DEGRADATIONS = {  # name -> ffmpeg video filter and H.264 CRF
    "half resolution": ("scale=trunc(iw/4)*2:trunc(ih/4)*2", 18),
    "CRF 40": ("null", 40),
    "dark + noise": ("eq=brightness=-0.25:contrast=0.6,noise=alls=18:allf=t", 18),
}
# footage shared between clips: held out together (a lip-sync fake keeps its source's eyes)
RELATED = {
    "retalking_face1_man_suit": ["zzww_"],
    "wav2lip_pair_source_video_8s": ["wav2lip_pair_result_voice"],
    "wav2lip_pair_result_voice": ["wav2lip_pair_source_video_8s"],
}


def ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe:
        return exe
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def degrade(src: Path, dst: Path, vf: str, crf: int, frames: int) -> Path | None:
    """An H.264 copy through a filter, every frame kept; None (with a message) when frames differ."""
    from core.video.reader import VideoReader

    cmd = [ffmpeg(), "-v", "error", "-y", "-i", str(src), "-an", "-vf", vf, "-fps_mode", "passthrough", "-c:v", "libx264",
           "-crf", str(crf), "-preset", "veryfast", "-pix_fmt", "yuv420p", str(dst)]
    subprocess.run(cmd, check=True)
    with VideoReader(dst) as r:
        n = r.frame_count
    if n != frames:
        print(f"  {dst.name}: {n} frames, labels have {frames}; left out", file=sys.stderr)
        return None
    return dst


def stem(c: LabelledClip) -> str:
    return Path(str(c.labels["clip"])).stem if c.labels else c.path.stem


def folds_by_group(hand: list[LabelledClip], k: int, seed: int) -> list[list[int]]:
    """Clip indices per fold; clips showing the same footage share a fold."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(hand):
        key = min([stem(c), *(r for r in RELATED.get(stem(c), []) if any(r in stem(h) for h in hand))])
        groups.setdefault(key, []).append(i)
    keys = sorted(groups)
    return [sorted(i for g in split for i in groups[keys[g]]) for split in split_clips(len(keys), k, seed)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--media", type=Path, default=MEDIA)
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--max-folds", type=int, default=None, help="train and score only the first N folds (1: a fixed split)")
    ap.add_argument("--fold", type=int, default=None, help="train and score only this fold (0-based)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--neg-ratio", type=float, default=2.0)
    ap.add_argument("--train-stride", type=int, default=4)
    ap.add_argument("--stride", type=int, default=2, help="window stride when scoring")
    ap.add_argument("--config", default="small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-degraded", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: fastest while other work shares the cores)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    hand = read_labels(args.media / "labels")
    tmp = Path(tempfile.mkdtemp(prefix="verity-vivit-bench-"))
    t_all = time.perf_counter()
    try:
        folds = folds_by_group(hand, args.folds, args.seed)
        chosen = [args.fold] if args.fold is not None else list(range(len(folds)))[: args.max_folds]
        scored = {i for k in chosen for i in folds[k]}
        variants: dict[str, list[LabelledClip | None]] = {"clean": list(hand)}
        if not args.no_degraded:
            for name, (vf, crf) in DEGRADATIONS.items():
                d = tmp / name.replace(" ", "_").replace("+", "")
                d.mkdir()
                variants[name] = []
                for i, c in enumerate(hand):
                    if i not in scored:
                        variants[name].append(None)
                        continue
                    out = degrade(c.path, d / f"{stem(c)}.mp4", vf, crf, int(c.labels["frames"]))
                    variants[name].append(LabelledClip(out, c.labels) if out else None)
            print(f"degraded copies made in {time.perf_counter() - t_all:.0f} s", file=sys.stderr)
        rows: dict[str, list] = {v: [] for v in variants}
        fold_info = []
        for k in chosen:
            test = folds[k]
            holdout = sorted({s for i in test for s in [stem(hand[i]), *RELATED.get(stem(hand[i]), [])]})
            p = argparse.ArgumentParser()
            add_train_args(p)
            targs = p.parse_args(["--labels", str(args.media / "labels"), "--weak", str(args.media / "real"), "--weak", str(args.media / "fake"),
                                  "--config", args.config, "--epochs", str(args.epochs), "--stride", str(args.train_stride),
                                  "--seed", str(args.seed), "--neg-ratio", str(args.neg_ratio), "--out", str(tmp / f"fold{k}"), "--no-register",
                                  *[a for h in holdout for a in ("--holdout", h)]])
            train(targs)
            summary = json.loads((tmp / f"fold{k}" / "summary.json").read_text())
            lm = load_model("cpu", tmp / f"fold{k}" / "vivit_blink.safetensors")
            fold_info.append({"test_clips": [stem(hand[i]) for i in test], "holdout": holdout, "train_wall_s": summary["wall_s"],
                              "train_cpu_s": summary["cpu_s"], "training_data": summary["training_data"], "best_epoch": summary["best_epoch"]})
            print(f"fold {k}: trained in {summary['wall_s']} s wall / {summary['cpu_s']} s CPU on {summary['training_data']}", file=sys.stderr)
            for v, clips in variants.items():
                for i in test:
                    c = clips[i]
                    if c is None:
                        continue
                    cd = clip_data(c, lm.prep, _cache())  # degraded copies are cached by their own sha256
                    rows[v].append((cd, score_clip(lm, cd, args.stride, 0.5)))
        results = {}
        for v, rs in rows.items():
            res = summarise(rs)
            n_win = sum(r["windows"] for _, r in rs)
            res["cpu_ms_per_window"] = round(1000 * sum(r["cpu_s"] for _, r in rs) / max(n_win, 1), 2)
            results[v] = res
            print(f"\n== {v} ==\n{format_summary(res)}\nCPU {res['cpu_ms_per_window']} ms per window")
        load = os.getloadavg()
        out = {"folds": fold_info, "results": results, "seconds": round(time.perf_counter() - t_all, 1),
               "load_average": [round(x, 2) for x in load], "cpus": os.cpu_count()}
        print(f"\n({out['seconds']} s; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} CPUs)")
        if args.json:
            args.json.write_text(json.dumps(out, indent=1, default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
