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
    "vivit_blink": Method(
        title="ViViT blink detector (learned second opinion beside EAR)",
        summary=(
            "The eye region of each face track (placed from the eye-corner landmarks, steadied over time) is cut into short "
            "windows of frames, and a video transformer (ViViT) gives each window the probability that the eyes are closed at "
            "its centre. Runs of frames at or above 0.5 are blinks. They are compared with the EAR blinks: blinks found by one "
            "method and not the other are listed for the examiner. Gives no manipulation score."
        ),
        references=(
            "Arnab A. et al. (2021). ViViT: A Video Vision Transformer. ICCV.",
            "Hu G., Xiao Y., Cao Z. et al. (2020). Towards real-time eye blink detection in the wild: dataset, theory and practices (HUST-LEBW). IEEE Transactions on Information Forensics and Security 15.",
        ),
        limits=(
            "A learned model: its accuracy holds for data like its training data; the measured accuracy is in docs/vivit.md and is below EAR's on clean footage here.",
            "Needs the face pass to locate the eyes; where no face is tracked it sees nothing.",
            "Only runs when its weights are present and their sha256 verified; otherwise reported unavailable.",
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


def method_for(name: str) -> Method:
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
