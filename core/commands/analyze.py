"""`verity analyze VIDEO... [--json PATH] [--detectors a,b]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.cases.faults import StoreError
from core.errors import CancelledError, VerityError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("analyze", help="analyse video files and write the analysis JSON")
    p.add_argument("videos", nargs="+", type=Path, metavar="VIDEO")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="a file for one video, a folder for several")
    p.add_argument("--detectors", default=None, help="comma-separated detector names (default: all)")
    p.add_argument("--blink-threshold", type=ear_threshold, default=None, metavar="EAR",
                   help="use the card's fixed EAR threshold (e.g. 0.2, between 0 and 1) instead of the adaptive one")
    p.add_argument("--work-dir", type=Path, default=None, help="where face passes are stored (default: user cache)")
    p.add_argument("--case", type=int, default=None, help="store the analysis in this case (see `verity case`)")
    p.add_argument(
        "--video-stream", type=int, default=None, metavar="N",
        help="the container's number of the video stream to analyse, for files with several (default: the first; "
        "the probe's warning lists them)",
    )
    p.add_argument(
        "--reference", action="append", default=[], metavar="PERSON=FILE",
        help="a known exemplar (video or photo) of PERSON for identity_reference, without a case (repeatable; "
        "with --case the case's exemplars are used: `verity case reference add`)",
    )
    p.set_defaults(func=run)


def ear_threshold(text: str) -> float:
    """An eye aspect ratio threshold: a number strictly between 0 and 1 (open eyes read 0.2-0.4)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < value < 1.0:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"{text} is not an eye aspect ratio: give a value between 0 and 1 (the card uses 0.2)")
    return value


def _json_target(arg: Path | None, video: Path, several: bool) -> Path | None:
    if arg is None:
        return None
    if several or arg.is_dir() or str(arg).endswith(("/", "\\")):
        return arg / f"{video.name}.json"
    return arg


def summary_line(video: Path, result: dict[str, Any]) -> str:
    ev = result["evidence"]["video"]
    faces = result["faces"]
    parts = [f"{video.name}: {ev['frame_count']} frames, {ev['fps']:.3f} fps{' (VFR)' if ev['variable_frame_rate'] else ''}"]
    for w in result["evidence"].get("warnings") or []:
        parts.append(f"WARNING: {w}")
    if not faces:
        parts.append(result.get("facepass", {}).get("no_face") or "no face found")
    for f in faces:
        rate = f["blink_rate_per_min"]
        parts.append(
            f"face {f['track_id']}: frames {f['first_frame']}-{f['last_frame']}, {len(f['blinks'])} blinks"
            + (f" ({rate:.1f}/min)" if rate is not None else "")
        )
    for name, d in result["detectors"].items():
        if d["status"] != "ok":  # why it did not run, in a few words; the full reason is in the JSON
            why = (d.get("note") or "").split(":")[0].strip()
            parts.append(f"{name}: {d['status']}" + (f" ({why})" if why else ""))
        else:  # its reading is what fusion counts; a label that says more than the reading would mislead
            parts.append(f"{name}: {d.get('assessment') or 'measured, no reading'}")
    finding = result.get("finding")
    if finding:
        parts.append(f"finding: {finding['value']}")
    return "; ".join(parts)


def _exemplar(arg: str) -> Any:
    """PERSON=FILE -> an Exemplar, hashed now (the file is only read)."""
    from core.detectors.base import Exemplar

    person, sep, file = arg.partition("=")
    if not sep or not person.strip() or not file:
        raise VerityError(f"--reference {arg!r}: expected PERSON=FILE")
    path = Path(file)
    if not path.is_file():
        raise VerityError(f"--reference {arg!r}: file not found: {path}")
    return Exemplar.from_file(person.strip(), path)


def run(args: argparse.Namespace) -> int:
    from core.pipeline import AnalysisOptions, analyze
    from core.signals.blinks import BlinkParams

    options = AnalysisOptions(work_dir=args.work_dir, video_stream=args.video_stream)
    if args.detectors:
        options.detectors = [d.strip() for d in args.detectors.split(",") if d.strip()]
        from core import detectors

        unknown = [d for d in options.detectors if d not in detectors.available()]
        if unknown:
            raise VerityError(f"unknown detector(s): {', '.join(unknown)} (known: {', '.join(detectors.available()) or 'none'})")
    if args.blink_threshold is not None:
        options.blinks = BlinkParams(mode="fixed", fixed_threshold=args.blink_threshold)
    if args.reference:
        if args.case is not None:
            raise VerityError("--reference is for analyses without a case; add a case's exemplars with `verity case reference add`")
        options.references = [_exemplar(r) for r in args.reference]
    several = len(args.videos) > 1
    if args.json is not None and several:
        if args.json.exists() and not args.json.is_dir():
            raise VerityError(f"--json {args.json}: several videos need a folder, and this is a file")
        try:
            args.json.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VerityError(f"--json {args.json}: cannot create the folder ({exc.strerror or exc})") from exc
    failures = 0
    written: set[Path] = set()
    for video in args.videos:
        bar = tqdm(total=100, desc=video.name, unit="%", leave=False, file=sys.stderr, disable=None)

        def progress(stage: str, fraction: float, message: str = "", bar: tqdm = bar) -> None:
            bar.set_postfix_str(stage)
            bar.n = round(100 * fraction)
            bar.refresh()

        try:
            if args.case is not None:
                from core.cases.analysis import analyze_into_case  # the case store (its own issue)

                result = analyze_into_case(args.db, args.case, video, options, progress)
            else:
                result = analyze(video, options, progress)
        except (CancelledError, StoreError):  # a fault of the case file ends the command with its own exit code
            raise
        except VerityError as exc:
            bar.close()
            print(f"verity: error: {exc}", file=sys.stderr)
            failures += 1
            continue
        finally:
            bar.close()
        print(summary_line(video, result))
        target = _json_target(args.json, video, several)
        if target is not None:
            if target in written:  # two videos of one name from different folders
                target = target.with_name(f"{video.name}.{result['evidence']['sha256'][:12]}.json")
            written.add(target)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(result, indent=1))
            except OSError as exc:
                print(f"verity: error: {target}: cannot write the JSON ({exc.strerror or exc})", file=sys.stderr)
                failures += 1
    return 1 if failures else 0
