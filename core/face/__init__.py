"""Faces: dlib detection, 68-point landmarks, tracking across frames, the stored face pass."""

from core.face.facepass import FacePass, FacePassParams, FaceTrack, run_face_pass

__all__ = ["FacePass", "FacePassParams", "FaceTrack", "run_face_pass"]
