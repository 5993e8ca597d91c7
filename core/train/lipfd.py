"""Train or evaluate LipFD (lip-sync forgery detector) on AVLips-style data.

    verity train lipfd DATA [--arch ViT-L-14] [--epochs 10] ...
    verity eval lipfd DATA [--weights lipfd_local | PATH]

The CLIP image tower is frozen (card); conv1, the ResNet-50 and the attention/classifier heads
train with BCE on the logit plus upstream's region-awareness loss. (Upstream feeds its single
logit to CrossEntropyLoss, which is constant for one output; we use BCE-with-logits.) CLIP and
ResNet-50 start from verified local weights (`clip_vit_l14_openai`, `resnet50_imagenet`) or from
files given with their sha256; `--clip-weights none` / `--resnet-weights none` start from random
initialisation and say so in the checkpoint metadata (smoke runs only).

Windows are made by the detector's own input path in the mode given with `--preprocessing`
(`verity`, the default, or `upstream`: upstream's preprocess.py/datasets.py, for continuing from
upstream's weights), with the audio of each clip's own container track, as the detector reads
evidence. The result is one safetensors file with the whole model and its architecture,
preprocessing record (mode included, so the detector feeds it the same way), training data
summary and validation metrics in the metadata, registered as `lipfd_local` so `verity analyze`
uses it (unless the upstream `lipfd_ckpt` is verified, which is preferred).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

NAME = "lipfd"
REGISTER_AS = "lipfd_local"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", type=Path, help="dataset folder: AVLips layout (0_real/, 1_fake/, wav/) or real/ and fake/")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--cache", type=Path, default=None, help="window cache folder (default: user cache)/lipfd")


def add_train_args(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--out", type=Path, default=None, help="run folder (default: user data folder/runs/lipfd-<time>)")
    p.add_argument("--arch", default="ViT-L-14", help="CLIP image tower: open_clip name (ViT-L-14 = the card's) or 'tiny' (tests)")
    p.add_argument("--clip-image-size", type=int, default=224)
    p.add_argument("--crop-size", type=int, default=224)
    p.add_argument("--preprocessing", choices=("verity", "upstream"), default="verity",
                   help="input path, recorded in the checkpoint: verity (face-centred, mel by time) or upstream (upstream's exactly)")
    p.add_argument("--frame-size", type=int, default=500, help="side of each frame in the composite (card: 500)")
    p.add_argument("--window-len", type=int, default=5)
    p.add_argument("--n-extract", type=int, default=10, help="windows per clip")
    p.add_argument("--clip-weights", default="clip_vit_l14_openai",
                   help="manifest entry or safetensors/pth path of open_clip weights; 'none' = random (smoke runs)")
    p.add_argument("--clip-sha256", default=None, help="expected sha256 when --clip-weights is a path")
    p.add_argument("--resnet-weights", default="resnet50_imagenet", help="manifest entry or path of torchvision ResNet-50 weights; 'none' = random")
    p.add_argument("--resnet-sha256", default=None)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--ra-weight", type=float, default=1.0, help="weight of the region-awareness loss")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last.pt")
    p.add_argument("--register-as", default=REGISTER_AS)
    p.add_argument("--no-register", action="store_true")


def add_eval_args(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--weights", default="auto", help="manifest entry (default: the one analysis uses) or checkpoint path")
    p.add_argument("--weights-sha256", default=None, help="expected sha256 when --weights is a path")
    p.add_argument("--n-extract", type=int, default=None, help="windows per clip (default: the checkpoint's)")
    p.add_argument("--out", type=Path, default=Path("lipfd_eval"), help="folder for eval.json and the ROC/PR plots")


# --------------------------------------------------------------------------------------------


def _device(arg: str | None) -> str:
    from core.weights.resident import torch_device

    return arg or torch_device()


def _cache_root(arg: Path | None) -> Path:
    from core.paths import cache_dir

    return arg or (cache_dir() / "lipfd")


def _init_backbones(model: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Pretrained CLIP / ResNet-50 from verified local files; returns what was used."""
    from core.weights import load_state_dict, status

    used: dict[str, Any] = {}
    for what, arg, sha in (("clip", args.clip_weights, args.clip_sha256), ("resnet", args.resnet_weights, args.resnet_sha256)):
        if str(arg).lower() == "none":
            used[what] = {"source": None, "note": "random initialisation"}
            continue
        is_path = Path(arg).is_file()
        if is_path and not sha:
            from core.errors import VerityError

            raise VerityError(f"--{what}-weights {arg}: give its sha256 with --{what}-sha256 (checkpoints load only after verification)")
        sd, _ = load_state_dict(arg, sha if is_path else None)
        digest = sha.lower() if is_path else status(arg).sha256
        sd = sd.get("state_dict", sd) if isinstance(sd.get("state_dict"), dict) else sd
        if what == "clip":
            vis = {k[len("visual."):]: v for k, v in sd.items() if k.startswith("visual.")}
            missing, unexpected = model.encoder.visual.load_state_dict(vis, strict=False)
        else:
            trunk = {k: v for k, v in sd.items() if not k.startswith("fc.")}
            own = {k: v for k, v in model.backbone.state_dict().items() if not k.startswith(("fc.", "get_weight."))}
            missing = sorted(set(own) - set(trunk))
            unexpected = sorted(set(trunk) - set(own))
            model.backbone.load_state_dict(trunk, strict=False)
        if missing:
            from core.errors import VerityError

            raise VerityError(f"{what} weights {arg} do not fit the {args.arch if what == 'clip' else 'ResNet-50'} model: {len(missing)} missing keys (e.g. {list(missing)[:3]})")
        used[what] = {"source": str(arg), "sha256": digest, "ignored_keys": len(unexpected)}
    return used


