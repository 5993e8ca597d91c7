"""The report's known exemplars and the questioned face beside the exemplar faces.

The known items (core/cases/references.py) are listed in the evidence section with their hashes
at intake and at export. For an `identity_reference` result the questioned face (its frame
nearest the track's identity aggregate) and each exemplar's face are shown side by side with
their distances; the faces are read from the files only (evidence and exemplars re-hashed at
export), at the frames and boxes the result recorded.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
FACE_PX = 150  # side of each face image


def report_references(store: Any, case_id: int, sha256_now: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """The case's known exemplars for the report dict (schema report-1 `references`)."""
    from core.cases.references import references_for

    sha256_now = sha256_now or {}
    out = []
    for r in references_for(store, case_id):
        now = sha256_now.get(r["id"], r["sha256"])
        out.append({
            "id": r["id"], "person": r["person"], "name": r["name"], "path": r["path"], "kind": r["kind"],
            "size_bytes": r["size_bytes"], "sha256_intake": r["sha256"], "sha256_export": now, "hash_match": now == r["sha256"],
            "imported_at": r["imported_at"], "imported_by": r["imported_by"], "note": r["note"] or "", "probe": r["probe"] or {},
        })
    return out


def face_crop(rgb: np.ndarray, box: list[float] | tuple[float, ...], side: int = FACE_PX) -> bytes:
    """PNG of the face box grown by 30 % on each side (clipped to the picture), scaled to `side`."""
    import cv2

    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = box
    m = 0.3 * max(x1 - x0, y1 - y0)
    cx0, cy0 = int(max(0, x0 - m)), int(max(0, y0 - m))
    cx1, cy1 = int(min(w, x1 + m)), int(min(h, y1 + m))
    crop = rgb[cy0:cy1, cx0:cx1] if cx1 > cx0 and cy1 > cy0 else rgb
    scale = side / max(crop.shape[:2])
    crop = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    ok, png = cv2.imencode(".png", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return png.tobytes()


def _frame(path: str | Path, kind: str, frame: int) -> np.ndarray:
    if kind == "photo":
        from core.face.exemplars import read_photo

        return read_photo(path)
    from core.video.reader import VideoReader

    with VideoReader(path) as reader:
        reader.frame(0)  # before any seek (see core.face.exemplars.describe_track)
        return reader.frame(int(frame))


def identity_faces(evidence_path: str, result: dict[str, Any]) -> list[tuple[bytes, str]]:
    """(PNG, caption) of the questioned face, then of each exemplar used, from a stored
    `identity_reference` result; an image that cannot be read is left out (logged)."""
    metrics = result.get("metrics") or {}
    tid = metrics.get("track_id")
    track = (result.get("per_track") or {}).get(str(tid)) or {}
    out: list[tuple[bytes, str]] = []
    if track.get("face_frame") is not None and track.get("face_box"):
        try:
            png = face_crop(_frame(evidence_path, "video", track["face_frame"]), track["face_box"])
            dist = metrics.get("distance")
            who = metrics.get("person")
            out.append((png, f"questioned: face {tid}, frame {track['face_frame']}; {track.get('frames_used', 0)} frames used"
                        + (f"; distance to {who} {dist:.3f}" if isinstance(dist, (int, float)) and who else "")))
        except Exception as exc:  # noqa: BLE001 - one unreadable frame must not cost the report
            log.warning("questioned face of %s not shown: %s", evidence_path, exc)
    for ex in metrics.get("exemplars") or []:
        if ex.get("face_frame") is None or not ex.get("face_box") or ex.get("problem"):
            continue
        try:
            png = face_crop(_frame(ex["path"], ex.get("kind", "video"), ex["face_frame"]), ex["face_box"])
        except Exception as exc:  # noqa: BLE001
            log.warning("exemplar face %s not shown: %s", ex.get("path"), exc)
            continue
        where = "photo" if ex.get("kind") == "photo" else f"frame {ex['face_frame']}"
        out.append((png, f"known: {ex.get('person')}, {ex.get('name')} ({where}); {ex.get('frames_used', 0)} frames used"))
    return out


# -- PDF sections (called by core.report.pdf._Builder; reportlab imported there) ----------------
def known_items(b: Any) -> None:
    """Section 2's known exemplars: what each shows and its hashes at intake and at export."""
    from reportlab.lib.units import mm
    from reportlab.platypus import KeepTogether, Paragraph

    from core.report.pdf_style import kv as _kv
    from core.report.pdf_style import paragraph as _p

    b.add(_p("Known exemplars (reference items)", b.st["h2"]))
    b.para("Reference footage or photos of the person(s) a questioned video claims to show, supplied for comparison. "
           "They were hashed (SHA-256) at import and again at this export, and only ever read.")
    for r in b.r["references"]:
        probe = r.get("probe") or {}
        v = probe.get("video") or probe
        size = f"{v.get('width', '?')}x{v.get('height', '?')}" + (f", {v.get('frame_count')} frames" if v.get("frame_count") else "")
        rows = [
            ("Person shown", r["person"]), ("File", r["name"]), ("Kind", f"{r['kind']} ({size})"), ("Path at intake", r["path"]),
            ("Imported", f"{r['imported_at']} by {r.get('imported_by') or '-'}"), ("Source / note", r.get("note") or "-"),
            ("SHA-256 at intake", Paragraph(r["sha256_intake"], b.st["mono"])),
            ("SHA-256 at export", Paragraph(r["sha256_export"], b.st["mono"])),
            ("Hashes match", "yes" if r["hash_match"] else "NO"),
        ]
        b.add(KeepTogether([_p(f"Known item K{r['id']}: {r['name']}", b.st["h3"]), _kv(rows, b.st, b.width - 2 * mm)]))


def identity_findings(b: Any, e: dict[str, Any], result: dict[str, Any]) -> None:
    """The questioned face beside the exemplar faces, with the distances and the frames used."""
    from reportlab.lib.units import mm
    from reportlab.platypus import CondPageBreak, KeepTogether, Table, TableStyle

    from core.report.pdf_style import image as _image
    from core.report.pdf_style import paragraph as _p

    m = result.get("metrics") or {}
    b.add(CondPageBreak(45 * mm), _p("Questioned face and known exemplars", b.st["h3"]))
    dists = m.get("distances") or {}
    if dists:
        b.para("Distance of the questioned face's identity (dlib face descriptors, robust mean over the frames used) to each "
               "person's exemplars: " + "; ".join(f"{k} {v:.3f}" if isinstance(v, (int, float)) else f"{k} -" for k, v in dists.items())
               + ". dlib's published same-person threshold is 0.6; Verity's calibrated reading is in the note below.", "small")
    b.para(f"Reading: {result.get('assessment') or '-'}. {result.get('note') or ''}", "small")
    faces = identity_faces(e["path"], result)
    if not faces:
        b.para("No face image could be shown (no frame was usable, or a file could not be read).", "small")
        return
    per_row = 4
    w = b.width / per_row - 2 * mm
    rows = []
    for k in range(0, len(faces), per_row):
        cells = [[_image(png, w), _p(cap, b.st["caption"])] for png, cap in faces[k:k + per_row]]
        rows.append(cells + [""] * (per_row - len(cells)))
    t = Table(rows, colWidths=[b.width / per_row] * per_row, hAlign="LEFT")
    t.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    b.add(KeepTogether([t]))
    if m.get("exemplars_not_used"):
        b.para("Exemplars not used: " + "; ".join(m["exemplars_not_used"]), "small")
