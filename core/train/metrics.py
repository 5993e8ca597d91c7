"""Binary detection metrics and ROC/PR plots (scikit-learn, matplotlib). Label 1 = manipulated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)


def equal_error_rate(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Where the false positive rate equals the false negative rate (interpolated on the ROC)."""
    fpr, tpr, _ = roc_curve(y_true, scores)
    fnr = 1.0 - tpr
    k = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[k] + fnr[k]) / 2.0)


def binary_metrics(y_true: Any, scores: Any, threshold: float = 0.5) -> dict[str, Any]:
    """ACC, AP (on scores, not hard labels), ROC-AUC, EER, FPR, FNR and the confusion matrix."""
    y = np.asarray(y_true, int)
    s = np.asarray(scores, float)
    pred = (s >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    both = len(np.unique(y)) == 2
    return {
        "n": int(y.size),
        "n_real": int((y == 0).sum()),
        "n_fake": int((y == 1).sum()),
        "threshold": threshold,
        "acc": float(accuracy_score(y, pred)),
        "ap": float(average_precision_score(y, s)) if both else None,
        "roc_auc": float(roc_auc_score(y, s)) if both else None,
        "eer": equal_error_rate(y, s) if both else None,
        "fpr": float(fp / (fp + tn)) if fp + tn else None,  # reals called fake
        "fnr": float(fn / (fn + tp)) if fn + tp else None,  # fakes called real
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }


def save_curves(y_true: Any, scores: Any, out_dir: str | Path, title: str) -> list[Path]:
    """Write ROC and PR plots as PNG; returns their paths (none when only one class is present)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.asarray(y_true, int)
    s = np.asarray(scores, float)
    if len(np.unique(y)) < 2:
        return []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    fpr, tpr, _ = roc_curve(y, s)
    prec, rec, _ = precision_recall_curve(y, s)
    for name, (x, yy, xl, yl) in {"roc": (fpr, tpr, "false positive rate", "true positive rate"), "pr": (rec, prec, "recall", "precision")}.items():
        fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
        ax.plot(x, yy, lw=2)
        if name == "roc":
            ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_title(f"{title} {name.upper()}")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        fig.tight_layout()
        p = out / f"{title.replace(' ', '_').lower()}_{name}.png"
        fig.savefig(p)
        plt.close(fig)
        paths.append(p)
    return paths
