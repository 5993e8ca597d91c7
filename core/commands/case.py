"""`verity case new/list/show/verify/import/reference/bookmark/relink`: the case store from the command line.

Only `case new` may create a case file; every other action needs an existing one, so a mistyped
`--db` is refused (exit 4) instead of silently starting an empty file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from core.errors import VerityError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("case", help="create, list, show and verify cases (see --db)")
    cs = p.add_subparsers(dest="case_command", metavar="ACTION")
    new = cs.add_parser("new", help="create a case; prints its id")
    new.add_argument("--number", required=True, help="the case number (unique in the case file)")
    new.add_argument("--title", default="")
    new.add_argument("--examiner", default="", help="examiner's name (actor of the case's audit rows)")
    new.add_argument("--request", default="", dest="request_id", help="request / submission identifier")
    new.add_argument("--description", default="")
    new.set_defaults(func=_new)
    ls = cs.add_parser("list", help="list the cases")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=_list)
    show = cs.add_parser("show", help="a case's evidence, runs, bookmarks and audit log")
    show.add_argument("case_id", type=int, metavar="ID")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=_show)
    ver = cs.add_parser(
        "verify", help="check the case file (SQLite integrity), the audit log's hash chain and every stored result against it"
    )
    ver.add_argument("case_id", type=int, metavar="ID")
    ver.add_argument("--hashes", action="store_true", help="also re-hash every evidence file and known exemplar against its intake hash (audited)")
    ver.set_defaults(func=_verify)
    imp = cs.add_parser("import", help="hash, probe and record evidence files without analysing them")
    imp.add_argument("case_id", type=int, metavar="ID")
    imp.add_argument("videos", nargs="+", type=Path, metavar="VIDEO")
    imp.add_argument("--actor", default=None, help="who imports (default: the case's examiner)")
    imp.set_defaults(func=_import)
    ref = cs.add_parser("reference", help="known exemplars: reference footage or photos of the person a video claims to show")
    rs = ref.add_subparsers(dest="reference_command", metavar="ACTION")
    radd = rs.add_parser("add", help="hash, probe and record known exemplars (videos or photos) of one person")
    radd.add_argument("case_id", type=int, metavar="ID")
    radd.add_argument("files", nargs="+", type=Path, metavar="FILE")
    radd.add_argument("--person", required=True, help="the person the exemplars show (as the questioned video names them)")
    radd.add_argument("--note", default="", help="where the exemplars come from")
    radd.add_argument("--actor", default=None, help="who imports (default: the case's examiner)")
    radd.set_defaults(func=_reference_add)
    rls = rs.add_parser("list", help="the case's known exemplars")
    rls.add_argument("case_id", type=int, metavar="ID")
    rls.add_argument("--json", action="store_true", help="machine-readable output")
    rls.set_defaults(func=_reference_list)
    ref.set_defaults(func=lambda args: (ref.print_help(), 2)[1])
    bm = cs.add_parser("bookmark", help="add an examiner note at a frame of an evidence item")
    bm.add_argument("evidence_id", type=int, metavar="EID")
    bm.add_argument("frame", type=int)
    bm.add_argument("note")
    bm.add_argument("--track", type=int, default=None, dest="track_id")
    bm.set_defaults(func=_bookmark)
    rl = cs.add_parser("relink", help="point an evidence item at its moved file (same sha256 as at intake; audited)")
    rl.add_argument("evidence_id", type=int, metavar="EID")
    rl.add_argument("path", type=Path, metavar="NEW_PATH")
    rl.add_argument("--actor", default=None, help="who relinks (default: the case's examiner)")
    rl.set_defaults(func=_relink)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _store(args: argparse.Namespace, create: bool = False) -> Any:
    from core.cases import CaseStore

    return CaseStore(args.db, create=create)


def _new(args: argparse.Namespace) -> int:
    with _store(args, create=True) as store:
        print(store.create_case(args.number, args.title, args.examiner, args.request_id, args.description))
    return 0


def _list(args: argparse.Namespace) -> int:
    with _store(args) as store:
        cases = store.list_cases()
        if args.json:
            print(json.dumps(cases, indent=1))
            return 0
        if not cases:
            print(f"no cases in {store.path}")
        for c in cases:
            print(f"{c['id']:>4}  {c['number']:<20} {c['title'] or '-':<30} {c['examiner'] or '-':<20} "
                  f"{c['evidence_count']} evidence, {c['run_count']} runs, created {c['created_at']}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from core.cases.references import references_for

    with _store(args) as store:
        case = store.get_case(args.case_id)
        evidence = store.evidence_for(args.case_id)
        references = references_for(store, args.case_id)
        runs = store.runs_for(case_id=args.case_id)
        bookmarks = store.list_bookmarks(case_id=args.case_id)
        audit = store.audit_log(args.case_id)
        if args.json:
            for r in runs:
                r["results"] = store.results_for(r["id"])
            print(json.dumps({"case": case, "evidence": evidence, "references": references, "runs": runs, "bookmarks": bookmarks, "audit": audit}, indent=1))
            return 0
        print(f"case {case['id']}: {case['number']}  {case['title']}")
        print(f"  examiner {case['examiner'] or '-'}, request {case['request_id'] or '-'}, created {case['created_at']} by {case['created_by']}")
        print(f"evidence ({len(evidence)}):")
        for e in evidence:
            print(f"  [{e['id']}] {e['name']}  sha256 {e['sha256']}  {e['size_bytes']} bytes  imported {e['imported_at']} by {e['imported_by']}")
            for w in (e.get("probe") or {}).get("warnings") or []:
                print(f"      WARNING: {w}")
        if references:
            print(f"known exemplars ({len(references)}):")
            for r in references:
                print(f"  [{r['id']}] {r['person']}: {r['name']} ({r['kind']})  sha256 {r['sha256']}  imported {r['imported_at']} by {r['imported_by']}")
        print(f"runs ({len(runs)}):")
        for r in runs:
            finding = (r.get("finding") or {}).get("value", "-")
            print(f"  [{r['id']}] evidence {r['evidence_id']}  {r['status']:<11} {r['started_at']} -> {r['finished_at'] or '...'}  "
                  f"{r['software_name']} {r['software_version']}  finding: {finding}" + (f"  ({r['error']})" if r["error"] else ""))
            probe_warnings = set(next((e.get("probe") or {} for e in evidence if e["id"] == r["evidence_id"]), {}).get("warnings") or [])
            for w in ((r.get("analysis") or {}).get("evidence") or {}).get("warnings") or []:
                if w not in probe_warnings:  # what this run's read of the file found (damaged frames, decoder errors)
                    print(f"      WARNING: {w}")
            for res in store.results_for(r["id"]):
                print(f"      {result_line(res)}")
        if bookmarks:
            print(f"bookmarks ({len(bookmarks)}):")
            for b in bookmarks:
                print(f"  evidence {b['evidence_id']} frame {b['frame']}: {b['note']} ({b['author']}, {b['created_at']})")
        print(f"audit log ({len(audit)} rows):")
        for a in audit:
            print(f"  {a['seq']:>4} {a['at']}  {a['actor']:<16} {a['action']}" + (f" {a['object_type']} {a['object_id']}" if a["object_type"] else ""))
    return 0


def result_line(res: dict[str, Any]) -> str:
    """One stored result: its assessment (what fusion counts) first; the detector's own label after."""
    if res["status"] != "ok":
        why = ((res.get("result") or {}).get("note") or "").split(":")[0].strip()
        return f"{res['detector']}: {res['status']}" + (f" ({why})" if why else "")
    extra = [f"prediction {res['prediction']}"] if res["prediction"] and res["prediction"] != res["assessment"] else []
    if res["confidence"] is not None:
        extra.append(f"confidence {res['confidence']:.3f}")
    reading = f"assessment {res['assessment']}" if res["assessment"] else "no assessment (a measurement only)"
    return f"{res['detector']}: {reading}" + (f" ({', '.join(extra)})" if extra else "")


