"""`verity prepare SOURCE --out DIR`: aligned face crops of labelled videos for `verity train seq`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from core.detectors.sequence_model import SeqPreprocessing

    d = SeqPreprocessing()
    p = sub.add_parser("prepare", help="prepare a frame-sequence dataset: face pass, aligned face crops, a manifest per video")
    p.add_argument("source", type=Path, help="DIR/{train,test}/{real,fake}/*, DIR/{real,fake}/*, or a TSV/CSV manifest (path, label)")
    p.add_argument("--out", type=Path, required=True, help="dataset folder (created; rerun to resume)")
    p.add_argument("--fps", type=float, default=d.fps, help="frames sampled per second of video (0: every frame)")
    p.add_argument("--size", type=int, default=d.size, help="crop side in pixels")
    p.add_argument("--input", choices=("face_aligned", "frame"), default=d.input,
                   help="face_aligned: faces aligned by the eyes (seed 004); frame: whole frames (seed 001 upstream)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="share of videos per class held out as 'test' (folders without train/test)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the dataset summary as JSON")
    p.set_defaults(func=cmd_prepare)


def cmd_prepare(args: argparse.Namespace) -> int:
    from core.detectors.sequence_model import SeqPreprocessing
    from core.errors import VerityError
    from core.train.seq_data import list_inputs, prepare

    if args.fps < 0 or args.size < 32:
        raise VerityError("--fps must be >= 0 and --size >= 32")
    prep = SeqPreprocessing(input=args.input, size=args.size, input_size=args.size, fps=args.fps)
    entries = list_inputs(args.source, args.test_fraction, args.seed)
    index = prepare(entries, args.out, prep, source=str(args.source.resolve()))
    st = index["stats"]
    if args.json:
        print(json.dumps(st, indent=1))
    else:
        print(f"{st['videos_ok']} videos with face crops ({st['crops']} crops; alignment fallback {st['alignment_fallbacks']} "
              f"= {st['fallback_fraction'] if st['fallback_fraction'] is not None else 'n/a'}), {st['videos_without_face']} without a face, "
              f"{st['videos_failed']} failed, {st['videos_reused']} reused; {st['seconds']} s")
        print("  per split/label: " + ", ".join(f"{k} {v}" for k, v in st["by_split_label"].items()))
        for f in index["failures"]:
            print(f"  skipped {f['path']}: {f['reason']}", file=sys.stderr)
        print(f"dataset index: {Path(args.out) / 'dataset.json'}")
    return 0
