"""The one face pass: decode every frame once, track every face, keep landmarks and signals.

The data it produces (`FacePass`, `FaceTrack`, their .npz form) is in `core.face.facepass`.

Every frame gets landmarks for every tracked face: the 68-point predictor's box is placed from
the previous frame's landmarks (at full resolution). Detection runs on a schedule:

- every `redetect_every` frames while faces are tracked (every `search_every` while none is):
  dlib HOG on a downscaled, padded frame finds new faces. A tracked face it does not see is
  checked by a HOG in the face's neighbourhood (equalised, lower threshold) and, when that
  fails too, by dlib's MMOD CNN there. A track that no detector confirms more than
  `max_missed` times in a row ends. Whenever a track ends (also when its fit turns implausible,
  at a cut or at the end of the clip) after a failed confirmation, its frames after the last
  confirmation are dropped: the pass never claims a face against its detectors;
- every `hard_every` frames while no face is tracked and the HOG finds none (every
  `hard_every_tracked` frames while faces are tracked in frames the HOG sees downscaled): the
  thorough search of `core.face.detect.detect_hard` (MMOD CNN; contrast-equalised HOG + MMOD on
  large frames) for
  small, dark, profile or tightly cropped faces.

A new face is also tracked backwards through the frames since the previous search; a face found
again near where a track ended shortly before keeps that track's id. A cut to another shot
(consecutive frames decorrelate) ends every track, so one track never spans two shots. The
result is stored once as a compressed .npz so detectors and the GUI never decode the video
again for landmarks.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import cv2
import dlib
import numpy as np

from core.face.detect import HOG, MIN_FRAME_SIDE, MMOD, Detection, detect_faces, detect_hard, detect_local, iou, mmod_near, same_face
from core.face.dlib_models import shape_predictor
from core.face.eye_region import stretches
from core.face.facepass import FacePass, FacePassParams, FaceTrack
from core.progress import CancelToken, ProgressCallback, Throttle, no_progress
from core.signals.geometry import LEFT_EYE, MOUTH, RIGHT_EYE, ears, mouth_aperture
from core.signals.timebase import NOMINAL_FPS, usable_fps
from core.video.decoding import DecodeLog
from core.video.reader import VideoReader

# names under which the pass reports how many frames each search ran on and found a face in
SEARCH_HOG = f"{HOG} (whole frame)"
SEARCH_LOCAL = f"{HOG} (near tracked face)"
SEARCH_LOCAL_CNN = f"{MMOD} (near tracked face)"
SEARCH_HARD = f"thorough search ({MMOD}; on large frames contrast-equalised {HOG} + {MMOD})"


# --------------------------------------------------------------------------------------------
# tracking


def _landmark_box(lm: np.ndarray) -> np.ndarray:
    return np.array([lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max()], np.float64)


class _Track:
    """A live track: its rows so far and the detector-box/landmark-box relation for tracking."""

    def __init__(self, track_id: int) -> None:
        self.track_id = track_id
        self.rows: dict[int, tuple[np.ndarray, np.ndarray, bool]] = {}  # frame -> (box, lm, confirmed)
        self.calib = np.array([0.0, 0.0, 1.0, 1.0])  # centre offset (x, y) and size ratio (w, h)
        self.missed = 0
        self.last_confirmed = -1  # last frame a detector saw this face
        self.confirmed_width = 0.0  # box width then: tracking may not drift far from it
        self.last_lm: np.ndarray | None = None
        self.last_box: np.ndarray | None = None

    def calibrate(self, det_box: np.ndarray, lm: np.ndarray) -> None:
        lb = _landmark_box(lm)
        lw, lh = max(lb[2] - lb[0], 1.0), max(lb[3] - lb[1], 1.0)
        dc = ((det_box[0] + det_box[2]) / 2 - (lb[0] + lb[2]) / 2) / lw, ((det_box[1] + det_box[3]) / 2 - (lb[1] + lb[3]) / 2) / lh
        self.calib = np.array([dc[0], dc[1], (det_box[2] - det_box[0]) / lw, (det_box[3] - det_box[1]) / lh])

    def box_from(self, lm: np.ndarray) -> np.ndarray:
        lb = _landmark_box(lm)
        lw, lh = max(lb[2] - lb[0], 1.0), max(lb[3] - lb[1], 1.0)
        cx = (lb[0] + lb[2]) / 2 + self.calib[0] * lw
        cy = (lb[1] + lb[3]) / 2 + self.calib[1] * lh
        w, h = self.calib[2] * lw, self.calib[3] * lh
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def fit_landmarks(gray: np.ndarray, box: np.ndarray) -> np.ndarray:
    """68 points fitted in `box`. The predictor gets a crop (box + one box size on each side, so
    every pixel it samples is inside): handing dlib a whole 1080p frame costs a copy per call."""
    x0, y0, x1, y1 = (int(round(v)) for v in box[:4])
    w, h = max(x1 - x0, 1), max(y1 - y0, 1)
    H, W = gray.shape[:2]
    cx0, cy0 = min(max(0, x0 - w), W - 1), min(max(0, y0 - h), H - 1)
    cx1, cy1 = max(min(W, x1 + w), cx0 + 1), max(min(H, y1 + h), cy0 + 1)
    crop = np.ascontiguousarray(gray[cy0:cy1, cx0:cx1])
    shape = shape_predictor()(crop, dlib.rectangle(x0 - cx0, y0 - cy0, x1 - cx0, y1 - cy0))
    pts = np.array([(p.x, p.y) for p in shape.parts()], np.float32)
    pts += np.array([cx0, cy0], np.float32)
    return pts


class FaceTracker:
    """Feed frames in order with `step(i, gray)`; `tracks()` returns the finished tracks."""

    def __init__(self, params: FacePassParams, width: int, height: int, fps: float = NOMINAL_FPS) -> None:
        self.p = params
        self.width, self.height = width, height
        self.live: list[_Track] = []
        self.done: list[_Track] = []
        self.next_id = 0
        self.last_detect = -(10**9)  # last frame of a whole-frame HOG search
        self.last_hard = -(10**9)  # last frame of a thorough search
        self.force_detect = True
        self.relink_gap = max(1, round(params.relink_gap_s * usable_fps(fps)))
        keep = max(params.search_every, params.redetect_every, params.hard_every, 1)
        self.recent: deque[tuple[int, np.ndarray]] = deque(maxlen=keep)  # frames for backward tracking
        self.search: dict[str, dict[str, int]] = {}
        self.cuts: list[int] = []  # first frames of new shots
        self.barrier = -1  # first frame after the last cut or damaged stretch: no track links across it
        self._thumb: np.ndarray | None = None

    # -- bookkeeping ----------------------------------------------------------------------------
    def _count(self, name: str, found: bool) -> None:
        s = self.search.setdefault(name, {"frames": 0, "found": 0})
        s["frames"] += 1
        s["found"] += int(found)

    def _plausible(self, tr: _Track, box: np.ndarray, lm: np.ndarray, gray: np.ndarray) -> bool:
        w, h = box[2] - box[0], box[3] - box[1]
        if not (np.isfinite(lm).all() and w >= 8 and h >= 8 and 0.5 <= h / w <= 2.0):
            return False
        # the landmark model fits a face shape anywhere, even on a blank wall: demand texture
        x0, y0 = max(int(lm[:, 0].min()), 0), max(int(lm[:, 1].min()), 0)
        x1, y1 = min(int(lm[:, 0].max()) + 1, gray.shape[1]), min(int(lm[:, 1].max()) + 1, gray.shape[0])
        step = max(1, (x1 - x0) // 32)
        patch = gray[y0:y1:step, x0:x1:step]
        if patch.size < 16 or float(patch.std()) < self.p.min_face_contrast:
            return False
        inside = (lm[:, 0] >= -0.1 * w) & (lm[:, 0] <= self.width + 0.1 * w) & (lm[:, 1] >= -0.1 * h) & (lm[:, 1] <= self.height + 0.1 * h)
        if inside.mean() < 0.8:
            return False
        # a face, not a collapsed shape: the eyes are apart and above the mouth
        eye_l, eye_r, mouth = lm[LEFT_EYE].mean(0), lm[RIGHT_EYE].mean(0), lm[MOUTH].mean(0)
        if np.linalg.norm(eye_r - eye_l) < 0.15 * w or mouth[1] <= min(eye_l[1], eye_r[1]):
            return False
        if tr.last_box is not None:
            pw = tr.last_box[2] - tr.last_box[0]
            if abs(w - pw) / max(pw, 1.0) > self.p.max_scale_jump:
                return False
            # slow drift: landmarks fitted in a too large box spread and grow the box further
            if tr.confirmed_width and not 0.6 <= w / tr.confirmed_width <= 1.6:
                return False
        return True

    def _record(self, tr: _Track, i: int, box: np.ndarray, lm: np.ndarray, confirmed: bool) -> None:
        tr.rows[i] = (box.astype(np.float32), lm, confirmed)
        tr.last_box, tr.last_lm = box, lm
        if confirmed:
            tr.last_confirmed = i
            tr.confirmed_width = float(box[2] - box[0])
            tr.missed = 0

    def _end(self, tr: _Track) -> None:
        """Finish a track. If a detector has looked for the face and not found it since its last
        confirmation, the frames after that confirmation are dropped: the face may have been gone
        for all of them, and the pass never claims a face against its detectors."""
        self.live.remove(tr)
        if tr.missed > 0:
            for f in [f for f in tr.rows if f > tr.last_confirmed]:
                del tr.rows[f]
        if tr.rows:
            self.done.append(tr)

    # -- placing and extending tracks -------------------------------------------------------------
    def _place_detection(self, tr: _Track, i: int, gray: np.ndarray, d: Detection) -> bool:
        """Fit landmarks in a detector's box; False when the fit is not a plausible face."""
        box = np.asarray(d.box, np.float64)
        lm = fit_landmarks(gray, box)
        keep_last = tr.last_box
        tr.last_box = None  # a detection may change the size freely
        if not self._plausible(tr, box, lm, gray):
            tr.last_box = keep_last
            return False
        tr.calibrate(box, lm)
        self._record(tr, i, box, lm, True)
        return True

    def _new_track(self, i: int, gray: np.ndarray, d: Detection, searched: int) -> None:
        """Start (or revive) a track at a detection; `searched` is the previous frame on which
        the same search ran and did not report this face."""
        tr = self._revivable(i, d)
        revived = tr is not None
        if tr is None:
            tr = _Track(self.next_id)
        if not self._place_detection(tr, i, gray, d):
            return
        if revived:
            self.done.remove(tr)
        else:
            self.next_id += 1
        self.live.append(tr)
        self._backfill(tr, i, searched)

    def _revivable(self, i: int, d: Detection) -> _Track | None:
        """A track that ended shortly before, near this detection: the same face found again."""
        best, best_ov = None, 0.0
        for tr in self.done:
            last = max(tr.rows)
            if i - last > self.relink_gap or last >= i or last < self.barrier:
                continue  # too long ago, or before a cut to another shot or a damaged stretch
            ov = iou(tr.rows[last][0], d.box)
            if same_face(tr.rows[last][0], d.box, self.p.match_iou, max_ratio=3.0) and ov >= best_ov:
                best, best_ov = tr, ov
        return best

    def _backfill(self, tr: _Track, i: int, searched: int) -> None:
        """Track a newly found face backwards through the kept frames after the previous search
        (`searched`): nothing looked for it there. Frames that search saw without it stay empty."""
        lm = tr.last_lm
        box_i, lm_i, prev_box = tr.last_box, tr.last_lm, tr.rows[i][0].astype(np.float64)
        tr.last_box = prev_box
        for j, gray in reversed(self.recent):
            if j >= i:
                continue
            if j <= searched or j in tr.rows:
                break  # reached the track's earlier part (a revived track)
            if any(j in t.rows and iou(t.rows[j][0], tr.last_box) > 0.3 for t in self.live + self.done if t is not tr):
                break
            assert lm is not None
            box = tr.box_from(lm)
            lm = fit_landmarks(gray, box)
            if not self._plausible(tr, box, lm, gray):
                break
            tr.rows[j] = (box.astype(np.float32), lm, False)
            tr.last_box = box
        tr.last_box, tr.last_lm = box_i, lm_i

    def _best_match(self, dets: list[Detection], box: np.ndarray, max_ratio: float = 1.4) -> Detection | None:
        """The detection on the tracked face: same place, similar size (a low-threshold HOG also
        fires on head-and-shoulders windows), best overlap."""
        w = box[2] - box[0]
        ok = [
            d for d in dets
            if same_face(d.box, box, self.p.match_iou) and 1 / max_ratio <= (d.box[2] - d.box[0]) / max(w, 1.0) <= max_ratio
        ]
        return max(ok, key=lambda d: iou(d.box, box), default=None)

    def _confirm(self, tr: _Track, i: int, gray: np.ndarray) -> bool:
        """Is the tracked face still a face? HOG near it, then the MMOD CNN near it."""
        box = tr.rows[i][0].astype(np.float64)
        dets = detect_local(gray, box, self.p.local_threshold)
        hit = self._best_match(dets, box)
        self._count(SEARCH_LOCAL, hit is not None)
        if hit is None:
            # the CNN sees profiles and dark faces the HOG misses
            dets = mmod_near(gray, box, self.p.cnn_threshold)
            hit = self._best_match(dets, box, max_ratio=2.0)  # its boxes on turned faces run large
            self._count(SEARCH_LOCAL_CNN, hit is not None)
            if hit is not None:  # keep the tracked landmarks: the CNN box only vouches for them
                _, lm, _ = tr.rows[i]
                self._record(tr, i, box, lm, True)
                return True
        if hit is None:
            return False
        if not self._place_detection(tr, i, gray, hit):
            _, lm, _ = tr.rows[i]
            self._record(tr, i, box, lm, True)
        return True

    # -- one frame ------------------------------------------------------------------------------
    def _shot_cut(self, gray: np.ndarray) -> bool:
        """A cut to another shot: the 32x32 thumbnail decorrelates from the previous frame's
        (1 - r > `cut_decorrelation`; within shots of the media clips it stays below 0.21, a cut
        between two of them gives ~1). Brightness changes alone keep r high."""
        step = max(1, min(gray.shape[:2]) // 128)
        thumb = cv2.resize(gray[::step, ::step], (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
        prev, self._thumb = self._thumb, thumb
        if prev is None or self.p.cut_decorrelation <= 0:
            return False
        a, b = thumb - thumb.mean(), prev - prev.mean()
        den = float(np.sqrt((a * a).sum() * (b * b).sum()))
        return den > 0 and 1.0 - float((a * b).sum()) / den > self.p.cut_decorrelation

    def interrupt(self, i: int) -> None:
        """End every track before frame i: a cut to another shot, or frames that could not be
        decoded just before i (no track, no backward tracking, no signal reads across them)."""
        for tr in list(self.live):
            self._end(tr)
        self.recent.clear()
        self.force_detect = True
        self.last_hard = -(10**9)
        self.barrier = i

    def resume_after_gap(self, i: int) -> None:
        """Frames before i could not be decoded: end every track; frame i starts afresh (it is
        not compared with the frame before the gap, which is no cut)."""
        self.interrupt(i)
        self._thumb = None

    def step(self, i: int, gray: np.ndarray) -> None:
        # 0. a cut to another shot ends every track: one track never spans two shots
        if self._shot_cut(gray):
            self.cuts.append(i)
            self.interrupt(i)

        # 1. every tracked face: landmarks placed from the previous frame's
        for tr in list(self.live):
            assert tr.last_lm is not None
            box = tr.box_from(tr.last_lm)
            lm = fit_landmarks(gray, box)
            if not self._plausible(tr, box, lm, gray):
                self._end(tr)
                self.force_detect = True
                self.last_hard = -(10**9)  # look thoroughly at once: the face may still be there
                continue
            self._record(tr, i, box, lm, False)

        # 2. whole-frame detection on schedule: new faces, and confirmation of tracked ones
        interval = self.p.redetect_every if self.live else self.p.search_every
        found_any = False
        if self.force_detect or i - self.last_detect >= interval:
            searched = self.last_detect
            self.last_detect = i
            self.force_detect = False
            dets = detect_faces(gray, self.p.detect_max_side, self.p.detect_pad, self.p.detect_upsample)
            self._count(SEARCH_HOG, bool(dets))
            found_any = bool(dets)
            pairs = sorted(
                (
                    (iou(tr.rows[i][0], d.box), ti, di)
                    for ti, tr in enumerate(self.live)
                    for di, d in enumerate(dets)
                    if same_face(tr.rows[i][0], d.box, self.p.match_iou)
                ),
                reverse=True,
            )
            used_t: set[int] = set()
            used_d: set[int] = set()
            for _, ti, di in pairs:
                if ti in used_t or di in used_d:
                    continue
                used_t.add(ti)
                used_d.add(di)
                tr = self.live[ti]
                if not self._place_detection(tr, i, gray, dets[di]):
                    _, lm, _ = tr.rows[i]
                    self._record(tr, i, tr.rows[i][0].astype(np.float64), lm, True)
            for ti, tr in enumerate(list(self.live)):
                if ti in used_t:
                    continue
                if not self._confirm(tr, i, gray):
                    tr.missed += 1
                    if tr.missed > self.p.max_missed:
                        self._end(tr)
                        self.last_hard = -(10**9)  # look thoroughly at once: the face may still be there
            for di, d in enumerate(dets):
                if di not in used_d and not self._covered(i, d):
                    self._new_track(i, gray, d, searched)

        # 3. the thorough search, sparsely: while nothing is tracked and the HOG sees nothing, and
        #    more rarely while faces are tracked (further faces too small or dark for the HOG)
        #    (only where the HOG works on a downscaled copy: at full size it sees faces from 80 px)
        downscaled = max(self.width, self.height) > self.p.detect_max_side
        every = (self.p.hard_every_tracked if downscaled else 0) if self.live else (0 if found_any else self.p.hard_every)
        if every > 0 and i - self.last_hard >= every:
            searched = self.last_hard
            self.last_hard = i
            tracked = [t.rows[i][0] for t in self.live if i in t.rows]
            dets = detect_hard(
                gray, self.p.hard_whole_frame_px, self.p.hard_candidate_threshold, self.p.cnn_threshold, exclude=tracked
            )
            self._count(SEARCH_HARD, bool(dets))
            for d in dets:
                if not self._covered(i, d):
                    self._new_track(i, gray, d, searched)

        self._drop_duplicates(i)
        self.recent.append((i, np.array(gray, copy=True)))

    def _covered(self, i: int, d: Detection) -> bool:
        return any(same_face(t.rows[i][0], d.box, self.p.match_iou) for t in self.live if i in t.rows)

    def _drop_duplicates(self, i: int) -> None:
        """Two tracks that converged on one face: keep the older id."""
        for a in list(self.live):
            for b in list(self.live):
                if a is b or a not in self.live or b not in self.live or a.track_id > b.track_id:
                    continue
                if i in a.rows and i in b.rows and same_face(a.rows[i][0], b.rows[i][0], 0.5):
                    del b.rows[i]
                    self._end(b)

    def tracks(self) -> list[FaceTrack]:
        for tr in list(self.live):
            self._end(tr)
        out = []
        for tr in sorted(self.done, key=lambda t: t.track_id):
            frames = np.array(sorted(tr.rows), np.int32)
            boxes = np.stack([tr.rows[f][0] for f in frames]).astype(np.float32)
            lms = np.stack([tr.rows[f][1] for f in frames]).astype(np.float32)
            det = np.array([tr.rows[f][2] for f in frames], bool)
            out.append(FaceTrack(tr.track_id, frames, boxes, lms, ears(lms).astype(np.float32), mouth_aperture(lms).astype(np.float32), det))
        # renumber 0..K-1 in order of appearance so ids are stable and readable
        out.sort(key=lambda t: (t.first_frame, t.track_id))
        for k, t in enumerate(out):
            t.track_id = k
        return out


def run_face_pass(
    reader: VideoReader,
    params: FacePassParams | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> FacePass:
    """Decode every frame once (luma only) and track every face. Frames that do not decode are
    listed and end every track (so no signal reads across them); the decoder's error messages
    are kept with the frame whose packet caused them."""
    params = params or FacePassParams()
    t0 = time.perf_counter()
    tracker = FaceTracker(params, reader.width, reader.height, reader.fps)
    n = reader.frame_count
    small = min(reader.width, reader.height) < MIN_FRAME_SIDE
    tick = Throttle(progress, 0.2)
    log = DecodeLog()
    expected = 0
    for i, gray in reader.scan(fmt="gray", log=log):
        if cancel is not None:
            cancel.raise_if_cancelled()
        if i > expected:
            tracker.resume_after_gap(i)
        expected = i + 1
        if not small:
            tracker.step(i, np.ascontiguousarray(gray))
        tick("faces", (i + 1) / n, f"frame {i + 1}/{n}")
    progress("faces", 1.0, f"{n} frames")
    return FacePass(
        frame_count=n,
        fps=reader.fps,
        times_s=reader.index.times_s,
        width=reader.width,
        height=reader.height,
        tracks=tracker.tracks(),
        params=params.to_dict(),
        processing_time=time.perf_counter() - t0,
        search=tracker.search,
        cuts=tracker.cuts,
        undecodable=[[reader.missing[a], reader.missing[b - 1]] for a, b in stretches(np.asarray(reader.missing, int))],
        decode_errors=frame_errors(log, reader.index.pts),
        not_searched=(
            f"the frames are {reader.width}x{reader.height} px, below the {MIN_FRAME_SIDE} px a side "
            "the face detectors need" if small else None
        ),
    )


def frame_errors(log: DecodeLog, pts: np.ndarray) -> list[dict[str, Any]]:
    """The decoder's messages per frame: a packet's pts names its frame (frames are numbered in
    presentation order, as the index is)."""
    at = {int(p): i for i, p in enumerate(pts)}
    out = [{"frame": at.get(p) if p is not None else None, "messages": m} for p, m in log.errors.items()]
    if log.demux_error:
        out.append({"frame": None, "messages": [f"the container cannot be read further: {log.demux_error}"]})
    if log.dropped_messages:
        out.append({"frame": None, "messages": [f"{log.dropped_messages} more decoder messages were not kept (the first {len(log.errors)} frames' are)"]})
    return sorted(out, key=lambda e: (e["frame"] is None, e["frame"] or 0))
