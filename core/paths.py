"""Per-user folders (platformdirs). Environment variables override them for scripts and tests."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "verity"


def data_dir() -> Path:
    return Path(os.environ.get("VERITY_DATA_DIR") or platformdirs.user_data_dir(APP))


def cache_dir() -> Path:
    """Face passes and other derived data that can be recomputed from the evidence."""
    return Path(os.environ.get("VERITY_CACHE_DIR") or platformdirs.user_cache_dir(APP))
