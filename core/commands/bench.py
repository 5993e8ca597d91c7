"""`verity bench [VIDEO...] [--json PATH]`: bare-decode fps vs face-pass fps, and peak memory."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.errors import VerityError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="measure decoding and face-pass speed (frames per second) and peak memory",
        description="Each clip runs in a fresh process: bare decoding of every frame, then the face pass over every "
        "frame. Without VIDEO: the 512x512 HDTF clip and the 1080p DFDC clip of ../shared/media.",
    )
    p.add_argument("videos", nargs="*", type=Path, metavar="VIDEO")
    p.add_argument("--all", action="store_true", help="every clip of ../shared/media (frames with a face per clip)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the figures as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.face.benchmark import all_media_clips, default_clips, format_rows, measure_in_child
    from core.video.container import check_readable

    clips = list(args.videos) or (all_media_clips() if args.all else default_clips())
    if not clips:
        raise VerityError("no clips given and the benchmark clips of ../shared/media were not found")
    for c in clips:
        check_readable(c)
    rows = []
    for c in clips:
        rows.append(measure_in_child(c))
        print(format_rows(rows[-1:])[1], flush=True)
    print()
    print("\n".join(format_rows(rows)))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0
