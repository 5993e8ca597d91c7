"""Train and evaluate the ViViT blink model (`vivit_blink`) on hand-labelled and EAR-labelled clips.

`verity train vivit --labels DIR [--weak DIR ...]`: windows of eye-region clips
(`core.train.vivit_data`: hand labels, plus weak labels from the EAR events on clips without hand
labels where the eyes are assessable), the seed's recipe (cross-entropy, Adam, best checkpoint
by validation loss; with `--init` Kinetics-400 weights the tubelet embedding, the last
`--last-layers` layers and the head are trained, the rest frozen), validation split by clip,
a checkpoint every epoch (`--resume` continues). The best model is written as safetensors with
its config, preprocessing and training summary and registered as the weights entry `vivit_blink`.

`verity eval vivit --labels DIR`: window AP and PR curve, event precision / recall / F1 against
the labels (`core.signals.event_matching`, as tests/bench/blinks.py), for ViViT and, on the same
clips and windows, for Verity's EAR events; clips the checkpoint was trained on are left out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.detectors.vivit_blink import FORMAT, WEIGHTS, LoadedModel, Preprocessing, events_from, frame_probability, run_windows
from core.detectors.vivit_blink import NAME as DETECTOR
from core.errors import VerityError
from core.train.vivit_data import ClipData, LabelledClip, WindowRef, clip_data, clip_windows, ear_window_score, list_unlabelled, read_labels

NAME = "vivit"
KINETICS = "vivit_kinetics400"  # manifest entry of google/vivit-b-16x2-kinetics400 (examiner brings it)


def _cache() -> Path:
    from core.paths import cache_dir

    return cache_dir() / "vivit_clips"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--labels", type=Path, action="append", required=True, metavar="DIR", help="folder of <clip>.json blink labels (repeatable)")
    p.add_argument("--media-root", type=Path, default=None, help="where the labels' clip paths start (default: the folder above each labels folder)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--stride", type=int, default=2, help="frames between window starts")
    p.add_argument("--cache", type=Path, default=None, help="eye-clip cache (default: user cache/vivit_clips)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's; 1 is fastest on a machine busy with other work)")


def add_train_args(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--weak", type=Path, action="append", default=[], metavar="DIR", help="folder of unlabelled videos: weak labels from EAR events (repeatable)")
    p.add_argument("--holdout", action="append", default=[], metavar="TEXT", help="leave out clips whose path contains TEXT (for evaluation; repeatable)")
    p.add_argument("--config", choices=("small", "vivit-b-16x2"), default="small")
    p.add_argument("--init", default=None, help=f"Kinetics-400 weights to start from: a file or the manifest entry {KINETICS!r} (vivit-b-16x2 only)")
    p.add_argument("--init-sha256", default=None, help="expected sha256 of --init when it is a file")
    p.add_argument("--last-layers", type=int, default=None, help="transformer layers trained with --init (default 2); without --init everything trains")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--neg-ratio", type=float, default=3.0, help="no_blink windows drawn per blink window each epoch")
    p.add_argument("--val-fraction", type=float, default=0.15, help="share of clips held out for validation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="run folder (default: user data folder/training/vivit)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--no-register", action="store_true", help="write the model but do not make it the one analysis uses")


def add_eval_args(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--checkpoint", type=Path, default=None, help=f"model file (default: the registered {WEIGHTS!r})")
    p.add_argument("--checkpoint-sha256", default=None)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--include-training-clips", action="store_true", help="also score clips the model was trained on (not a fair test)")
    p.add_argument("--out", type=Path, default=None, help="folder for eval.json and the PR curve (default: ./vivit_eval)")


# ----------------------------------------------------------------------------------------------
# data


def load_clips(clips: list[LabelledClip], prep: Preprocessing, cache: Path) -> list[ClipData]:
    """ClipData of every clip (an unreadable one is reported and left out)."""
    from tqdm import tqdm

    out = []
    bar = tqdm(clips, desc="eye clips", unit="clip", file=sys.stderr, disable=None)
    for c in bar:
        bar.set_postfix_str(c.path.name)
        try:
            out.append(clip_data(c, prep, cache))
        except VerityError as exc:
            print(f"  {c.path.name}: skipped ({exc})", file=sys.stderr)
    bar.close()
    return out


def batch_tensor(items: list[ClipData], refs: list[WindowRef], normalise: str, flip: np.ndarray | None = None) -> Any:
    """float (B, T, 3, H, W) in -1..1 for window references; `flip`: mirror these (swaps the eyes)."""
    import torch

    from core.detectors.vivit_blink import window_tensor

    xs = [window_tensor(items[r.clip].tracks[r.track].crops, [r.window], normalise) for r in refs]
    x = torch.cat(xs)
    if flip is not None and flip.any():
        x[torch.from_numpy(flip)] = x[torch.from_numpy(flip)].flip(-1)
    return x


def augment(x: Any, gen: Any) -> Any:
    """Per window: brightness / contrast change, blur by down- and up-sampling, Gaussian noise
    (generic photometric augmentation; the bench's degradations are made differently, with ffmpeg)."""
    import torch
    import torch.nn.functional as F

    b = x.shape[0]
    gain = 1.0 + 0.6 * (torch.rand(b, 1, 1, 1, 1, generator=gen) - 0.5)
    shift = 0.4 * (torch.rand(b, 1, 1, 1, 1, generator=gen) - 0.5)
    x = x * gain + shift
    blur = torch.rand(b, generator=gen) < 0.3
    if blur.any():
        t, c, h, w = x.shape[1:]
        y = x[blur].reshape(-1, c, h, w)
        y = F.interpolate(F.interpolate(y, scale_factor=0.5, mode="area"), size=(h, w), mode="bilinear", align_corners=False)
        x[blur] = y.reshape(-1, t, c, h, w)
    noise = torch.rand(b, 1, 1, 1, 1, generator=gen) * 0.15
    return (x + noise * torch.randn(x.shape, generator=gen)).clamp_(-1.5, 1.5)


def _split(items: list[ClipData], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Validation clips: a seeded share of the hand-labelled clips and of the weak ones, by clip."""
    rng = np.random.default_rng(seed)
    tr: list[int] = []
    va: list[int] = []
    for weak in (False, True):
        idx = [i for i, it in enumerate(items) if (it.labels is None) == weak]
        rng.shuffle(idx)
        n = 0 if len(idx) < 2 or val_fraction <= 0 else max(1, round(val_fraction * len(idx)))
        va += idx[:n]
        tr += idx[n:]
    return sorted(tr), sorted(va)


def _sample_epoch(refs: list[WindowRef], neg_ratio: float, rng: np.random.Generator) -> list[int]:
    pos = [k for k, r in enumerate(refs) if r.label == 1]
    neg = [k for k, r in enumerate(refs) if r.label == 0]
    n_neg = min(len(neg), int(round(neg_ratio * max(len(pos), 1))))
    chosen = pos + rng.choice(neg, size=n_neg, replace=False).tolist() if neg else pos
    return rng.permutation(chosen).tolist()


# ----------------------------------------------------------------------------------------------
# training


def _init_weights(args: argparse.Namespace) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(state dict, {name, sha256}) of the Kinetics-400 weights to start from, or (None, None)."""
    if not args.init:
        return None, None
    from core.weights import WeightsError, file_sha256, load_state_dict, status

    if Path(args.init).is_file():
        sha = file_sha256(args.init)
        if args.init_sha256 and sha != args.init_sha256.lower():
            raise VerityError(f"--init {args.init}: sha256 {sha} does not match --init-sha256; refused")
        name = Path(args.init).name
        sd, _ = load_state_dict(Path(args.init), expected_sha256=sha)
    else:
        st = status(args.init)
        if not st.ok:
            raise VerityError(f"--init {args.init}: {st.reason}")
        name, sha = args.init, str(st.sha256)
        try:
            sd, _ = load_state_dict(args.init)
        except WeightsError as exc:
            raise VerityError(str(exc)) from None
    return sd, {"name": name, "sha256": sha}


def train(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from core.detectors.vivit_blink import parity_preprocessing
    from core.models.vivit_blink import build, config_dict, count_parameters, load_hf_state_dict, set_trainable
    from core.train.eyeblink import _load_training_checkpoint, _save_training_checkpoint
    from core.weights import register_local, save_checkpoint

    _threads(args.threads)
    t0, c0 = time.perf_counter(), time.process_time()
    load0 = os.getloadavg()[0]
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = (args.out or _default_out()).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    cfg = config_dict(args.config)
    prep = parity_preprocessing() if args.config == "vivit-b-16x2" else Preprocessing()
    hand = [c for d in args.labels for c in read_labels(d, args.media_root)]
    weak = list_unlabelled(args.weak, hand)
    clips = [c for c in hand + weak if not any(h in str(c.path) for h in args.holdout)]
    items = load_clips(clips, prep, args.cache or _cache())
    tr_idx, va_idx = _split(items, args.val_fraction, args.seed)
    tr = clip_windows(items, prep, args.stride, tr_idx)
    va = clip_windows(items, prep, args.stride, va_idx)
    if not any(r.label == 1 for r in tr):
        raise VerityError("no blink window to train on: give labelled clips (--labels) or clips with EAR blinks (--weak)")
    counts = {
        "hand_clips": sum(1 for i in tr_idx + va_idx if items[i].labels is not None),
        "weak_clips": sum(1 for i in tr_idx + va_idx if items[i].labels is None),
        **{f"{part}_{src}_{cls}": sum(1 for r in refs if r.weak == (src == "weak") and r.label == (cls == "blink"))
           for part, refs in (("train", tr), ("val", va)) for src in ("hand", "weak") for cls in ("blink", "no_blink")},
    }
    print("windows: " + ", ".join(f"{k} {v}" for k, v in counts.items()), file=sys.stderr)

    torch.manual_seed(args.seed)
    model = build(cfg).to(device)
    init_sd, init_info = _init_weights(args)
    if init_sd is not None:
        load_hf_state_dict(model, init_sd, skip_classifier=True)
    last = (args.last_layers if args.last_layers is not None else 2) if init_sd is not None else args.last_layers
    set_trainable(model, last)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=args.weight_decay)
    n_pos = max(sum(r.label == 1 for r in tr), 1)
    config = {"clips": [it.sha256 for it in items], "train": [items[i].sha256 for i in tr_idx], "val": [items[i].sha256 for i in va_idx],
              "config": cfg, "preprocessing": prep.to_dict(), "init": init_info, "last_layers": last, "lr": args.lr,
              "weight_decay": args.weight_decay, "batch_size": args.batch_size, "neg_ratio": args.neg_ratio, "stride": args.stride, "seed": args.seed}
    ckpt = out / "checkpoint_last.pt"
    start, history = 0, []
    best: dict[str, Any] = {"loss": float("inf"), "epoch": -1, "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
    if args.resume and ckpt.is_file():
        state = _load_training_checkpoint(ckpt)
        if json.loads(state["config"]) != json.loads(json.dumps(config)):
            raise VerityError(f"{ckpt}: it was made with other data or settings; start a new run (another --out) or drop --resume")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, history = int(state["epoch"]) + 1, json.loads(state["history"])
        best = {"loss": float(state["best_loss"]), "epoch": int(state["best_epoch"]), "state": state["best_model"]}
        print(f"resuming after epoch {start} from {ckpt}", file=sys.stderr)
    print(f"ViViT {args.config}: {count_parameters(model):,} parameters, {count_parameters(model, True):,} trained; device {device}; "
          f"{n_pos} blink windows in training", file=sys.stderr)
    lossf = torch.nn.CrossEntropyLoss()  # classes balanced by sampling (--neg-ratio), not by weights
    bar = tqdm(range(start, args.epochs), desc="training ViViT", unit="epoch", file=sys.stderr, disable=None, initial=start, total=args.epochs)
    for epoch in bar:
        model.train()
        rng = np.random.default_rng(args.seed * 100003 + epoch)  # a resumed run draws as an unbroken one
        gen = torch.Generator().manual_seed(args.seed * 100003 + epoch)
        order = _sample_epoch(tr, args.neg_ratio, rng)
        total = 0.0
        for i in range(0, len(order), args.batch_size):
            refs = [tr[k] for k in order[i : i + args.batch_size]]
            x = augment(batch_tensor(items, refs, prep.normalise, rng.random(len(refs)) < 0.5), gen).to(device)
            y = torch.tensor([r.label for r in refs], device=device)
            loss = lossf(model(pixel_values=x).logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(refs)
        train_loss = total / max(len(order), 1)
        val_loss = _val_loss(model, items, va, lossf, device, prep.normalise) if va else float("nan")
        monitor = val_loss if va else train_loss
        history.append({"epoch": epoch, "train_loss": round(train_loss, 5), "val_loss": None if np.isnan(val_loss) else round(val_loss, 5),
                        "seconds": round(time.perf_counter() - t0, 1)})
        if monitor < best["loss"]:
            best = {"loss": monitor, "epoch": epoch, "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}")
        if bar.disable:  # no progress bar (not a terminal): one line per epoch for the log
            print(f"epoch {epoch}: train loss {train_loss:.4f}, validation loss {val_loss:.4f} ({history[-1]['seconds']} s)", file=sys.stderr)
        _save_training_checkpoint(ckpt, {"epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict(), "best_model": best["state"],
                                         "best_loss": float(best["loss"]), "best_epoch": int(best["epoch"]), "history": json.dumps(history),
                                         "config": json.dumps(config)})
    bar.close()
    model.load_state_dict(best["state"])
    val_metrics = _val_metrics(model, items, va, device, prep.normalise) if va else None
    meta = {
        "format": FORMAT, "model": "ViViT (Hugging Face VivitForVideoClassification), labels [no_blink, blink]", "config_name": args.config,
        "config": cfg, "preprocessing": prep.to_dict(), "init": init_info, "last_layers_trained": last,
        "training_data": {**counts, "labels": [str(d.resolve()) for d in args.labels], "weak": [str(d.resolve()) for d in args.weak],
                          "holdout": args.holdout, "clip_sha256": {it.name: it.sha256 for it in items},
                          "val_clips": [items[i].name for i in va_idx]},
        "training": {"epochs": args.epochs, "best_epoch": int(best["epoch"]), "history": history, "device": device, "seed": args.seed,
                     "lr": args.lr, "batch_size": args.batch_size, "neg_ratio": args.neg_ratio, "stride": args.stride,
                     "wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - c0, 1),
                     "torch_threads": torch.get_num_threads(), "load_average_start_end": [round(load0, 2), round(os.getloadavg()[0], 2)]},
        "metrics": {"validation_windows": val_metrics},
    }
    path = out / f"{WEIGHTS}.safetensors"
    sha = save_checkpoint(path, dict(model.state_dict()), meta)
    if not args.no_register:
        register_local(WEIGHTS, path, detector=DETECTOR, kind="full", sha256=sha,
                       description=f"trained by 'verity train vivit' ({counts['hand_clips']} hand-labelled, {counts['weak_clips']} weakly labelled clips)")
    summary = {"model": str(path), "sha256": sha, "registered": not args.no_register, "best_epoch": int(best["epoch"]),
               "metrics": meta["metrics"], "training_data": counts, "wall_s": meta["training"]["wall_s"], "cpu_s": meta["training"]["cpu_s"]}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"model written: {path} (sha256 {sha}){'; registered as ' + WEIGHTS if not args.no_register else ''}; "
          f"{meta['training']['wall_s']} s wall, {meta['training']['cpu_s']} s CPU")
    return 0


def _threads(n: int | None) -> None:
    import torch

    if n:
        torch.set_num_threads(int(n))


def _default_out() -> Path:
    from core.paths import data_dir

    return data_dir() / "training" / "vivit"


def _predict(model: Any, items: list[ClipData], refs: list[WindowRef], device: str, normalise: str) -> tuple[np.ndarray, np.ndarray]:
    """Logits (N, 2) and labels of window references, in batches."""
    import torch

    model.eval()
    logits = []
    with torch.inference_mode():
        for i in range(0, len(refs), 64):
            logits.append(model(pixel_values=batch_tensor(items, refs[i : i + 64], normalise).to(device)).logits.float().cpu())
    return torch.cat(logits).numpy(), np.array([r.label for r in refs])


def _val_loss(model: Any, items: list[ClipData], refs: list[WindowRef], lossf: Any, device: str, normalise: str) -> float:
    import torch

    logits, y = _predict(model, items, refs, device, normalise)
    return float(lossf(torch.from_numpy(logits), torch.from_numpy(y)))


def _val_metrics(model: Any, items: list[ClipData], refs: list[WindowRef], device: str, normalise: str) -> dict[str, Any]:
    import torch

    from core.train.metrics import binary_metrics

    logits, y = _predict(model, items, refs, device, normalise)
    return binary_metrics(y, torch.softmax(torch.from_numpy(logits), -1)[:, 1].numpy())


# ----------------------------------------------------------------------------------------------
# evaluation


def score_clip(lm: LoadedModel, cd: ClipData, stride: int, threshold: float) -> dict[str, Any]:
    """One labelled clip: window labels, ViViT P(blink) and EAR closure per window, and both
    methods' events (all tracks pooled, as the bench does)."""
    from core.detectors.vivit_blink import track_windows
    from core.train.vivit_data import hand_label

    y: list[int] = []
    p_vivit: list[float] = []
    s_ear: list[float] = []
    events: list[tuple[int, int]] = []
    c0 = time.process_time()
    n = 0
    for t in cd.tracks:
        windows = track_windows(t.frames, lm.prep, stride, t.track_id)
        if not windows:
            continue
        probs, _ = run_windows(lm, t.crops, windows)
        n += len(windows)
        prob = frame_probability(t.frames, windows, probs)
        events += [(e["start_frame"], e["end_frame"]) for e in events_from(t.frames, prob, threshold)]
        for w, p in zip(windows, probs):
            lab = hand_label(w, cd.labels or {})
            if lab >= 0:
                y.append(lab)
                p_vivit.append(float(p))
                s_ear.append(ear_window_score(w, t))
    ear = [(s, e) for t in cd.tracks for s, _, e in t.ear_events]
    return {"y": y, "vivit": p_vivit, "ear": s_ear, "vivit_events": sorted(events), "ear_events": sorted(ear), "windows": n,
            "cpu_s": time.process_time() - c0}


def summarise(rows: list[tuple[ClipData, dict[str, Any]]]) -> dict[str, Any]:
    """Window AP (both methods, the same windows) and event P/R/F1 over all clips."""
    from sklearn.metrics import average_precision_score

    from core.signals.event_matching import Score, score_events

    y = np.concatenate([r["y"] for _, r in rows]) if rows else np.zeros(0)
    out: dict[str, Any] = {"clips": len(rows), "windows": int(y.size), "blink_windows": int((y == 1).sum())}
    for m in ("vivit", "ear"):
        s = np.concatenate([r[m] for _, r in rows]) if rows else np.zeros(0)
        tot = Score()
        for cd, r in rows:
            tot.add(score_events(r[f"{m}_events"], cd.labels or {}))
        out[m] = {"window_ap": float(average_precision_score(y, s)) if len(set(y.tolist())) == 2 else None, "events": tot.to_dict()}
    return out


def evaluate(args: argparse.Namespace) -> int:
    from core.detectors.vivit_blink import load_model
    from core.train.metrics import save_curves
    from core.weights import WeightsError

    _threads(args.threads)
    try:
        lm = load_model(args.device, args.checkpoint, args.checkpoint_sha256)
    except WeightsError as exc:
        raise VerityError(str(exc)) from None
    trained_on = set(((lm.meta.get("training_data") or {}).get("clip_sha256") or {}).values())
    clips = [c for d in args.labels for c in read_labels(d, args.media_root)]
    items = load_clips(clips, lm.prep, args.cache or _cache())
    rows, skipped = [], []
    for cd in items:
        if cd.sha256 in trained_on and not args.include_training_clips:
            skipped.append(cd.name)
            continue
        rows.append((cd, score_clip(lm, cd, args.stride, args.threshold)))
    if not rows:
        raise VerityError(f"no labelled clip left to evaluate ({len(skipped)} were used in training; --include-training-clips scores them anyway)")
    res = summarise(rows)
    out = (args.out or Path("vivit_eval")).expanduser()
    y = np.concatenate([r["y"] for _, r in rows])
    plots = [str(p) for m in ("vivit", "ear") for p in save_curves(y, np.concatenate([r[m] for _, r in rows]), out, f"{m} blink window")]
    report = {"checkpoint_sha256": lm.sha256, "weights": lm.weights_name, "summary": res, "skipped_training_clips": skipped, "plots": plots,
              "per_clip": [{"clip": cd.name, "windows": r["windows"], "vivit_events": r["vivit_events"], "ear_events": r["ear_events"]} for cd, r in rows],
              "cpu_s_per_window": round(sum(r["cpu_s"] for _, r in rows) / max(sum(r["windows"] for _, r in rows), 1), 5)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(report, indent=1))
    print(format_summary(res))
    if skipped:
        print(f"{len(skipped)} clip(s) the model was trained on left out: {', '.join(skipped)}")
    print(f"CPU {report['cpu_s_per_window'] * 1000:.1f} ms per window; eval.json and PR curves in {out}")
    return 0


def format_summary(res: dict[str, Any]) -> str:
    lines = [f"{res['clips']} clips, {res['windows']} labelled windows ({res['blink_windows']} blink)",
             f"{'method':8s} {'window AP':>9s} {'TP':>4s} {'FP':>4s} {'FN':>4s} {'P':>6s} {'R':>6s} {'F1':>6s}"]
    for m in ("vivit", "ear"):
        e, ap = res[m]["events"], res[m]["window_ap"]
        lines.append(f"{m:8s} {'n/a' if ap is None else f'{ap:.3f}':>9s} {e['tp']:4d} {e['fp']:4d} {e['fn']:4d} {e['precision']:6.3f} {e['recall']:6.3f} {e['f1']:6.3f}")
    return "\n".join(lines)
