"""av_sync on the shared clips: shift recovery table and confidences of reals vs lip-sync fakes.

    nice python tests/bench/avsync.py [--media ../shared/media] [--json out.json]
    nice python tests/bench/avsync.py --flags [--facepass-cache DIR]   # window flags, all groups

Each clip's audio is shifted by remuxing into temporary copies (the evidence is only read); the
face pass runs once per clip and is reused for its shifted copies (same pictures).

--flags measures what the window flags say, per clip: speech windows, measurable windows, flagged
windows and flagged seconds, for (a) every real clip as is, (b) the reals with the audio remuxed
+200/-200/+400 ms, (c) mismatched pairs (the audio of another real clip, given to the detector in
memory), (d) the fakes, and (e) the reals with the second half of the audio slipped 400 ms late
or replaced by another clip's audio (in memory).

--readings gives the clip-level reading (consistent / inconsistent / inconclusive) per clip, as is
and with the audio remuxed +200/-200/+400 ms, under the old rule (p <= 0.05 against 40 rotations
and >= 160 ms: inconsistent) and the current one (robust offset evidence, see
core.detectors.av_sync._offset_evidence_missing); and the same for every 3-s and 4-s piece (hop
1 s) of the unshifted reals, cut in memory: genuine footage, where `inconsistent` is always false.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from core.audio import load_audio  # noqa: E402
from core.audio.decode import AudioTrack  # noqa: E402
from core.detectors.av_sync import AVSyncDetector  # noqa: E402
from core.detectors.base import AnalysisContext  # noqa: E402
from core.evidence import probe  # noqa: E402
from core.face.facepass import FacePass  # noqa: E402
from core.face.tracker import run_face_pass  # noqa: E402
from core.signals.avsync import AVSyncParams, estimate_offset, mouth_series  # noqa: E402
from core.video.reader import VideoReader  # noqa: E402
from tests.factories import remux_shifted  # noqa: E402

SHIFT_CLIPS = [
    "real/grid_bbaf2n.mpg", "real/grid_brbk7n.mpg", "real/grid_lbax4n.mpg", "real/grid_id2_swwp2s.mpg",
    "real/retalking_face4_woman_blue.mp4", "real/retalking_face1_man_suit.mp4", "real/hdtf_katiehill_sadtalker_ref.mp4",
    "real/syncnet_example_newsanchor.avi", "real/avlips_real_1.mp4", "real/avlips_real_2.mp4",
]
SHIFTS_MS = (80, 200, -200, 400)
COMPARE = [
    "real/wav2lip_pair_source_video_8s.mp4", "fake/wav2lip_pair_result_voice.mp4",
    "real/avlips_real_0.mp4", "real/avlips_real_1.mp4", "real/avlips_real_2.mp4",
    "fake/avlips_fake_0.mp4", "fake/avlips_fake_1.mp4", "fake/avlips_fake_2.mp4",
]


FLAG_REALS = sorted({*SHIFT_CLIPS, "real/avlips_real_0.mp4", "real/wav2lip_pair_source_video_8s.mp4"})
FLAG_FAKES = [
    "fake/wav2lip_pair_result_voice.mp4", "fake/avlips_fake_0.mp4", "fake/avlips_fake_1.mp4", "fake/avlips_fake_2.mp4",
    "fake/sadtalker_art0_japanese.mp4", "fake/sadtalker_art2_rdradio31.mp4",
]
FLAG_SHIFTS_MS = (200, -200, 400)


def run(path: Path, fp: FacePass, audio: AudioTrack | None = None) -> dict:  # type: ignore[type-arg]
    """The detector on `path` with a face pass of the same pictures (and, given, this audio instead)."""
    with VideoReader(path) as reader:
        fp = dataclasses.replace(fp, times_s=reader.index.times_s)
    ctx = AnalysisContext(path=path, evidence=probe(path), sha256="", facepass=fp, blinks={})
    if audio is not None:
        ctx.__dict__["audio"] = audio  # the context's cached audio: the evidence file is untouched
    return AVSyncDetector()(ctx).to_dict()


def flag_row(group: str, name: str, res: dict, fps: float, n_frames: int) -> dict:  # type: ignore[type-arg]
    """Per clip: speech windows, measurable, flagged (by kind), flagged seconds, first/second half."""
    wins = res.get("frame_predictions") or []
    speech = [w for w in wins if w.get("state") not in (None, "no speech")]
    flagged = [w for w in wins if w.get("flagged")]
    frames = {f for w in flagged for f in range(w["start_frame"], w["end_frame"] + 1)}
    m = res.get("metrics") or {}
    return {
        "group": group, "clip": name, "speech_windows": len(speech), "measurable": sum(bool(w.get("measurable")) for w in wins),
        "flagged": len(flagged), "flagged_offset": sum("offset" in w["reason"] for w in flagged),
        "flagged_no_follow": sum("do not follow" in w["reason"] for w in flagged), "flagged_s": round(len(frames) / fps, 2),
        "first_half_flagged": sum(w["flagged"] for w in wins if w["end_frame"] < n_frames // 2),
        "second_half_flagged": sum(w["flagged"] for w in speech if w["start_frame"] >= n_frames // 2),
        "second_half_speech": sum(1 for w in speech if w["start_frame"] >= n_frames // 2),
        "offset_ms": m.get("offset_ms"), "p": m.get("p_value"), "assessment": res.get("assessment"),
    }


def flags(args: argparse.Namespace, facepass) -> int:  # type: ignore[no-untyped-def]
    rows: list[dict] = []  # type: ignore[type-arg]
    audio = {rel: load_audio(args.media / rel) for rel in FLAG_REALS}

    def add(group: str, name: str, rel: str, res: dict) -> None:  # type: ignore[type-arg]
        fp = facepass(rel)
        r = flag_row(group, name, res, fp.fps, fp.frame_count)
        rows.append(r)
        print(f"| {group} | {name} | {r['speech_windows']} | {r['measurable']} | {r['flagged']} ({r['flagged_offset']} offset, "
              f"{r['flagged_no_follow']} no-follow) | {r['flagged_s']} | {r['offset_ms']} | {r['p']} | {r['assessment']} |", flush=True)

    print("| group | clip | speech windows | measurable | flagged | flagged s | clip offset ms | p | assessment |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as td:
        for rel in FLAG_REALS:
            add("real", Path(rel).name, rel, run(args.media / rel, facepass(rel)))
            for sh in FLAG_SHIFTS_MS:
                copy = remux_shifted(args.media / rel, Path(td) / f"{Path(rel).stem}_{sh:+d}.mkv", sh / 1000)
                add(f"shift {sh:+d}", Path(rel).name, rel, run(copy, facepass(rel)))
    for i, rel in enumerate(FLAG_REALS):  # each real with two other reals' audio
        for j in (1, 5):
            other = FLAG_REALS[(i + j) % len(FLAG_REALS)]
            add("mismatch", f"{Path(rel).name} + audio of {Path(other).stem}", rel, run(args.media / rel, facepass(rel), audio[other]))
    for rel in FLAG_FAKES:
        add("fake", Path(rel).name, rel, run(args.media / rel, facepass(rel)))
    for i, rel in enumerate(FLAG_REALS):
        a, fp = audio[rel], facepass(rel)
        mid = int((fp.times_s[fp.frame_count // 2] - a.start_time_s) * a.sample_rate)
        if not 0 < mid < a.samples.size:
            continue
        d = int(0.4 * a.sample_rate)
        slipped = np.concatenate([a.samples[:mid], np.zeros(d, np.float32), a.samples[mid:-d]])
        add("half +400", Path(rel).name, rel, run(args.media / rel, fp, AudioTrack(slipped, a.sample_rate, a.start_time_s)))
        other = audio[FLAG_REALS[(i + 1) % len(FLAG_REALS)]].samples
        rep = np.concatenate([a.samples[:mid], other[: a.samples.size - mid]])
        rep = np.concatenate([rep, np.zeros(max(a.samples.size - rep.size, 0), np.float32)])
        add("half replaced", Path(rel).name, rel, run(args.media / rel, fp, AudioTrack(rep, a.sample_rate, a.start_time_s)))

    print("\n| group | clips | clips with a flag | speech windows | flagged (offset / no-follow) | % of speech windows | flagged s | first-half flags (half groups) | second-half speech windows flagged |")
    print("|---|---|---|---|---|---|---|---|---|")
    for g in dict.fromkeys(r["group"] for r in rows):
        rs = [r for r in rows if r["group"] == g]
        sw, fl = sum(r["speech_windows"] for r in rs), sum(r["flagged"] for r in rs)
        half = g.startswith("half")
        first = str(sum(r["first_half_flagged"] for r in rs)) if half else ""
        second = f"{sum(r['second_half_flagged'] for r in rs)}/{sum(r['second_half_speech'] for r in rs)}" if half else ""
        print(f"| {g} | {len(rs)} | {sum(r['flagged'] > 0 for r in rs)} | {sw} | {fl} ({sum(r['flagged_offset'] for r in rs)} / "
              f"{sum(r['flagged_no_follow'] for r in rs)}) | {100 * fl / max(sw, 1):.1f} | {sum(r['flagged_s'] for r in rs):.1f} | "
              f"{first} | {second} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    return 0


def old_reading(m: dict, p: AVSyncParams) -> str:  # type: ignore[type-arg]
    """The clip-level rule before robust offset evidence was required."""
    if m.get("p_value") is None or m.get("offset_frames") is None or m["p_value"] > p.alpha:
        return "inconclusive"
    if abs(round(m["offset_frames"])) <= p.flag_offset_frames:
        return "consistent"
    return "inconsistent" if abs(m.get("offset_ms") or 0.0) >= p.inconsistent_offset_ms else "inconclusive"


def readings(args: argparse.Namespace, facepass) -> int:  # type: ignore[no-untyped-def]
    p = AVSyncParams()
    short = {"consistent": "cons", "inconsistent": "INCONS", "inconclusive": "inconcl"}
    rows: list[dict] = []  # type: ignore[type-arg]
    print("| clip | shift ms | offset frames | p (40) | p (fine) | speech+face s | margin (z) | before | after |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as td:
        for rel in FLAG_REALS + FLAG_FAKES:
            fp = facepass(rel)
            for sh in (0, *FLAG_SHIFTS_MS):
                path = args.media / rel if sh == 0 else remux_shifted(args.media / rel, Path(td) / f"{Path(rel).stem}_{sh:+d}.mkv", sh / 1000)
                res = run(path, fp)
                m = res["metrics"]
                row = {"clip": rel, "shift_ms": sh, **{k: m.get(k) for k in ("offset_frames", "p_value", "p_value_fine", "speech_face_s",
                                                                              "in_sync_margin", "margin_z")},
                       "before": old_reading(m, p), "after": res["assessment"]}
                rows.append(row)
                print(f"| {rel} | {sh:+d} | {m.get('offset_frames')} | {m.get('p_value')} | {m.get('p_value_fine')} | {m.get('speech_face_s')} | "
                      f"{m.get('in_sync_margin')} ({m.get('margin_z')}) | {short[row['before']]} | {short[row['after']]} |", flush=True)
    pieces: list[dict] = []  # type: ignore[type-arg]
    for rel in FLAG_REALS:
        fp, a = facepass(rel), load_audio(args.media / rel)
        track = max(fp.tracks, key=len)
        mouth = mouth_series(fp.frame_count, track.frames, track.mouth)
        for length_s in (3.0, 4.0):
            n = int(round(length_s * fp.fps))
            for s0 in range(0, fp.frame_count - n + 1, int(round(fp.fps))):
                t0, t1 = fp.times_s[s0], fp.times_s[s0 + n - 1] + 1.0 / fp.fps
                i0, i1 = int(max(t0 - a.start_time_s, 0) * a.sample_rate), int(max(t1 - a.start_time_s, 0) * a.sample_rate)
                est = estimate_offset(fp.times_s[s0:s0 + n], mouth[s0:s0 + n], a.samples[i0:i1], a.sample_rate,
                                      a.start_time_s + i0 / a.sample_rate, fp.fps, p)
                m = {"offset_frames": est.offset_frames, "offset_ms": est.offset_ms, "p_value": est.p_value}
                pieces.append({"clip": rel, "start": s0, "s": length_s, "offset_frames": est.offset_frames, "margin_z": est.margin_z,
                               "before": old_reading(m, p), "after": AVSyncDetector._reading(est, p)[1]})
    print("\n| group | clips | before: cons / INCONS / inconcl | after: cons / INCONS / inconcl |")
    print("|---|---|---|---|")

    def count(rs: list, key: str) -> str:  # type: ignore[type-arg]
        return " / ".join(str(sum(r[key] == k for r in rs)) for k in ("consistent", "inconsistent", "inconclusive"))

    for label, rs in [
        ("reals as is", [r for r in rows if r["clip"].startswith("real/") and r["shift_ms"] == 0]),
        *[(f"reals, audio {sh:+d} ms (remuxed)", [r for r in rows if r["clip"].startswith("real/") and r["shift_ms"] == sh]) for sh in FLAG_SHIFTS_MS],
        ("fakes as is", [r for r in rows if r["clip"].startswith("fake/") and r["shift_ms"] == 0]),
        *[(f"fakes, audio {sh:+d} ms (remuxed)", [r for r in rows if r["clip"].startswith("fake/") and r["shift_ms"] == sh]) for sh in FLAG_SHIFTS_MS],
        ("3-s pieces of the reals as is", [r for r in pieces if r["s"] == 3.0]),
        ("4-s pieces of the reals as is", [r for r in pieces if r["s"] == 4.0]),
    ]:
        print(f"| {label} | {len(rs)} | {count(rs, 'before')} | {count(rs, 'after')} |")
    zs = sorted(round(r["margin_z"], 2) for r in pieces if r["margin_z"] is not None and r["offset_frames"] is not None
                and abs(r["offset_frames"]) * 1000 / 25 >= 0)
    print(f"\nmargin z of real pieces whose peak is off the in-sync lags: {zs}")
    if args.json:
        args.json.write_text(json.dumps({"clips": rows, "pieces": pieces}, indent=1, default=str))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--flags", action="store_true", help="measure the window flags on all groups (see the docstring)")
    ap.add_argument("--readings", action="store_true", help="clip-level readings before/after, shifted copies and real pieces")
    ap.add_argument("--facepass-cache", type=Path, help="keep the face passes here (.npz) between runs")
    args = ap.parse_args()
    passes: dict[str, FacePass] = {}

    def facepass(rel: str) -> FacePass:
        if rel not in passes:
            cached = args.facepass_cache / (rel.replace("/", "__") + ".npz") if args.facepass_cache else None
            if cached is not None and cached.exists():
                passes[rel] = FacePass.load(cached)
            else:
                with VideoReader(args.media / rel) as reader:
                    passes[rel] = run_face_pass(reader)
                if cached is not None:
                    passes[rel].save(cached)
        return passes[rel]

    if args.flags:
        return flags(args, facepass)
    if args.readings:
        return readings(args, facepass)

    out: dict[str, list] = {"shift": [], "compare": []}  # type: ignore[type-arg]
    print("| clip | shift ms | expected frames | measured frames | measured ms | confidence | p | within ±1 frame | shift from unshifted within ±1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as td:
        for rel in SHIFT_CLIPS:
            fp = facepass(rel)
            for sh in (0, *SHIFTS_MS):
                path = args.media / rel if sh == 0 else remux_shifted(args.media / rel, Path(td) / f"{Path(rel).stem}_{sh:+d}.mkv", sh / 1000)
                t0 = time.perf_counter()
                m = run(path, fp)["metrics"]
                dt = time.perf_counter() - t0
                exp = sh / 1000 * fp.fps
                got = m.get("offset_frames")
                ok = got is not None and abs(got - exp) <= 1.0
                if sh == 0:
                    base = got
                rel_ok = got is not None and base is not None and abs(got - base - exp) <= 1.0
                out["shift"].append({"clip": rel, "shift_ms": sh, "expected": exp, **{k: m.get(k) for k in ("offset_frames", "offset_ms", "confidence", "p_value")}, "ok": ok, "relative_ok": rel_ok, "s": dt})
                print(f"| {Path(rel).name} | {sh:+d} | {exp:+.1f} | {got} | {m.get('offset_ms')} | {m.get('confidence')} | {m.get('p_value')} | {'yes' if ok else 'NO'} | {'yes' if rel_ok else 'NO'} |", flush=True)
    n_ok = sum(r["ok"] for r in out["shift"] if r["shift_ms"])
    n_sh = sum(1 for r in out["shift"] if r["shift_ms"])
    n_rel = sum(r["relative_ok"] for r in out["shift"] if r["shift_ms"])
    n_base = sum(r["ok"] for r in out["shift"] if not r["shift_ms"])
    print(f"\nshifted copies within ±1 frame: {n_ok}/{n_sh} (of the shift measured from the unshifted copy: {n_rel}/{n_sh}); "
          f"unshifted |offset| <= 1 frame: {n_base}/{len(SHIFT_CLIPS)}\n")

    print("| clip | label | offset ms | confidence | p | speech | windows flagged/judged | reading |")
    print("|---|---|---|---|---|---|---|---|")
    for rel in COMPARE:
        r = run(args.media / rel, facepass(rel))
        m = r["metrics"]
        out["compare"].append({"clip": rel, "status": r["status"], "assessment": r["assessment"], **m})
        print(f"| {Path(rel).name} | {rel.split('/')[0]} | {m.get('offset_ms')} | {m.get('confidence')} | {m.get('p_value')} | {m.get('speech_fraction')} | "
              f"{m.get('windows_flagged')}/{m.get('windows_judged')} | {r['prediction']} ({r['assessment']}) |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
