"""LipFD input parity: Verity's composites and crops against upstream's own (../shared/media/lipfd_upstream).

    VERITY_CACHE_DIR=/work/cache nice python tests/bench/lipfd_parity.py [--media ../shared/media] [--json out.json]

For windows 0, 5 and 9 of the six AVLips clips: the mean absolute difference in grey levels
(0-255) between Verity's composite and the PNG upstream's preprocess.py wrote, in the frame half
and the mel half; and between the 15 regional crops (3 scales x 5, BGR 0-255, 224 px) Verity
derives from its composite and the ones upstream's datasets.py derives from its PNG (torchvision,
no antialiasing: tests/test_lipfd_upstream_parity.upstream_derivation). Paths compared:

- before: what Verity fed an upstream checkpoint before the two modes existed: the verity path
  with upstream's sample rate, colour order and value range (face-centred square from the face
  pass, mel columns by time, FFmpeg-resampled 22.05 kHz audio, per-frame crops, antialiasing);
- upstream: the `upstream` mode from the evidence alone (the .mp4 and its own audio track);
- upstream+wav: the `upstream` mode fed upstream's .wav instead (isolates the audio source).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from core.audio import AudioTrack, load_audio  # noqa: E402
from core.detectors.lipfd_input import UPSTREAM_PREPROCESSING, LipFDPreprocessing, clip_audio, clip_windows, composite_tensors  # noqa: E402
from core.models.lipfd import LipFDConfig  # noqa: E402
from tests.test_lipfd_upstream_parity import CLIPS, WINDOWS, upstream_derivation  # noqa: E402

FS = 500
CFG = LipFDConfig()
# the record Verity gave an upstream checkpoint before the modes (then the only path)
BEFORE = LipFDPreprocessing(audio_sample_rate=22050, colour_order="BGR", normalisation="none")


def _facepass(video: Path):  # type: ignore[no-untyped-def]
    from core.evidence import sha256_file
    from core.pipeline import AnalysisOptions, load_or_run_facepass
    from core.progress import no_progress

    fp, _ = load_or_run_facepass(video, sha256_file(video), AnalysisOptions(), no_progress, None)
    return fp


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).mean())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import cv2
    import librosa

    ref_dir = args.media / "lipfd_upstream"
    rows = []
    for clip in CLIPS:
        video = args.media / clip.split("_")[1] / f"{clip}.mp4"
        a = load_audio(video, sample_rate=22050)
        y, sr = librosa.load(video.with_suffix(".wav"))
        paths = {
            "before": (clip_windows(video, a, _facepass(video), BEFORE), BEFORE),
            "upstream": (clip_windows(video, clip_audio(video, UPSTREAM_PREPROCESSING), None, UPSTREAM_PREPROCESSING), UPSTREAM_PREPROCESSING),
            "upstream+wav": (clip_windows(video, AudioTrack(y, sr, 0.0), None, UPSTREAM_PREPROCESSING), UPSTREAM_PREPROCESSING),
        }
        for k in WINDOWS:
            ref = np.ascontiguousarray(cv2.imread(str(ref_dir / f"{clip}_w{k}.png"), cv2.IMREAD_COLOR)[:, :, ::-1])
            _, up_crops = upstream_derivation(ref)
            for name, (cw, prep) in paths.items():
                comp = cw.windows[k].composite
                _, crops = composite_tensors(comp, CFG, replace(prep, n_extract=10))
                rows.append({
                    "clip": clip, "window": k, "path": name, "start_frame": cw.windows[k].start_frame,
                    "frame_half": round(_mad(comp[FS:], ref[FS:]), 3), "mel_half": round(_mad(comp[:FS], ref[:FS]), 3),
                    "crops": round(_mad(crops.numpy(), up_crops.numpy()), 3),
                })
                r = rows[-1]
                print(f"{clip:14s} w{k} {name:13s} start {r['start_frame']:3d}  frame {r['frame_half']:7.3f}  mel {r['mel_half']:7.3f}  crops {r['crops']:7.3f}", flush=True)
    print("\n| clip | window | frame half before / after | mel half before / after (from .wav) | crops before / after |")
    print("|---|---|---|---|---|")
    by = {(r["clip"], r["window"], r["path"]): r for r in rows}
    for clip in CLIPS:
        for k in WINDOWS:
            b, u, w = (by[(clip, k, p)] for p in ("before", "upstream", "upstream+wav"))
            print(f"| {clip} | {k} | {b['frame_half']:.1f} / {u['frame_half']:.3f} | {b['mel_half']:.1f} / {u['mel_half']:.2f} ({w['mel_half']:.3f}) | {b['crops']:.1f} / {u['crops']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
