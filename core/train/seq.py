"""Train or evaluate the frame-sequence classifiers on a dataset made by `verity prepare`.

    verity train seq --data DIR --arch mobilenet_lstm|cnn_bilstm [--layout ...] [--epochs N] ...
    verity eval seq --data DIR [--checkpoint FILE --sha256 HEX | --weights NAME] [--split test]

Training: the prepared "train" videos, split again by video (never by frame) into training and
validation; each epoch draws `--windows-per-video` random windows of `--sequence-length`
sampled frames per training video (augmented: rotation, flip, brightness/contrast, blur, JPEG),
validation scores up to `--val-windows` of the detector's windows per video. Adam with weight
decay, step LR decay, cross-entropy (binary cross-entropy for the single-logit seed-001 layout),
class-balanced; mixed precision on CUDA. Every epoch appends to history.csv, redraws curves.png
and writes checkpoint_last.pt (plain tensors, with its sha256 beside it: `--resume` verifies and
loads it weights-only). The best epoch by validation loss becomes one safetensors file with the
architecture, preprocessing, backbone, training data and validation metrics in its metadata;
it is registered as `sequence_cnn_local` unless --no-register.

MobileNetV2 starts from the verified `mobilenet_v2_imagenet` entry when present (or --backbone
PATH --backbone-sha256 HEX), else from random weights, and the metadata says which.

Evaluation: per window and per video (the detector's rule, sequence_cnn.video_score): confusion
matrix, ROC-AUC, PR/AP, per-class accuracy, FPR/FNR, EER (core.train.metrics), as eval.json and
PNG plots.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.detectors.sequence_cnn import Window, video_score
from core.detectors.sequence_model import BACKBONE_WEIGHTS, FORMAT, LOCAL_WEIGHTS, NORMALISATIONS, SeqPreprocessing, default_device
from core.detectors.sequence_model import NAME as DETECTOR
from core.errors import VerityError
from core.models.sequence import ARCHS

NAME = "seq"
SEED_OF = {"mobilenet_lstm": "seed 001 (MobileNetV2 + LSTM, AbhishekX04/Deepfake-detection)", "cnn_bilstm": "seed 004 (CNN + BiLSTM)"}
DEFAULT_LR = {"mobilenet_lstm": 1e-4, "cnn_bilstm": 1e-3}  # the seeds' learning rates
DEFAULT_NORM = {"mobilenet_lstm": "imagenet", "cnn_bilstm": "0_1"}


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, metavar="DIR", help="dataset folder written by 'verity prepare'")
    p.add_argument("--arch", choices=ARCHS, required=True)
    p.add_argument("--layout", choices=("deepfake_detector", "cnn_lstm_detector"), default="deepfake_detector",
                   help="mobilenet_lstm only: seed 001's scripts/train.py network (LSTM, 2 logits) or its cnn_lstm.py (BiLSTM, 1 logit)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default: user data folder/training/seq-<arch>)")
    p.add_argument("--backbone", default="auto", help="MobileNetV2 ImageNet weights: 'auto' (the verified manifest entry if any), 'none', or a file")
    p.add_argument("--backbone-sha256", default=None, help="expected sha256 of --backbone FILE (required for a file)")
    p.add_argument("--sequence-length", type=int, default=16)
    p.add_argument("--input-size", type=int, default=None, help="network input side (default: the dataset's crop size)")
    p.add_argument("--normalisation", choices=NORMALISATIONS, default=None, help="default: imagenet for mobilenet_lstm, 0_1 for cnn_bilstm")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=None, help="default: 1e-4 (mobilenet_lstm, seed 001), 1e-3 (cnn_bilstm, seed 004)")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--lr-step", type=int, default=10, help="epochs between learning-rate decays")
    p.add_argument("--lr-gamma", type=float, default=0.1)
    p.add_argument("--windows-per-video", type=int, default=2, help="random training windows drawn per video and epoch")
    p.add_argument("--val-windows", type=int, default=4, help="validation windows per video (evenly spread)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of training videos (per class) held out for validation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint_last.pt")
    p.add_argument("--no-register", action="store_true", help=f"write the checkpoint but do not register it as {LOCAL_WEIGHTS!r}")


def add_eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, metavar="DIR", help="dataset folder written by 'verity prepare'")
    p.add_argument("--checkpoint", type=Path, default=None, help="checkpoint file (default: the registered weights)")
    p.add_argument("--sha256", default=None, help="expected sha256 of --checkpoint")
    p.add_argument("--weights", default="auto", help="manifest entry when no --checkpoint is given")
    p.add_argument("--split", choices=("test", "train", "all"), default="test")
    p.add_argument("--stride", type=int, default=None, help="sampled frames between windows (default: half a window, as the detector)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default=None)
    p.add_argument("--out", type=Path, default=Path("seq_eval"), help="folder for eval.json and the plots")


# ----------------------------------------------------------------------------------------------
# pieces


def _windows(clip: Any, prep: SeqPreprocessing, stride: int, limit: int | None = None) -> list[Window]:
    L = prep.sequence_length
    ws = clip.windows(L, stride, max(L // 2, 1))
    if limit is not None and len(ws) > limit:
        ws = [ws[int(k)] for k in np.linspace(0, len(ws) - 1, limit).round().astype(int)]
    return ws


def _loss_fn(logits: Any, y: Any, weight: Any) -> Any:
    import torch.nn.functional as F

    if logits.shape[-1] == 1:  # seed 001 cnn_lstm.py: one logit, sigmoid = P(fake)
        w = weight[y]
        return F.binary_cross_entropy_with_logits(logits[:, 0], y.float(), weight=w)
    return F.cross_entropy(logits, y, weight=weight)


def _predict(model: Any, loader: Any, device: str, weight: Any = None) -> tuple[np.ndarray, np.ndarray, float]:
    """(scores P(manipulated), labels, mean loss) over a loader."""
    import torch

    from core.detectors.sequence_model import p_manipulated

    model.eval()
    scores, labels, total, n = [], [], 0.0, 0
    amp = device.startswith("cuda")
    with torch.inference_mode(), torch.autocast(device_type="cuda" if amp else "cpu", enabled=amp):
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            logits = model(x).float()
            if weight is not None:
                total += float(_loss_fn(logits, y, weight)) * len(y)
                n += len(y)
            scores.append(p_manipulated(logits).cpu().numpy())
            labels.append(y.cpu().numpy())
    s = np.concatenate(scores) if scores else np.zeros(0)
    return s.astype(np.float64), (np.concatenate(labels) if labels else np.zeros(0, int)), (total / n if n else float("nan"))


def _backbone(args: argparse.Namespace, model: Any) -> dict[str, Any]:
    """ImageNet MobileNetV2 weights into the model's frame CNN; what was used, for the metadata."""
    from core.models.mobilenet_lstm import load_imagenet_features
    from core.weights import file_sha256, load_state_dict, status

    if args.arch != "mobilenet_lstm":
        return {"init": "random: the seed-004 network is trained from scratch"}
    choice = str(args.backbone)
    if choice == "none":
        return {"init": "random: trained from scratch (--backbone none)"}
    if choice == "auto":
        st = status(BACKBONE_WEIGHTS)
        if not st.ok or st.path is None:
            print(f"no verified {BACKBONE_WEIGHTS} ({st.reason}): MobileNetV2 trains from scratch", file=sys.stderr)
            return {"init": f"random: trained from scratch (no verified {BACKBONE_WEIGHTS}: {st.reason})"}
        path, sha = st.path, str(st.sha256)
    else:
        path = Path(choice).expanduser()
        if not args.backbone_sha256:
            raise VerityError("--backbone FILE needs --backbone-sha256 (weights load only after verification)")
        if not path.is_file():
            raise VerityError(f"--backbone {path}: not a file")
        sha = file_sha256(path)
        if sha != args.backbone_sha256.lower():
            raise VerityError(f"--backbone {path.name}: sha256 {sha} does not match --backbone-sha256; refused")
    sd, _ = load_state_dict(path, expected_sha256=sha)
    try:
        n = load_imagenet_features(model.features, sd)
    except RuntimeError as exc:
        raise VerityError(f"{path.name} is not torchvision MobileNetV2 weights: {str(exc).splitlines()[0]}") from None
    return {"init": "ImageNet", "name": BACKBONE_WEIGHTS, "file": path.name, "sha256": sha, "tensors": n}


