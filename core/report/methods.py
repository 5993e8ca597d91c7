"""What each method does, where it comes from and where it fails: the report's "Methods" section.

Each detector carries its own text (`Detector.method`, beside the code it describes); here are the
face pass and fusion, which are not detectors. A detector without a text (or one no longer
registered, in a stored run) is described from its title and docstring, with a note that no
reviewed description exists.
"""

from __future__ import annotations

import inspect

from core.detectors.base import Method

FACE_PASS = Method(
    title="Face tracking, 68 facial landmarks and eye aspect ratio (EAR)",
    summary=(
        "Every decoded frame is read once in decoder order; faces are detected with dlib's HOG detector (and its MMOD CNN "
        "detector to confirm faces and to search for small, dark or turned ones), followed across frames, and 68 facial "
        "landmarks are placed on each face in every frame. The eye aspect ratio (EAR) of each eye and the "
        "inner-lip aperture are computed from the landmarks. Blinks are EAR dips below a threshold (by default a fraction "
        "of the track's own open-eye level; optionally the fixed 0.2 of the EyeBlink model card)."
    ),
    references=(
        "Dalal N., Triggs B. (2005). Histograms of oriented gradients for human detection. CVPR.",
        "King D. E. (2015). Max-margin object detection. arXiv:1502.00046.",
        "Kazemi V., Sullivan J. (2014). One millisecond face alignment with an ensemble of regression trees. CVPR.",
        "Soukupová T., Čech J. (2016). Real-time eye blink detection using facial landmarks. 21st Computer Vision Winter Workshop.",
    ),
    limits=(
        "Small, dark, blurred, profile or occluded faces may be missed or mis-landmarked; frames without a tracked face give no measurement.",
        "EAR depends on head pose and eye shape; glasses and downward gaze lower it without a blink.",
    ),
)


FUSION = Method(
    title="Fusion into a finding",
    summary=(
        "The available detectors' readings are combined by explicit, conservative rules into one of three values: "
        "consistent with an original, inconsistent with an original, or inconclusive. Disagreement or thin evidence "
        "gives inconclusive. Learned detectors count only with verified weights. A detector's inconsistent reading "
        "decides the finding only where an independent validation record measured its false-inconsistent rate on "
        "genuine footage to be at most 5 % (95 % upper bound); otherwise it is reported as an observation and the "
        "finding stays inconclusive."
    ),
    references=("SWGDE Best Practices for Image Authentication (three-value conclusion scale), Scientific Working Group on Digital Evidence.",),
    limits=("The finding is no stronger than the detectors it combines; a manipulation none of them measures is not found.",),
)


def method_for(name: str) -> Method:
    try:
        from core import detectors

        cls = detectors.available().get(name)
    except Exception:  # noqa: BLE001 - a broken detector module must not stop a report
        cls = None
    if cls is not None and cls.method is not None:
        return cls.method
    doc = inspect.getdoc(cls) if cls is not None else None
    return Method(
        title=(getattr(cls, "title", "") or name) if cls is not None else name,
        summary=(doc or "No description available.").split("\n\n")[0].replace("\n", " "),
        references=(),
        limits=("No reviewed description of this method's limits is recorded in this version of the software.",),
    )
