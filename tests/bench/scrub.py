"""Scrub latency: time from a seek request to the painted frame, for random seeks.

    python tests/bench/scrub.py [VIDEO] [--seeks 40] [--think-ms 150] [--budget-mb 1024]

Default clip: ../shared/media/fake/dfdc_abofeumbvv_FAKE.mp4 (1920x1080, keyframes at 0 and 163,
so a cold random seek decodes up to 160 frames). Measures, on the real Player widget
(offscreen Qt):
  core      VideoReader.frame(i) at random i (no cache): the cold-seek baseline
  opening   random seeks right after the clip opens, while the loader fills its cache
  warm      random seeks once the idle prefetch has cached the clip (memory-bounded)
  drag      a cursor drag: a request every 16 ms sweeping across the clip
Every painted frame is checked against VideoReader.frame(i) for a sample of seeks.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "media" / "fake" / "dfdc_abofeumbvv_FAKE.mp4"


def stats(ms: list[float]) -> str:
    a = np.asarray(ms)
    return f"n={a.size:3d}  median {np.median(a):7.1f} ms   p95 {np.percentile(a, 95):7.1f} ms   max {a.max():7.1f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--seeks", type=int, default=40)
    ap.add_argument("--think-ms", type=float, default=150.0, help="pause between seeks (an examiner clicking)")
    ap.add_argument("--budget-mb", type=int, default=None, help="frame cache budget (default VERITY_FRAME_CACHE_MB or 1024)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not args.video.is_file():
        print(f"no such clip: {args.video}", file=sys.stderr)
        return 2

    from PySide6.QtWidgets import QApplication

    from core.video import VideoReader
    from desktop.player import Player

    app = QApplication.instance() or QApplication([])
    rng = random.Random(args.seed)
    ref = VideoReader(args.video)
    n = ref.frame_count
    print(f"{args.video.name}: {n} frames {ref.width}x{ref.height}, keyframes at {np.flatnonzero(ref.index.keyframe).tolist()[:12]}")

    cold = []
    for i in rng.sample(range(n), min(12, n)):
        r = VideoReader(args.video, ref.index)  # a fresh reader: no live decoder to reuse
        t = time.perf_counter()
        r.frame(i)
        cold.append((time.perf_counter() - t) * 1000)
        r.close()
    print(f"core      VideoReader.frame, random, no cache:   {stats(cold)}")

    budget = None if args.budget_mb is None else args.budget_mb * 1024 * 1024
    player = Player()
    player.resize(1280, 800)
    player.show()
    painted: list[tuple[int, float]] = []
    player.set_painted_callback(lambda i, ms: painted.append((i, ms)))
    t_open = time.perf_counter()
    player.open(args.video, budget)
    while player.index is None:
        app.processEvents()
        time.sleep(0.001)
    while not painted:
        app.processEvents()
        time.sleep(0.001)
    print(f"open: {1000 * (time.perf_counter() - t_open):.0f} ms to the first painted frame")

    def seek_and_wait(i: int, timeout: float = 20.0) -> float:
        painted.clear()
        player.seek(i)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            app.processEvents()
            if painted and painted[-1][0] == i:
                return painted[-1][1]
            time.sleep(0.0005)
        raise TimeoutError(f"frame {i} was not painted")

    def think() -> None:
        end = time.monotonic() + args.think_ms / 1000
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.002)

    checked = 0

    def run(label: str, count: int) -> list[float]:
        nonlocal checked
        out = []
        for k in range(count):
            i = rng.randrange(n)
            out.append(seek_and_wait(i))
            if k % 8 == 0:
                assert np.array_equal(player.frame_item._array, ref.frame(i)), f"frame {i} not exact"
                checked += 1
            think()
        return out

    opening = run("opening", args.seeks)
    server = player.loader.server
    print(f"opening   random seeks while the cache fills:     {stats(opening)}   (think {args.think_ms:.0f} ms)")
    t = time.monotonic()
    while player.loader.prefetch and time.monotonic() - t < 120:
        app.processEvents()
        time.sleep(0.01)
    cached = sum(server.is_cached(i) for i in range(n))
    print(f"cache: {cached}/{n} frames, {server.cached_bytes / 2**20:.0f} MiB of {server.budget / 2**20:.0f} MiB "
          f"(filled {time.perf_counter() - t_open:.1f} s after opening)")
    warm = run("warm", args.seeks)
    print(f"warm      random seeks, cache filled:             {stats(warm)}")

    # a drag: requests every 16 ms, the loader skips what it cannot keep up with
    painted.clear()
    t0 = time.perf_counter()
    for i in range(0, n, 2):
        player.seek(i)
        end = time.monotonic() + 0.016
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.001)
    drag = [ms for _, ms in painted] or [float("nan")]
    shown = len({i for i, _ in painted})
    seek_and_wait(n - 1)
    print(f"drag      {len(range(0, n, 2))} requests in {1000 * (time.perf_counter() - t0):.0f} ms, {shown} frames painted: {stats(drag)}")
    print(f"exactness: {checked} painted frames compared with VideoReader.frame(i): all equal")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    player.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
