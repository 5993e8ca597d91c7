"""Curves of analyses stored before the typed `Curve` (core.detectors.curves): their shapes and
value-key synonyms, read as they were. New results never need this module; it stays so that a
case stored by an earlier version still shows its curves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from desktop.series import Series

_START = ("start_frame", "start", "frame_start", "starts", "start_frames")
_END = ("end_frame", "end", "frame_end", "ends", "end_frames")
_FRAME = ("frames", "frame", "frame_index", "x")
_VALUE = ("score", "scores", "value", "values", "y", "probability", "prob", "p_fake")
_SCORE = {"score", "scores", "probability", "prob", "p_fake"}


def _value_key(d: dict[str, Any]) -> str | None:
    return next((k for k in _VALUE if k in d and d[k] is not None), None)


def _first(d: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return None


def _array(v: Any) -> np.ndarray:
    return np.array([np.nan if x is None else x for x in v], dtype=np.float64)


NOT_MEASURABLE = "not measurable"


def _is_unmeasurable(state: Any, measurable: Any) -> bool:
    """A window the detector marked as unable to show anything (not a finding either way)."""
    if isinstance(state, str) and state.strip().lower() == NOT_MEASURABLE:
        return True
    return isinstance(measurable, (bool, int, float)) and not measurable


def _unmeasurable_mask(d: dict[str, Any], n: int) -> np.ndarray | None:
    """Per-window flags from a columnar curve's `state` / `measurable` lists (None: neither given)."""
    states, meas = d.get("state", d.get("states")), d.get("measurable")
    states = states if isinstance(states, list) and len(states) == n else None
    meas = meas if isinstance(meas, list) and len(meas) == n else None
    if states is None and meas is None:
        return None
    return np.array([_is_unmeasurable(states[k] if states else None, meas[k] if meas else None) for k in range(n)], bool)


def parse_legacy_curve(detector: str, name: str, value: Any, frame_count: int) -> list[Series]:
    """Turn one `curves` entry into series. Understood shapes:

    - {"start_frame": [...], "end_frame": [...], "score": [...]}  -> bars
    - [{"start_frame": a, "end_frame": b, "score": s}, ...]        -> bars
    - {"frames": [...], "values": [...]}                           -> line
    - [v0, v1, ...] with one value per frame                        -> line
    - {"<sub name>": <any of the above>, ...}                       -> one series per entry
    Anything else is skipped (it stays in the JSON report). Bars may carry a `state` (list, or key
    of each dict) and/or `measurable`; windows whose state is "not measurable" or whose
    `measurable` is false are kept as such (`Series.unmeasurable`): shown grey, never as a score.
    """
    if isinstance(value, dict):
        tid = value.get("track_id")
        track_id = tid if isinstance(tid, int) else None
        starts, ends, frames, ys = _first(value, _START), _first(value, _END), _first(value, _FRAME), _first(value, _VALUE)
        numeric = isinstance(ys, list) and bool(ys) and all(v is None or isinstance(v, (int, float)) for v in ys)
        scored = _value_key(value) in _SCORE
        tids = np.asarray(tid) if isinstance(tid, list) and isinstance(ys, list) and len(tid) == len(ys) else None
        if numeric and isinstance(starts, list) and len(starts) == len(ys):
            ends = ends if isinstance(ends, list) and len(ends) == len(ys) else starts
            um = _unmeasurable_mask(value, len(ys))
            return [Series(detector, name, "bars", _array(starts), _array(ends), _array(ys), track_id, tids, scored, um)]
        if numeric and isinstance(frames, list) and len(frames) == len(ys) and all(isinstance(f, (int, float)) for f in frames):
            order = np.argsort(_array(frames), kind="stable")
            x = _array(frames)[order]
            return [Series(detector, name, "line", x, x, _array(ys)[order], track_id, None if tids is None else tids[order], scored)]
        if numeric and len(ys) == frame_count and frames is None and starts is None:
            x = np.arange(frame_count, dtype=np.float64)
            return [Series(detector, name, "line", x, x, _array(ys), track_id, None, scored)]
        if numeric:
            return []  # values without a frame axis: left to the JSON report
        out: list[Series] = []
        for sub, v in value.items():
            if isinstance(v, (dict, list)):
                out += parse_legacy_curve(detector, f"{name}/{sub}", v, frame_count)
        return out
    if isinstance(value, list) and value:
        if all(isinstance(v, dict) for v in value):
            s = [_first(v, _START) for v in value]
            e = [_first(v, _END) for v in value]
            y = [_first(v, _VALUE) for v in value]
            if all(x is not None for x in s) and all(not isinstance(v, (list, dict)) for v in y):
                e = [b if b is not None else a for a, b in zip(s, e)]
                um = np.array([_is_unmeasurable(v.get("state"), v.get("measurable")) for v in value], bool)
                # a not-measurable window may carry no value: the other windows say what the values are
                scored = all(_value_key(v) in _SCORE if _value_key(v) is not None else bool(u) for v, u in zip(value, um))
                return [Series(detector, name, "bars", _array(s), _array(e), _array(y), scored=scored, unmeasurable=um if um.any() else None)]
            return []
        if all(v is None or isinstance(v, (int, float)) for v in value) and len(value) == frame_count:
            x = np.arange(frame_count, dtype=np.float64)
            return [Series(detector, name, "line", x, x, _array(value), scored="score" in name.lower() or "prob" in name.lower())]
    return []
