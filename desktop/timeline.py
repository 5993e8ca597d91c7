"""The timeline (pyqtgraph): one shared x axis in frames, labelled with time as well.

Rows: EAR left/right/average with the threshold and blink events, stretches whose eyes cannot be
judged for blinks (turned head, small eyes...: `core.signals.eyes`) shaded grey with the reason; mouth aperture against the
audio envelope; every detector's curves (windows as bars spanning their frames, per-frame
values as lines; windows the detector marks "not measurable" as grey bands with no bar, on the
detectors' row only). Flagged segments are shaded on every row. The cursor line follows the player
and moving it (drag, or a click anywhere) asks the player for that frame; a click inside a
flagged segment jumps to its start.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QMenu, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from core.signals.eyes import assessable_percent
from desktop.review import Review, SegmentView, TrackView, audio_envelope
from desktop.state import GuiState
from desktop.timecode import format_timecode

pg.setConfigOptions(antialias=False, background=(24, 26, 30), foreground=(200, 200, 205))

EAR_L = (90, 170, 255)
EAR_R = (255, 170, 70)
EAR_AVG = (235, 235, 235)
THRESH = (255, 80, 80)
MOUTH = (255, 120, 220)
AUDIO = (120, 220, 140)
SEGMENT = (255, 70, 40, 38)
BLINK = (90, 170, 255, 60)
DAMAGED = (235, 235, 235, 150)  # light hatching over the dark plot: frames that cannot be decoded (nothing was read there)
UNASSESSABLE = (150, 150, 150, 70)  # neutral grey: no verdict, unlike the red of a flagged segment
PALETTE = [(255, 200, 60), (120, 220, 255), (200, 140, 255), (140, 255, 170), (255, 140, 120), (220, 220, 120)]


class FrameTimeAxis(pg.AxisItem):
    """Frame numbers with the time from the clip start under them."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.times: np.ndarray | None = None

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:  # noqa: N802
        out = []
        for v in values:
            i = int(round(v))
            if self.times is not None and 0 <= i < self.times.size:
                out.append(f"{i}\n{format_timecode(float(self.times[i] - self.times[0]))}")
            else:
                out.append(str(i))
        return out


class _EnvelopeSignals(QObject):
    done = Signal(object, object)  # token, envelope or None


class _EnvelopeJob(QRunnable):
    def __init__(self, token: object, path: Path, times: np.ndarray) -> None:
        super().__init__()
        self.token, self.path, self.times = token, path, times
        self.signals = _EnvelopeSignals()

    def run(self) -> None:
        try:
            env = audio_envelope(self.path, self.times)
        except Exception:  # noqa: BLE001 - no envelope is shown, the rest works
            env = None
        self.signals.done.emit(self.token, env)


