"""Interval estimates for validation figures (small n: the interval matters more than the point)."""

from __future__ import annotations

from scipy.stats import binomtest


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (scipy's); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)
