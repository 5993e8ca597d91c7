"""`verity weights list | import | log | fetch`: what checkpoints are present, bring them in, the
examiner's recorded decisions about them, download them.

`fetch` is the only network access in Verity, and only on the examiner's request.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

STATE_LABEL = {"found": "found", "missing": "MISSING", "bad_hash": "BAD HASH", "unverified": "UNVERIFIED"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="list, import or fetch model weights (checkpoints)")
    w_sub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)

    p_list = w_sub.add_parser("list", help="status of every manifest entry and which detectors are unavailable")
    p_list.add_argument("--json", action="store_true", help="machine-readable output")
    p_list.add_argument("--rehash", action="store_true", help="re-read every file instead of trusting the hash cache")
    p_list.set_defaults(func=cmd_list)

    p_imp = w_sub.add_parser("import", help="copy checkpoint files into the user weights folder and verify them")
    p_imp.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p_imp.add_argument("--name", help="manifest entry the file is for (default: recognised by sha256 or file name)")
    p_imp.add_argument(
        "--confirm",
        action="store_true",
        help="you confirm the file is the right one: record its sha256 for an entry whose hash the manifest does not know",
    )
    p_imp.add_argument(
        "--replace",
        action="store_true",
        help="with --confirm: replace a sha256 recorded earlier on confirmation (never a published one); audited",
    )
    p_imp.add_argument("--detector", help="with --name and --confirm: detector of a new entry not in the manifest")
    p_imp.add_argument("--kind", choices=("backbone", "head", "full"), help="kind of a new entry (default head)")
    p_imp.set_defaults(func=cmd_import)

    p_log = w_sub.add_parser("log", help="the weights audit log: every sha256 recorded or replaced on the examiner's confirmation")
    p_log.add_argument("--json", action="store_true", help="machine-readable output")
    p_log.set_defaults(func=cmd_log)

    p_fetch = w_sub.add_parser("fetch", help="on a connected machine: download the public backbones into a folder to carry across")
    p_fetch.add_argument("--dest", type=Path, required=True, help="folder to download into")
    p_fetch.add_argument("--name", action="append", dest="names", metavar="NAME", help="entry to fetch (repeatable; default: all backbones)")
    p_fetch.set_defaults(func=cmd_fetch)


def cmd_list(args: argparse.Namespace) -> int:
    from core.weights import all_status, detectors_disabled, manifest, status_table

    if args.json:
        table = status_table(rehash=args.rehash)
        print(json.dumps({"entries": table, "detectors_unavailable": detectors_disabled()}, indent=2))
        return 0
    entries = manifest()
    statuses = all_status(rehash=args.rehash)
    disabled = detectors_disabled()
    for name, e in entries.items():
        st = statuses[name]
        need = "" if e.required else ", optional"
        print(f"{name}  [{STATE_LABEL.get(st.state, st.state)}]  detector {e.detector} ({e.kind}{need})")
        print(f"    file    {st.path or e.file}")
        print(f"    sha256  {st.sha256 or '-'}" + ("" if e.sha256 is None or st.sha256 in (None, e.sha256) else f"  (expected {e.sha256})"))
        if not st.ok:
            print(f"    why     {st.reason}")
    print()
    if disabled:
        print("Detectors unavailable for want of verified weights:")
        for det, names in disabled.items():
            print(f"  {det}: needs {', '.join(f'{n} ({STATE_LABEL[statuses[n].state].lower()})' for n in names)}")
    else:
        print("Every detector has its verified weights.")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from core.errors import VerityError
    from core.weights.transfer import import_file

    if args.replace and not (args.confirm and args.name):
        print("verity: error: --replace needs --name NAME and --confirm (you confirm the new file is the right one)")
        return 2
    if args.name and len(args.paths) > 1:
        print("verity: error: --name applies to one PATH at a time")
        return 2
    failures = 0
    for path in args.paths:
        try:
            res = import_file(path, name=args.name, confirm=args.confirm, detector=args.detector, kind=args.kind, replace=args.replace)
        except VerityError as exc:
            print(f"{path}: {exc}")
            failures += 1
            continue
        print(f"{path}: {res.message}")
        if res.state != "found":
            failures += 1
    return 1 if failures else 0


def cmd_log(args: argparse.Namespace) -> int:
    from core.weights.history import audit_path, read_log, verify_log

    rows = read_log()
    ok, message = verify_log(rows)
    if args.json:
        print(json.dumps({"file": str(audit_path()), "intact": ok, "message": message, "rows": rows}, indent=1))
        return 0 if ok else 1
    for r in rows:
        prev = f" (was {r['previous_sha256']})" if r.get("previous_sha256") else ""
        print(f"{r.get('seq')} {r.get('at')}  {r.get('actor')}  {r.get('action')}: {r.get('name')} sha256 {r.get('sha256')}{prev}")
    print(f"{audit_path()}: {message}")
    return 0 if ok else 1


def cmd_fetch(args: argparse.Namespace) -> int:
    from core.weights.transfer import fetch

    done = fetch(args.dest, args.names)  # WeightsError ("no network: ...") -> one line, exit 2
    for e, path, sha in done:
        note = "sha256 verified" if e.sha256 else f"sha256 {sha} (record it on the air-gapped machine with 'verity weights import {path.name} --name {e.name} --confirm')"
        print(f"{e.name}: {path} — {note}")
    print(f"Checksums written to {Path(args.dest) / 'SHA256SUMS'}; carry the folder across and run 'verity weights import' on each file.")
    return 0
