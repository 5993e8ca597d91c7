"""Verity engine: evidence, video, faces, signals, detectors. Never imports Qt."""

import os

# Offline look-ups of the Hugging Face hub stall for a minute on an air-gapped machine;
# set this before anything imports torch, timm or open_clip.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

__version__ = "0.1.0"
SOFTWARE_NAME = "Verity"