def _save_resume(path: Path, state: dict[str, Any]) -> None:
    import torch

    from core.weights import file_sha256

    tmp = path.with_name(path.name + ".part")
    torch.save(state, tmp)
    os.replace(tmp, path)
    path.with_name(path.name + ".sha256").write_text(file_sha256(path) + "\n")


def _load_resume(path: Path) -> dict[str, Any]:
    from core.weights import load_state_dict

    side = path.with_name(path.name + ".sha256")
    if not side.is_file():
        raise VerityError(f"{path}: no .sha256 beside it; cannot verify it before loading")
    state, _ = load_state_dict(path, expected_sha256=side.read_text().strip())  # weights-only: payloads refused
    return state


HISTORY_FIELDS = ("epoch", "lr", "train_loss", "val_loss", "val_acc", "val_auc", "train_windows", "seconds", "clips_per_s")


def _write_history(out: Path, history: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(out / "history.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=HISTORY_FIELDS)
        w.writeheader()
        w.writerows({k: h.get(k) for k in HISTORY_FIELDS} for h in history)
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2), dpi=110)
    ep = [h["epoch"] for h in history]
    a.plot(ep, [h["train_loss"] for h in history], "-o", label="train")
    a.plot(ep, [np.nan if h["val_loss"] is None else h["val_loss"] for h in history], "-o", label="validation")
    a.set_xlabel("epoch")
    a.set_ylabel("loss")
    a.legend()
    b.plot(ep, [np.nan if h["val_auc"] is None else h["val_auc"] for h in history], "-o", c="C2")
    b.set_xlabel("epoch")
    b.set_ylabel("validation ROC-AUC (windows)")
    b.set_ylim(0, 1)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "curves.png")
    plt.close(fig)


