"""What each method does, where it comes from and where it fails: the report's "Methods" section.

Detectors not listed here are described from their class title and docstring, with a note that
no reviewed description exists yet.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    title: str
    summary: str
    references: tuple[str, ...]
    limits: tuple[str, ...]


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

METHODS: dict[str, Method] = {
    "blink_physiology": Method(
        title="Blink physiology",
        summary=(
            "Blink count, rate, duration, inter-blink intervals, completeness and left/right asymmetry per face track, "
            "compared with published human norms; anomalous blinks are flagged as segments. How far the lids close "
            "(completeness, asymmetry) is judged only on eyes resolved well enough to measure it: at least 30 px wide, "
            "eye-region edge blur at most 1.5 px and open-eye EAR noise at most 0.1; elsewhere it is reported as a "
            "measurement only."
        ),
        references=(
            "Bentivoglio A. R. et al. (1997). Analysis of blink rate patterns in normal subjects. Movement Disorders 12:1028-1034.",
            "Doughty M. J. (2001). Consideration of three types of spontaneous eyeblink activity in normal humans. Optometry and Vision Science 78(10).",
        ),
        limits=(
            "Blink rate varies widely between people and with activity (reading, conversation, fatigue); short clips give few blinks.",
            "A rate or duration outside the norms is an observation, not proof of manipulation.",
            "On small, blurred or compressed eyes dlib's landmarks do not follow the lids all the way down, so genuine "
            "blinks measure shallow; on the development media, genuine FaceForensics++ c40 and VoxCeleb2 clips measured "
            "as shallow as generated ones, which is why depth is not judged there.",
        ),
    ),
    "landmark_motion": Method(
        title="Landmark motion and micro-expression coherence",
        summary=(
            "Landmarks normalised to a canonical face; per-region velocity and jitter, frame-to-frame flicker not explained "
            "by head motion, and coherence between regions (e.g. a moving mouth with a rigid jaw)."
        ),
        references=("Measurements defined in Verity's documentation (docs/); scores are irregularity measures, not calibrated probabilities.",),
        limits=("Compression, low resolution and landmark noise raise jitter in original recordings too.",),
    ),
    "av_sync": Method(
        title="Audio-visual synchronisation (weight-free)",
        summary=(
            "Cross-correlation of the mouth aperture with the speech envelope over +/-15 frames, globally and in sliding "
            "windows, giving an offset (frames, ms) and a confidence in the spirit of SyncNet, with a chance level from "
            "the same mouth against time-rotated audio. An offset of 160 ms or more is read as inconsistent only on robust "
            "evidence: at least 2 s of speech with a tracked mouth, p <= 0.01 against 400 audio rotations, and the offset "
            "lag beating every in-sync lag (within 2 frames) by 2.5 standard errors over time, since the rhythm of speech "
            "gives in-sync footage side lobes 4-6 frames away. A window is flagged only on evidence against the clip's own "
            "sync (the clip's offset, followed in that window; a local offset over at least 8 s; or lips that stop "
            "following the speech), with the chance of any flag on an in-sync clip held near 5 %; a window that can show "
            "nothing either way is reported as not measurable, not flagged."
        ),
        references=("Chung J. S., Zisserman A. (2016). Out of time: automated lip sync in the wild. ACCV Workshops.",),
        limits=(
            "Needs speech and a visible mouth; silence, music, off-screen speakers or dubbing give no reliable reading.",
            "Containers may carry a constant audio offset from editing or capture that is not manipulation.",
            "Short clips (about 2 s of speech or less) are measured but not read as inconsistent; a lip-sync fake made in "
            "sync reads consistent in timing only.",
        ),
    ),
    "lipfd": Method(
        title="LipFD lip-sync forgery detector (learned)",
        summary=(
            "A CLIP image encoder and ResNet-50 regional branch score windows of frames together with the mel spectrogram "
            "of the audio; window scores are averaged into a probability of manipulation."
        ),
        references=(
            "Liu W. et al. (2024). Lips Are Lying: Spotting the Temporal Inconsistency between Audio and Visual in Lip-Syncing DeepFakes. NeurIPS.",
        ),
        limits=(
            "A learned model: its accuracy holds for data like its training data; footage from other sources may be misjudged.",
            "Only counts when its weights are present and their sha256 verified; otherwise reported unavailable.",
        ),
    ),
    "eyeblink_cnn_lstm": Method(
        title="EyeBlink CNN-LSTM (learned)",
        summary="Eye crops of each face track are scored over time by a CNN-LSTM for the absence or abnormality of blinking.",
        references=("Li Y., Chang M.-C., Lyu S. (2018). In Ictu Oculi: Exposing AI Created Fake Videos by Detecting Eye Blinking. IEEE WIFS.",),
        limits=(
            "Modern generators reproduce blinking; a normal blink pattern does not show a video is original.",
            "Only counts when its weights are present and their sha256 verified; otherwise reported unavailable.",
        ),
    ),
}

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


def identity_method() -> Method:
    """identity_reference, with Verity's own calibration (n and ranges) read from its data file."""
    from core.detectors.identity_reference import calibration
    from core.face.identity import IdentityParams

    p = IdentityParams()
    s = calibration().get("summary") or {}
    same, diff = s.get("same_person") or {}, s.get("different_person") or {}
    swaps = (s.get("categories") or {}).get("face swap vs the claimed person's original") or {}
    if same.get("n") and diff.get("n"):
        calib = (
            f"Verity's own calibration on its development media (FaceForensics++ c40, VoxCeleb2, GRID, HDTF and other "
            f"clips): same person in different recordings or in the two halves of one, n = {same['n']} pairs, distances "
            f"{same['min']:.2f}-{same['max']:.2f}; different persons, n = {diff['n']} pairs, {diff['min']:.2f}-{diff['max']:.2f}"
            + (f"; FaceForensics++ face swaps against the original of the person shown, n = {swaps['distance']['n']}, "
               f"{swaps['distance']['min']:.2f}-{swaps['distance']['max']:.2f}" if (swaps.get("distance") or {}).get("n") else "")
            + ". The thresholds were chosen on this set (docs/identity.md): these figures are not independent error rates."
        )
    else:
        calib = "Verity's calibration data file is not installed: the thresholds are stated but their calibration cannot be cited."
    return Method(
        title="Identity against known exemplars (questioned vs known, dlib face recognition)",
        summary=(
            "Each face track is described by dlib's face-recognition network (a ResNet giving a 128-d descriptor of the face "
            "aligned from its 68 landmarks) on up to "
            f"{p.max_frames} frames, evenly spaced over the frames where the face is frontal (yaw proxy within {p.max_yaw}), "
            f"large enough (outer eye corners at least {p.min_eye_span_px:.0f} px apart), inside the picture and sharp (edge blur "
            f"of the aligned face at most {p.max_chip_blur_px} px); a robust mean of those descriptors is compared with the "
            "robust mean of the named person's exemplars (reference footage described the same way, or photos). A distance "
            f"of at most {p.consistent_max} reads consistent with that person, at least {p.inconsistent_min} inconsistent, "
            f"between them inconclusive; fewer than {p.min_frames} usable frames on either side, or a face whose two halves "
            f"differ by more than {p.max_halves_distance}, give no reading. Each used frame's distance is plotted, and runs "
            f"of frames beyond {p.departure} are flagged. Identity is all this checks: a reenactment or lip-sync keeps the "
            "identity and reads consistent. " + calib
        ),
        references=(
            "King D. E. (2009). Dlib-ml: A Machine Learning Toolkit. Journal of Machine Learning Research 10:1755-1758; "
            "dlib_face_recognition_resnet_model_v1 (dlib 19.3, 2017): 99.38 % on the LFW benchmark, same-person threshold 0.6 "
            "(dlib's model documentation).",
            "He K., Zhang X., Ren S., Sun J. (2016). Deep residual learning for image recognition. CVPR.",
            "Huang G. B., Ramesh M., Berg T., Learned-Miller E. (2007). Labeled Faces in the Wild. UMass Amherst TR 07-49.",
            "Rössler A. et al. (2019). FaceForensics++: Learning to detect manipulated facial images. ICCV.",
        ),
        limits=(
            "Face recognition errs between similar-looking people; on the development media two different young men measured "
            "0.46 apart, and dlib is known to be less accurate for some groups under-represented in its training data.",
            "Turned, small, blurred, occluded or heavily compressed faces give unreliable descriptors and are left out, so "
            "such footage often gives no reading.",
            "Reference footage from another day, age, make-up or lighting lies farther from the questioned face than the same "
            "recording does; a reading is only as good as the exemplars and the examiner's identification of the person.",
            "A face swap whose source person resembles the target, or a swap that keeps much of the target's face, can stay "
            "within the same-person range.",
        ),
    )


def method_for(name: str) -> Method:
    if name == "identity_reference":
        return identity_method()
    if name in METHODS:
        return METHODS[name]
    try:
        from core import detectors

        cls = detectors.available().get(name)
    except Exception:  # noqa: BLE001 - a broken detector module must not stop a report
        cls = None
    doc = inspect.getdoc(cls) if cls is not None else None
    return Method(
        title=(getattr(cls, "title", "") or name) if cls is not None else name,
        summary=(doc or "No description available.").split("\n\n")[0].replace("\n", " "),
        references=(),
        limits=("No reviewed description of this method's limits is recorded in this version of the software.",),
    )