def _loader(ds: Any, batch: int, shuffle: bool, seed: int) -> Any:
    import torch
    from torch.utils.data import DataLoader

    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(ds, batch_size=batch, shuffle=shuffle, num_workers=0, generator=g)


def _predict(model: Any, loader: Any, device: str, half: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window scores, labels and clip indices (`half`: fp16 autocast on CUDA)."""
    import torch

    s, y, c = [], [], []
    model.eval()
    with torch.inference_mode():
        for g, crops, label, clip in loader:
            with torch.autocast("cuda", dtype=torch.float16, enabled=half and device == "cuda"):
                logit, _ = model(g.to(device), crops.to(device))
            s += torch.sigmoid(logit.float()).cpu().tolist()
            y += label.tolist()
            c += clip.tolist()
    return np.array(s), np.array(y), np.array(c)


def clip_scores(scores: np.ndarray, labels: np.ndarray, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Card: a clip's score is the mean of its window scores."""
    ids = np.unique(clips)
    return np.array([scores[clips == i].mean() for i in ids]), np.array([labels[clips == i][0] for i in ids])


def train(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from core.detectors.lipfd_input import LipFDPreprocessing, upstream_preprocessing
    from core.models.lipfd import LipFD, LipFDConfig, region_awareness_loss
    from core.paths import data_dir
    from core.train.lipfd_data import WindowDataset, discover, split
    from core.train.metrics import binary_metrics
    from core.weights import register_local, save_checkpoint

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    device = _device(args.device)
    out = args.out or (data_dir() / "runs" / f"lipfd-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    cfg = LipFDConfig(clip_model=args.arch, clip_image_size=args.clip_image_size, crop_size=args.crop_size, window_len=args.window_len,
                      quick_gelu=args.arch != "tiny")
    shape = {"frame_size": args.frame_size, "window_len": args.window_len, "n_extract": args.n_extract}
    prep = upstream_preprocessing(**shape) if args.preprocessing == "upstream" else LipFDPreprocessing(**shape)
    clips = discover(args.data)
    tr_clips, va_clips = split(clips, args.val_fraction, args.seed)
    cache = _cache_root(args.cache)
    print(f"LipFD training: {len(tr_clips)} train / {len(va_clips)} validation clips, {cfg.clip_model}, device {device}")
    bar = tqdm(total=len(clips), desc="windows", unit="clip", leave=False)
    tick = lambda *_: bar.update(1)  # noqa: E731
    train_ds = WindowDataset(tr_clips, cfg, prep, cache, tick)
    val_ds = WindowDataset(va_clips, cfg, prep, cache, tick) if va_clips else None
    bar.close()
    for why in train_ds.skipped + (val_ds.skipped if val_ds is not None else []):
        print(f"skipped {why}")

    model = LipFD(cfg)
    init = _init_backbones(model, args)
    for p_ in model.encoder.parameters():
        p_.requires_grad_(False)
    model.to(device)
    params = model.trainable_parameters()
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    use_amp = device == "cuda" and not prep.upstream  # upstream mode runs in float32, as upstream
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    bce = torch.nn.BCEWithLogitsLoss()
    start_epoch, history, best = 0, [], None
    last = out / "last.pt"
    if args.resume and last.is_file():
        state = torch.load(last, map_location="cpu", weights_only=True)  # our own file; tensors and numbers only
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_epoch = int(state["epoch"]) + 1
        history = json.loads((out / "history.json").read_text()) if (out / "history.json").is_file() else []
        best = max((h for h in history if h.get("val_score") is not None), key=lambda h: h["val_score"], default=None)
        print(f"resumed after epoch {start_epoch}")

    best_path = out / "lipfd_best.safetensors"
    for epoch in range(start_epoch, args.epochs):
        model.train()
        model.encoder.eval()  # frozen tower: keep its dropout/norm in inference mode
        losses = []
        for g, crops, label, _ in tqdm(_loader(train_ds, args.batch_size, True, args.seed + epoch), desc=f"epoch {epoch + 1}/{args.epochs}", leave=False):
            g, crops, label = g.to(device), crops.to(device), label.float().to(device)
            with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                logit, att = model(g, crops)
                loss = bce(logit.float(), label) + args.ra_weight * region_awareness_loss(att.float())
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            losses.append(float(loss.detach()))
        row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else None}
        if val_ds is not None and len(val_ds):
            s, y, c = _predict(model, _loader(val_ds, args.batch_size, False, 0), device, use_amp)
            cs, cy = clip_scores(s, y, c)
            m = binary_metrics(cy, cs)
            row.update({"val_clip_metrics": m, "val_window_metrics": binary_metrics(y, s)})
            row["val_score"] = m["roc_auc"] if m["roc_auc"] is not None else m["acc"]
        else:
            row["val_score"] = -row["train_loss"] if row["train_loss"] is not None else None
        history.append(row)
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch}, last)
        (out / "history.json").write_text(json.dumps(history, indent=1))
        print(f"epoch {epoch + 1}: loss {row['train_loss']:.4f}" + (f", val {row['val_score']:.3f}" if row.get("val_score") is not None else ""))
        if best is None or (row["val_score"] is not None and row["val_score"] >= (best.get("val_score") or -np.inf)):
            best = row
            meta = {
                "architecture": {**cfg.to_dict(), "model": "LipFD"},
                "preprocessing": prep.to_dict(),
                "training_data": {
                    "summary": f"{len(tr_clips)} clips ({sum(c.label for c in tr_clips)} fake) from {Path(args.data).name}, epoch {epoch + 1}",
                    "root": str(Path(args.data).resolve()),
                    "train": [c.key for c in tr_clips], "validation": [c.key for c in va_clips],
                    "windows": len(train_ds),
                },
                "initialisation": init,
                "metrics": {k: v for k, v in row.items() if k != "epoch"},
                "training": {"epochs": args.epochs, "epoch": epoch + 1, "lr": args.lr, "batch_size": args.batch_size, "ra_weight": args.ra_weight,
                             "seed": args.seed, "device": device, "mixed_precision": use_amp},
            }
            save_checkpoint(best_path, model.state_dict(), meta)
    if best is None:
        print("no epoch ran (already trained to --epochs?)")
        return 1
    sha_final = _file_sha(best_path)
    summary = {"checkpoint": str(best_path), "sha256": sha_final, "best": best}
    if not args.no_register:
        register_local(args.register_as, best_path, detector=NAME, kind="full", sha256=sha_final,
                       description=f"LipFD trained by 'verity train lipfd' on {Path(args.data).name}")
        summary["registered_as"] = args.register_as
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"checkpoint {best_path} sha256 {sha_final}" + (f", registered as {args.register_as!r}" if not args.no_register else ""))
    return 0


