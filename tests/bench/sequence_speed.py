"""Frame-sequence classifier speed: CPU time per window (inference, Grad-CAM) and training
throughput, for each architecture.

    nice python tests/bench/sequence_speed.py [--device cpu|cuda] [--sequence-length 16] [--input-size 224]
        [--batch 4] [--repeats 3] [--threads N] [--json out.json]

Speed does not depend on the weights' values, so randomly initialised models are timed (their
scores are discarded). Per architecture:
- infer: one window (batch 1) through the model, `torch.inference_mode`;
- gradcam: Grad-CAM of one window's manipulated-class logit (forward + backward through the LSTM);
- train: forward + backward + Adam step on batches of --batch windows -> windows ("clips") per second.
Both wall time and process CPU time are given: on a shared machine the wall time includes
waiting for a core, the CPU time does not.
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

from core.detectors import sequence_cnn as sc  # noqa: E402

ARCHS = {
    "mobilenet_lstm/deepfake_detector": {"arch": "mobilenet_lstm", "layout": "deepfake_detector"},
    "mobilenet_lstm/cnn_lstm_detector": {"arch": "mobilenet_lstm", "layout": "cnn_lstm_detector"},
    "cnn_bilstm": {"arch": "cnn_bilstm"},
}


def _timed(fn, device: str, repeats: int) -> tuple[float, float]:
    """(median wall s, median CPU s) of fn() after one warm-up call."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        w, c = time.perf_counter(), time.process_time()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return float(np.median(walls)), float(np.median(cpus))


def bench(name: str, arch: dict, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    net = sc.build_model(arch).to(args.device).eval()
    L, s = args.sequence_length, args.input_size
    prep = sc.SeqPreprocessing(size=s, input_size=s, sequence_length=L, normalisation="0_1")
    model = sc.LoadedModel(net, arch, prep, "0" * 64, None, device=args.device)
    rng = np.random.default_rng(0)
    crops = {(0, f): rng.integers(0, 255, (s, s, 3), dtype=np.uint8) for f in range(L)}
    window = sc.Window(0, list(range(L)))
    out = {"architecture": name, "parameters": sum(p.numel() for p in net.parameters())}
    out["infer_wall_s"], out["infer_cpu_s"] = _timed(lambda: sc.score_windows(model, [window], crops, 1), args.device, args.repeats)
    out["gradcam_wall_s"], out["gradcam_cpu_s"] = _timed(lambda: sc.gradcam_maps(model, window, crops, 56), args.device, args.repeats)
    x = torch.rand(args.batch, L, 3, s, s, device=args.device)
    y = torch.arange(args.batch, device=args.device) % 2
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    from core.train.seq import _loss_fn

    weight = torch.ones(2, device=args.device)

    def step() -> None:
        net.train()
        loss = _loss_fn(net(x).float(), y, weight)
        opt.zero_grad()
        loss.backward()
        opt.step()

    wall, cpu = _timed(step, args.device, args.repeats)
    out["train_step_wall_s"], out["train_step_cpu_s"] = wall, cpu
    out["train_clips_per_s_wall"] = args.batch / wall
    out["train_clips_per_s_cpu"] = args.batch / cpu if cpu > 0 else None
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sequence-length", type=int, default=16)
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--arch", action="append", choices=list(ARCHS), help="default: all")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [bench(n, ARCHS[n], args) for n in (args.arch or list(ARCHS))]
    env = {"device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
           "sequence_length": args.sequence_length, "input_size": args.input_size, "batch": args.batch, "repeats": args.repeats}
    for r in rows:
        print(f"{r['architecture']:34s} {r['parameters']:>10,d} params  infer {r['infer_cpu_s']:.2f} s CPU ({r['infer_wall_s']:.2f} wall)/window  "
              f"Grad-CAM {r['gradcam_cpu_s']:.2f} s CPU/window  train {r['train_clips_per_s_cpu']:.2f} clips per CPU-s "
              f"({r['train_clips_per_s_wall']:.2f}/s wall)")
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
