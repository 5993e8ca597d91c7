"""Where dlib's model files live: the PyPI package face_recognition_models ships them.

Importing that package fails (it needs pkg_resources), so its folder is found without importing.
"""

from __future__ import annotations

import importlib.util
from functools import cache, lru_cache
from pathlib import Path

from core.errors import VerityError

LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"


@cache
def model_path(name: str) -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise VerityError("the package face_recognition_models is not installed (it ships dlib's landmark model)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise VerityError(f"dlib model file missing: {path}")
    return path


@lru_cache(maxsize=1)
def shape_predictor():  # -> dlib.shape_predictor
    import dlib

    return dlib.shape_predictor(str(model_path(LANDMARKS_68)))


@lru_cache(maxsize=1)
def frontal_detector():  # -> dlib.fhog_object_detector
    import dlib

    return dlib.get_frontal_face_detector()


MMOD_FACE = "mmod_human_face_detector.dat"


@lru_cache(maxsize=1)
def cnn_detector():  # -> dlib.cnn_face_detection_model_v1
    """dlib's MMOD CNN face detector (slower than HOG; finds profile, dark and tightly cropped
    faces the HOG misses). Same model package as the landmark model."""
    import dlib

    return dlib.cnn_face_detection_model_v1(str(model_path(MMOD_FACE)))
