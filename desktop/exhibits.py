"""Exhibits: the current frame as PNG (with or without overlays) and a flagged segment as an MP4
clip with the overlays burned in. Both run in a worker thread and return what the audit log
records (file, its sha256, frames, overlays); the evidence file is only read.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PySide6.QtGui import QImage

from core.digest import sha256_file
from core.errors import VerityError
from core.progress import CancelToken, ProgressCallback, no_progress
from core.video.reader import VideoReader
from desktop.overlays import render_frame
from desktop.review import Review


def _qimage_rgb(image: QImage) -> np.ndarray:
    img = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w = img.height(), img.width()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h).reshape(h, img.bytesPerLine())
    return buf[:, : 3 * w].reshape(h, w, 3).copy()


def export_frame_png(
    evidence: Path, frame: int, out: Path, review: Review | None, overlays: tuple[str, ...],
    progress: ProgressCallback = no_progress, cancel: CancelToken | None = None, **_: Any,
) -> dict[str, Any]:
    """Decode the frame afresh (exact), draw the chosen overlays at full resolution, save PNG."""
    progress("export", 0.1, f"frame {frame}")
    with VideoReader(evidence) as reader:
        rgb = reader.frame(frame)
        pts = reader.time_of(frame)
    image = render_frame(rgb, review, frame, overlays)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(out), "PNG"):
        raise VerityError(f"{out}: the PNG could not be written")
    progress("export", 1.0, out.name)
    return {"kind": "frame png", "file": str(out), "sha256": sha256_file(out), "frame": frame, "pts_s": pts, "overlays": list(overlays)}


def export_segment_mp4(
    evidence: Path, start: int, end: int, out: Path, review: Review | None, overlays: tuple[str, ...],
    progress: ProgressCallback = no_progress, cancel: CancelToken | None = None, **_: Any,
) -> dict[str, Any]:
    """Frames start..end (inclusive) re-encoded as H.264 with the overlays burned in."""
    if end < start:
        raise VerityError(f"empty segment {start}..{end}")
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    with VideoReader(evidence) as reader:
        end = min(end, reader.frame_count - 1)
        rate = Fraction(reader.fps).limit_denominator(1001) if reader.fps > 0 else Fraction(25)
        n = end - start + 1
        with av.open(str(part), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.width = reader.width - reader.width % 2
            stream.height = reader.height - reader.height % 2
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "16", "preset": "veryfast"}
            for k, (i, rgb) in enumerate(reader.iter_frames(start, end + 1)):
                if cancel is not None:
                    cancel.raise_if_cancelled()
                burned = _qimage_rgb(render_frame(rgb, review, i, overlays))[: stream.height, : stream.width]
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(burned), format="rgb24")
                frame.pts = k
                frame.time_base = 1 / rate
                for packet in stream.encode(frame):
                    container.mux(packet)
                progress("export", (k + 1) / n, f"frame {i}")
            for packet in stream.encode():
                container.mux(packet)
    part.replace(out)
    return {
        "kind": "segment mp4", "file": str(out), "sha256": sha256_file(out), "start_frame": start, "end_frame": end,
        "frames": n, "fps": float(rate), "overlays": list(overlays), "note": "re-encoded H.264 exhibit, not the original stream",
    }
