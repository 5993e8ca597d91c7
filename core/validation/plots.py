"""The validation record's figures: ROC per detector with a score, readings per kind with their
Wilson intervals, and a one-page PDF summary (matplotlib object API, reportlab)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from matplotlib.figure import Figure
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from core.validation.figures import rate

DPI = 130


def _rows(record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Detectors that ran on at least one file (not unavailable everywhere), then the finding."""
    ran = [(n, f) for n, f in record["detectors"].items() if f["table"]["overall"]["unavailable"]["real"] + f["table"]["overall"]["unavailable"]["fake"] < record["n"]["analysed"]]
    return [*ran, ("fused finding", record["finding"])]


def plot_coverage(record: dict[str, Any], path: Path) -> Path:
    """Per detector: the share of each kind read inconsistent (genuine: the false-inconsistent
    rate), with Wilson 95% error bars, and the share with any reading (coverage) as an outline."""
    rows = _rows(record)
    kinds = sorted({k for _, f in rows for k in f["table"]["by_kind"]}, key=lambda k: (k != "genuine", k))
    fig = Figure(figsize=(9, 1.2 + 0.9 * len(rows)))
    ax = fig.add_subplot()
    height = 0.8 / max(len(kinds), 1)
    for i, (_name, f) in enumerate(rows):
        for j, kind in enumerate(kinds):
            cell = f["table"]["by_kind"].get(kind)
            if not cell or not cell["n"]:
                continue
            y = i + j * height
            k_inc = cell["inconsistent"]
            r = rate(k_inc, cell["n"])
            covered = (cell["consistent"] + cell["inconsistent"]) / cell["n"]
            colour = f"C{j}"
            ax.barh(y, r["rate"], height=height * 0.9, color=colour, label=kind if i == 0 else None)
            ax.errorbar(r["rate"], y, xerr=[[r["rate"] - r["ci95"][0]], [r["ci95"][1] - r["rate"]]], color="black", capsize=2, lw=0.8)
            ax.barh(y, covered, height=height * 0.9, fill=False, edgecolor=colour, lw=0.8, ls="--")
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))], [n for n, _ in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share read inconsistent (bar, Wilson 95% CI); dashed outline: share with any reading (coverage)")
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title(f"{record['name']}: readings by kind (n = {record['n']['real']} genuine / {record['n']['fake']} manipulated)", fontsize=9)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def plot_roc(record: dict[str, Any], path: Path) -> Path | None:
    curves = [(n, f["auc"]) for n, f in record["detectors"].items() if f.get("auc")]
    if not curves:
        return None
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    for name, auc in curves:
        ax.plot(auc["roc"]["fpr"], auc["roc"]["tpr"], label=f"{name}: AUC {auc['value']:.2f} ({auc['ci95'][0]:.2f}-{auc['ci95'][1]:.2f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.6, ls=":")
    ax.set_xlabel("false positive rate (genuine)")
    ax.set_ylabel("true positive rate (manipulated)")
    ax.legend(fontsize=7, loc="lower right")
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _ci(r: dict[str, Any]) -> str:
    if not r["n"]:
        return "n/a"
    return f"{r['k']}/{r['n']} ({100 * r['rate']:.0f} %, {100 * r['ci95'][0]:.0f}-{100 * r['ci95'][1]:.0f})"


def summary_pdf(record: dict[str, Any], path: Path, figure: Path | None) -> Path:
    st = getSampleStyleSheet()
    small = st["BodyText"].clone("small", fontSize=7.5, leading=9)
    story: list[Any] = [
        Paragraph(escape(f"Validation record: {record['name']}"), st["Title"]),
        Paragraph(escape(
            f"{record['purpose']}; {record['software']['name']} {record['software']['version']}; {record['created']}; manifest sha256 "
            f"{record['manifest']['sha256'][:16]}...; {record['n']['analysed']} of {record['n']['listed']} files analysed "
            f"({record['n']['real']} genuine, {record['n']['fake']} manipulated)."
        ), small),
    ]
    if record.get("note"):
        story.append(Paragraph(f"<b>{escape(record['note'])}</b>", small))
    head = ["method", "coverage genuine", "coverage manip.", "inconsistent on genuine (95 % CI)", "inconsistent on manip. (95 % CI)",
            "consistent on manip. (95 % CI)", "ROC-AUC"]
    rows = [head]
    for name, f in _rows(record):
        auc = f.get("auc")
        rows.append([
            name, _ci(f["coverage"]["real"]), _ci(f["coverage"]["fake"]), _ci(f["false_inconsistent"]), _ci(f["detection"]), _ci(f["false_consistent"]),
            "n/a (no score)" if not auc else f"{auc['value']:.2f} ({auc['ci95'][0]:.2f}-{auc['ci95'][1]:.2f})",
        ])
    table = Table([[Paragraph(escape(str(c)), small) for c in r] for r in rows], repeatRows=1)
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.3, colors.grey), ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke)]))
    story += [Spacer(1, 3 * mm), table, Spacer(1, 3 * mm)]
    t = record["finding"]["table"]["overall"]
    story.append(Paragraph(escape(
        "Fused finding x label: " + "; ".join(f"{r}: {t[r]['real']} genuine / {t[r]['fake']} manipulated" for r in ("consistent", "inconsistent", "inconclusive"))
    ), small))
    never = [n for n, f in record["detectors"].items() if (n, f) not in _rows(record)]
    if never:
        story.append(Paragraph(escape(f"Unavailable on every file (no weights or no input they need): {', '.join(never)}."), small))
    if record["failed"]:
        story.append(Paragraph(escape(f"Not analysed: {len(record['failed'])} file(s): " + "; ".join(f"{Path(x['path']).name}: {x['reason']}" for x in record["failed"][:6])), small))
    if figure is not None and figure.is_file():
        story += [Spacer(1, 2 * mm), Image(str(figure), width=170 * mm, height=170 * mm * 0.5, kind="proportional")]
    SimpleDocTemplate(str(path), pagesize=A4, leftMargin=14 * mm, rightMargin=14 * mm, topMargin=12 * mm, bottomMargin=12 * mm,
                      title=f"Validation record {record['name']}").build(story)
    return path