def _file_sha(path: Path) -> str:
    from core.weights import file_sha256

    return file_sha256(path)


def evaluate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from core.detectors.lipfd import choose_weights, load_model
    from core.detectors.lipfd_input import with_windows
    from core.errors import VerityError
    from core.train.lipfd_data import WindowDataset, discover
    from core.train.metrics import binary_metrics, save_curves

    device = _device(args.device)
    src: str | Path = args.weights
    if Path(str(src)).is_file():
        if not args.weights_sha256:
            raise VerityError("--weights is a file: give its sha256 with --weights-sha256")
        src = Path(src)
    else:
        name, reasons = choose_weights(str(src))
        if name is None:
            raise VerityError("no verified LipFD weights: " + "; ".join(reasons))
        src = name
    loaded = load_model(src, args.weights_sha256, device)
    prep = with_windows(loaded.prep, args.n_extract)
    clips = discover(args.data)
    bar = tqdm(total=len(clips), desc="windows", unit="clip", leave=False)
    ds = WindowDataset(clips, loaded.cfg, prep, _cache_root(args.cache), lambda *_: bar.update(1))
    bar.close()
    for why in ds.skipped:
        print(f"skipped {why}")
    s, y, c = _predict(loaded.model, _loader(ds, args.batch_size, False, 0), device, not prep.upstream)
    cs, cy = clip_scores(s, y, c)
    clip_m, win_m = binary_metrics(cy, cs), binary_metrics(y, s)
    args.out.mkdir(parents=True, exist_ok=True)
    plots = save_curves(cy, cs, args.out, "LipFD clips")
    report = {"weights": loaded.weights_name, "sha256": loaded.sha256, "device": device, "preprocessing": prep.to_dict(), "clips": clip_m, "windows": win_m,
              "per_clip": [{"clip": clips[i].key, "label": int(clips[i].label), "score": float(sc)} for i, sc in zip(np.unique(c), cs)],
              "plots": [str(p) for p in plots]}
    (args.out / "eval.json").write_text(json.dumps(report, indent=1))
    for level, m in (("clips", clip_m), ("windows", win_m)):
        def f(v: Any) -> str:
            return "n/a" if v is None else f"{v:.3f}"
        print(f"{level:8s} n={m['n']} ACC {f(m['acc'])} AP {f(m['ap'])} ROC-AUC {f(m['roc_auc'])} EER {f(m['eer'])} FPR {f(m['fpr'])} FNR {f(m['fnr'])}")
    print(f"written {args.out / 'eval.json'}" + (f" and {len(plots)} plots" if plots else " (one class only: no ROC/PR plots)"))
    return 0
