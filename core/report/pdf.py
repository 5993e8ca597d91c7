"""The PDF report (reportlab), laid out after SWGDE practice for authentication reports.

Sections: 1 case and request, 2 evidence (hashes at intake and at export), 3 tools, parameters
and weights, 4 methods with references and known limits, 5 findings (observations only: results,
plots, flagged segments, key frames, bookmarks), 6 interpretation, 7 limitations, 8 conclusion on
the three-value scale, 9 chain of custody (the audit log). Every page carries the case number in
its header and "page X of Y" in its footer. It reads only the report dict (built from the case
store), the face pass files it names and the evidence frames for the key-frame images.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab import rl_config
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.platypus import (
    CondPageBreak,
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from core.report import pdf_style as ps
from core.report import plots
from core.report.methods import FACE_PASS, FUSION, method_for
from core.signals.timebase import NOMINAL_FPS
from core.validation_records import citation

log = logging.getLogger(__name__)
# Images as binary streams: ASCII85 only makes the file bigger, and without reportlab's optional C
# accelerator it is encoded in pure Python (seconds per report).
rl_config.useA85 = 0

MAX_KEY_FRAMES = 6  # per evidence item: the highest-scoring flagged segments
MAX_SEGMENT_ROWS = 40
MAX_SERIES = 8  # per evidence item, score series first

CONCLUSION_TEXT = {
    "consistent": (
        "Consistent with an original recording",
        "The observations made with the methods described are consistent with an unaltered original recording of "
        "the face(s) shown. This does not exclude a manipulation that these methods cannot detect.",
    ),
    "inconsistent": (
        "Inconsistent with an original recording",
        "The observations include features that the methods described associate with synthesised or altered faces "
        "(see Findings). They are inconsistent with an unaltered original recording; other explanations for each "
        "observation are discussed under Interpretation and Limitations.",
    ),
    "inconclusive": (
        "Inconclusive",
        "The observations neither support nor contradict that the recording is an unaltered original, with the "
        "methods and material available.",
    ),
}

def _facepass(run: dict[str, Any]) -> plots.FacePass | None:
    """The run's face pass, unless CaseStore.stored_analysis found it changed since the run."""
    fpi = run.get("facepass") or {}
    path = fpi.get("path")
    if fpi.get("verified") is False:
        log.warning("face pass %s changed since its run; not used in the report", path)
        return None
    if not path or not Path(path).is_file():
        return None
    try:
        return plots.FacePass.load(path)
    except (OSError, ValueError, KeyError) as exc:
        log.warning("face pass %s unreadable: %s", path, exc)
        return None


