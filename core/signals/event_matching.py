"""Scoring detected blink events against hand labels (`../shared/media/labels`, README there).

A detection counts as found when it overlaps a labelled event's onset..offset:
- detections and labelled blinks are paired one-to-one by overlap (maximum bipartite matching),
  so one detection spanning a double blink finds only one of them, and a blink split into two
  detections gives one true positive and one false positive (it would double the blink rate);
- a detection left unpaired that overlaps a `partial` label (lids down but not to half) is
  neither TP nor FP: whether such a movement is a blink is the labeller's judgement call;
  `partial` labels never count as misses;
- a detection left unpaired that overlaps an `unusable` range or an `other_events` closure is
  ignored (the lid state there is unknown / not a blink by definition, but not provably open);
- every other unpaired detection is a false positive; every unpaired blink label a miss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

Span = tuple[int, int]


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    neutral: int = 0  # detections on partial labels / unusable frames
    fp_spans: list[Span] = field(default_factory=list)
    fn_spans: list[Span] = field(default_factory=list)
    start_err: list[int] = field(default_factory=list)  # detected start - labelled onset, per TP
    end_err: list[int] = field(default_factory=list)  # detected end - labelled offset, per TP

    def add(self, other: Score) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.neutral += other.neutral
        self.start_err += other.start_err
        self.end_err += other.end_err

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "neutral": self.neutral,
                "precision": round(self.precision, 4), "recall": round(self.recall, 4), "f1": round(self.f1, 4)}


def overlaps(a: Span, b: Span) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def label_span(item: object) -> Span:
    """A label range: {"onset", "offset"} event or an inclusive [a, b] pair."""
    if isinstance(item, dict):
        return int(item["onset"]), int(item["offset"])
    a, b = item  # type: ignore[misc]
    return int(a), int(b)


def pair_events(a: list[Span], b: list[Span]) -> list[tuple[int, int]]:
    """One-to-one pairs (index in a, index in b) of overlapping spans, as many as possible."""
    if not a or not b:
        return []
    overlap = np.array([[overlaps(x, y) for y in b] for x in a], float)
    rows, cols = linear_sum_assignment(-overlap)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if overlap[r, c] > 0]


def score_events(detections: list[Span], labels: dict) -> Score:
    blinks = [label_span(b) for b in labels.get("blinks", [])]
    partial = [label_span(b) for b in labels.get("partial", [])]
    ignore = [label_span(b) for b in labels.get("unusable", [])] + [label_span(b) for b in labels.get("other_events", [])]
    s = Score()
    pairs = pair_events(detections, blinks)
    paired_d = {r for r, _ in pairs}
    paired_l = {c for _, c in pairs}
    for r, c in pairs:
        s.start_err.append(detections[r][0] - blinks[c][0])
        s.end_err.append(detections[r][1] - blinks[c][1])
    s.tp = len(paired_d)
    for k, d in enumerate(detections):
        if k in paired_d:
            continue
        if any(overlaps(d, p) for p in partial + ignore):
            s.neutral += 1
        else:
            s.fp += 1
            s.fp_spans.append(d)
    s.fn_spans = [b for k, b in enumerate(blinks) if k not in paired_l]
    s.fn = len(s.fn_spans)
    return s
