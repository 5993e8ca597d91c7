"""How often each rule that can read `inconsistent` fires on genuine and on manipulated clips.

Usage:  python tests/bench/rule_rates.py RUN_DIR [RUN_DIR_AFTER] [--manifest validation.tsv] [--markdown]

RUN_DIR holds the analysis JSONs of `verity analyze CLIP... --json RUN_DIR/` over the clips of
the manifest (`../shared/media/validation.tsv`: path, label, kind). With two folders the table
shows each rule before -> after. A rule "fires" on a clip when it makes a detector's reading of
some face `inconsistent`; the last rows are each detector's reading and the fused finding.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

MEDIA = Path(__file__).resolve().parents[3] / "shared" / "media"

# rule names of core.signals.physiology.RULES, recognised in the reason text of older runs
_OLD_TEXT = {
    "incomplete_pattern": re.compile(r"blinks incomplete: the deeper eye"),
    "one_eyed_pattern": re.compile(r"blinks one-eyed: mean asymmetry"),
    "rate_below_reading": re.compile(r"below even the reading rate"),
    "rate_above_conversation": re.compile(r"above the conversational 95% range"),
}


def fired(analysis: dict[str, Any]) -> set[str]:
    """Every rule that fired on this clip, as 'detector:rule', plus 'detector' and 'finding'
    entries for the readings themselves."""
    out: set[str] = set()
    for name, d in (analysis.get("detectors") or {}).items():
        if d.get("status") != "ok":
            continue
        if d.get("assessment") == "inconsistent":
            out.add(f"{name} reads inconsistent")
        for tr in (d.get("per_track") or {}).values():
            if not isinstance(tr, dict) or tr.get("assessment") != "inconsistent":
                continue
            rules = tr.get("rules_fired")
            if rules is None:  # a run made before rules were named
                text = " ".join(tr.get("reasons") or [])
                rules = [r for r, rx in _OLD_TEXT.items() if rx.search(text)] or ["(its rule not named in the result)"]
            out |= {f"{name}: {r}" for r in rules}
    if (analysis.get("finding") or {}).get("value") == "inconsistent":
        out.add("fused finding inconsistent")
    return out


def table(run: Path, manifest: list[dict[str, str]]) -> tuple[dict[str, dict[str, int]], dict[str, int], list[str]]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    totals: dict[str, int] = defaultdict(int)
    missing = []
    for row in manifest:
        p = run / f"{Path(row['path']).name}.json"
        if not p.is_file():
            missing.append(row["path"])
            continue
        group = "genuine" if row["label"] == "real" else row.get("kind") or "fake"
        totals[group] += 1
        for rule in fired(json.loads(p.read_text())):
            counts[rule][group] += 1
    return counts, totals, missing


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--manifest", type=Path, default=MEDIA / "validation.tsv")
    args = ap.parse_args()
    manifest = list(csv.DictReader(args.manifest.open(), delimiter="\t"))
    tables = [table(r, manifest) for r in args.runs[:2]]
    groups = ["genuine"] + sorted({g for _, totals, _ in tables for g in totals} - {"genuine"})
    rules = sorted({r for counts, _, _ in tables for r in counts}, key=lambda r: (r.startswith("fused"), r))
    totals = tables[0][1]
    print("| rule | " + " | ".join(f"{g} (n={totals.get(g, 0)})" for g in groups) + " |")
    print("|---|" + "---|" * len(groups))
    for rule in rules:
        cells = []
        for g in groups:
            vals = [f"{t[0].get(rule, {}).get(g, 0)}" for t in tables]
            cells.append(" -> ".join(vals))
        print(f"| {rule} | " + " | ".join(cells) + " |")
    for run, (_, _, missing) in zip(args.runs, tables):
        if missing:
            print(f"\n{run}: {len(missing)} clip(s) without an analysis: {', '.join(missing)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