class _Builder:
    def __init__(self, report: dict[str, Any], companion: tuple[str, str] | None = None) -> None:
        self.r = report
        self.companion = companion
        self.st = ps.styles()
        self.width = A4[0] - 36 * mm
        self.story: list[Any] = []
        self.notes: list[str] = []  # limitations found while building (missing face pass, etc.)

    def add(self, *flow: Any) -> None:
        self.story.extend(flow)

    def h1(self, text: str) -> None:
        self.add(CondPageBreak(40 * mm), ps.paragraph(text, self.st["h1"]))

    def para(self, text: str, style: str = "body") -> None:
        self.add(ps.paragraph(text, self.st[style]))

    # -- sections -------------------------------------------------------------------------------
    def title(self) -> None:
        c = self.r["case"]
        self.add(ps.paragraph("Forensic video authentication report", self.st["title"]))
        self.add(ps.paragraph(f"{self.r['software']['name']} {self.r['software']['version']} · generated {self.r['generated_at']}", self.st["subtitle"]), Spacer(1, 6 * mm))
        self.h1("1. Case and request")
        self.add(ps.kv([
            ("Case number", c["number"]), ("Case title", c["title"] or "-"), ("Request identifier", c["request_id"] or "-"),
            ("Examiner", c["examiner"] or "-"), ("Case opened", f"{c['created_at']} by {c['created_by'] or '-'}"),
            ("Report generated", f"{self.r['generated_at']} by {self.r['generated_by']}"),
            ("Items examined", ", ".join(f"#{e['id']} {e['name']}" for e in self.r["evidence"])),
            ("Request", c.get("description") or "Examine the submitted video recording(s) for signs that the faces shown were synthesised or altered (deepfake, face swap, lip-sync), and report the observations and a conclusion on the three-value scale."),
        ], self.st, self.width))

    def evidence(self) -> None:
        self.h1("2. Evidence items")
        self.para("Each file was hashed (SHA-256) when it was imported and again when this report was exported. The files were only ever read.")
        for e in self.r["evidence"]:
            v = (e["probe"] or {}).get("video") or {}
            a = (e["probe"] or {}).get("audio")
            rows = [
                ("File", e["name"]), ("Path at intake", e["path"]), ("Size", f"{e['size_bytes']:,} bytes"),
                ("Container / video", f"{(e['probe'] or {}).get('format', '-')}; {v.get('codec', '-')} {v.get('width', '?')}x{v.get('height', '?')}, "
                                      f"{ps.fmt(v.get('fps'))} fps, {v.get('frame_count', '?')} frames" + (" (variable frame rate)" if v.get("variable_frame_rate") else "")),
                ("Audio", "none" if not a else f"{a.get('codec')} {a.get('sample_rate')} Hz, {a.get('channels')} ch"),
                ("Imported", f"{e['imported_at']} by {e['imported_by'] or '-'}"),
                ("SHA-256 at intake", Paragraph(e["sha256_intake"], self.st["mono"])),
                ("SHA-256 at export", Paragraph(e["sha256_export"], self.st["mono"])),
                ("Hashes match", "yes" if e["hash_match"] else "NO"),
            ]
            if e.get("warnings"):  # damage, timing, streams not read: the examiner must see them here
                rows.append(("Warnings", ps.paragraph("\n".join(f"• {w}" for w in e["warnings"]), self.st["cell"])))
            self.add(KeepTogether([ps.paragraph(f"Item #{e['id']}: {e['name']}", self.st["h2"]), ps.kv(rows, self.st, self.width)]))
        if self.r.get("references"):
            from core.report.identity import known_items

            known_items(self)

    def tools(self) -> None:
        self.h1("3. Tools, parameters and model weights")
        sw = self.r["software"]
        self.para(f"Software: {sw['name']} version {sw['version']} (this report). Each run below records the version that produced it.")
        rows = [["Run", "Item", "Status", "Started / finished", "Software", "Detectors", "Evidence SHA-256 at run start"]]
        for e in self.r["evidence"]:
            for run in e["runs"]:
                rows.append([
                    f"#{run['id']}", f"#{e['id']}", run["status"], f"{run['started_at'].replace('T', ' ')}\n{(run['finished_at'] or '-').replace('T', ' ')}",
                    f"{run['software']['name']} {run['software']['version']}",
                    ", ".join(run["detectors_asked"] or []) or "none registered",
                    Paragraph(run["evidence_sha256"], self.st["mono"]),
                ])
        if len(rows) > 1:
            self.add(ps.table(rows, [10 * mm, 10 * mm, 15 * mm, 39 * mm, 19 * mm, 32 * mm, self.width - 125 * mm], self.st))
        else:
            self.para("No analysis run is recorded for these items.")
        weights = [[f"#{run['id']}", det, name, Paragraph(sha, self.st["mono"])]
                   for e in self.r["evidence"] for run in e["runs"] for det, entries in run["weights_sha256"].items() for name, sha in entries.items()]
        self.add(ps.paragraph("Model weights used", self.st["h3"]))
        if weights:
            self.add(ps.table([["Run", "Detector", "Weights", "SHA-256 (verified before loading)"], *weights], [11 * mm, 30 * mm, 35 * mm, self.width - 76 * mm], self.st))
        else:
            self.para("No learned model weights were used: every result in this report comes from weight-free measurements.")
        self.add(ps.paragraph("Parameters", self.st["h3"]))
        seen: dict[str, list[int]] = {}
        for e in self.r["evidence"]:
            for run in e["runs"]:
                seen.setdefault(json.dumps(run["parameters"], sort_keys=True, indent=1), []).append(run["id"])
        for text, ids in seen.items():
            self.para(f"Runs {', '.join('#' + str(i) for i in ids)}:", "small")
            self.add(Paragraph(escape(text).replace("\n", "<br/>").replace(" ", "&nbsp;"), self.st["mono"]), Spacer(1, 2 * mm))

    def methods(self) -> None:
        self.h1("4. Methods")
        names = sorted({d for e in self.r["evidence"] for run in e["runs"] for d in (run["results"] or {})})
        for name, m in [(None, FACE_PASS), *[(n, method_for(n)) for n in names], (None, FUSION)]:
            block = [ps.paragraph(m.title, self.st["h3"]), ps.paragraph(m.summary, self.st["body"])]
            if m.references:
                block.append(ps.paragraph("References: " + " ".join(f"[{k + 1}] {ref}" for k, ref in enumerate(m.references)), self.st["small"]))
            block.append(ps.paragraph("Known limits: " + " ".join(m.limits), self.st["small"]))
            if name is not None:
                block += [ps.paragraph("Measured error rates: " + line, self.st["small"]) for line in self._validation_lines(name)]
            self.add(KeepTogether(block), Spacer(1, 2 * mm))

    def _validation_lines(self, detector: str) -> list[str]:
        """The validation record each run's result of this detector matches, or that none does."""
        by_text: dict[str, list[int]] = {}
        for e in self.r["evidence"]:
            for run in e["runs"]:
                if run["status"] == "done" and detector in (run["results"] or {}):
                    by_text.setdefault(citation((run.get("validation") or {}).get(detector)), []).append(run["id"])
        if len(by_text) == 1:
            return list(by_text)
        return [f"runs {', '.join('#' + str(i) for i in ids)}: {text}" for text, ids in by_text.items()]

    def findings(self) -> None:
        self.h1("5. Findings (observations)")
        self.para("This section reports what was measured, without interpretation. Scores are probabilities of manipulation "
                  "(1 = manipulated) where a detector gives one; other values are measurements whose scale is stated.")
        for e in self.r["evidence"]:
            self.add(ps.paragraph(f"Item #{e['id']}: {e['name']}", self.st["h2"]))
            done = [r for r in e["runs"] if r["status"] == "done"]
            others = [r for r in e["runs"] if r["status"] != "done"]
            for r in others:
                self.para(f"Run #{r['id']} ended with status '{r['status']}'" + (f": {r['error']}" if r["error"] else "") + "; its partial results are not used below.", "small")
            if not done:
                self.para("No finished analysis run for this item.")
                continue
            self._run_findings(e, done[-1])
            if e["bookmarks"]:
                self.add(CondPageBreak(25 * mm), ps.paragraph("Examiner bookmarks", self.st["h3"]))
                rows = [["Frame", "Face", "Note", "By / at"]] + [
                    [b["frame"], ps.fmt(b["track_id"]), b["note"] or "", f"{b['author'] or '-'}\n{b['created_at']}"] for b in e["bookmarks"]
                ]
                self.add(ps.table(rows, [14 * mm, 12 * mm, self.width - 76 * mm, 50 * mm], self.st))

    def _run_findings(self, e: dict[str, Any], run: dict[str, Any]) -> None:
        st = self.st
        self.para(f"From run #{run['id']} ({run['started_at']}). Earlier or unfinished runs are listed in section 3.", "small")
        fp = _facepass(run)
        faces = run.get("faces") or []
        frame_count = int(((e["probe"] or {}).get("video") or {}).get("frame_count") or (fp.frame_count if fp else 0))
        fps = float(((e["probe"] or {}).get("video") or {}).get("fps") or (fp.fps if fp else NOMINAL_FPS))
        self.add(CondPageBreak(25 * mm), ps.paragraph("Faces and blinks", st["h3"]))
        if not faces:
            self.para("No face was found in the video; face-based detectors could not measure anything.")
        else:
            rows = [["Face", "Frames", "Frames with face", "Eyes assessable", "Blinks", "Blink rate (per min)"]]
            for f in faces:
                rows.append([f["track_id"], f"{f['first_frame']}-{f['last_frame']}", f["frames_with_face"], ps.eyes_assessable(f), len(f["blinks"]),
                             ps.fmt(f["blink_rate_per_min"], 1) if f["blink_rate_per_min"] is not None else "n/a (under 1 s of assessable eyes)"])
            self.add(ps.table(rows, [12 * mm, 24 * mm, 22 * mm, self.width - 110 * mm, 14 * mm, 38 * mm], st))
            if any("eyes_assessable_frames" in f for f in faces):
                self.para("Blinks are only looked for on frames where the eyes can be judged: not on a turned head, eyes under "
                          "8 pixels wide, a face partly outside the picture or implausible eye landmarks. Rates are per minute "
                          "of such frames.", "small")
        # EAR timeline per face track
        if fp is None and faces:
            self.notes.append(f"Item #{e['id']}: the face pass file of run #{run['id']} is missing or changed, so the EAR plots and key-frame landmarks are omitted.")
        if fp is not None:
            from core.signals.eyes import stored_params

            stored = run["parameters"] or {}
            params, eye_params = stored_params(stored)  # the run's own parameters: the plot shows what it reported
            # a run from before the eyes mask stored unmasked events: the plot recomputes the masked ones
            by_id = {f["track_id"]: f for f in faces} if "eyes" in stored else {}
            for t in fp.tracks[:4]:
                # only blink-related segments here: other detectors' segments are shaded on their own series
                segs = [s for s in run["segments"] if "blink" in s["detector"] and s["track_id"] in (None, t.track_id)]
                png = plots.ear_timeline(fp, t, params, by_id.get(t.track_id, {}).get("blinks"), segs, eye_params)
                self.add(KeepTogether([ps.image(png, self.width), ps.paragraph(
                    f"Figure: eye aspect ratio of face {t.track_id} over time, with the blink threshold (dashed), blink events (purple), "
                    "segments flagged by the blink detectors (red) and stretches where the eyes cannot be judged (grey: "
                    "no blink is looked for there).", st["caption"])]))
            if len(fp.tracks) > 4:
                self.notes.append(f"Item #{e['id']}: only the first 4 of {len(fp.tracks)} face tracks are plotted.")
        # detector results
        self.add(CondPageBreak(25 * mm), ps.paragraph("Detector results", st["h3"]))
        if not run["results"]:
            self.para("No detector result was stored for this run (no detector was available in this installation).")
        else:
            rows = [["Detector", "Status", "Prediction", "Conf.", "Reading", "Frames analysed", "Note"]]
            for name, res in run["results"].items():
                rows.append([name, res["status"], res["prediction"] or "-", ps.fmt(res["confidence"]), res.get("assessment") or "-",
                             f"{res['frames_analyzed']} / {res['frame_count']}", res["note"] or ""])
            self.add(ps.table(rows, [28 * mm, 20 * mm, 19 * mm, 12 * mm, 20 * mm, 17 * mm, self.width - 116 * mm], st), Spacer(1, 2 * mm))
            for name, res in run["results"].items():
                metrics = {k: v for k, v in (res["metrics"] or {}).items() if isinstance(v, (int, float, str, bool)) or v is None}
                if metrics:
                    text = "; ".join(f"{k} = {ps.fmt(v)}" for k, v in list(metrics.items())[:30])
                    self.add(ps.paragraph(f"{name} metrics: {text}", st["small"]), Spacer(1, 1 * mm))
            if (run["results"].get("identity_reference") or {}).get("status") == "ok":
                from core.report.identity import identity_findings

                identity_findings(self, e, run["results"]["identity_reference"])
        series = [s for name, res in run["results"].items() if res["status"] == "ok" for s in plots.series_of(name, res, frame_count)]
        series.sort(key=lambda s: not s.probability)  # score series first (stable): they are what MAX_SERIES keeps
        if len(series) > MAX_SERIES:
            self.notes.append(f"Item #{e['id']}: {len(series) - MAX_SERIES} of {len(series)} score and measurement series are not plotted "
                              f"({', '.join(f'{s.detector}: {s.name}' for s in series[MAX_SERIES:])}); all are in the JSON report.")
            series = series[:MAX_SERIES]
        if series:
            for k in range(0, len(series), 4):
                png = plots.score_series(series[k:k + 4], run["segments"], fp, frame_count, fps)
                self.add(KeepTogether([ps.image(png, self.width), ps.paragraph(
                    "Figure: per-window and per-frame series of the detectors over time; red shading marks that detector's flagged segments. "
                    "'score' panels are scores in 0..1 (1 = manipulated, dotted line at 0.5); 'value' panels are measurements on the scale "
                    "their detector states.", st["caption"])]))
        # flagged segments and key frames
        segs = run["segments"]
        self.add(CondPageBreak(25 * mm), ps.paragraph("Flagged segments", st["h3"]))
        if not segs:
            self.para("No detector flagged a segment.")
            return
        rows = [["Detector", "Face", "Frames", "Time (s)", "Score", "Reason"]]
        to_t = plots.frame_to_time(fp) if fp is not None else (lambda i: i / fps)
        for s in segs[:MAX_SEGMENT_ROWS]:
            rows.append([s["detector"], ps.fmt(s["track_id"]), f"{s['start_frame']}-{s['end_frame']}",
                         f"{to_t(s['start_frame']):.2f}-{to_t(s['end_frame'] + 1):.2f}", ps.fmt(s["score"]), s["reason"] or ""])
        self.add(ps.table(rows, [28 * mm, 11 * mm, 20 * mm, 22 * mm, 14 * mm, self.width - 95 * mm], st))
        if len(segs) > MAX_SEGMENT_ROWS:
            self.para(f"... and {len(segs) - MAX_SEGMENT_ROWS} more segments (all are in the JSON report).", "small")
        self._key_frames(e, segs, fp, self._heatmaps(e, run), (run.get("parameters") or {}).get("video_stream"))

    def _heatmaps(self, e: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
        """Detector -> its stored Grad-CAM maps (core.heatmaps), when the file is unchanged since the run."""
        from core.heatmaps import stored_maps

        maps, problems = stored_maps(run["results"])
        self.notes += [f"Item #{e['id']}: {p}." for p in problems]
        return maps

    def _key_frames(
        self, e: dict[str, Any], segs: list[dict[str, Any]], fp: Any, heat: dict[str, Any] | None = None, video_stream: int | None = None
    ) -> None:
        from core.video.reader import VideoReader

        heat = heat or {}

        # the strongest segments of each detector in turn, so one detector's many windows do not crowd out the others
        by_det: dict[str, list[dict[str, Any]]] = {}
        for s in sorted(segs, key=lambda s: -(s["score"] if s["score"] is not None else -1)):
            by_det.setdefault(s["detector"], []).append(s)
        chosen: list[dict[str, Any]] = []
        while len(chosen) < MAX_KEY_FRAMES and any(by_det.values()):
            for queue in by_det.values():
                if queue and len(chosen) < MAX_KEY_FRAMES:
                    chosen.append(queue.pop(0))
        chosen.sort(key=lambda s: s["start_frame"])
        cells = []
        try:
            with VideoReader(e["path"], stream_index=video_stream) as reader:  # the stream the run analysed
                for s in chosen:
                    frame = min((s["start_frame"] + s["end_frame"]) // 2, reader.frame_count - 1)
                    store, k = heat.get(s["detector"]), None
                    if store is not None:  # the key frame is the mapped frame of the segment's best window
                        k = store.nearest(s["track_id"], s["start_frame"], s["end_frame"])
                        frame = int(store.frame[k]) if k is not None else frame
                    hm = (store.affine[k], store.maps[k], store.crop_size) if k is not None else None
                    png, caption = plots.key_frame(reader, frame, fp, s["track_id"], max_side=480 if hm is None else 300, heat=hm)
                    where = f"frame of window {int(store.window[k])} (score {float(store.score[k]):.2f})" if k is not None else "middle"
                    if k is not None and float(store.peak[k]) <= 0:
                        caption += " (all zero: no region raised the manipulated-class logit)"
                    cells.append([ps.image(png, self.width / 2 - 4 * mm), ps.paragraph(f"{s['detector']}, {caption}: {where} of flagged frames {s['start_frame']}-{s['end_frame']}", self.st["caption"])])
        except Exception as exc:  # noqa: BLE001 - a frame that cannot be read must not cost the whole report
            self.notes.append(f"Item #{e['id']}: key frames could not be read ({type(exc).__name__}: {exc}).")
        if not cells:
            return
        for k in range(0, len(cells), 2):
            t = Table([[cells[k], cells[k + 1] if k + 1 < len(cells) else ""]], colWidths=[self.width / 2] * 2, hAlign="LEFT")
            t.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
            if k == 0:  # the heading stays with the first row of images
                self.add(KeepTogether([ps.paragraph("Key frames of flagged segments (landmarks drawn)", self.st["h3"]), t]))
            else:
                self.add(t)
        if len(segs) > len(chosen):
            self.para(f"Key frames are shown for {len(chosen)} of {len(segs)} flagged segments (the highest-scoring of each detector in turn).", "small")

    def _reasons(self, finding: dict[str, Any], indent: str = "") -> None:
        for reason in finding.get("reasons") or []:
            if isinstance(reason, dict):
                who = reason.get("detector", "")
                text = reason.get("text") or json.dumps({k: v for k, v in reason.items() if k != "detector"}, ensure_ascii=False)
                reading = f" [{reason['assessment']}]" if reason.get("assessment") else ""
                if reason.get("decisive") is False:  # an unvalidated reading: an observation, not the finding
                    reading = f" [{reason['assessment']}: observation, not decisive, as {reason.get('validation', 'it is not validated')}]"
                segs = reason.get("segments") or []
                where = f"; {len(segs)} segment(s): " + ", ".join(f"frames {g['start_frame']}-{g['end_frame']}" for g in segs[:5]) if segs else ""
                self.para(f"{indent}• {who}{reading}: {text}{where}")
            else:
                self.para(f"{indent}• {reason}")
        missing = [f"{i.get('detector', '?')} ({i.get('status', '')})" if isinstance(i, dict) else str(i) for i in finding.get("unavailable") or []]
        if missing and not indent:  # per face they repeat the item's list
            self.para(f"• not counted: {', '.join(missing)}; the reasons are under Limitations.", "small")
        if finding.get("measurements") and not indent:
            self.para(f"• measurements without a reading of their own (not counted): {', '.join(finding['measurements'])}", "small")

    def interpretation(self) -> None:
        self.h1("6. Interpretation")
        self.para("How the observations above bear on the question, as combined by the fusion rules (section 4). "
                  "Each reason names the detector, its own reading and the segments it rests on.")
        for e in self.r["evidence"]:
            done = [r for r in e["runs"] if r["status"] == "done"]
            finding = done[-1]["finding"] if done else None
            self.add(ps.paragraph(f"Item #{e['id']}: {e['name']}", self.st["h3"]))
            if finding is None:
                self.para("No fused finding was recorded for this item.")
                continue
            rules = finding.get("rules") or {}
            self.para(f"Fused finding: {finding['value']}" + (f" (rules {rules.get('version')})" if rules.get("version") else "") + ".")
            self._reasons(finding)
            for tid, tf in sorted((finding.get("per_track") or {}).items(), key=lambda kv: str(kv[0])):
                if isinstance(tf, dict) and tf.get("value"):
                    self.add(Spacer(1, 1.5 * mm))
                    self.para(f"Face {tid}: {tf['value']}", "cellb")
                    self._reasons(tf, indent="    ")

    def limitations(self) -> None:
        self.h1("7. Limitations")
        general = [
            "The methods detect specific traces of face synthesis and lip-sync manipulation. A manipulation that leaves none of these traces is not found, "
            "and no method used here authenticates the whole recording (splices, edits outside the face, metadata).",
            "Compression, low resolution, poor light, small or turned faces reduce what can be measured; frames without a tracked face give no measurement.",
            "Scores of learned detectors are only as reliable as their training data allow on material like this; they are reported only with verified weights.",
        ]
        missing: dict[tuple[str, str, str], list[str]] = {}  # the same reason for several items is said once
        for e in self.r["evidence"]:
            for run in [r for r in e["runs"] if r["status"] == "done"][-1:]:
                for name, res in run["results"].items():
                    if res["status"] != "ok":
                        missing.setdefault((name, res["status"], res["note"] or ""), []).append(f"#{e['id']}")
        for (name, status, note), items in missing.items():
            general.append(f"Item{'s' if len(items) > 1 else ''} {', '.join(items)}: detector {name} was {status}" + (f": {note}" if note else "") + ".")
        for text in general + self.notes:
            self.para("• " + text)

    def conclusion(self) -> None:
        self.h1("8. Conclusion")
        self.para("Scale: consistent with an original recording / inconsistent with an original recording / inconclusive.", "small")
        self.add(Spacer(1, 2 * mm))
        names = {e["id"]: e["name"] for e in self.r["evidence"]}
        for c in self.r["conclusions"]:
            head, text = CONCLUSION_TEXT[c["value"]]
            self.add(KeepTogether([
                ps.paragraph(f"Item #{c['evidence_id']} ({names.get(c['evidence_id'], '?')}): {head}", self.st["conclusion"]),
                ps.paragraph(text, self.st["body"]), ps.paragraph(f"Basis: {c['basis']}{self._per_face(c)}.", self.st["small"]), Spacer(1, 3 * mm),
            ]))

    def _per_face(self, c: dict[str, Any]) -> str:
        """Per-face values of the same run, when they differ from the item's: the reader must see both."""
        for e in self.r["evidence"]:
            for run in e["runs"]:
                if run["id"] == c.get("run_id") and run["finding"]:
                    faces = {k: v.get("value") for k, v in (run["finding"].get("per_track") or {}).items() if isinstance(v, dict)}
                    if any(v != c["value"] for v in faces.values()):
                        return "; per face: " + ", ".join(f"face {k} {v}" for k, v in sorted(faces.items())) + " (see Interpretation)"
        return ""

    def custody(self) -> None:
        self.add(PageBreak())
        self.h1("9. Chain of custody (audit log)")
        a = self.r["audit"]
        self.para(
            "Every action on the case is recorded in an append-only log; each row carries the SHA-256 of the previous row, so "
            "an edit or deletion breaks the chain. Times are local with their UTC offset. "
            f"Verification at export: {'intact' if a['verified'] else 'BROKEN'} ({a['message']})."
        )
        pairs: list[tuple[str, Any]] = []
        if a["head_hash"]:
            pairs.append(("Head of the log", Paragraph(a["head_hash"], self.st["mono"])))
        if self.companion:
            pairs.append(("JSON report", f"{self.companion[0]}, written with this PDF"))
            pairs.append(("JSON report SHA-256", Paragraph(self.companion[1], self.st["mono"])))
        if pairs:
            self.add(ps.kv(pairs, self.st, self.width))
        rows = [["#", "Time", "Actor", "Action", "Object", "Details", "Row hash"]]
        for row in a["rows"]:
            details = ps.details_text(row["details"])
            obj = f"{row['object_type']} {row['object_id'] if row['object_id'] is not None else ''}".strip() if row["object_type"] else "-"
            rows.append([row["seq"], ps.short_time(row["at"]), row["actor"], row["action"], obj,
                         ps.paragraph(details, self.st["small"]), Paragraph(row["hash"][:12], self.st["mono"])])
        self.add(Spacer(1, 2 * mm), ps.table(rows, [8 * mm, 23 * mm, 22 * mm, 27 * mm, 16 * mm, self.width - 115 * mm, 19 * mm], self.st))
        self.para("Row hash: the first 12 hexadecimal digits of the row's SHA-256; the JSON report holds every row in full "
                  "(with the exact text that was hashed), so the chain can be re-computed from it.", "small")

    def build(self) -> list[Any]:
        self.title()
        self.evidence()
        self.tools()
        self.methods()
        self.findings()
        self.interpretation()
        self.limitations()
        self.conclusion()
        self.custody()
        return self.story


def write_pdf(report: dict[str, Any], target: str | Path, companion: tuple[str, str] | None = None) -> Path:
    """Render the report dict to a PDF at target (written to a .part file, then moved in place).

    companion: (file name, sha256) of the JSON report written with it, printed in section 9.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    b = _Builder(report, companion)
    story = b.build()
    c = report["case"]
    header = (f"Case {c['number']}", (c["title"] or "")[:70])
    fonts = b.st["_fonts"]
    tmp = target.with_name(target.name + ".part")
    doc = SimpleDocTemplate(
        str(tmp), pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=20 * mm, bottomMargin=18 * mm,
        title=f"Case {c['number']}: forensic video authentication report", author=report["generated_by"],
        subject="Forensic video authentication", creator=f"{report['software']['name']} {report['software']['version']}",
    )
    doc.build(story, canvasmaker=lambda *a, **k: ps.NumberedCanvas(*a, header=header, fonts=(fonts[0], fonts[1]), **k))  # type: ignore[index]
    tmp.replace(target)
    return target
