"""`verity report ID --json OUT --pdf OUT [--evidence EID ...]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.errors import VerityError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="export a case's JSON and/or PDF report (re-hashes the evidence first)")
    p.add_argument("case_id", type=int, metavar="ID")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="JSON report (schema verity.report/1)")
    p.add_argument("--pdf", type=Path, default=None, metavar="OUT", help="PDF report")
    p.add_argument("--evidence", type=int, action="append", default=None, metavar="EID",
                   help="only this evidence item (repeat for several; default: all of the case)")
    p.add_argument("--actor", default=None, help="who exports (default: the case's examiner)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.cases import CaseStore
    from core.report import export_report

    if args.json is None and args.pdf is None:
        raise VerityError("give --json OUT and/or --pdf OUT")
    with CaseStore(args.db, create=False) as store:
        report = export_report(store, args.case_id, args.json, args.pdf, args.evidence, args.actor)
    for c in report["conclusions"]:
        print(f"evidence {c['evidence_id']}: {c['value']} ({c['basis']})")
    for target in (args.json, args.pdf):
        if target is not None:
            print(f"wrote {target}", file=sys.stderr)
    if not report["audit"]["verified"]:
        print(f"verity: warning: audit log broken: {report['audit']['message']}", file=sys.stderr)
    return 0