class Timeline(QWidget):
    frameRequested = Signal(int)
    trackChanged = Signal(object)  # track id or None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.review: Review | None = None
        self.state: GuiState | None = None
        self.frame_count = 0
        self.times: np.ndarray | None = None
        self.track_id: int | None = None
        self.envelope: np.ndarray | None = None
        self.cursor_frame = 0
        self._token: object = None
        self._jobs: list[_EnvelopeJob] = []

        self.track_box = QComboBox(self)
        self.track_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.track_box.setToolTip("Face track shown on the timeline and in the status bar")
        self.track_box.currentIndexChanged.connect(self._on_track_box)
        self.info = QLabel("", self)
        # the label may be cut at the right; the face selector keeps its full width
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.curves_button = QToolButton(self)
        self.curves_button.setText("Curves")
        self.curves_button.setToolTip("Choose the detector curves shown (scores in 0..1 are shown by default; other measures are scaled)")
        self.curves_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.curves_menu = QMenu(self)
        self.curves_button.setMenu(self.curves_menu)
        self.shown_curves: dict[str, bool] = {}  # series label -> shown
        top = QHBoxLayout()
        top.setContentsMargins(4, 0, 4, 0)
        top.addWidget(QLabel("Face:", self))
        top.addWidget(self.track_box)
        top.addSpacing(12)
        top.addWidget(self.info, 1)
        top.addWidget(self.curves_button)

        self.graphics = pg.GraphicsLayoutWidget(self)
        self.graphics.ci.setSpacing(0)
        self.axis = FrameTimeAxis(orientation="bottom")
        self.p_ear = self.graphics.addPlot(row=0, col=0)
        self.p_mouth = self.graphics.addPlot(row=1, col=0)
        self.p_det = self.graphics.addPlot(row=2, col=0, axisItems={"bottom": self.axis})
        self.plots = [self.p_ear, self.p_mouth, self.p_det]
        for p, label in zip(self.plots, ("EAR", "mouth / audio", "detectors")):
            p.setLabel("left", label)
            p.getAxis("left").setWidth(56)
            p.getAxis("left").enableAutoSIPrefix(False)
            p.showGrid(x=True, y=True, alpha=0.15)
            p.setMouseEnabled(x=True, y=False)
            p.setMenuEnabled(False)
            p.hideButtons()
            if p is not self.p_det:
                p.getAxis("bottom").setStyle(showValues=False)
                p.setXLink(self.p_det)
        self.p_det.setYRange(0, 1.05)
        self.cursors: list[pg.InfiniteLine] = []
        for p in self.plots:
            line = pg.InfiniteLine(0, angle=90, movable=True, pen=pg.mkPen((255, 255, 255), width=2), hoverPen=pg.mkPen((255, 255, 0), width=3))
            line.setZValue(100)
            line.sigPositionChanged.connect(self._on_cursor_dragged)
            p.addItem(line, ignoreBounds=True)
            self.cursors.append(line)
        self.graphics.scene().sigMouseClicked.connect(self._on_click)
        self._dynamic: list[tuple[pg.PlotItem, pg.GraphicsObject]] = []
        self.segment_items: list[tuple[pg.LinearRegionItem, SegmentView]] = []
        self.unassessable_items: list[tuple[pg.LinearRegionItem, tuple[int, int, str]]] = []  # grey bands, (first, last, reason)
        self.unmeasurable_items: list[tuple[pg.LinearRegionItem, tuple[str, int, int]]] = []  # grey bands, (detector, first, last)
        self.damaged_items: list[tuple[pg.LinearRegionItem, tuple[int, int]]] = []  # hatched bands on every row, (first, last)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(top)
        layout.addWidget(self.graphics, 1)

    # -- data -------------------------------------------------------------------------------
    def set_clip(self, path: Path | None, times: np.ndarray | None) -> None:
        """A new clip: frame axis from its pts, audio envelope computed off the GUI thread."""
        self.times = None if times is None else np.asarray(times, np.float64)
        self.axis.times = self.times
        self.frame_count = 0 if times is None else int(self.times.size)
        self.envelope = None
        self._token = object()
        if self.frame_count:
            for p in self.plots:
                p.setLimits(xMin=-0.5, xMax=self.frame_count - 0.5)
            self.p_det.setXRange(0, self.frame_count - 1, padding=0.01)
        if path is not None and self.times is not None:
            job = _EnvelopeJob(self._token, path, self.times.copy())
            job.signals.done.connect(self._on_envelope)
            self._jobs.append(job)  # keep the signal object alive until it fires
            job.setAutoDelete(False)
            QThreadPool.globalInstance().start(job)
        self._redraw()

    def _on_envelope(self, token: object, env: np.ndarray | None) -> None:
        self._jobs = [j for j in self._jobs if j.token is not token]
        if token is self._token:
            self.envelope = env
            self._redraw()

    def bind_state(self, state: GuiState) -> None:
        """Draw the state's review, follow its frame; write the face track chosen, request frames."""
        self.state = state
        state.observe("review", self.set_review)
        state.observe("frame", self.set_cursor)
        self.frameRequested.connect(state.request_frame)

    def set_review(self, review: Review | None) -> None:
        self.review = review
        self.track_box.blockSignals(True)
        self.track_box.clear()
        if review is not None:
            for tv in review.tracks:
                self.track_box.addItem(f"face {tv.track_id} (frames {tv.track.first_frame}–{tv.track.last_frame})", tv.track_id)
                self.track_box.setItemData(self.track_box.count() - 1, assessable_text(tv), Qt.ItemDataRole.ToolTipRole)
        if self.track_box.count() == 0:
            self.track_box.addItem("no face", None)
        self.track_box.blockSignals(False)
        ids = [self.track_box.itemData(k) for k in range(self.track_box.count())]
        if self.track_id not in ids:
            self.track_id = ids[0]
        self.track_box.setCurrentIndex(ids.index(self.track_id))
        self.track_box.setEnabled(len(ids) > 1)
        self._redraw()
        if self.state is not None:
            self.state.set("track_id", self.track_id)

    def _on_track_box(self, k: int) -> None:
        self.track_id = self.track_box.itemData(k)
        self._redraw()
        if self.state is not None:
            self.state.set("track_id", self.track_id)
        self.trackChanged.emit(self.track_id)

    def _add(self, plot: pg.PlotItem, item: pg.GraphicsObject, ignore_bounds: bool = False) -> None:
        plot.addItem(item, ignoreBounds=ignore_bounds)
        self._dynamic.append((plot, item))

    def _redraw(self) -> None:
        for plot, item in self._dynamic:
            plot.removeItem(item)
        self._dynamic.clear()
        self.segment_items.clear()
        self.unassessable_items = []
        self.unmeasurable_items = []
        self.damaged_items = []
        review = self.review
        tv = review.track(self.track_id) if review is not None and self.track_id is not None else None
        # EAR with threshold and blink events
        if tv is not None:
            f = tv.track.frames.astype(np.float64)
            ear = tv.track.ear.astype(np.float64)
            gaps = np.diff(f, prepend=f[0]) > 1  # break lines where the face was lost
            conn = np.ones(f.size, bool)
            conn[np.flatnonzero(gaps) - 1] = False
            self._add(self.p_ear, pg.PlotDataItem(f, ear[:, 0], pen=pg.mkPen(EAR_L, width=1), connect=conn, name="EAR left"))
            self._add(self.p_ear, pg.PlotDataItem(f, ear[:, 1], pen=pg.mkPen(EAR_R, width=1), connect=conn, name="EAR right"))
            self._add(self.p_ear, pg.PlotDataItem(f, np.nanmean(ear, axis=1), pen=pg.mkPen(EAR_AVG, width=2), connect=conn, name="EAR avg"))
            self._add(self.p_ear, pg.PlotDataItem(f, tv.threshold, pen=pg.mkPen(THRESH, width=1, style=pg.QtCore.Qt.PenStyle.DashLine), connect=conn))
            for e in tv.blinks:
                r = pg.LinearRegionItem((e["start_frame"] - 0.5, e["end_frame"] + 0.5), movable=False, brush=pg.mkBrush(*BLINK), pen=pg.mkPen(None))
                r.setZValue(-10)
                self._add(self.p_ear, r, True)
            for a, b, why in tv.unassessable_stretches():
                r = pg.LinearRegionItem((a - 0.5, b + 0.5), movable=False, brush=pg.mkBrush(*UNASSESSABLE), pen=pg.mkPen(None))
                r.setZValue(-15)
                r.setToolTip(f"eyes not assessable for blinks, frames {a}–{b}: {why}")
                self._add(self.p_ear, r, True)
                self.unassessable_items.append((r, (a, b, why)))
            self._add(self.p_mouth, pg.PlotDataItem(f, _norm(tv.track.mouth), pen=pg.mkPen(MOUTH, width=2), connect=conn))
            blinks = len(tv.blinks)
            grey = ", grey: eyes not assessable" if self.unassessable_items else ""
            text = (f"{assessable_text(tv, face=False)}; {blinks} blink{'s' if blinks != 1 else ''}; "
                    f"red dashes: EAR threshold, blue: blinks{grey}")
            self.info.setText(text)
            self.info.setToolTip(f"face {tv.track_id}: {text}.\nBlinks are only looked for where the eyes can be judged; "
                                 "hover a grey band for the reason")
        else:
            self.info.setText("no face track" if review is not None else "not analysed yet: run an analysis to see the signals")
        if self.envelope is not None:
            x = np.arange(self.envelope.size, dtype=np.float64)
            self._add(self.p_mouth, pg.PlotDataItem(x, _norm(self.envelope), pen=pg.mkPen(AUDIO, width=1), fillLevel=0, brush=pg.mkBrush(*AUDIO, 40)))
        self.p_mouth.setTitle("<span style='color:#ff78dc'>mouth aperture</span> vs <span style='color:#78dc8c'>audio envelope</span> (each scaled 0–1)", size="8pt")
        # detector curves
        if review is not None:
            colours: dict[str, tuple[int, int, int]] = {}
            n_line = 0
            shown: list[tuple[str, tuple[int, int, int], str]] = []
            for s0 in review.series:
                s = s0.for_track(self.track_id)
                if s is None:
                    continue
                c = colours.setdefault(s.detector, PALETTE[len(colours) % len(PALETTE)])
                label = f"{s.detector}: {s.name}"
                if not self.shown_curves.setdefault(label, s.is_score):
                    continue
                y = s.y
                if not s.is_score:  # a measure, not a probability: scaled to 0..1 to share the row
                    y = _norm(y)
                    label += " (scaled)"
                if s.kind == "bars":
                    x0 = s.x0 - 0.5
                    width = s.x1 - s.x0 + 1
                    ok = np.isfinite(y)
                    if s.unmeasurable is not None:
                        ok &= ~s.unmeasurable  # no bar where the window can show nothing: a grey band instead
                        self._add_unmeasurable(s.detector, s.unmeasurable_runs())
                    bars = pg.BarGraphItem(x0=x0[ok], width=width[ok], height=y[ok], brush=pg.mkBrush(*c, 90), pen=pg.mkPen(c, width=1), name=label)
                    if s.description:
                        bars.setToolTip(f"{label}: {s.description}")
                    self._add(self.p_det, bars)
                    shown.append((label, c, "▮"))
                else:
                    style = (pg.QtCore.Qt.PenStyle.SolidLine, pg.QtCore.Qt.PenStyle.DashLine, pg.QtCore.Qt.PenStyle.DotLine)[n_line % 3]
                    n_line += 1
                    self._add(self.p_det, pg.PlotDataItem(s.x0, y, pen=pg.mkPen(c, width=1.5, style=style), name=label))
                    shown.append((label, c, ("—", "- -", "···")[(n_line - 1) % 3]))
            # flagged segments, shaded on every row
            for seg in review.segments:
                for p in self.plots:
                    r = pg.LinearRegionItem((seg.start_frame - 0.5, seg.end_frame + 0.5), movable=False, brush=pg.mkBrush(*SEGMENT), pen=pg.mkPen((255, 70, 40, 160)))
                    r.setZValue(-20)
                    r.setToolTip(f"{seg.detector}: {seg.reason} (frames {seg.start_frame}–{seg.end_frame}); click to jump")
                    self._add(p, r, True)
                    self.segment_items.append((r, seg))
        for a, b in review.undecodable if review is not None else []:
            for p in self.plots:  # on every row: no track, blink or score exists there
                brush = pg.mkBrush(*DAMAGED)
                brush.setStyle(pg.QtCore.Qt.BrushStyle.BDiagPattern)
                r = pg.LinearRegionItem((a - 0.5, b + 0.5), movable=False, brush=brush, pen=pg.mkPen((235, 235, 235, 200), width=1))
                r.setZValue(-5)
                r.setToolTip(f"frames {a}–{b} cannot be decoded (damaged or missing data): nothing was measured there, "
                             "and no track or detector window reads across them")
                self._add(p, r, True)
                self.damaged_items.append((r, (a, b)))
        self._rebuild_curves_menu()
        if review is not None and (review.series or review.segments):
            from html import escape

            keys = "  ".join(f"<span style='color:rgb{c}'>{mark} {escape(label)}</span>" for label, c, mark in shown)
            grey = ", grey: not measurable" if self.unmeasurable_items else ""
            grey += ", hatched: frames that cannot be decoded" if self.damaged_items else ""
            self.p_det.setTitle(f"detector scores (1 = manipulated), red bands: flagged segments{grey} &nbsp; {keys}", size="8pt")
        else:
            self.p_det.setTitle("no detector curves", size="8pt")
        self.set_cursor(self.cursor_frame)

    def _add_unmeasurable(self, detector: str, runs: list[tuple[int, int]]) -> None:
        """Grey bands on the detectors' row where the detector's windows can show nothing either
        way: neutral, unlike the red of a flagged segment, and not a score of 0."""
        for a, b in runs:
            if any(d == detector and (a, b) == (x, y) for _, (d, x, y) in self.unmeasurable_items):
                continue  # the same windows from another of the detector's curves
            r = pg.LinearRegionItem((a - 0.5, b + 0.5), movable=False, brush=pg.mkBrush(*UNASSESSABLE), pen=pg.mkPen(None))
            r.setZValue(-15)
            r.setToolTip(f"{unmeasurable_text(detector)}, frames {a}–{b}: the data can show nothing either way "
                         "here; not a finding")
            self._add(self.p_det, r, True)
            self.unmeasurable_items.append((r, (detector, a, b)))

    def _rebuild_curves_menu(self) -> None:
        self.curves_menu.clear()
        labels = [f"{s.detector}: {s.name}" for s in (self.review.series if self.review is not None else [])]
        for label in dict.fromkeys(labels):
            a = self.curves_menu.addAction(label)
            a.setCheckable(True)
            a.setChecked(self.shown_curves.get(label, False))
            a.toggled.connect(lambda on, label=label: self.show_curve(label, on))
        self.curves_button.setEnabled(bool(labels))

    def show_curve(self, label: str, on: bool) -> None:
        self.shown_curves[label] = on
        self._redraw()

    # -- cursor -----------------------------------------------------------------------------
    def set_cursor(self, i: int) -> None:
        """Follow the player (no frame request goes back)."""
        self.cursor_frame = int(i)
        for line in self.cursors:
            line.blockSignals(True)
            line.setValue(float(i))
            line.blockSignals(False)

    def _on_cursor_dragged(self, line: pg.InfiniteLine) -> None:
        i = int(round(line.value()))
        if self.frame_count:
            i = min(max(i, 0), self.frame_count - 1)
        for other in self.cursors:
            if other is not line:
                other.blockSignals(True)
                other.setValue(float(i))
                other.blockSignals(False)
        if i != self.cursor_frame:
            self.cursor_frame = i
            self.frameRequested.emit(i)

    def frame_at_scene_x(self, plot: pg.PlotItem, scene_pos: object) -> int:
        return int(round(plot.vb.mapSceneToView(scene_pos).x()))

    def _on_click(self, event: object) -> None:
        pos = event.scenePos()  # type: ignore[attr-defined]
        for p in self.plots:
            if p.vb.sceneBoundingRect().contains(pos):
                self.click_frame(self.frame_at_scene_x(p, pos))
                return

    def click_frame(self, i: int) -> None:
        """A click at frame i: the start of the flagged segment there, else frame i."""
        if not self.frame_count:
            return
        i = min(max(i, 0), self.frame_count - 1)
        seg = self.review.segment_at(i) if self.review is not None else None
        target = seg.start_frame if seg is not None else i
        self.set_cursor(target)
        self.frameRequested.emit(target)


def assessable_text(tv: TrackView, face: bool = True) -> str:
    """"[face N: ]eyes assessable in P% of face frames" for one track."""
    text = f"eyes assessable in {assessable_percent(tv.assessable_fraction)}% of face frames"
    return f"face {tv.track_id}: {text}" if face else text


def unmeasurable_text(detector: str) -> str:
    return f"{detector}: not measurable (weak signal)"


def _norm(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    ok = np.isfinite(v)
    if not ok.any():
        return v
    lo, hi = np.percentile(v[ok], 1), np.percentile(v[ok], 99)
    return np.clip((v - lo) / (hi - lo), 0, 1.2) if hi > lo else v * 0
