"""Interval estimates for validation figures (small n: the interval matters more than the point)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score, roc_curve


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (scipy's); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def _pairwise_auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUC of each row pair as P(positive > negative) + P(tie) / 2 (the Mann-Whitney form, equal
    to scikit-learn's ROC-AUC): (B, P) and (B, N) -> (B,). Vectorised for the bootstrap."""
    d = pos[:, :, None] - neg[:, None, :]
    return (d > 0).mean(axis=(1, 2)) + 0.5 * (d == 0).mean(axis=(1, 2))


def auc_with_interval(
    scores: list[float], positive: list[bool], n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> dict[str, Any] | None:
    """ROC-AUC (scikit-learn) with a percentile bootstrap interval (resampling each class apart,
    so every resample has both), and the ROC curve; None without both classes."""
    y = np.asarray(positive, bool)
    s = np.asarray(scores, np.float64)
    if y.all() or not y.any():
        return None
    auc = float(roc_auc_score(y, s))
    fpr, tpr, thr = roc_curve(y, s)
    rng = np.random.default_rng(seed)
    pos, neg = s[y], s[~y]
    p = rng.choice(pos, (n_boot, pos.size))
    q = rng.choice(neg, (n_boot, neg.size))
    step = max(1, 20_000_000 // (pos.size * neg.size))  # resamples per chunk: bounded memory on large sets
    boots = np.concatenate([_pairwise_auc(p[k : k + step], q[k : k + step]) for k in range(0, n_boot, step)])
    lo, hi = np.percentile(boots, [50 * (1 - level), 50 * (1 + level)])
    return {
        "value": round(auc, 4), "ci95": [round(float(lo), 4), round(float(hi), 4)], "n_positive": int(pos.size), "n_negative": int(neg.size),
        "roc": {"fpr": np.round(fpr, 4).tolist(), "tpr": np.round(tpr, 4).tolist(), "threshold": [None if not np.isfinite(t) else round(float(t), 4) for t in thr]},
        "bootstrap": {"resamples": n_boot, "seed": seed},
    }