def _verify(args: argparse.Namespace) -> int:
    from core.cases.faults import StoreCorruptError
    from core.errors import EvidenceError

    bad = 0
    with _store(args) as store:
        found = store.integrity_check()
        if found != ["ok"]:
            # a damaged file cannot vouch for its own audit log
            text = " ".join(" ".join(found).split())  # SQLite's findings span lines: one line here
            text = text if len(text) <= 300 else text[:297] + "..."
            raise StoreCorruptError(f"{store.path}: the case file is damaged, SQLite's integrity check reports: {text}; restore it from a copy")
        result = store.verify_audit(args.case_id)  # before the re-hash rows are appended
        if getattr(args, "hashes", False):
            for ev in store.evidence_for(args.case_id):
                try:
                    store.verify_evidence(ev["id"], "verification")
                    print(f"evidence {ev['id']} ({ev['name']}): sha256 matches intake")
                except EvidenceError as exc:
                    print(f"evidence {ev['id']} ({ev['name']}): CHANGED OR MISSING: {exc}")
                    bad += 1
            from core.cases.references import references_for, verify_reference

            for ref in references_for(store, args.case_id):
                try:
                    verify_reference(store, ref["id"], "verification")
                    print(f"known exemplar {ref['id']} ({ref['name']}, {ref['person']}): sha256 matches intake")
                except EvidenceError as exc:
                    print(f"known exemplar {ref['id']} ({ref['name']}): CHANGED OR MISSING: {exc}")
                    bad += 1
    if result.ok:
        print(f"case {args.case_id}: {result.message}")
    elif result.content_problems and result.broken_seq is None:
        print(f"case {args.case_id}: STORED RESULTS CHANGED: {len(result.content_problems)} found")
    else:
        print(f"case {args.case_id}: AUDIT LOG BROKEN: {result.message}")
    for problem in result.content_problems:
        print(f"  changed: {problem}")
    for note in result.notes:
        print(f"  note: {note}")
    return 0 if result.ok and not bad else 1


