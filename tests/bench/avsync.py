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
from core.face.facepass import FacePass, run_face_pass  # noqa: E402
from core.video.reader import VideoReader  # noqa: E402
from tests.test_avsync import remux_shifted  # noqa: E402

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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--flags", action="store_true", help="measure the window flags on all groups (see the docstring)")
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
