"""Peak memory of a whole analysis against the video's duration (issue 13: bounded memory).

    python tests/bench/memory.py --minutes 10 20 60 [--size 512 1080] [--work DIR] [--json out.json]

For each duration and size a video is made from a real talking head with its audio
(default ../shared/media/real/hdtf_katiehill_sadtalker_ref.mp4, 512x512, 25 fps, 8 s): the clip is
encoded once at the size asked for (512: its own packets; 1080: scaled to 1080x1080 and padded to
1920x1080, libx264 ultrafast, CRF 18) and its packets are looped, audio cut to the video's loop
length so that lips and speech stay in sync, into one file of N minutes (in --work, kept there
for the next run, or a temporary folder). The media are only read; nothing is copied into the
project.

Each video is analysed by `core.pipeline.analyze` (every detector; learned ones without weights
are unavailable and cost nothing) in a fresh child process with an empty face-pass cache. The
child reads its peak RSS (VmHWM) at every stage change and resets it (/proc/self/clear_refs 5),
so each stage gets its own peak: `start` (imports), `hash` (probe and sha256), `faces` (the face
pass), each detector by name, and `rest` (fusion, the analysis dict). The overall peak is the
largest of them (the reset also resets ru_maxrss, so that one cannot be used as well). Where
/proc/self/clear_refs cannot be written, only the overall peak (ru_maxrss) is given.

--facepass-cache DIR: keep the face passes in DIR and reuse them (the face pass then reads from
the cache; the detectors' figures are unchanged): for before/after comparisons of the detectors
without repeating a long face pass.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MEDIA = ROOT.parent / "shared" / "media"
CLIP = "real/hdtf_katiehill_sadtalker_ref.mp4"


# --------------------------------------------------------------------------------------------
# the test video


def _encode_once(src: Path, dst: Path, size: int) -> None:
    """The clip at 1920x1080 (scaled to 1080 high, padded), its audio packets copied."""
    import av
    import numpy as np

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin, ain = inp.streams.video[0], inp.streams.audio[0]
        rate = vin.average_rate or Fraction(25)
        vout = out.add_stream("libx264", rate=rate, options={"preset": "ultrafast", "crf": "18"})
        vout.width, vout.height, vout.pix_fmt = 1920, 1080, "yuv420p"
        aout = out.add_stream_from_template(ain)
        h = size
        w = int(round(vin.codec_context.width * h / vin.codec_context.height)) // 2 * 2
        x0 = (1920 - w) // 2
        canvas = np.zeros((1080, 1920, 3), np.uint8)
        for packet in inp.demux(vin, ain):
            if packet.stream is ain:
                if packet.dts is None:
                    continue
                packet.stream = aout
                out.mux(packet)
                continue
            for frame in packet.decode():
                rgb = frame.reformat(width=w, height=h, format="rgb24").to_ndarray()
                canvas[:, x0:x0 + w] = rgb
                vf = av.VideoFrame.from_ndarray(canvas, format="rgb24")
                vf.pts, vf.time_base = frame.pts, frame.time_base
                for p in vout.encode(vf):
                    out.mux(p)
        for p in vout.encode(None):
            out.mux(p)


def _packets(src: Path) -> tuple[list[tuple[str, bytes, int, int, int, bool]], dict[str, Fraction], float]:
    """Every packet of the first video and audio stream: (kind, data, pts, dts, duration, key), the
    time bases, and the video's length in seconds (frames / frame rate)."""
    import av

    rows = []
    with av.open(str(src)) as inp:
        vin, ain = inp.streams.video[0], inp.streams.audio[0]
        tbs = {"v": vin.time_base, "a": ain.time_base}
        n_video = 0
        for p in inp.demux(vin, ain):
            if p.dts is None or p.size == 0:
                continue
            kind = "v" if p.stream is vin else "a"
            n_video += kind == "v"
            rows.append((kind, bytes(p), int(p.pts), int(p.dts), int(p.duration or 0), bool(p.is_keyframe)))
        rate = vin.average_rate or Fraction(25)
    return rows, tbs, float(n_video / rate)


