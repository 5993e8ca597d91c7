"""`verity validate MANIFEST [--out DIR] [--detectors a,b] [--name NAME] [--independent] [--register] [--ray ADDRESS|local]`."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.errors import VerityError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="measure every detector's error rates on a labelled set (a validation record reports cite)",
        description="Analyse every file of a labelled manifest (TSV/CSV: path, label real/fake, optional kind, group) and "
        "write a validation record: per detector and for the fused finding, coverage, false-inconsistent and detection "
        "rates with Wilson 95%% intervals, ROC-AUC where a score exists, the readings by kind, and the clips read wrongly. "
        "Finished analyses are kept in OUT/analyses and reused: a re-run or a resumed run only does new work.",
    )
    p.add_argument("manifest", type=Path, metavar="MANIFEST")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: ./validation-NAME)")
    p.add_argument("--detectors", default=None, help="comma-separated detector names (default: all)")
    p.add_argument("--name", default=None, help="the record's name (default: the manifest's file name)")
    p.add_argument(
        "--independent", action="store_true",
        help="declare the set independent: none of its files was used to choose a threshold or train a model. Only an "
        "independent record can make a reading decide a finding.",
    )
    p.add_argument("--register", action="store_true", help="copy the record into the user's validation folder, where analyses and reports find it")
    p.add_argument("--ray", default=None, metavar="ADDRESS|local",
                   help="analyse on Ray, as `verity batch --ray` does: 'local' starts a cluster on this machine, an address joins one")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.labelled_manifest import read_manifest
    from core.pipeline import AnalysisOptions
    from core.progress import CancelToken
    from core.validation.build import build_record, write_record
    from core.validation.run import analyse_items
    from core.validation_records import user_dir

    manifest = read_manifest(args.manifest)
    name = args.name or manifest.path.stem
    out = args.out or Path(f"validation-{name}")
    options = AnalysisOptions()
    if args.detectors:
        from core import detectors

        options.detectors = [d.strip() for d in args.detectors.split(",") if d.strip()]
        unknown = [d for d in options.detectors if d not in detectors.available()]
        if unknown:
            raise VerityError(f"unknown detector(s): {', '.join(unknown)} (known: {', '.join(detectors.available())})")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VerityError(f"--out {out}: cannot create the folder ({exc.strerror or exc})") from exc

    t0 = time.perf_counter()
    counts = {"analysed": 0, "reused": 0, "failed": 0}

    def on_item(o) -> None:  # noqa: ANN001 - an Outcome
        counts["failed" if o.analysis is None else "reused" if o.reused else "analysed"] += 1
        if o.analysis is None:
            tqdm.write(f"verity: {o.item.path.name}: not analysed: {o.error}")

    runner = _runner(args.ray, options)
    cancel = CancelToken()

    def on_sigint(signum: int, frame: Any) -> None:
        if cancel.cancelled:
            raise KeyboardInterrupt  # a second Ctrl-C: stop at once
        cancel.cancel()
        print("\nverity: cancelling: the finished analyses are kept, a re-run resumes (Ctrl-C again to stop at once)", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        outcomes = analyse_items(list(manifest.items), out, options, on_item, cancel=cancel, runner=runner)
    finally:
        signal.signal(signal.SIGINT, previous)
        runner.close()
    if cancel.cancelled:
        print("verity: validation cancelled: no record written; run the same command again to resume", file=sys.stderr)
        return 130
    timing = {"wall_s": round(time.perf_counter() - t0, 1), **counts}
    record = build_record(name, manifest, outcomes, options, args.independent, timing)
    paths = write_record(record, out)
    print(f"validation record {name!r}: {record['n']['analysed']} of {record['n']['listed']} files analysed "
          f"({counts['reused']} reused, {counts['failed']} failed) in {timing['wall_s']} s")
    for det, f in [*record["detectors"].items(), ("fused finding", record["finding"])]:
        fi, de = f["false_inconsistent"], f["detection"]
        unavailable = f["table"]["overall"]["unavailable"]
        if unavailable["real"] + unavailable["fake"] == record["n"]["analysed"]:
            print(f"  {det}: unavailable on every file")
            continue
        print(f"  {det}: inconsistent on {fi['k']} of {fi['n']} genuine (95% CI {100 * fi['ci95'][0]:.0f}-{100 * fi['ci95'][1]:.0f} %), "
              f"{de['k']} of {de['n']} manipulated; coverage {f['coverage']['real']['k']}/{f['coverage']['real']['n']} genuine, "
              f"{f['coverage']['fake']['k']}/{f['coverage']['fake']['n']} manipulated")
    for p in paths.values():
        print(f"  wrote {p}")
    if not args.independent:
        print("  (a development record: reports cite it, but it never lets a reading decide a finding; see --independent)")
    if args.register:
        target = user_dir() / f"{name}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths["record"], target)
        print(f"  registered as {target}")
    return 0 if record["n"]["analysed"] else 2


def _runner(ray: str | None, options: Any) -> Any:
    from core.batch import LocalRunner, RayRunner
    from core.batch.run import resolve_detectors, wants_gpu

    if not ray:
        return LocalRunner()
    return RayRunner(ray, gpus_per_file=0.5 if wants_gpu(resolve_detectors(options)) else 0.0)
