"""Time per LipFD window (the card's sizes: 5 frames, 1120x1120 composite, 3 x 5 crops at 224).

    nice python tests/bench/lipfd_speed.py [--arch ViT-L-14 ViT-B-32] [--repeat 3] [--device cpu]

Weights are random: this measures time and memory, never a score. One window = composite to
tensors (resize, crops) + CLIP branch + 15 ResNet-50 crops + heads. On CUDA mixed precision
is used, as in the detector; windows/s is reported for a batch of 8 windows there.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from core.detectors.lipfd_input import LipFDPreprocessing, composite_tensors  # noqa: E402
from core.models.lipfd import LipFD, LipFDConfig  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", nargs="+", default=["ViT-B-32", "ViT-L-14"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=None, help="windows per forward (default 1 on CPU, 8 on CUDA)")
    args = ap.parse_args()
    batch = args.batch or (8 if args.device == "cuda" else 1)
    prep = LipFDPreprocessing()
    rng = np.random.default_rng(0)
    composite = rng.integers(0, 256, (2 * prep.frame_size, prep.frame_size * prep.window_len, 3), dtype=np.uint8)
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, batch {batch}")
    print("| CLIP tower | params (M) | build s | preprocess s/window | forward s/window | total s/window | windows/s | peak RSS GiB |")
    print("|---|---|---|---|---|---|---|---|")
    for arch in args.arch:
        cfg = LipFDConfig(clip_model=arch)
        t0 = time.perf_counter()
        model = LipFD(cfg).eval().to(args.device)
        build = time.perf_counter() - t0
        n_params = sum(p.numel() for p in model.parameters()) / 1e6
        pre, fwd = [], []
        for r in range(args.repeat + 1):  # the first run warms up
            t0 = time.perf_counter()
            pairs = [composite_tensors(composite, cfg, prep) for _ in range(batch)]
            g = torch.stack([p[0] for p in pairs]).to(args.device)
            c = torch.stack([p[1] for p in pairs]).to(args.device)
            t1 = time.perf_counter()
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=args.device == "cuda"):
                logit, _ = model(g, c)
            if args.device == "cuda":
                torch.cuda.synchronize()
            t2 = time.perf_counter()
            if r:
                pre.append((t1 - t0) / batch)
                fwd.append((t2 - t1) / batch)
        p, f = statistics.median(pre), statistics.median(fwd)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"| {arch} | {n_params:.0f} | {build:.1f} | {p:.2f} | {f:.2f} | {p + f:.2f} | {1 / (p + f):.2f} | {rss:.2f} |", flush=True)
        del model
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
