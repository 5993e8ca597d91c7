"""The PDF report's look: fonts, paragraph styles, tables, images and the numbered page frame
(case number in the header, "page X of Y" in the footer). Used by core.report.pdf."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import matplotlib
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas as rl_canvas
from reportlab.platypus import Image, Paragraph, Table, TableStyle

_FONTS_DONE = False


def register_fonts() -> tuple[str, str, str, str]:
    """DejaVu (shipped with matplotlib) covers names and paths in any script; Helvetica does not."""
    global _FONTS_DONE
    base = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    names = {"Dv": "DejaVuSans.ttf", "Dv-Bold": "DejaVuSans-Bold.ttf", "Dv-Oblique": "DejaVuSans-Oblique.ttf", "DvMono": "DejaVuSansMono.ttf"}
    if not _FONTS_DONE:
        try:
            for name, file in names.items():
                pdfmetrics.registerFont(TTFont(name, str(base / file)))
            pdfmetrics.registerFontFamily("Dv", normal="Dv", bold="Dv-Bold", italic="Dv-Oblique", boldItalic="Dv-Bold")
            _FONTS_DONE = True
        except Exception:  # noqa: BLE001 - fall back to the PDF base fonts
            return "Helvetica", "Helvetica-Bold", "Helvetica-Oblique", "Courier"
    return "Dv", "Dv-Bold", "Dv-Oblique", "DvMono"


def styles() -> dict[str, ParagraphStyle]:
    regular, bold, italic, mono = register_fonts()
    ss = getSampleStyleSheet()
    s = {
        "title": ParagraphStyle("title", parent=ss["Title"], fontName=bold, fontSize=16, leading=20, spaceAfter=4),
        "subtitle": ParagraphStyle("subtitle", parent=ss["Normal"], fontName=regular, fontSize=10, alignment=TA_CENTER, textColor=colors.grey),
        "h1": ParagraphStyle("h1", parent=ss["Heading1"], fontName=bold, fontSize=13, leading=16, spaceBefore=10, spaceAfter=5),
        "h2": ParagraphStyle("h2", parent=ss["Heading2"], fontName=bold, fontSize=11, leading=14, spaceBefore=8, spaceAfter=4),
        "h3": ParagraphStyle("h3", parent=ss["Heading3"], fontName=bold, fontSize=9.5, leading=12, spaceBefore=6, spaceAfter=3),
        "body": ParagraphStyle("body", parent=ss["Normal"], fontName=regular, fontSize=9, leading=12, spaceAfter=4),
        "small": ParagraphStyle("small", parent=ss["Normal"], fontName=regular, fontSize=7.5, leading=9.5),
        "cell": ParagraphStyle("cell", parent=ss["Normal"], fontName=regular, fontSize=7.5, leading=9.5),
        "cellb": ParagraphStyle("cellb", parent=ss["Normal"], fontName=bold, fontSize=7.5, leading=9.5),
        "mono": ParagraphStyle("mono", parent=ss["Normal"], fontName=mono, fontSize=6.5, leading=8.5),
        "caption": ParagraphStyle("caption", parent=ss["Normal"], fontName=italic, fontSize=7.5, leading=9.5, textColor=colors.HexColor("#444444"), spaceAfter=6),
        "conclusion": ParagraphStyle("conclusion", parent=ss["Normal"], fontName=bold, fontSize=11, leading=14, spaceAfter=3),
    }
    s["_fonts"] = (regular, bold, italic, mono)  # type: ignore[assignment]
    return s


def paragraph(text: Any, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape("" if text is None else str(text)).replace("\n", "<br/>"), style)


def short_time(iso: str) -> str:
    """'2026-11-21T10:43:32.763+00:00' -> date over time with offset, without the milliseconds (JSON keeps them)."""
    date, _, rest = iso.partition("T")
    clock, offset = rest[:8], rest[-6:] if rest[-6] in "+-" else rest[8:].lstrip(".0123456789")
    return f"{date}\n{clock} {offset}"


def details_text(details: str) -> str:
    """An audit row's details as "key: value" lines (the exact JSON text is in the JSON report)."""
    try:
        d = json.loads(details)
    except ValueError:
        return details
    if not isinstance(d, dict):
        return details
    parts = [f"{k}: {v if not isinstance(v, (dict, list)) else json.dumps(v, ensure_ascii=False)}" for k, v in d.items() if v not in (None, "", [], {})]
    text = "; ".join(parts)
    return text if len(text) <= 260 else text[:257] + "..."


def table(rows: list[list[Any]], widths: list[float], st: dict[str, Any], header: bool = True) -> Table:
    cells = [[c if not isinstance(c, (str, int, float, type(None))) else paragraph(c, st["cellb"] if header and i == 0 else st["cell"]) for c in row]
             for i, row in enumerate(rows)]
    t = Table(cells, colWidths=widths, repeatRows=1 if header else 0, hAlign="LEFT")
    style = [
        ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#999999")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")))
    t.setStyle(TableStyle(style))
    return t


def kv(pairs: list[tuple[str, Any]], st: dict[str, Any], width: float) -> Table:
    rows = [[paragraph(k, st["cellb"]), v if isinstance(v, (Paragraph, Table)) else paragraph(v, st["cell"])] for k, v in pairs]
    return table(rows, [38 * mm, width - 38 * mm], st, header=False)


def image(png: bytes, width: float) -> Image:
    from reportlab.lib.utils import ImageReader

    w, h = ImageReader(io.BytesIO(png)).getSize()
    return Image(io.BytesIO(png), width=width, height=width * h / w)


def eyes_assessable(face: dict[str, Any]) -> str:
    """"83% (head turned 40, eyes too small 3)" from a faces[] entry; "-" for runs before the eyes mask."""
    from core.signals.eyes import REASON_TEXT, assessable_percent

    if "eyes_assessable_fraction" not in face:
        return "-"
    text = f"{assessable_percent(face['eyes_assessable_fraction'])}% ({face.get('eyes_assessable_frames', '?')} frames)"
    why = [f"{REASON_TEXT.get(k, k)} {n}" for k, n in (face.get("eyes_not_assessable") or {}).items() if n]
    return text + (f"; not: {', '.join(why)}" if why else "")


def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


class NumberedCanvas(rl_canvas.Canvas):
    """Defers page output until the end so every page can say "page X of Y"."""

    def __init__(self, *args: Any, header: tuple[str, str], fonts: tuple[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._saved: list[dict[str, Any]] = []
        self._header = header
        self._fonts = fonts

    def showPage(self) -> None:  # noqa: N802 - reportlab's name
        self._saved.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._saved)
        for state in self._saved:
            self.__dict__.update(state)
            self._decorate(total)
            super().showPage()
        super().save()

    def _decorate(self, total: int) -> None:
        w, h = self._pagesize
        regular, bold = self._fonts
        self.saveState()
        self.setStrokeColor(colors.HexColor("#888888"))
        self.setLineWidth(0.4)
        self.line(18 * mm, h - 14 * mm, w - 18 * mm, h - 14 * mm)
        self.line(18 * mm, 13 * mm, w - 18 * mm, 13 * mm)
        self.setFont(bold, 8)
        self.drawString(18 * mm, h - 12 * mm, self._header[0])
        self.setFont(regular, 8)
        self.drawRightString(w - 18 * mm, h - 12 * mm, self._header[1])
        self.drawString(18 * mm, 9 * mm, "Forensic video authentication report")
        self.drawRightString(w - 18 * mm, 9 * mm, f"page {self._pageNumber} of {total}")
        self.restoreState()
