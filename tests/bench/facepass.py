"""Face-pass speed against bare decoding, and peak memory (the issue's speed and memory figures).

Usage:  python tests/bench/facepass.py [VIDEO...] [--all] [--json PATH]

Without VIDEO: the 512x512 clip real/hdtf_katiehill_sadtalker_ref.mp4 and the 1920x1080 clip
fake/dfdc_abofeumbvv_FAKE.mp4 of ../shared/media. Each clip runs in a fresh process: bare decoding
of every frame (luma), then the face pass over every frame; printed per clip: decode fps, face-pass
fps, their ratio, frames with a face and the process's peak RSS. Same as `verity bench`.
--all: every clip of ../shared/media (frames with a face per clip).
Targets (issue 2, 2-core machine): face pass >= 50 fps at 512x512 and >= 25 fps at 1080p.
"""

from __future__ import annotations

import sys

from core.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
