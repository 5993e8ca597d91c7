"""The frame-exact player: a QGraphicsView showing exactly the frame asked for, with overlays.

Frames come from the loader thread (`FrameLoader`); this widget only paints. The frame index
shown is the one the loader decoded and identified by its pts, never a guess from a clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QGraphicsScene,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.video.index import FrameIndex
from desktop.frame_loader import FrameLoader
from desktop.frame_view import FrameItem, FrameView
from desktop.overlays import KINDS, OFF_BY_DEFAULT, SHORT, TITLES, OverlayHost, OverlayItem
from desktop.review import Review
from desktop.state import GuiState
from desktop.timecode import format_timecode, parse_position

SPEEDS = (0.1, 0.25, 0.5, 1.0, 2.0)


class Player(QWidget, OverlayHost):
    frameShown = Signal(int)  # the frame now on screen (after the loader delivered it)
    opened = Signal()
    failed = Signal(str)
    statusText = Signal(str)
    playingChanged = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        QWidget.__init__(self, parent)
        self.review: Review | None = None
        self.state: GuiState | None = None
        self.frame_index = 0
        self.track_filter: int | None = None
        self.loader: FrameLoader | None = None
        self._retired: list[FrameLoader] = []  # stopped loaders still finishing
        self.index: FrameIndex | None = None
        self.path: Path | None = None
        self.stream_index: int | None = None  # the video stream shown (None: the first)
        self.requested = -1
        self.last_latency_ms: float | None = None
        self._painted_cb: Callable[[int, float], None] | None = None
        self._t_request = 0.0
        self._speed = 1.0
        self._play_t0 = 0.0
        self._play_f0 = 0

        self.scene = QGraphicsScene(self)
        self.frame_item = FrameItem()
        self.frame_item.on_painted = self._on_painted
        self.scene.addItem(self.frame_item)
        self.overlay_items = {k: OverlayItem(k, self) for k in KINDS}
        for item in self.overlay_items.values():
            self.scene.addItem(item)
        self.view = FrameView(self.scene, self)
        self.view.setObjectName("frameView")

        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)

        self._build_controls()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.controls)
        self._build_actions()

    # -- UI ---------------------------------------------------------------------------------
    def _button(self, text: str, tip: str, slot: Callable[[], None]) -> QToolButton:
        b = QToolButton(self)
        b.setText(text)
        b.setToolTip(tip)
        b.setAutoRaise(True)
        b.clicked.connect(slot)
        self._row.addWidget(b)
        return b

    def _build_controls(self) -> None:
        self.controls = QWidget(self)
        self._row = QHBoxLayout(self.controls)
        self._row.setContentsMargins(4, 0, 4, 0)
        self._button("◀◀ flag", "Previous flagged segment (PgUp / P)", self.previous_segment)
        self._button("−1 s", "Back one second (Shift+Left)", lambda: self.step_seconds(-1.0))
        self._button("◀|", "Previous frame (Left)", lambda: self.step(-1))
        self.play_button = self._button("▶", "Play / pause (Space)", self.toggle_play)
        self.play_button.setMinimumWidth(34)
        self._button("|▶", "Next frame (Right)", lambda: self.step(1))
        self._button("+1 s", "Forward one second (Shift+Right)", lambda: self.step_seconds(1.0))
        self._button("flag ▶▶", "Next flagged segment (PgDown / N)", self.next_segment)
        self._row.addSpacing(8)
        self.goto_edit = QLineEdit(self.controls)
        self.goto_edit.setPlaceholderText("frame or mm:ss.mmm")
        self.goto_edit.setToolTip("Go to a frame number (e.g. 120) or a timecode from the clip start (e.g. 0:04.5) — Ctrl+G")
        self.goto_edit.setMaximumWidth(150)
        self.goto_edit.returnPressed.connect(lambda: self.goto_text(self.goto_edit.text()))
        self._row.addWidget(self.goto_edit)
        self.speed_box = QComboBox(self.controls)
        for s in SPEEDS:
            self.speed_box.addItem(f"{s:g}×", s)
        self.speed_box.setCurrentIndex(SPEEDS.index(1.0))
        self.speed_box.setToolTip("Playback speed")
        self.speed_box.currentIndexChanged.connect(lambda _i: self.set_speed(float(self.speed_box.currentData())))
        self._row.addWidget(self.speed_box)
        self._row.addSpacing(8)
        self._button("Fit", "Fit the frame to the window", self.fit)
        self._button("1:1", "One screen pixel per video pixel", self.view.actual_size)
        self._button("+", "Zoom in (wheel)", lambda: self.view.zoom(1.25))
        self._button("−", "Zoom out (wheel)", lambda: self.view.zoom(0.8))
        self._row.addStretch(1)
        self.position_label = QLabel("no clip", self.controls)
        self.position_label.setObjectName("positionLabel")
        self._row.addWidget(self.position_label)

    def _action(self, text: str, keys: list[str], slot: Callable[[], None]) -> QAction:
        a = QAction(text, self)
        a.setShortcuts([QKeySequence(k) for k in keys])
        a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        a.triggered.connect(slot)
        self.addAction(a)
        return a

    def _build_actions(self) -> None:
        self.playback_actions = [
            self._action("Play / pause", ["Space"], self.toggle_play),
            self._action("Next frame", ["Right"], lambda: self.step(1)),
            self._action("Previous frame", ["Left"], lambda: self.step(-1)),
            self._action("Forward 1 s", ["Shift+Right"], lambda: self.step_seconds(1.0)),
            self._action("Back 1 s", ["Shift+Left"], lambda: self.step_seconds(-1.0)),
            self._action("Next flagged segment", ["PgDown", "N"], self.next_segment),
            self._action("Previous flagged segment", ["PgUp", "P"], self.previous_segment),
            self._action("Go to frame / timecode…", ["Ctrl+G"], self._focus_goto),
            self._action("First frame", ["Home"], lambda: self.seek(0)),
            self._action("Last frame", ["End"], lambda: self.seek(self.frame_count - 1)),
        ]
        self.overlay_actions: dict[str, QAction] = {}
        for k in KINDS:
            a = QAction(TITLES[k], self)
            a.setIconText(SHORT[k])
            a.setCheckable(True)
            a.setChecked(k not in OFF_BY_DEFAULT)
            self.overlay_items[k].setVisible(k not in OFF_BY_DEFAULT)
            a.toggled.connect(lambda on, k=k: self.set_overlay_visible(k, on))
            self.overlay_actions[k] = a

    def _focus_goto(self) -> None:
        self.goto_edit.setFocus()
        self.goto_edit.selectAll()

    # -- clip -------------------------------------------------------------------------------
    @property
    def frame_count(self) -> int:
        return self.index.frame_count if self.index is not None else 0

    @property
    def fps(self) -> float:
        return self.index.average_fps if self.index is not None else 0.0

    def open(self, path: str | Path, budget_bytes: int | None = None, stream_index: int | None = None) -> None:
        """Open a clip (its video stream `stream_index`, default the first); frames arrive from the
        loader thread (indexing happens there too)."""
        self.close_clip()
        self.path = Path(path)
        self.stream_index = stream_index
        self.loader = FrameLoader(self.path, budget_bytes, stream_index=stream_index)
        self.loader.opened.connect(self._on_opened)
        self.loader.frameReady.connect(self._on_frame)
        self.loader.failed.connect(self.failed)
        self.position_label.setText(f"opening {self.path.name}…")
        self.loader.start()

    def close_clip(self) -> None:
        self.pause()
        if self.loader is not None:
            old = self.loader
            self.loader = None
            for sig, slot in ((old.frameReady, self._on_frame), (old.opened, self._on_opened), (old.failed, self.failed)):
                sig.disconnect(slot)
            # Do not wait here (a long file may still be indexing): it ends on its own.
            old.stop(wait=False)
            self._retired.append(old)
            old.finished.connect(lambda old=old: self._retire(old))
        self.index = None
        self.requested = -1

    def _retire(self, loader: FrameLoader) -> None:
        if loader in self._retired:
            self._retired.remove(loader)
            loader.deleteLater()

    def shutdown(self) -> None:
        """Stop every loader thread and wait for them (application exit)."""
        self.close_clip()
        for old in list(self._retired):
            old.wait()
            self._retire(old)

    def image_rect(self) -> QRectF:
        return self.frame_item.boundingRect()

    def _on_opened(self, index: FrameIndex) -> None:
        self.index = index
        self.opened.emit()
        self.seek(min(self.frame_index, index.frame_count - 1) if self.review is not None else 0)

    def _on_frame(self, i: int, rgb: np.ndarray, t_req: float) -> None:
        first = self.frame_item.image is None
        self._t_request = t_req
        self.frame_index = i
        self.frame_item.set_frame(i, rgb)
        if first or self.view.fit:
            self.view.fit_to(self.frame_item.boundingRect())
        for item in self.overlay_items.values():
            item.update()
        self._update_status()
        if self.state is not None:
            self.state.set("frame", i)  # the frame on screen: the timeline's cursor follows it
        self.frameShown.emit(i)

    def _on_painted(self, i: int) -> None:
        if self._t_request:
            self.last_latency_ms = (time.perf_counter() - self._t_request) * 1000.0
            if self._painted_cb is not None:
                self._painted_cb(i, self.last_latency_ms)
            self._t_request = 0.0

    def set_painted_callback(self, cb: Callable[[int, float], None] | None) -> None:
        """Benchmarks: cb(frame, ms from request to paint) once per delivered frame."""
        self._painted_cb = cb

    # -- navigation -------------------------------------------------------------------------
    def seek(self, i: int) -> None:
        if self.loader is None or self.index is None:
            return
        i = int(min(max(i, 0), self.frame_count - 1))
        self.requested = i
        self.loader.request(i)

    @property
    def target(self) -> int:
        """Where navigation continues from: the last request (it may not be painted yet)."""
        return self.requested if self.requested >= 0 else self.frame_index

    def step(self, n: int) -> None:
        self.pause()
        self.seek(self.target + n)

    def step_seconds(self, s: float) -> None:
        self.pause()
        if self.index is None:
            return
        t = float(self.index.times_s[self.target]) + s
        self.seek(self.index.frame_at_time(t))

    def goto_text(self, text: str) -> bool:
        pos = parse_position(text)
        if pos is None or self.index is None:
            self.statusText.emit(f"cannot read {text!r}: type a frame number (120) or a timecode (0:04.500)")
            return False
        kind, v = pos
        self.pause()
        if kind == "frame":
            self.seek(int(v))
        else:
            self.seek(self.index.frame_at_time(self.index.start_time_s + v))
        self.view.setFocus()
        return True

    def next_segment(self) -> None:
        if self.review is None:
            return
        seg = self.review.next_segment(self.target)
        if seg is not None:
            self.pause()
            self.seek(seg.start_frame)

    def previous_segment(self) -> None:
        if self.review is None:
            return
        seg = self.review.previous_segment(self.target)
        if seg is not None:
            self.pause()
            self.seek(seg.start_frame)

    # -- playback ---------------------------------------------------------------------------
    def set_speed(self, s: float) -> None:
        self._speed = s
        if self.timer.isActive():
            self._play_t0, self._play_f0 = time.perf_counter(), self.frame_index

    def toggle_play(self) -> None:
        if self.timer.isActive():
            self.pause()
        else:
            self.play()

    def play(self) -> None:
        if self.index is None:
            return
        if self.frame_index >= self.frame_count - 1:
            self.seek(0)
        self._play_t0, self._play_f0 = time.perf_counter(), self.target
        self.timer.start(max(int(500 / max(self.fps * self._speed, 1.0)), 5))
        self.play_button.setText("❚❚")
        self.playingChanged.emit(True)

    def pause(self) -> None:
        if self.timer.isActive():
            self.timer.stop()
            self.play_button.setText("▶")
            self.playingChanged.emit(False)

    def _tick(self) -> None:
        assert self.index is not None
        t0 = float(self.index.times_s[self._play_f0])
        t = t0 + (time.perf_counter() - self._play_t0) * self._speed
        i = self.index.frame_at_time(t)
        if i >= self.frame_count - 1:
            self.seek(self.frame_count - 1)
            self.pause()
        elif i != self.requested:
            self.seek(i)  # the loader drops what it cannot keep up with: time stays true

    # -- overlays ---------------------------------------------------------------------------
    def bind_state(self, state: GuiState) -> None:
        """Show the state's review and track; seek on its frame requests; write the frame painted."""
        self.state = state
        state.observe("review", self.set_review)
        state.observe("track_id", self.set_track_filter)
        state.on_frame_request(self.seek)

    def set_review(self, review: Review | None) -> None:
        self.review = review
        for item in self.overlay_items.values():
            item.update()
        self._update_status()

    def set_track_filter(self, track_id: int | None) -> None:
        self.track_filter = track_id
        for item in self.overlay_items.values():
            item.update()
        self._update_status()

    def set_overlay_visible(self, kind: str, on: bool) -> None:
        self.overlay_items[kind].setVisible(on)
        if self.overlay_actions[kind].isChecked() != on:
            self.overlay_actions[kind].setChecked(on)

    def visible_overlays(self) -> tuple[str, ...]:
        return tuple(k for k, item in self.overlay_items.items() if item.isVisible())

    def fit(self) -> None:
        self.view.fit_to(self.frame_item.boundingRect())

    # -- status -----------------------------------------------------------------------------
    def current_values(self) -> dict[str, float | None]:
        """EAR L/R, mouth aperture of the chosen (or first visible) track and window scores."""
        out: dict[str, float | None] = {}
        self._eyes_reason = ""  # why the shown face's eyes cannot be judged on this frame ("" if they can)
        if self.review is None:
            return out
        i = self.frame_index
        for tv in self.review.tracks:
            if self.track_filter is not None and tv.track_id != self.track_filter:
                continue
            row = tv.row(i)
            if row is None:
                continue
            out["track"] = tv.track_id
            out["ear_left"] = float(tv.track.ear[row, 0])
            out["ear_right"] = float(tv.track.ear[row, 1])
            out["mouth"] = float(tv.track.mouth[row])
            self._eyes_reason = tv.not_assessable_reason(row)
            break
        for name, v in self.review.window_scores(i, self.track_filter).items():
            out[name] = v
        return out

    def status_line(self) -> str:
        if self.index is None:
            return "no clip"
        i = self.frame_index
        pts = float(self.index.times_s[i])
        rel = pts - self.index.start_time_s
        parts = [f"frame {i} / {self.frame_count - 1}", f"{format_timecode(rel)}", f"pts {pts:.4f} s"]
        v = self.current_values()
        if "ear_left" in v:
            parts.append(f"face {v['track']}: EAR L {v['ear_left']:.3f} R {v['ear_right']:.3f}  mouth {v['mouth']:.3f}")
            if self._eyes_reason:
                parts.append(f"eyes not assessable ({self._eyes_reason})")
        elif self.review is not None and self.review.tracks:
            parts.append("no face on this frame")
        for k, val in v.items():
            if ":" in k and val is not None:
                parts.append(f"{k} {val:.2f}")
        if self.review is not None:  # instead of a score: the window can show nothing either way
            parts += [f"{d}: not measurable" for d in self.review.unmeasurable_at(i, self.track_filter)]
        seg = self.review.segment_at(i) if self.review is not None else None
        if seg is not None:
            parts.append(f"FLAGGED by {seg.detector}: {seg.reason}")
        return "   ".join(parts)

    def _update_status(self) -> None:
        if self.index is None:
            return
        i = self.frame_index
        rel = float(self.index.times_s[i]) - self.index.start_time_s
        self.position_label.setText(f"{i} / {self.frame_count - 1}   {format_timecode(rel)}")
        self.statusText.emit(self.status_line())

    def closeEvent(self, event: object) -> None:  # noqa: N802 - Qt API
        self.shutdown()
        super().closeEvent(event)  # type: ignore[arg-type]
