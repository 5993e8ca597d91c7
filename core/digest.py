"""SHA-256, written once: of a file (streamed, never loaded whole, never written) and of a
parameter set (the key that names derived data such as a stored face pass or a feature cache)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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


def params_key(params: Mapping[str, Any], length: int = 12) -> str:
    """Hex prefix of the sha256 of the parameters as sorted JSON. The encoding is fixed: stored
    face passes and feature caches are found again by it."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:length]
