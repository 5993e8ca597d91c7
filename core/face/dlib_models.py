"""Where dlib's model files live: the PyPI package face_recognition_models ships them.

Importing that package fails (it needs pkg_resources), so its folder is found without importing.
The files Verity measures with (the 68-point landmarks and the face-recognition ResNet) are
checked against the sha256 of the files face_recognition_models 0.3.0 ships (the same bytes as
dlib.net's published models) before first use: a different file is refused, never used.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import cache, lru_cache
from pathlib import Path

from core.errors import VerityError

LANDMARKS_68 = "shape_predictor_68_face_landmarks.dat"
FACE_RECOGNITION = "dlib_face_recognition_resnet_model_v1.dat"
# sha256 of the files in face_recognition_models 0.3.0 (dlib.net's models, decompressed)
MODEL_SHA256 = {
    LANDMARKS_68: "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
    FACE_RECOGNITION: "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
}


@cache
def model_path(name: str) -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise VerityError("the package face_recognition_models is not installed (it ships dlib's landmark model)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise VerityError(f"dlib model file missing: {path}")
    expected = MODEL_SHA256.get(name)
    if expected is not None:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != expected:
            raise VerityError(f"dlib model file {path} has sha256 {digest.hexdigest()}, expected {expected}: refused")
    return path


def model_sha256(name: str) -> str:
    """The verified sha256 of a dlib model file (raises VerityError when it does not match)."""
    model_path(name)
    return MODEL_SHA256[name]


@lru_cache(maxsize=1)
def shape_predictor():  # -> dlib.shape_predictor
    import dlib

    return dlib.shape_predictor(str(model_path(LANDMARKS_68)))


@lru_cache(maxsize=1)
def face_recognizer():  # -> dlib.face_recognition_model_v1
    """dlib's face-recognition ResNet: a 128-d descriptor per aligned 150x150 face chip."""
    import dlib

    return dlib.face_recognition_model_v1(str(model_path(FACE_RECOGNITION)))


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
