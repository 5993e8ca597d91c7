"""Compare two `verity analyze --json` files (e.g. the bundle's and the installed package's):

    python packaging/compare_analysis.py A.json B.json [--ignore KEY ...] [--same PATH_A PATH_B]

Prints every path whose value differs and exits 1 when any differs outside the ignored keys
(default: processing_time, the only timing the analysis JSON holds). Values must be equal
exactly: the same code on the same library versions gives the same numbers. `--same` names two
folders that play the same part (the bundle's weights/ and the source tree's): B's text has
PATH_B replaced by PATH_A before comparing, and the number of values that differed only by
those paths is reported.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

TIMING_KEYS = ("processing_time",)


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}.{k}" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += differences(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [path or "."]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--ignore", nargs="*", default=list(TIMING_KEYS), help="key names whose values may differ")
    ap.add_argument("--same", nargs=2, metavar=("PATH_A", "PATH_B"), help="folders that play the same part in A and B")
    args = ap.parse_args(argv)
    a, b_text = json.loads(args.a.read_text()), args.b.read_text()
    if args.same:
        raw = differences(a, json.loads(b_text))
        b_text = b_text.replace(json.dumps(args.same[1])[1:-1], json.dumps(args.same[0])[1:-1])
    diffs = differences(a, json.loads(b_text))
    if args.same:
        print(f"{len(raw) - len(diffs)} value(s) differed only by {args.same[1]} (A: {args.same[0]}): " + ", ".join(d for d in raw if d not in diffs))
    ignored = [d for d in diffs if d.rsplit(".", 1)[-1] in args.ignore]
    other = [d for d in diffs if d not in ignored]
    print(f"{len(diffs)} differing value(s); {len(ignored)} ignored ({', '.join(args.ignore)}): {', '.join(ignored) or '-'}")
    for d in other:
        print(f"DIFFERS: {d}")
    return 1 if other else 0


if __name__ == "__main__":
    sys.exit(main())
