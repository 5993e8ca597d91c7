"""Faces: dlib detection (`detect`), tracking across frames (`tracker`), and the stored face pass
(`facepass`: numpy only, what detectors and the GUI read)."""

from core.face.facepass import FacePass, FacePassParams, FaceTrack

__all__ = ["FacePass", "FacePassParams", "FaceTrack"]
