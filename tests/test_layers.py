"""The layering that lint-imports cannot see: what a module drags in when it is imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _loaded_after(module: str, heavy: tuple[str, ...]) -> list[str]:
    code = f"import sys, {module}; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_detector_contract_imports_without_dlib_cv2_av_or_torch():
    # a new detector module starts with `import core.detectors.base`: it must not cost seconds
    assert _loaded_after("core.detectors.base", ("dlib", "cv2", "av", "torch")) == []


def test_face_pass_data_reads_without_the_tracker():
    assert _loaded_after("core.face.facepass", ("dlib", "cv2", "av", "core.face.tracker")) == []
