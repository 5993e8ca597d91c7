"""EyeBlink-CNN-LSTM speed: time per blink sequence on CPU (and CUDA when present).

    nice python tests/bench/eyeblink_speed.py [--device cpu|cuda] [--sequence-length 8]
        [--input-size 299] [--batch 16] [--repeats 3] [--clip ../shared/media/real/grid_bbaf2n.mpg]
        [--json out.json]

Speed does not depend on the weights' values, so a randomly initialised legacy_xception and head
are timed (their scores are discarded). Stages:
- backbone: Xception features per eye crop (batches of --batch), the dominant cost;
- head: LSTM + Linear per sequence;
- per sequence = sequence_length x backbone per crop + head (sequences of one long blink share
  no frames; a short blink's window may share context frames with its neighbour: then less);
- with --clip: the real pipeline on a clip (face pass from the cache or run, blink events, eye
  crops, features, head), reporting seconds per blink sequence found.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import core  # noqa: E402, F401  (sets HF_HUB_OFFLINE before timm is imported)
from core.detectors import eyeblink_cnn_lstm as eb  # noqa: E402
from core.models.eyeblink_cnn_lstm import EyeBlinkHead, XceptionFeatures  # noqa: E402


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_backbone(backbone: XceptionFeatures, size: int, batch: int, repeats: int, device: str) -> float:
    """Seconds per crop."""
    x = torch.randn(batch, 3, size, size, device=device)
    with torch.inference_mode():
        backbone(x)  # warm-up
        _sync(device)
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            backbone(x)
            _sync(device)
            best = min(best, (time.perf_counter() - t) / batch)
    return best


def time_head(head: EyeBlinkHead, L: int, repeats: int, device: str) -> float:
    """Seconds per sequence (batch of 1, as a worst case)."""
    x = torch.randn(1, L, 2048, device=device)
    with torch.inference_mode():
        head(x)
        _sync(device)
        t = time.perf_counter()
        for _ in range(repeats * 10):
            head(x)
        _sync(device)
    return (time.perf_counter() - t) / (repeats * 10)


def time_clip(clip: Path, backbone: XceptionFeatures, head: EyeBlinkHead, prep: eb.Preprocessing, device: str, batch: int) -> dict:
    from core.evidence import sha256_file
    from core.pipeline import AnalysisOptions, load_or_run_facepass
    from core.progress import no_progress
    from core.signals.blinks import detect_blinks
    from core.video.reader import VideoReader

    fp, _ = load_or_run_facepass(clip, sha256_file(clip), AnalysisOptions(), no_progress, None)
    blinks = {t.track_id: detect_blinks(t.frames, t.ear, fp.fps)[0] for t in fp.tracks}
    t0 = time.perf_counter()
    windows, found = eb.windows_for(fp, blinks, prep)
    with VideoReader(clip) as reader:
        crops = eb.read_crops(reader, fp, windows, prep)
    t1 = time.perf_counter()
    feats = eb.backbone_features(backbone, crops, prep, device, batch)
    _sync(device)
    t2 = time.perf_counter()
    model = eb.LoadedModel(backbone, head, prep, "", "", device=device)
    eb.score_sequences(model, eb.sequence_array(windows, feats))
    _sync(device)
    t3 = time.perf_counter()
    n = max(len(windows), 1)
    return {
        "clip": clip.name, "frames": fp.frame_count, "blink_frames": found, "sequences": len(windows), "unique_crops": len(crops),
        "crops_s": round(t1 - t0, 3), "backbone_s": round(t2 - t1, 3), "head_s": round(t3 - t2, 4),
        "seconds_per_sequence": round((t3 - t0) / n, 3), "face_pass_s_not_counted": round(fp.processing_time, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sequence-length", type=int, default=8)
    ap.add_argument("--input-size", type=int, default=299)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--clip", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    backbone = XceptionFeatures().to(a.device)
    head = EyeBlinkHead().to(a.device).eval()
    per_crop = time_backbone(backbone, a.input_size, a.batch, a.repeats, a.device)
    per_head = time_head(head, a.sequence_length, a.repeats, a.device)
    res = {
        "device": a.device if a.device == "cpu" else torch.cuda.get_device_name(0),
        "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
        "input_size": a.input_size, "sequence_length": a.sequence_length, "batch": a.batch,
        "backbone_s_per_crop": round(per_crop, 4), "head_s_per_sequence": round(per_head, 5),
        "s_per_sequence": round(a.sequence_length * per_crop + per_head, 3),
    }
    if a.clip:
        prep = eb.Preprocessing(input_size=a.input_size, sequence_length=a.sequence_length)
        res["clip"] = time_clip(a.clip, backbone, head, prep, a.device, a.batch)
    print(json.dumps(res, indent=1))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
