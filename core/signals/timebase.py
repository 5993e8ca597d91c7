"""The frame rate assumed when a video states none that can be used (written once).

25 fps (PAL, and the rate of most of the test media): window sizes and frame counts of a duration
are computed with it; durations measured in frames are then approximate, and say so where shown.
"""

from __future__ import annotations

import math

import numpy as np

NOMINAL_FPS = 25.0


def usable_fps(fps: float | None) -> float:
    """`fps` when it is a positive finite rate, else NOMINAL_FPS."""
    return float(fps) if fps is not None and math.isfinite(fps) and fps > 0 else NOMINAL_FPS


def fps_from_times(times_s: np.ndarray) -> float:
    """The rate of the median frame interval of these presentation times, else NOMINAL_FPS."""
    t = np.asarray(times_s, np.float64)
    step = float(np.median(np.diff(t))) if t.size > 1 else 0.0
    return 1.0 / step if step > 0 else NOMINAL_FPS
