"""Train and evaluate the EyeBlink-CNN-LSTM head on labelled videos (DIR/real, DIR/fake).

`verity train eyeblink --data DIR`: face pass, blink sequences, frozen Xception features (cached
once), then only the LSTM head is trained (1.1 M parameters: cheap, even on CPU), with a
validation split by video, a checkpoint every epoch (`--resume` continues), and finally the best
head written as safetensors with its metadata and registered as the weights entry
`eyeblink_lstm_head`, so `verity analyze` uses it from then on.

`verity eval eyeblink --data DIR`: ACC, ROC-AUC, AP, EER and the confusion matrix per video
(and per sequence), ROC/PR plots.

Labels: the head learns the card's convention (target 1 = REAL); every metric here is computed
on Verity's score P(manipulated) = the detector's `manipulation_score`, with label 1 = fake.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.detectors.eyeblink_cnn_lstm import (
    BACKBONE_WEIGHTS,
    HEAD_FORMAT,
    HEAD_WEIGHTS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    OUTPUT_CONVENTION,
    Preprocessing,
    _unwrap,
    build_backbone,
    manipulation_score,
    summarise,
)
from core.detectors.eyeblink_cnn_lstm import (
    NAME as DETECTOR,
)
from core.errors import VerityError
from core.params import from_dict
from core.signals.blinks import BlinkParams
from core.train.eyeblink_data import VideoSequences, list_videos, split_by_video, video_sequences
from core.weights.resident import torch_device

NAME = "eyeblink"
log = logging.getLogger("verity.train.eyeblink")


def _default_out() -> Path:
    from core.paths import data_dir

    return data_dir() / "training" / "eyeblink"


def _feature_cache() -> Path:
    from core.paths import cache_dir

    return cache_dir() / "eyeblink_features"


def _common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True, metavar="DIR", help="folder with real/ and fake/ videos")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--feature-batch", type=int, default=16, help="eye crops per Xception batch")
    p.add_argument("--feature-cache", type=Path, default=None, help="where backbone features are cached (default: user cache)")


def add_train_args(p: argparse.ArgumentParser) -> None:
    _common_args(p)
    p.add_argument("--out", type=Path, default=None, help="run folder: checkpoints, summary, the trained head (default: user data folder)")
    p.add_argument("--backbone", type=Path, default=None, metavar="PATH",
                   help=f"Xception weights file to use and register as {BACKBONE_WEIGHTS!r} (default: the verified manifest entry)")
    p.add_argument("--backbone-sha256", default=None, help="expected sha256 of --backbone (refused when different)")
    p.add_argument("--sequence-length", type=int, default=8)
    p.add_argument("--frame-skip", type=int, default=1, help="1: every frame of a blink; 10: the card's sampling")
    p.add_argument("--input-size", type=int, default=None, help="crop size fed to Xception (default: timm config, 299)")
    p.add_argument("--normalisation", choices=("timm", "imagenet"), default="timm",
                   help="timm: the mean/std these Xception weights were trained with (0.5); imagenet: the card's 0.485/0.229 values")
    p.add_argument("--crop-margin", type=float, default=Preprocessing.crop_margin)
    p.add_argument("--tracks", choices=("largest", "all"), default="largest", help="faces whose blinks are used (a fake video may show real bystanders)")
    p.add_argument("--blink-threshold", type=float, default=None, help="the card's fixed EAR threshold instead of the adaptive one")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of videos (per class) held out for validation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    p.add_argument("--no-register", action="store_true", help="write the head but do not make it the one analysis uses")


def add_eval_args(p: argparse.ArgumentParser) -> None:
    _common_args(p)
    p.add_argument("--head", type=Path, default=None, help=f"head file (default: the registered {HEAD_WEIGHTS!r})")
    p.add_argument("--head-sha256", default=None, help="expected sha256 of --head")
    p.add_argument("--out", type=Path, default=None, help="folder for eval.json and the ROC/PR plots (default: ./eyeblink_eval)")


# ----------------------------------------------------------------------------------------------
# features


def _extract_all(videos: list[Any], prep: Preprocessing, backbone: Any, backbone_sha: str, cache: Path, blinks: BlinkParams,
                 tracks: str, device: str, batch: int) -> list[VideoSequences]:
    from tqdm import tqdm

    from core.errors import CancelledError

    out: list[VideoSequences] = []
    bar = tqdm(videos, desc="blink sequences", unit="video", file=sys.stderr, disable=None)
    for v in bar:
        bar.set_postfix_str(v.path.name)
        try:
            out.append(video_sequences(v, prep, backbone, backbone_sha, cache, blinks, tracks, device, batch))
        except CancelledError:
            raise
        except VerityError as exc:  # an unreadable video is reported, not fatal
            log.warning("%s skipped: %s", v.path, exc)
            out.append(VideoSequences(str(v.path), "", v.label, np.zeros((0, prep.sequence_length, 2048), np.float32), error=str(exc)))
    bar.close()
    return out


def _backbone_for_training(args: argparse.Namespace, device: str) -> tuple[Any, str, Path]:
    from core.weights import WeightsError, file_sha256, load_state_dict, register_local, status

    if args.backbone is not None:
        path = args.backbone.expanduser().resolve()
        if not path.is_file():
            raise VerityError(f"--backbone {path}: not a file")
        sha = file_sha256(path)
        if args.backbone_sha256 and sha != args.backbone_sha256.lower():
            raise VerityError(f"--backbone {path.name}: sha256 {sha} does not match --backbone-sha256 {args.backbone_sha256}; refused")
        # The examiner named this file as the backbone: record it (with its sha256) so analysis
        # later finds the very backbone the head was trained on.
        register_local(BACKBONE_WEIGHTS, path, detector=DETECTOR, kind="backbone", sha256=sha,
                       description=f"registered by 'verity train eyeblink --backbone {path}'")
    st = status(BACKBONE_WEIGHTS)
    if not st.ok or st.path is None:
        raise VerityError(f"no verified Xception backbone ({BACKBONE_WEIGHTS}): {st.reason}. Import it or pass --backbone PATH")
    try:
        sd, _ = load_state_dict(st.path, expected_sha256=st.sha256)
        backbone = build_backbone(_unwrap(sd), device)
    except WeightsError:
        raise
    except (RuntimeError, KeyError, ValueError) as exc:
        raise VerityError(f"{st.path.name} does not fit timm's legacy_xception: {str(exc).splitlines()[0]}") from None
    return backbone, str(st.sha256), st.path


def _prep_from_args(args: argparse.Namespace) -> Preprocessing:
    prep = Preprocessing(sequence_length=args.sequence_length, frame_skip=args.frame_skip, crop_margin=args.crop_margin)
    if args.input_size:
        prep.input_size = int(args.input_size)
    if args.normalisation == "imagenet":
        prep.mean, prep.std = IMAGENET_MEAN, IMAGENET_STD
    return prep


# ----------------------------------------------------------------------------------------------
# training


def _stack(items: list[VideoSequences], idx: list[int], L: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs = [items[i].feats for i in idx if len(items[i].feats)]
    x = np.concatenate(xs) if xs else np.zeros((0, L, 2048), np.float32)
    y = np.concatenate([np.full(len(items[i].feats), items[i].label, np.float32) for i in idx]) if idx else np.zeros(0, np.float32)
    vid = np.concatenate([np.full(len(items[i].feats), i) for i in idx]) if idx else np.zeros(0, int)
    return x, y, vid


def _evaluate_head(head: Any, x: np.ndarray, device: str) -> np.ndarray:
    """Verity scores P(manipulated) for feature sequences."""
    import torch

    head.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), 256):
            out.append(torch.sigmoid(head(torch.from_numpy(x[i : i + 256]).to(device))).cpu().numpy())
    return np.asarray(manipulation_score(np.concatenate(out) if out else np.zeros(0)), np.float64)


def _bce(head: Any, x: np.ndarray, y_fake: np.ndarray, w: dict[int, float], device: str) -> float:
    import torch

    if len(x) == 0:
        return float("nan")
    head.eval()
    with torch.no_grad():
        logits = torch.cat([head(torch.from_numpy(x[i : i + 256]).to(device)) for i in range(0, len(x), 256)])
        target = torch.from_numpy(1.0 - y_fake).to(device)  # card convention: 1 = REAL
        weight = torch.tensor([w[int(v)] for v in y_fake], device=device)
        return float(torch.nn.functional.binary_cross_entropy_with_logits(logits, target, weight=weight))


def _save_training_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Resume checkpoint: plain tensors and numbers only (loads with weights_only=True), plus its sha256."""
    import os

    import torch

    from core.weights import file_sha256

    tmp = path.with_name(path.name + ".part")
    torch.save(state, tmp)
    os.replace(tmp, path)
    path.with_name(path.name + ".sha256").write_text(file_sha256(path) + "\n")


