"""Streamed SHA-256 of an evidence file (never loads the file whole, never writes it)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from core.progress import CancelToken, ProgressCallback, no_progress

CHUNK = 1 << 20


def sha256_file(
    path: str | os.PathLike[str],
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> str:
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as fh:  # read-only: the evidence is never opened for writing
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if cancel is not None:
                cancel.raise_if_cancelled()
            progress("hash", done / size if size else 1.0, path.name)
    return digest.hexdigest()
