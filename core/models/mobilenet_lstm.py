"""MobileNetV2 + LSTM frame-sequence classifier (seed 001), in both of its upstream layouts.

The seed's public code (GitHub AbhishekX04/Deepfake-detection) defines two networks, and an
examiner may hold weights for either. Each class here reproduces one layout's state-dict key
names and forward pass, so an upstream state dict loads with `strict=True`:

`cnn_lstm_detector` (upstream `cnn_lstm.py`, weights `cnn_lstm_detector.pt`, a bare state dict):

    frames (B, T, 3, 224, 224)
      -> MobileNetV2 `features` per frame   `cnn.*`              (B*T, 1280, 7, 7)
      -> spatial mean                                             (B, T, 1280)
      -> BiLSTM(1280 -> 256, 1 layer)        `lstm.*`             (B, T, 512)
      -> output of the last time step                             (B, 512)
      -> Linear(512 -> 1)                    `classifier.*`       (B, 1)  sigmoid = P(fake)
    5,374,209 parameters (features 2,223,872, BiLSTM 3,149,824, Linear 513)

`deepfake_detector` (upstream `scripts/train.py` `DeepfakeDetector`, saved as `best_model.pt`):

    frames (B, T, 3, 224, 224)
      -> MobileNetV2 `features` per frame   `cnn.features.*`     (B*T, 1280, 7, 7)
      -> AdaptiveAvgPool2d(1)                `cnn.pool` (no weights) (B, T, 1280)
      -> LSTM(1280 -> 256, 1 layer), last hidden state `lstm.*`  (B, 256)
      -> Linear(256 -> 128) -> ReLU -> Dropout(0.3) -> Linear(128 -> 2)  `classifier.{0,3}.*`
                                                                  (B, 2)  softmax[:, 1] = P(fake)
    3,831,938 parameters (features 2,223,872, LSTM 1,574,912, head 33,154)

Both return logits; `p_manipulated` turns them into Verity's score (1 = manipulated), which for
both upstream conventions is already the fake probability: nothing is inverted.
The MobileNetV2 is torchvision's, built without weights (no download); ImageNet weights, when
the examiner has them, are copied in with `load_imagenet_features`.
"""

from __future__ import annotations

import torch
from torch import nn

FEATURE_DIM = 1280  # MobileNetV2 last feature map channels
HIDDEN = 256
LAYOUTS = ("cnn_lstm_detector", "deepfake_detector")


def mobilenet_v2_features() -> nn.Sequential:
    """torchvision's MobileNetV2 `features` (19 blocks), randomly initialised."""
    from torchvision.models import mobilenet_v2

    return mobilenet_v2(weights=None).features


def load_imagenet_features(features: nn.Sequential, state_dict: dict[str, torch.Tensor]) -> int:
    """Copy torchvision ImageNet MobileNetV2 weights (`features.*` keys) into `features`, strictly;
    returns the number of tensors copied. The 1000-class classifier is not used."""
    own = {k[len("features."):]: v for k, v in state_dict.items() if k.startswith("features.")}
    features.load_state_dict(own, strict=True)
    return len(own)


def p_manipulated(logits: torch.Tensor) -> torch.Tensor:
    """(B,) probability of manipulation from (B, 1) sigmoid logits or (B, 2) class logits."""
    if logits.shape[-1] == 1:
        return torch.sigmoid(logits[..., 0])
    return torch.softmax(logits, dim=-1)[..., 1]


class _PooledFeatures(nn.Module):
    """MobileNetV2 features + global pool, named as upstream's `CNNFeatureExtractor`."""

    def __init__(self) -> None:
        super().__init__()
        self.features = mobilenet_v2_features()
        self.pool = nn.AdaptiveAvgPool2d((1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 3, H, W) -> (N, 1280)
        return self.pool(self.features(x)).flatten(1)


class MobileNetBiLSTM(nn.Module):
    """Layout `cnn_lstm_detector`: (B, T, 3, H, W) -> (B, 1) logit."""

    layout = "cnn_lstm_detector"
    manipulated_index = 0  # the single logit is the fake logit

    def __init__(self) -> None:
        super().__init__()
        self.cnn = mobilenet_v2_features()
        self.lstm = nn.LSTM(FEATURE_DIM, HIDDEN, num_layers=1, batch_first=True, bidirectional=True)
        self.classifier = nn.Linear(2 * HIDDEN, 1)

    @property
    def features(self) -> nn.Sequential:
        return self.cnn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        f = self.cnn(x.flatten(0, 1)).mean(dim=(2, 3)).view(b, t, FEATURE_DIM)  # (B, T, 1280)
        out, _ = self.lstm(f)  # (B, T, 512)
        return self.classifier(out[:, -1])  # (B, 1): last step, as upstream


class MobileNetLSTM(nn.Module):
    """Layout `deepfake_detector`: (B, T, 3, H, W) -> (B, 2) logits (real, fake)."""

    layout = "deepfake_detector"
    manipulated_index = 1

    def __init__(self, dropout: float = 0.3) -> None:
        super().__init__()
        self.cnn = _PooledFeatures()
        self.lstm = nn.LSTM(FEATURE_DIM, HIDDEN, num_layers=1, batch_first=True)
        self.classifier = nn.Sequential(nn.Linear(HIDDEN, 128), nn.ReLU(), nn.Dropout(dropout), nn.Linear(128, 2))

    @property
    def features(self) -> nn.Sequential:
        return self.cnn.features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        f = self.cnn(x.flatten(0, 1)).view(b, t, FEATURE_DIM)  # (B, T, 1280)
        _, (h, _) = self.lstm(f)  # h: (1, B, 256)
        return self.classifier(h[-1])  # (B, 2)


def build(layout: str = "deepfake_detector") -> MobileNetBiLSTM | MobileNetLSTM:
    if layout == "cnn_lstm_detector":
        return MobileNetBiLSTM()
    if layout == "deepfake_detector":
        return MobileNetLSTM()
    raise ValueError(f"unknown mobilenet_lstm layout {layout!r} (known: {', '.join(LAYOUTS)})")


def cam_layer(model: MobileNetBiLSTM | MobileNetLSTM) -> nn.Module:
    """The layer Grad-CAM reads: the last MobileNetV2 block (1280 x 7 x 7 at 224 px)."""
    return model.features[-1]
