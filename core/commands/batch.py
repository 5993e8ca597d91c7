"""`verity batch MANIFEST|DIR... --out DIR [--case ID] [--detectors a,b] [--ray ADDRESS|local]`."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch", help="analyse many files (folders, manifests), in this process or on a Ray cluster; resumable",
        description="Analyse every video under the given folders / in the given manifests (TSV or CSV with a "
        "'path' or 'file' column, or one path a line), one JSON per file in --out. A re-run skips the files "
        "whose JSON there has the same evidence sha256, software version and parameters.",
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="MANIFEST|DIR")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="the output folder (shared storage on a cluster)")
    p.add_argument("--case", type=int, default=None, metavar="ID", help="store every result in this case (this process is its only writer)")
    p.add_argument("--detectors", default=None, help="comma-separated detector names (default: all)")
    p.add_argument("--blink-threshold", type=float, default=None, help="the card's fixed EAR threshold (e.g. 0.2) instead of the adaptive one")
    p.add_argument("--work-dir", type=Path, default=None, help="where face passes are stored (default: user cache; with --case: beside the case file)")
    p.add_argument("--ray", default=None, metavar="ADDRESS|local",
                   help="run on Ray: 'local' starts a cluster on this machine, an address (host:6379, or 'auto') joins one")
    p.add_argument("--retries", type=int, default=2, help="Ray: retries of a file whose worker process died (default 2)")
    p.add_argument("--cpus-per-file", type=float, default=1.0, help="Ray: CPUs each file's task reserves (default 1)")
    p.add_argument("--gpus-per-file", type=float, default=0.5,
                   help="Ray: GPU fraction each task reserves when a learned detector with verified weights is asked and the cluster has GPUs (default 0.5)")
    p.add_argument("--redo", action="store_true", help="analyse every file again, even where a matching result exists (e.g. after importing weights)")
    p.set_defaults(func=run)


def options_from(args: argparse.Namespace) -> Any:
    from core.pipeline import AnalysisOptions
    from core.signals.blinks import BlinkParams

    options = AnalysisOptions(work_dir=args.work_dir)
    if args.detectors:
        options.detectors = [d.strip() for d in args.detectors.split(",") if d.strip()]
    if args.blink_threshold is not None:
        options.blinks = BlinkParams(mode="fixed", fixed_threshold=args.blink_threshold)
    return options


def run(args: argparse.Namespace) -> int:
    from core.batch import LocalRunner, RayRunner, run_batch, table
    from core.batch.run import resolve_detectors, wants_gpu
    from core.progress import CancelToken

    options = options_from(args)
    detectors = resolve_detectors(options)  # a wrong name is refused before a cluster starts
    if args.ray:
        gpus = args.gpus_per_file if wants_gpu(detectors) else 0.0
        runner = RayRunner(args.ray, cpus_per_file=args.cpus_per_file, gpus_per_file=gpus, retries=args.retries)
    else:
        runner = LocalRunner()
    print(f"verity batch: {runner.description}", file=sys.stderr)
    cancel = CancelToken()

    def on_sigint(signum: int, frame: Any) -> None:
        if cancel.cancelled:
            raise KeyboardInterrupt  # a second Ctrl-C: stop at once
        cancel.cancel()
        print("\nverity: cancelling: finishing the store and output folder (Ctrl-C again to stop at once)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        report = run_batch(args.inputs, args.out, options, runner=runner, db=args.db, case_id=args.case, redo=args.redo, cancel=cancel)
    finally:
        signal.signal(signal.SIGINT, previous)
        runner.close()
    print(table(report.rows))
    rate = f", {report.files_per_min:.1f} files/min" if report.files_per_min else ""
    print(f"{report.wall_s:.1f} s{rate}; summary in {args.out / 'batch-summary.json'}")
    if report.cancelled:
        return 130
    return 1 if report.count("failed", "refused") else 0