def _import(args: argparse.Namespace) -> int:
    with _store(args) as store:
        for v in args.videos:
            ev = store.import_evidence(args.case_id, v, actor=args.actor)
            print(f"{ev['id']}\t{ev['sha256']}\t{ev['path']}")
    return 0


def _reference_add(args: argparse.Namespace) -> int:
    from core.cases.references import add_reference

    with _store(args) as store:
        for f in args.files:
            ref = add_reference(store, args.case_id, args.person, f, args.note, args.actor)
            print(f"{ref['id']}\t{ref['person']}\t{ref['kind']}\t{ref['sha256']}\t{ref['path']}")
    return 0


def _reference_list(args: argparse.Namespace) -> int:
    from core.cases.references import references_for

    with _store(args) as store:
        store.get_case(args.case_id)
        refs = references_for(store, args.case_id)
        if args.json:
            print(json.dumps(refs, indent=1))
            return 0
        if not refs:
            print(f"case {args.case_id} has no known exemplars")
        for r in refs:
            print(f"{r['id']:>4}  {r['person']:<24} {r['kind']:<6} {r['name']:<40} sha256 {r['sha256']}")
    return 0


def _bookmark(args: argparse.Namespace) -> int:
    if args.frame < 0:
        raise VerityError("frame must be 0 or more")
    with _store(args) as store:  # the store refuses a frame past the item's end
        print(store.add_bookmark(args.evidence_id, args.frame, args.note, args.track_id))
    return 0


def _relink(args: argparse.Namespace) -> int:
    with _store(args) as store:
        old = store.get_evidence(args.evidence_id)["path"]
        ev = store.relink_evidence(args.evidence_id, args.path, args.actor)
        print(f"evidence {ev['id']}: {old} -> {ev['path']} (sha256 {ev['sha256']} matches intake; recorded in the audit log)")
    return 0