def make_video(src: Path, minutes: float, size: int, work: Path) -> Path:
    """A video of `minutes` from `src` looped (see the module docstring); reused when present."""
    import av

    dst = work / f"{src.stem}_{size}p_{minutes:g}min.mp4"
    if dst.is_file():
        return dst
    one = src
    if size != 512:
        one = work / f"{src.stem}_{size}p_once.mp4"
        if not one.is_file():
            _encode_once(src, one, size)
    rows, tbs, loop_s = _packets(one)
    loops = int(-(-minutes * 60 // loop_s))
    part = dst.with_suffix(".part.mp4")
    with av.open(str(one)) as inp, av.open(str(part), "w") as out:
        vout = out.add_stream_from_template(inp.streams.video[0])
        aout = out.add_stream_from_template(inp.streams.audio[0])
        streams = {"v": vout, "a": aout}
        shift = {k: int(round(loop_s / tb)) for k, tb in tbs.items()}
        for k in range(loops):
            for kind, data, pts, dts, dur, key in rows:
                if kind == "a" and (pts < 0 or (pts + dur) > shift["a"]):
                    continue  # audio cut to the video's loop length: lips and speech stay in sync
                p = av.Packet(data)
                p.pts, p.dts, p.duration = pts + k * shift[kind], dts + k * shift[kind], dur
                p.time_base = tbs[kind]
                p.is_keyframe = key
                p.stream = streams[kind]
                out.mux(p)
    part.rename(dst)
    return dst


# --------------------------------------------------------------------------------------------
# the child: one analysis, peak RSS per stage


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        m = re.search(rf"^{field}:\s+(\d+)", fh.read(), re.M)
    return int(m.group(1)) if m else 0


class StagePeaks:
    """Peak RSS per stage: read VmHWM at each stage change, then reset it."""

    def __init__(self) -> None:
        self.peaks: dict[str, float] = {}
        self.rss_after: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.stage = "start"
        self.t = time.perf_counter()
        try:
            self._reset()
            self.resettable = True
        except OSError:
            self.resettable = False

    @staticmethod
    def _reset() -> None:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")

    def switch(self, stage: str) -> None:
        if stage == self.stage:
            return
        mb = _status_kb("VmHWM") / 1024
        self.peaks[self.stage] = max(self.peaks.get(self.stage, 0.0), mb)
        self.rss_after[self.stage] = _status_kb("VmRSS") / 1024
        now = time.perf_counter()
        self.seconds[self.stage] = self.seconds.get(self.stage, 0.0) + now - self.t
        self.t = now
        self.stage = stage
        if self.resettable:
            self._reset()

    def progress(self, stage: str, fraction: float, message: str = "") -> None:
        if stage == "detectors":
            stage = "rest" if message == "done" else message
        self.switch(stage)


def child(video: Path, cache: Path, out: Path) -> None:
    peaks = StagePeaks()
    from core.pipeline import AnalysisOptions, analyze

    peaks.switch("hash")
    t0 = time.perf_counter()
    res = analyze(video, AnalysisOptions(work_dir=cache), progress=peaks.progress)
    peaks.switch("end")
    overall = max(peaks.peaks.values()) if peaks.resettable else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    det = {k: {"status": v.get("status"), "prediction": v.get("prediction")} for k, v in res["detectors"].items()}
    out.write_text(json.dumps({
        "peak_rss_mb": round(overall, 1),
        "stage_peak_rss_mb": {k: round(v, 1) for k, v in peaks.peaks.items()} if peaks.resettable else {},
        "stage_rss_after_mb": {k: round(v, 1) for k, v in peaks.rss_after.items()},
        "stage_seconds": {k: round(v, 1) for k, v in peaks.seconds.items()},
        "seconds": round(time.perf_counter() - t0, 1),
        "frames": res["evidence"]["video"]["frame_count"],
        "frames_with_face": res["facepass"]["frames_with_face"],
        "detectors": det,
    }))


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="+", default=[10.0])
    ap.add_argument("--size", type=int, nargs="+", default=[512], choices=[512, 1080])
    ap.add_argument("--media", type=Path, default=MEDIA)
    ap.add_argument("--clip", default=CLIP, help="a real talking head with audio, relative to --media")
    ap.add_argument("--work", type=Path, help="where the test videos are made and kept (default: a temporary folder)")
    ap.add_argument("--facepass-cache", type=Path, help="reuse face passes kept here (default: a fresh cache per run)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", nargs=3, type=Path, metavar=("VIDEO", "CACHE", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        child(*a.child)
        return 0
    tmp = tempfile.TemporaryDirectory(prefix="verity-mem-")
    work = a.work or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in a.size:
        for minutes in a.minutes:
            t0 = time.perf_counter()
            video = make_video(a.media / a.clip, minutes, size, work)
            made = time.perf_counter() - t0
            with tempfile.TemporaryDirectory(prefix="verity-mem-cache-") as cache_tmp:
                cache = a.facepass_cache or Path(cache_tmp)
                out = Path(cache_tmp) / "result.json"
                env = {**os.environ, "HF_HUB_OFFLINE": "1"}
                cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(video), str(cache), str(out)]
                rc = subprocess.run(cmd, env=env).returncode
                if rc != 0:
                    print(f"{video.name}: the analysis failed (exit {rc})", file=sys.stderr)
                    return 1
                r = json.loads(out.read_text())
            r.update(minutes=minutes, size=size, video=video.name, video_mb=round(video.stat().st_size / 2**20, 1),
                     made_s=round(made, 1), facepass_reused=a.facepass_cache is not None)
            rows.append(r)
            stages = ", ".join(f"{k} {v:.0f}" for k, v in r["stage_peak_rss_mb"].items())
            print(f"{size}p {minutes:g} min: {r['frames']} frames ({r['frames_with_face']} with a face), "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB in {r['seconds']:.0f} s; per stage (MB): {stages}", flush=True)
    print()
    print("| size | minutes | frames | peak RSS (MB) | face pass | av_sync | other detectors (max) | analysis s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        st = r["stage_peak_rss_mb"]
        others = max((v for k, v in st.items() if k in r["detectors"] and k != "av_sync"), default=float("nan"))
        print(f"| {r['size']} | {r['minutes']:g} | {r['frames']} | {r['peak_rss_mb']:.0f} | {st.get('faces', float('nan')):.0f} | "
              f"{st.get('av_sync', float('nan')):.0f} | {others:.0f} | {r['seconds']:.0f} |")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
