"""Screenshot of the real main window (for the README), under Xvfb with Qt's xcb platform:

    xvfb-run -a -s "-screen 0 1600x1000x24" python packaging/screenshot.py CLIP OUT.png [--frame N]

Creates a throw-away case file, imports the clip, runs the analysis in the worker like an
examiner would, goes to frame N (default: the first blink, else the first flagged segment),
and grabs the screen. The clip is test footage; the picture is for documentation only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("clip", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--frame", type=int, default=None)
    ap.add_argument("--size", default="1600x1000")
    args = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    work = Path(tempfile.mkdtemp(prefix="verity-shot-"))
    os.environ["VERITY_DATA_DIR"] = str(work / "data")
    os.environ["VERITY_CACHE_DIR"] = str(work / "cache")

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from desktop.app import make_app
    from desktop.main_window import MainWindow

    app = make_app([])
    settings = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(db_path=work / "cases.sqlite", settings=settings)
    width, height = (int(v) for v in args.size.split("x"))
    w.setGeometry(0, 0, width, height)
    w.show()

    def pump(seconds: float, until: object = None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            if until is not None and until():  # type: ignore[operator]
                return
            time.sleep(0.01)

    w.create_case("2026-0042", "Demonstration (test footage)", "J. Examiner")
    w.import_evidence(args.clip)
    pump(60, lambda: w.player.index is not None and w.evidence is not None)
    w.run_analysis()
    pump(600, lambda: w.review is not None and not w.tasks)
    if w.last_error:
        print("error:", w.last_error, file=sys.stderr)
    frame = args.frame
    if frame is None and w.review is not None:
        blinks = [b for t in w.review.tracks for b in t.blinks]
        if blinks:
            frame = int(blinks[0]["apex_frame"])
        elif w.review.segments:
            frame = w.review.sorted_segments()[0].start_frame
    w.player.seek(frame or 0)
    pump(10, lambda: w.player.frame_index == (frame or 0))
    w.add_bookmark("blink apex: both eyes closed")
    pump(1.5)
    shot = QApplication.primaryScreen().grabWindow(0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    shot.save(str(args.out), "PNG")
    print(f"{args.out}: frame {w.player.frame_index}; {w.status_label.text()}")
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
