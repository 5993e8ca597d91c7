"""Calibrate `identity_reference` on ../shared/media: same-person and different-person distances.

Usage:  VERITY_CACHE_DIR=/work/cache python tests/bench/identity_calibration.py [--out resources/calibration] [--markdown]

Every clip of `validation.tsv` is described as a known exemplar would be (core.face.exemplars:
its largest face track, the sampling and quality rule of core.face.identity, default
IdentityParams), then compared pairwise with `core.detectors.identity_reference.compare`, the
detector's own reading:

- same person, different recordings: genuine clips of one person (PERSONS below);
- same person, halves of one recording: each genuine clip's first half against its second half;
- different persons: every pair of genuine clips of different persons;
- face swap vs the target's original (the person the video claims to show) and vs the source's;
- reenactment and lip-sync vs the original of the person they keep.

Writes `identity_reference.json` (every pair with its distance and reading, the summaries the
detector cites, the spread of genuine tracks) and `identity_manifest.tsv` (each clip with the
exemplars of the person it claims to show, in `verity validate`'s manifest form: path, label,
kind, group, person, reference; paths relative to the media folder) to --out, and prints the
tables of docs/identity.md.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

MEDIA = Path(__file__).resolve().parents[3] / "shared" / "media"

# Identity groups among the genuine clips, checked by eye on their face chips: the three AVLips
# reals show Roger Federer (one interview, different clips), two VoxCeleb2 clips show one actor
# (one of them in tinted glasses). Every other genuine clip shows a person of its own (the four
# GRID utterances are four different speakers).
PERSONS = {
    "avlips_real_0": "federer", "avlips_real_1": "federer", "avlips_real_2": "federer",
    "voxceleb2_pcavs_audiosrc_00104": "voxceleb2_actor_a", "voxceleb2_pcavs_posesrc_741400163": "voxceleb2_actor_a",
}
# manipulated clips: (kind, clip stem of the person it claims to show, clip stem of another person it shows)
FFPP = "ffpp_youtube_c40_"


def claims(stem: str) -> tuple[str, list[str], list[str]] | None:
    """(kind, originals of the person shown as claimed, originals of the face put in) or None."""
    if stem.startswith(("ffpp_deepfakes_c40_", "ffpp_faceswap_c40_")):
        t, s = stem.split("_")[-2:]
        return "face swap", [FFPP + t], [FFPP + s]
    if stem.startswith(("ffpp_face2face_c40_", "ffpp_neuraltextures_c40_")):
        return "reenactment", [FFPP + stem.split("_")[-2]], []
    if stem == "wav2lip_pair_result_voice":
        return "lip-sync", ["wav2lip_pair_source_video_8s"], []
    if stem.endswith("_zzww_syncshow") or stem.startswith("sadtalkervls_zzww_"):
        return "lip-sync", ["retalking_face1_man_suit"], []
    if stem.startswith("avlips_fake_"):
        return "lip-sync", ["avlips_real_0", "avlips_real_1", "avlips_real_2"], []
    return None


def describe_all(clips: list[dict[str, str]], params: Any) -> tuple[dict[str, Any], dict[str, float]]:
    from core.detectors.base import Exemplar
    from core.face.exemplars import describe_exemplar
    from core.face.facepass import FacePassParams
    from core.pipeline import AnalysisOptions, load_or_run_facepass
    from core.progress import no_progress

    options = AnalysisOptions()  # default face pass, stored in the cache (VERITY_CACHE_DIR)

    def facepass_of(path: Path, sha256: str) -> Any:
        return load_or_run_facepass(path, sha256, options, no_progress, None)[0]

    out, timing = {}, {"seconds": 0.0, "frames": 0}
    sha = {r["file"]: r["sha256"] for r in csv.DictReader(open(MEDIA / "MANIFEST.tsv"), delimiter="\t")}
    for row in clips:
        path = MEDIA / row["path"]
        stem = path.stem
        ex = Exemplar(person=PERSONS.get(stem, stem), path=path, sha256=sha[row["path"]], kind="video", name=path.name)
        t0 = time.perf_counter()
        d = describe_exemplar(ex, params, FacePassParams(), facepass_of)
        dt = time.perf_counter() - t0
        if d.face is not None and dt > 1.0:  # not from the descriptor cache: count it
            timing["seconds"] += dt
            timing["frames"] += len(d.face) + d.face.excluded.get("blurred", 0) + d.face.excluded.get("not_frontal", 0)  # every chip made
        out[stem] = d
        print(f"{stem}: {len(d.face) if d.face is not None else 0} frames ({d.problem or 'ok'}) {dt:.1f} s", flush=True)
    return out, timing


def subsample(face: Any, n: int) -> Any:
    from core.face.identity import FaceIdentity

    k = np.unique(np.round(np.linspace(0, len(face) - 1, n)).astype(int)) if len(face) > n else np.arange(len(face))
    return FaceIdentity(face.frames[k], face.descriptors[k], face.boxes[k], face.blur[k], face.rows, face.excluded, face.eye_span_px)


def half(face: Any, second: bool) -> Any:
    from core.face.identity import FaceIdentity

    k = len(face) // 2
    sl = slice(k, None) if second else slice(0, k)
    return FaceIdentity(face.frames[sl], face.descriptors[sl], face.boxes[sl], face.blur[sl], face.rows, face.excluded, face.eye_span_px)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", type=Path, default=MEDIA / "validation.tsv")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "resources" / "calibration")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    import core
    from core.detectors.identity_reference import compare, usable_exemplars
    from core.face.dlib_models import FACE_RECOGNITION, model_sha256
    from core.face.identity import IdentityParams, stability

    p = IdentityParams()
    clips = list(csv.DictReader(open(args.manifest), delimiter="\t"))
    label = {Path(r["path"]).stem: r for r in clips}
    described, timing = describe_all(clips, p)
    genuine = [s for s in described if label[s]["label"] == "real"]
    faces = {s: d.face for s, d in described.items() if d.face is not None}
    usable_exemplars(list(described.values()), p)  # as references: halves gate, no face
    refs = {s: d.face.descriptors for s, d in described.items() if d.face is not None}

    pairs: list[dict[str, Any]] = []

    def add(category: str, q: str, r: str, q_face: Any = None, r_desc: Any = None, person: str | None = None, photos: int = 0, photo_frame: int | None = None) -> None:
        q_face = q_face if q_face is not None else faces.get(q)
        r_desc = r_desc if r_desc is not None else refs.get(r)
        row = {"category": category, "questioned": label[q]["path"], "reference": label[r]["path"], "person": person or PERSONS.get(r, r)}
        if photo_frame is not None:
            row["photo_frame"] = photo_frame
        if q_face is None or r_desc is None:
            why = described[q].problem if q_face is None else described[r].problem
            row.update({"reading": "inconclusive", "distance": None, "note": f"not usable: {why or 'no sharp frontal face'}", "departures": 0})
        else:
            c = compare(q_face, r_desc, p, None, row["person"], photos)
            row.update({"reading": c.reading, "distance": None if c.distance is None else round(c.distance, 4),
                        "n_questioned": len(q_face), "n_reference": int(r_desc.shape[0]), "departures": len(c.segments), "note": c.note})
        pairs.append(row)

    for a, b in itertools.permutations(genuine, 2):
        same = PERSONS.get(a, a) == PERSONS.get(b, b)
        add("same person, different recordings" if same else "different persons", a, b)
    # a photo exemplar: single frames of the reference clip (5, evenly spaced), each on its own
    for a, b in itertools.permutations(genuine, 2):
        same = PERSONS.get(a, a) == PERSONS.get(b, b)
        if b in refs:
            for k in np.unique(np.linspace(0, refs[b].shape[0] - 1, 5).astype(int)):
                cat = "same person, different recordings" if same else "different persons"
                add(f"{cat}, one reference frame as a photo", a, b, r_desc=refs[b][k : k + 1], photos=1, photo_frame=int(k))
    for s in genuine:
        if s in faces and len(faces[s]) >= 2:
            add("same person, halves of one recording", s, s, half(faces[s], False), half(faces[s], True).descriptors)
    for s in described:
        c = claims(s)
        if c is None:
            continue
        kind, claimed, inserted = c
        for r in claimed:
            add(f"{kind} vs the claimed person's original", s, r)
            if kind == "face swap" and r in refs:
                for k in np.unique(np.linspace(0, refs[r].shape[0] - 1, 5).astype(int)):
                    add(f"{kind} vs the claimed person's original, one reference frame as a photo", s, r, r_desc=refs[r][k : k + 1], photos=1, photo_frame=int(k))
        for r in inserted:
            add(f"{kind} vs the inserted face's original", s, r)

    by_cat: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in pairs:
        by_cat[row["category"]].append(row)

    def dist_summary(rows: list[dict[str, Any]], unordered: bool = False) -> dict[str, Any]:
        seen, ds = set(), []
        for r in rows:
            key = (*sorted((r["questioned"], r["reference"])), r.get("photo_frame")) if unordered else (r["questioned"], r["reference"], r.get("photo_frame"))
            if r["distance"] is not None and key not in seen:
                seen.add(key)
                ds.append(r["distance"])
        if not ds:
            return {"n": 0}
        a = np.array(ds)
        return {"n": int(a.size), "min": round(float(a.min()), 4), "p05": round(float(np.percentile(a, 5)), 4),
                "median": round(float(np.median(a)), 4), "p95": round(float(np.percentile(a, 95)), 4), "max": round(float(a.max()), 4)}

    summary = {cat: {"pairs": len(rows), "readings": {v: sum(r["reading"] == v for r in rows) for v in ("consistent", "inconsistent", "inconclusive")},
                     "distance": dist_summary(rows, unordered=cat in ("different persons", "same person, different recordings")),
                     "pairs_with_departures": sum(r["departures"] > 0 for r in rows)}
               for cat, rows in by_cat.items()}
    same_rows = by_cat["same person, different recordings"] + by_cat["same person, halves of one recording"]
    # the spread as the detector measures it on a face it does not compare: `spread_frames` samples
    # (here: evenly spaced among the track's used frames)
    spread = {s: stability(subsample(faces[s], p.spread_frames)) for s in genuine if s in faces}
    keys = ("frame_to_frame_median", "to_aggregate_median", "to_aggregate_p90", "halves_distance")
    spread_summary = {k: dist_summary([{"distance": v[k], "questioned": s, "reference": s} for s, v in spread.items() if v[k] is not None]) for k in keys}
    fake_spread = {s: stability(subsample(faces[s], p.spread_frames)) for s in described if s in faces and label[s]["label"] == "fake"}
    fake_summary = {k: dist_summary([{"distance": v[k], "questioned": s, "reference": s} for s, v in fake_spread.items() if v[k] is not None]) for k in keys}
    record = {
        "schema": "verity.calibration/1",
        "detector": "identity_reference",
        "created": datetime.now().astimezone().isoformat(timespec="seconds"),
        "software": {"name": core.SOFTWARE_NAME, "version": core.__version__},
        "model_sha256": model_sha256(FACE_RECOGNITION),
        "parameters": p.to_dict(),
        "media": {"manifest": str(args.manifest.name), "clips": len(clips), "persons": PERSONS},
        "independent": False,
        "note": "Development set: the thresholds were chosen looking at these distances; they describe this set, not error rates elsewhere.",
        "summary": {
            "same_person": dist_summary(same_rows, unordered=True),
            "different_person": dist_summary(by_cat["different persons"], unordered=True),
            "categories": summary,
        },
        "genuine_spread": {"per_clip": spread, "summary": spread_summary},
        "manipulated_spread": {"per_clip": fake_spread, "summary": fake_summary},
        "timing": {"descriptor_frames": timing["frames"], "seconds": round(timing["seconds"], 1),
                   "ms_per_frame": round(1000 * timing["seconds"] / timing["frames"], 1) if timing["frames"] else None,
                   "note": "chips made (decode, alignment, HOG check, blur, descriptor) outside the descriptor cache only"},
    }
    # every pair but the single-frame different-person ones (thousands; their summary is above), as rows
    kept = [r for r in pairs if r["category"] != "different persons, one reference frame as a photo"]
    files = sorted({r["questioned"] for r in kept} | {r["reference"] for r in kept})
    cats = sorted({r["category"] for r in kept})
    record["files"] = [{"path": f, "sha256": described[Path(f).stem].exemplar.sha256} for f in files]
    record["pair_columns"] = ["category", "questioned", "reference", "distance", "reading", "n_questioned", "n_reference", "departures", "photo_frame"]
    record["categories"] = cats
    record["pairs"] = [[cats.index(r["category"]), files.index(r["questioned"]), files.index(r["reference"]), r["distance"], r["reading"],
                        r.get("n_questioned"), r.get("n_reference"), r["departures"], r.get("photo_frame")] for r in kept]
    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps({k: v for k, v in record.items() if k != "pairs"}, indent=1, ensure_ascii=False)
    rows = ",\n".join("  " + json.dumps(r) for r in record["pairs"])  # one pair a line
    (args.out / "identity_reference.json").write_text(text[:-2] + ',\n "pairs": [\n' + rows + "\n ]\n}\n", encoding="utf-8")
    # the labelled set in `verity validate`'s manifest form (path, label, kind, group), each clip with
    # the known exemplars of the person it claims to show (reference: ';'-separated, relative to the media folder)
    claimed: dict[str, list[str]] = defaultdict(list)
    for r in pairs:
        if r["category"] in ("same person, different recordings",) or r["category"].endswith("vs the claimed person's original"):
            claimed[r["questioned"]].append(r["reference"])
    with open(args.out / "identity_manifest.tsv", "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(["path", "label", "kind", "group", "person", "reference"])
        for q, rs in claimed.items():
            lab = label[Path(q).stem]
            person = PERSONS.get(Path(rs[0]).stem, Path(rs[0]).stem)
            w.writerow([q, lab["label"], lab["kind"], person, person, ";".join(rs)])

    print("\n| pairs | n | consistent | inconclusive | inconsistent | distance min / median / max | with departure segments |")
    print("|---|---|---|---|---|---|---|")
    for cat, s in summary.items():
        d = s["distance"]
        dist = f"{d['min']:.2f} / {d['median']:.2f} / {d['max']:.2f}" if d["n"] else "-"
        print(f"| {cat} | {s['pairs']} | {s['readings']['consistent']} | {s['readings']['inconclusive']} | {s['readings']['inconsistent']} | {dist} | {s['pairs_with_departures']} |")
    print(f"\nsame person (n = {record['summary']['same_person']['n']}): {record['summary']['same_person']}")
    print(f"different persons (n = {record['summary']['different_person']['n']}): {record['summary']['different_person']}")
    print(f"genuine spread: {spread_summary}")
    print(f"manipulated spread: {fake_summary}")
    print(f"timing: {record['timing']}")
    wrong = [r for r in pairs if (r["category"].startswith("same person") and r["reading"] == "inconsistent")
             or (r["category"] == "face swap vs the claimed person's original" and r["reading"] != "inconsistent")
             or (r["category"].startswith(("reenactment", "lip-sync")) and r["reading"] == "inconsistent")]
    print(f"\nmust-show violations: {len(wrong)}")
    for r in wrong:
        print(f"  {r['category']}: {r['questioned']} vs {r['reference']}: {r['reading']} {r['distance']} ({r['note']})")
    if args.markdown:
        for cat in ("face swap vs the claimed person's original", "face swap vs the inserted face's original",
                    "reenactment vs the claimed person's original", "same person, different recordings"):
            print(f"\n{cat}:\n\n| questioned | reference | distance | n | reading |\n|---|---|---|---|---|")
            for r in by_cat.get(cat, []):
                n = f"{r.get('n_questioned', '-')} / {r.get('n_reference', '-')}"
                print(f"| {Path(r['questioned']).stem} | {Path(r['reference']).stem} | {r['distance']} | {n} | {r['reading']} |")


if __name__ == "__main__":
    main()
