"""Compare two `verity analyze --json` files (e.g. the bundle's and the installed package's):

    python packaging/compare_analysis.py A.json B.json [--ignore KEY ...]

Prints every path whose value differs and exits 1 when any differs outside the ignored keys
(default: processing_time, the only timing the analysis JSON holds). Values must be equal
exactly: the same code on the same library versions gives the same numbers.
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
    args = ap.parse_args(argv)
    diffs = differences(json.loads(args.a.read_text()), json.loads(args.b.read_text()))
    ignored = [d for d in diffs if d.rsplit(".", 1)[-1] in args.ignore]
    other = [d for d in diffs if d not in ignored]
    print(f"{len(diffs)} differing value(s); {len(ignored)} ignored ({', '.join(args.ignore)}): {', '.join(ignored) or '-'}")
    for d in other:
        print(f"DIFFERS: {d}")
    return 1 if other else 0


if __name__ == "__main__":
    sys.exit(main())