# ----------------------------------------------------------------------------------------------
# training


def train(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from core.detectors.sequence_model import build_model
    from core.train.metrics import binary_metrics
    from core.train.seq_data import SequenceDataset, augmentation, load_dataset, split_by_video
    from core.weights import register_local, save_checkpoint

    t_start = time.perf_counter()
    device = args.device or default_device()
    index, clips = load_dataset(args.data)
    data_prep = SeqPreprocessing.from_dict(index["preprocessing"])
    prep = SeqPreprocessing.from_dict({**data_prep.to_dict(), "sequence_length": args.sequence_length,
                                       "input_size": args.input_size or data_prep.size,
                                       "normalisation": args.normalisation or DEFAULT_NORM[args.arch]})
    pool = [c for c in clips if c.split == "train"]
    labels = [c.label for c in pool]
    if len(set(labels)) < 2:
        raise VerityError(f"training needs real and fake videos with face crops in the 'train' split; found {labels.count(0)} real, {labels.count(1)} fake")
    tr_k, va_k = split_by_video(labels, args.val_fraction, args.seed)
    train_clips, val_clips = [pool[k] for k in tr_k], [pool[k] for k in va_k]
    L = prep.sequence_length
    candidates = {i: c.windows(L, 1, max(L // 2, 1)) for i, c in enumerate(train_clips)}  # every start: the random draws' pool
    n_candidates = sum(len(v) for v in candidates.values())
    if not n_candidates:
        raise VerityError(f"no training video has {max(L // 2, 1)} consecutive sampled face frames; lower --sequence-length")
    val_items = [(i, w) for i, c in enumerate(val_clips) for w in _windows(c, prep, max(L // 2, 1), args.val_windows)]
    arch = {"arch": args.arch} | ({"layout": args.layout} if args.arch == "mobilenet_lstm" else {"layout": "cnn_bilstm", "params": {}})
    lr = args.lr or DEFAULT_LR[args.arch]
    config = {"dataset": str(Path(args.data).resolve()), "crop_key": index["crop_key"], "train": [c.sha256 for c in train_clips],
              "val": [c.sha256 for c in val_clips], "architecture": arch, "preprocessing": prep.to_dict(), "lr": lr,
              "weight_decay": args.weight_decay, "lr_step": args.lr_step, "lr_gamma": args.lr_gamma, "batch_size": args.batch_size,
              "windows_per_video": args.windows_per_video, "backbone": str(args.backbone), "seed": args.seed}

    torch.manual_seed(args.seed)
    model = build_model(arch)
    backbone = _backbone(args, model)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=args.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(args.lr_step, 1), gamma=args.lr_gamma)
    amp = device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    counts = np.bincount([c.label for c in train_clips], minlength=2)
    weight = torch.tensor(len(train_clips) / (2.0 * np.maximum(counts, 1)), dtype=torch.float32, device=device)  # balanced classes

    out = (args.out or _default_out(args.arch)).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint_last.pt"
    start, history = 0, []
    best: dict[str, Any] = {"loss": float("inf"), "epoch": -1, "state": None}
    if args.resume and ckpt.is_file():
        state = _load_resume(ckpt)
        if json.loads(state["config"]) != config:
            raise VerityError(f"{ckpt}: made with other data or settings; use another --out or drop --resume")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(json.loads(state["scheduler"]))
        backbone = json.loads(state["backbone"])  # what the run started from, not what is verified now
        start, history = int(state["epoch"]) + 1, json.loads(state["history"])
        best = {"loss": float(state["best_loss"]), "epoch": int(state["best_epoch"]), "state": state["best_model"]}
        print(f"resuming after epoch {start} from {ckpt}", file=sys.stderr)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{args.arch} ({arch['layout']}, {n_params:,} parameters, backbone: {backbone['init']}); {len(train_clips)} training videos "
          f"({n_candidates} windows of {L}), {len(val_clips)} validation videos ({len(val_items)} windows); device {device}", file=sys.stderr)

    val_loader = DataLoader(SequenceDataset(val_clips, val_items, prep), batch_size=args.batch_size)
    aug = augmentation()
    for epoch in range(start, args.epochs):
        rng = np.random.default_rng(args.seed * 100003 + epoch)  # a resumed run draws as an unbroken one
        torch.manual_seed(args.seed * 100003 + epoch)
        items = [(i, mine[int(k)]) for i, mine in candidates.items() if mine
                 for k in rng.choice(len(mine), size=min(args.windows_per_video, len(mine)), replace=False)]
        loader = DataLoader(SequenceDataset(train_clips, items, prep, aug), batch_size=args.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(args.seed + epoch))
        model.train()
        t0, total, seen = time.perf_counter(), 0.0, 0
        for x, y in tqdm(loader, desc=f"epoch {epoch}", unit="batch", file=sys.stderr, disable=None, leave=False):
            x, y = x.to(device), y.to(device)
            with torch.autocast(device_type="cuda" if amp else "cpu", enabled=amp):
                loss = _loss_fn(model(x).float(), y, weight)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            total += float(loss.detach()) * len(y)
            seen += len(y)
        train_s = time.perf_counter() - t0
        lr_now = opt.param_groups[0]["lr"]
        sched.step()
        s_va, y_va, val_loss = _predict(model, val_loader, device, weight) if val_items else (np.zeros(0), np.zeros(0), float("nan"))
        m = binary_metrics(y_va, s_va) if len(y_va) else None
        row = {"epoch": epoch, "lr": lr_now, "train_loss": round(total / max(seen, 1), 5),
               "val_loss": None if np.isnan(val_loss) else round(val_loss, 5), "val_acc": None if m is None else round(m["acc"], 4),
               "val_auc": None if m is None or m["roc_auc"] is None else round(m["roc_auc"], 4), "train_windows": seen,
               "seconds": round(time.perf_counter() - t0, 1), "clips_per_s": round(seen / train_s, 3) if train_s > 0 else None}
        history.append(row)
        monitor = row["val_loss"] if row["val_loss"] is not None else row["train_loss"]
        if monitor < best["loss"]:
            best = {"loss": monitor, "epoch": epoch, "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        print("epoch {epoch}: train loss {train_loss}, val loss {val_loss}, val acc {val_acc}, val AUC {val_auc}, "
              "{train_windows} windows at {clips_per_s} clips/s, {seconds} s".format(**row), file=sys.stderr)
        _write_history(out, history)
        _save_resume(ckpt, {"epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict(),
                            "scheduler": json.dumps(sched.state_dict()), "best_model": best["state"], "best_loss": float(best["loss"]),
                            "best_epoch": int(best["epoch"]), "history": json.dumps(history), "config": json.dumps(config),
                            "backbone": json.dumps(backbone)})
    if best["state"] is None:
        raise VerityError(f"no epoch was run (--epochs {args.epochs}, resumed at {start})")
    model.load_state_dict(best["state"])
    val_windows = val_videos = None
    if val_items:
        s_va, y_va, _ = _predict(model, val_loader, device)
        val_windows = _with_class_accuracy(binary_metrics(y_va, s_va))
        by_video: dict[int, dict[int, list[float]]] = {}
        for (i, w), s in zip(val_items, s_va):
            by_video.setdefault(i, {}).setdefault(w.track_id, []).append(float(s))
        vids = sorted(by_video)
        val_videos = _with_class_accuracy(binary_metrics([val_clips[i].label for i in vids], [video_score(by_video[i]) for i in vids]))
    used = train_clips + val_clips
    n_real = sum(1 for c in used if c.label == 0)
    meta = {
        "format": FORMAT,
        "model": SEED_OF[args.arch],
        "architecture": {**arch, "parameters": n_params},
        "output": "logits; sigmoid (1 logit) or softmax[:, 1] (2 logits) = P(manipulated)",
        "preprocessing": prep.to_dict(),
        "backbone": backbone,
        "training_data": {"dataset": config["dataset"], "source": index.get("source"), "videos": len(used), "real_videos": n_real,
                          "fake_videos": len(used) - n_real, "train_videos": len(train_clips), "val_videos": len(val_clips),
                          "train_windows": n_candidates, "video_sha256": [c.sha256 for c in used],
                          "note": f"{len(used)} videos: enough to check the pipeline, not to make a detector" if min(n_real, len(used) - n_real) < 50 else ""},
        "training": {"epochs": args.epochs, "best_epoch": int(best["epoch"]), "lr": lr, "weight_decay": args.weight_decay,
                     "lr_step": args.lr_step, "lr_gamma": args.lr_gamma, "batch_size": args.batch_size, "seed": args.seed,
                     "device": device, "mixed_precision": amp, "history": history},
        "metrics": {"validation_windows": val_windows, "validation_videos": val_videos},
    }
    path = out / f"sequence_cnn_{args.arch}.safetensors"
    sha = save_checkpoint(path, model.state_dict(), meta)
    if not args.no_register:
        register_local(LOCAL_WEIGHTS, path, detector=DETECTOR, kind="full", sha256=sha,
                       description=f"trained by 'verity train seq --arch {args.arch}' on {args.data} ({len(used)} videos)")
    summary = {"checkpoint": str(path), "sha256": sha, "registered": not args.no_register, "best_epoch": int(best["epoch"]),
               "metrics": meta["metrics"], "seconds": round(time.perf_counter() - t_start, 1),
               "clips_per_s": [h["clips_per_s"] for h in history]}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"checkpoint written: {path} (sha256 {sha}){'; registered as ' + LOCAL_WEIGHTS if not args.no_register else ''}")
    if val_videos:
        print(_format("validation, per video", val_videos))
    return 0


def _default_out(arch: str) -> Path:
    from core.paths import data_dir

    return data_dir() / "training" / f"seq-{arch}"


# ----------------------------------------------------------------------------------------------
# evaluation


def _format(title: str, m: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    cm = m["confusion_matrix"]
    return (f"{title}: n={m['n']} (real {m['n_real']}, fake {m['n_fake']})  ACC {f(m['acc'])}  ROC-AUC {f(m['roc_auc'])}  AP {f(m['ap'])}  "
            f"EER {f(m['eer'])}  FPR {f(m['fpr'])}  FNR {f(m['fnr'])}  per-class accuracy real {f(m['acc_real'])} fake {f(m['acc_fake'])}\n"
            f"  confusion matrix (rows true real/fake, columns called real/fake): [[{cm['tn']}, {cm['fp']}], [{cm['fn']}, {cm['tp']}]]")


def _with_class_accuracy(m: dict[str, Any]) -> dict[str, Any]:
    cm = m["confusion_matrix"]
    m["acc_real"] = cm["tn"] / (cm["tn"] + cm["fp"]) if cm["tn"] + cm["fp"] else None
    m["acc_fake"] = cm["tp"] / (cm["tp"] + cm["fn"]) if cm["tp"] + cm["fn"] else None
    return m


def _confusion_png(m: dict[str, Any], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = m["confusion_matrix"]
    a = np.array([[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]])
    fig, ax = plt.subplots(figsize=(3.6, 3.2), dpi=120)
    ax.imshow(a, cmap="Blues")
    for (i, j), v in np.ndenumerate(a):
        ax.text(j, i, str(v), ha="center", va="center", color="black" if v <= a.max() / 2 else "white")
    ax.set_xticks([0, 1], ["called real", "called fake"])
    ax.set_yticks([0, 1], ["real", "fake"])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def evaluate(args: argparse.Namespace) -> int:
    from torch.utils.data import DataLoader

    from core.detectors.sequence_model import load_model
    from core.train.metrics import binary_metrics, save_curves
    from core.train.seq_data import SequenceDataset, load_dataset
    from core.weights import WeightsError

    device = args.device or default_device()
    try:
        model = load_model(args.weights, device, args.checkpoint, args.sha256) if args.checkpoint else load_model(args.weights, device)
    except WeightsError as exc:
        raise VerityError(str(exc)) from None
    index, clips = load_dataset(args.data)
    if index["crop_key"] != model.prep.crop_key():
        raise VerityError(f"{args.data} was prepared with other crops ({index['preprocessing']}) than the model expects "
                          f"({model.prep.to_dict()}): prepare the data again with the model's --input/--fps/--size")
    clips = [c for c in clips if args.split == "all" or c.split == args.split]
    L = model.prep.sequence_length
    stride = args.stride or max(L // 2, 1)
    items = [(i, w) for i, c in enumerate(clips) for w in _windows(c, model.prep, stride)]
    if not items:
        raise VerityError(f"no window of {L} frames in the {args.split!r} split of {args.data}: nothing to evaluate")
    s, y, _ = _predict(model.model, DataLoader(SequenceDataset(clips, items, model.prep), batch_size=args.batch_size), device)
    by_video: dict[int, dict[int, list[float]]] = {}
    for (i, w), v in zip(items, s):
        by_video.setdefault(i, {}).setdefault(w.track_id, []).append(float(v))
    vids = sorted(by_video)
    y_vid, s_vid = [clips[i].label for i in vids], [video_score(by_video[i]) for i in vids]
    m_win, m_vid = _with_class_accuracy(binary_metrics(y, s)), _with_class_accuracy(binary_metrics(y_vid, s_vid))
    out = args.out.expanduser()
    out.mkdir(parents=True, exist_ok=True)
    plots = [str(p) for p in save_curves(y_vid, s_vid, out, "sequence video") + save_curves(y, s, out, "sequence window")]
    plots += [str(_confusion_png(m_vid, out / "sequence_video_confusion.png", "per video, threshold 0.5")),
              str(_confusion_png(m_win, out / "sequence_window_confusion.png", "per window, threshold 0.5"))]
    report = {"weights_sha256": model.sha256, "weights_entry": model.entry, "architecture": model.architecture, "preprocessing": model.prep.to_dict(),
              "provenance": model.provenance, "data": str(Path(args.data).resolve()), "split": args.split, "videos": m_vid, "windows": m_win,
              "per_video": [{"video": Path(clips[i].path).name, "label": "fake" if clips[i].label else "real",
                             "windows": sum(len(v) for v in by_video[i].values()), "score": round(sv, 4)} for i, sv in zip(vids, s_vid)],
              "plots": plots}
    (out / "eval.json").write_text(json.dumps(report, indent=1))
    print(_format("per video", m_vid))
    print(_format("per window", m_win))
    print(f"plots and eval.json in {out}")
    return 0