def _load_training_checkpoint(path: Path) -> dict[str, Any]:
    from core.weights import load_state_dict

    side = path.with_name(path.name + ".sha256")
    if not side.is_file():
        raise VerityError(f"{path}: no .sha256 beside it; cannot verify it before loading")
    state, _ = load_state_dict(path, expected_sha256=side.read_text().strip())
    return state


def train(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from core.models.eyeblink_cnn_lstm import EyeBlinkHead, count_parameters
    from core.train.metrics import binary_metrics
    from core.weights import register_local, save_checkpoint

    t0 = time.perf_counter()
    device = args.device or torch_device()
    out = (args.out or _default_out()).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    videos = list_videos(args.data)
    backbone, backbone_sha, backbone_path = _backbone_for_training(args, device)
    prep = _prep_from_args(args)
    blinks = BlinkParams(mode="fixed", fixed_threshold=args.blink_threshold) if args.blink_threshold is not None else BlinkParams()
    cache = args.feature_cache or _feature_cache()

    items = _extract_all(videos, prep, backbone, backbone_sha, cache, blinks, args.tracks, device, args.feature_batch)
    del backbone  # features are cached: the head trains without the backbone in memory
    usable = [i for i, it in enumerate(items) if len(it.feats)]
    for it in items:
        if not len(it.feats):
            print(f"  {Path(it.path).name}: no blink sequence ({it.error or f'{it.blink_frames_found} blink frames'}); not used", file=sys.stderr)
    labels_usable = [items[i].label for i in usable]
    if len(set(labels_usable)) < 2:
        raise VerityError("training needs blink sequences from both real/ and fake/ videos; "
                          f"found them in {sum(1 for y in labels_usable if y == 0)} real and {sum(1 for y in labels_usable if y == 1)} fake videos")
    tr_k, va_k = split_by_video(labels_usable, args.val_fraction, args.seed)
    tr_idx, va_idx = [usable[k] for k in tr_k], [usable[k] for k in va_k]
    L = prep.sequence_length
    x_tr, y_tr, _ = _stack(items, tr_idx, L)
    x_va, y_va, vid_va = _stack(items, va_idx, L)
    # balance the classes: each class weighs as much in the loss whatever its sequence count
    counts = {c: max(int((y_tr == c).sum()), 1) for c in (0, 1)}
    w = {c: len(y_tr) / (2.0 * counts[c]) for c in (0, 1)}

    config = {
        "data": str(Path(args.data).resolve()), "videos": [it.sha256 for it in items], "train_videos": [items[i].sha256 for i in tr_idx],
        "val_videos": [items[i].sha256 for i in va_idx], "preprocessing": prep.to_dict(), "blinks": blinks.to_dict(),
        "tracks": args.tracks, "backbone_sha256": backbone_sha, "lr": args.lr, "weight_decay": args.weight_decay,
        "batch_size": args.batch_size, "seed": args.seed,
    }
    torch.manual_seed(args.seed)
    head = EyeBlinkHead().to(device)
    opt = torch.optim.Adam(head.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    ckpt_path = out / "checkpoint_last.pt"
    start_epoch, history = 0, []
    best: dict[str, Any] = {"loss": float("inf"), "epoch": -1, "state": {k: v.detach().cpu().clone() for k, v in head.state_dict().items()}}
    if args.resume and ckpt_path.is_file():
        state = _load_training_checkpoint(ckpt_path)
        if json.loads(state["config"]) != config:
            raise VerityError(f"{ckpt_path}: it was made with other data or settings; start a new run (another --out) or drop --resume")
        head.load_state_dict(state["head"])
        opt.load_state_dict(state["optimizer"])
        start_epoch, history = int(state["epoch"]) + 1, json.loads(state["history"])
        best = {"loss": float(state["best_loss"]), "epoch": int(state["best_epoch"]), "state": state["best_head"]}
        print(f"resuming after epoch {start_epoch} from {ckpt_path}", file=sys.stderr)

    n_trainable = count_parameters(head, trainable_only=True)
    print(f"{len(x_tr)} training sequences from {len(tr_idx)} videos, {len(x_va)} validation sequences from {len(va_idx)} videos; "
          f"head: {n_trainable:,} trainable parameters; device {device}", file=sys.stderr)
    tr_t, ytr_t = torch.from_numpy(x_tr), torch.from_numpy(1.0 - y_tr)  # card convention: target 1 = REAL
    wtr_t = torch.tensor([w[int(v)] for v in y_tr])
    bar = tqdm(range(start_epoch, args.epochs), desc="training head", unit="epoch", file=sys.stderr, disable=None, initial=start_epoch, total=args.epochs)
    for epoch in bar:
        head.train()
        gen = torch.Generator().manual_seed(args.seed * 100003 + epoch)  # a resumed run shuffles as an unbroken one
        torch.manual_seed(args.seed * 100003 + epoch)
        order = torch.randperm(len(tr_t), generator=gen)
        total = 0.0
        for i in range(0, len(order), args.batch_size):
            b = order[i : i + args.batch_size]
            logits = head(tr_t[b].to(device))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, ytr_t[b].to(device), weight=wtr_t[b].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
        train_loss = total / max(len(order), 1)
        val_loss = _bce(head, x_va, y_va, w, device)
        monitor = val_loss if len(x_va) else train_loss  # without a validation set, the best training loss
        row = {"epoch": epoch, "train_loss": round(train_loss, 5), "val_loss": None if np.isnan(val_loss) else round(val_loss, 5)}
        history.append(row)
        if monitor < best["loss"]:
            best = {"loss": monitor, "epoch": epoch, "state": {k: v.detach().cpu().clone() for k, v in head.state_dict().items()}}
        bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}")
        _save_training_checkpoint(ckpt_path, {
            "epoch": epoch, "head": head.state_dict(), "optimizer": opt.state_dict(), "best_head": best["state"],
            "best_loss": float(best["loss"]), "best_epoch": int(best["epoch"]), "history": json.dumps(history), "config": json.dumps(config),
        })
    bar.close()

    head.load_state_dict(best["state"])
    val_metrics = val_video = None
    if len(x_va):
        s_va = _evaluate_head(head, x_va, device)
        val_metrics = binary_metrics(y_va, s_va)
        vids = sorted(set(vid_va.tolist()))
        val_video = binary_metrics([items[v].label for v in vids], [summarise(s_va[vid_va == v]) for v in vids])
    n_real = sum(1 for i in tr_idx + va_idx if items[i].label == 0)
    meta = {
        "format": HEAD_FORMAT,
        "model": "EyeBlink-CNN-LSTM (model card 000)",
        "architecture": {"backbone": "timm legacy_xception, features_only, last map, global average pool, frozen", "feature_dim": 2048,
                         "lstm": {"input_size": 2048, "hidden_size": 128, "num_layers": 1, "bidirectional": False},
                         "classifier": "Dropout(0.3) -> Linear(128, 1)", "trainable_parameters": n_trainable},
        "output": OUTPUT_CONVENTION,
        "preprocessing": prep.to_dict(),
        "blinks": blinks.to_dict(),
        "tracks": args.tracks,
        "backbone": {"name": BACKBONE_WEIGHTS, "sha256": backbone_sha, "file": backbone_path.name},
        "training_data": {"folder": str(Path(args.data).resolve()), "videos": len(items), "videos_used": len(usable),
                          "real_videos": n_real, "fake_videos": len(tr_idx) + len(va_idx) - n_real,
                          "train_sequences": int(len(x_tr)), "val_sequences": int(len(x_va)),
                          "video_sha256": {Path(it.path).name: it.sha256 for it in items}},
        "training": {"epochs": args.epochs, "best_epoch": int(best["epoch"]), "lr": args.lr, "weight_decay": args.weight_decay,
                     "batch_size": args.batch_size, "seed": args.seed, "device": device, "history": history},
        "metrics": {"validation_sequences": val_metrics, "validation_videos": val_video},
    }
    head_path = out / f"{HEAD_WEIGHTS}.safetensors"
    sha = save_checkpoint(head_path, {k: v for k, v in head.state_dict().items()}, meta)
    if not args.no_register:
        register_local(HEAD_WEIGHTS, head_path, detector=DETECTOR, kind="head", sha256=sha,
                       description=f"trained by 'verity train eyeblink' on {args.data} ({len(usable)} videos)")
    summary = {"head": str(head_path), "sha256": sha, "registered": not args.no_register, "best_epoch": int(best["epoch"]),
               "metrics": meta["metrics"], "seconds": round(time.perf_counter() - t0, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"head written: {head_path} (sha256 {sha}){'; registered as ' + HEAD_WEIGHTS if not args.no_register else ''}")
    if val_video:
        print(_format_metrics("validation, per video", val_video))
    return 0


# ----------------------------------------------------------------------------------------------
# evaluation


def _format_metrics(title: str, m: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    cm = m["confusion_matrix"]
    return (f"{title}: n={m['n']} (real {m['n_real']}, fake {m['n_fake']})  ACC {f(m['acc'])}  ROC-AUC {f(m['roc_auc'])}  "
            f"AP {f(m['ap'])}  EER {f(m['eer'])}\n"
            f"  confusion matrix (rows true real/fake, columns called real/fake): [[{cm['tn']}, {cm['fp']}], [{cm['fn']}, {cm['tp']}]]")


def evaluate(args: argparse.Namespace) -> int:
    from core.detectors.eyeblink_cnn_lstm import load_model, score_sequences
    from core.train.metrics import binary_metrics, save_curves
    from core.weights import WeightsError

    device = args.device or torch_device()
    try:
        model = load_model(device, args.head, args.head_sha256)
    except WeightsError as exc:
        raise VerityError(str(exc)) from None
    meta = model.head_meta
    # the head's blink settings, as far as this version knows them
    blinks = from_dict(BlinkParams, meta["blinks"] if isinstance(meta.get("blinks"), dict) else None, "the head's blink settings", unknown="ignore")
    items = _extract_all(list_videos(args.data), model.prep, model.backbone, model.backbone_sha256, args.feature_cache or _feature_cache(),
                         blinks, meta.get("tracks", "largest"), device, args.feature_batch)
    y_seq: list[int] = []
    s_seq: list[float] = []
    y_vid: list[int] = []
    s_vid: list[float] = []
    per_video = []
    for it in items:
        scores = score_sequences(model, it.feats) if len(it.feats) else np.zeros(0)
        row = {"video": Path(it.path).name, "label": "fake" if it.label else "real", "sequences": int(len(scores))}
        if len(scores):
            row["score"] = round(summarise(scores), 4)
            y_vid.append(it.label)
            s_vid.append(summarise(scores))
            y_seq += [it.label] * len(scores)
            s_seq += scores.tolist()
        else:
            row["score"] = None
            row["inconclusive"] = it.error or f"insufficient blinks ({it.blink_frames_found} frames)"
        per_video.append(row)
    if not y_vid:
        raise VerityError("no video in the folder gave a blink sequence: nothing to evaluate")
    out = (args.out or Path("eyeblink_eval")).expanduser()
    m_vid, m_seq = binary_metrics(y_vid, s_vid), binary_metrics(y_seq, s_seq)
    plots = [str(p) for p in save_curves(y_vid, s_vid, out, "eyeblink video") + save_curves(y_seq, s_seq, out, "eyeblink sequence")]
    out.mkdir(parents=True, exist_ok=True)
    report = {"head_sha256": model.head_sha256, "backbone_sha256": model.backbone_sha256, "data": str(Path(args.data).resolve()),
              "videos": m_vid, "sequences": m_seq, "per_video": per_video, "plots": plots,
              "inconclusive_videos": sum(1 for r in per_video if r["score"] is None)}
    (out / "eval.json").write_text(json.dumps(report, indent=1))
    print(_format_metrics("per video", m_vid))
    print(_format_metrics("per blink sequence", m_seq))
    if report["inconclusive_videos"]:
        print(f"{report['inconclusive_videos']} video(s) without blink sequences (inconclusive, not counted)")
    print(f"plots and eval.json in {out}")
    return 0
