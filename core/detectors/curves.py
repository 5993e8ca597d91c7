"""`Curve`: one timeline series of a detector, typed (what the GUI timeline and the PDF plot read).

A curve is either a `score` (probability of manipulation, 0..1, unit "") or a `measurement`
(with its unit), over `frames` (one value per listed frame; no list: one value per video frame
0..N-1) or over `windows` (each value spans start_frame..end_frame inclusive).

Wire form in a result's `curves` (verity.analysis/1): {"kind", "axis", "unit", "values", and
"frames" or "start_frame"/"end_frame", optional "track_id" (one id, or one per value),
"unmeasurable" (per window), and any extra per-value columns (a window curve may carry each
window's frames as one)}. Score curves over windows also
carry their values under "score", as analyses stored before this type did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

KINDS = ("score", "measurement")
AXES = ("frames", "windows")
_RESERVED = {"kind", "axis", "unit", "values", "frames", "start_frame", "end_frame", "track_id", "unmeasurable", "description"}


def _list(v: Any) -> list[Any]:
    return v.tolist() if isinstance(v, np.ndarray) else list(v)


@dataclass
class Curve:
    kind: Literal["score", "measurement"]
    values: Sequence[float | None]
    frames: Sequence[int] | None = None  # axis "frames": the frame of each value (None: every frame)
    start_frame: Sequence[int] | None = None  # axis "windows"
    end_frame: Sequence[int] | None = None  # inclusive
    unit: str = ""  # "" for scores; e.g. "dB", "fraction of open level", "x head-motion flicker"
    track_id: int | Sequence[int] | None = None  # one face track, or one per value
    unmeasurable: Sequence[bool] | None = None  # windows that can show nothing either way (never a score)
    columns: dict[str, Sequence[Any]] = field(default_factory=dict)  # extra per-value columns, kept as given
    description: str = ""  # what the series is, for the timeline's tooltip (e.g. a model's input mode)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"curve kind {self.kind!r} is not one of {KINDS}")
        n = len(self.values)
        if (self.start_frame is None) != (self.end_frame is None):
            raise ValueError("a window curve needs both start_frame and end_frame")
        if self.start_frame is not None and self.frames is not None:
            raise ValueError("a curve is over frames or over windows, not both")
        for name in ("frames", "start_frame", "end_frame", "unmeasurable"):
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise ValueError(f"curve {name} has {len(v)} entries for {n} values")
        if isinstance(self.track_id, Sequence) and len(self.track_id) != n:
            raise ValueError(f"curve track_id has {len(self.track_id)} entries for {n} values")
        if self.unmeasurable is not None and self.start_frame is None:
            raise ValueError("only windows can be marked unmeasurable")

    @property
    def axis(self) -> str:
        return "windows" if self.start_frame is not None else "frames"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "axis": self.axis, "unit": self.unit, "values": _list(self.values)}
        if self.axis == "windows":
            d["start_frame"], d["end_frame"] = _list(self.start_frame or []), _list(self.end_frame or [])
            if self.kind == "score":
                d["score"] = d["values"]
        elif self.frames is not None:
            d["frames"] = _list(self.frames)
        if self.track_id is not None:
            d["track_id"] = self.track_id if isinstance(self.track_id, int) else _list(self.track_id)
        if self.unmeasurable is not None:
            d["unmeasurable"] = [bool(x) for x in self.unmeasurable]
        if self.description:
            d["description"] = self.description
        reserved = _RESERVED - {"frames"} if self.axis == "windows" else _RESERVED
        for k, v in self.columns.items():
            if k in reserved:
                raise ValueError(f"curve column {k!r} would hide a field of the curve")
            d[k] = _list(v)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Curve:
        """The typed curve back from its wire form; ValueError when it is not one."""
        if d.get("kind") not in KINDS or d.get("axis") not in AXES or not isinstance(d.get("values"), list):
            raise ValueError("not a typed curve (kind, axis and values are required)")
        windows = d["axis"] == "windows"
        tid = d.get("track_id")
        return cls(
            kind=d["kind"], values=d["values"], unit=str(d.get("unit") or ""),
            frames=None if windows else d.get("frames"),
            start_frame=d.get("start_frame") if windows else None, end_frame=d.get("end_frame") if windows else None,
            track_id=tid if isinstance(tid, (int, list)) else None, unmeasurable=d.get("unmeasurable") if windows else None,
            description=str(d.get("description") or ""),
            columns={k: v for k, v in d.items() if isinstance(v, list) and k != "score" and (k not in _RESERVED or (windows and k == "frames"))},
        )


def is_typed(d: Any) -> bool:
    """A result's curve entry written by `Curve.to_dict` (older analyses hold other shapes)."""
    return isinstance(d, Mapping) and d.get("kind") in KINDS and d.get("axis") in AXES
