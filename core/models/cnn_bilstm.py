"""CNN + BiLSTM frame-sequence classifier (seed 004, "DeepFake Detection using CV and RNN").

    aligned faces (B, T, 3, 224, 224), T = 16 in the seed
      -> per frame, 4 conv blocks Conv3x3-BN-ReLU-MaxPool2: 3->32->64->128->256
                                                        (B*T, 256, 14, 14)
      -> global average pool                             (B*T, 256)
      -> FC(256 -> 512) -> ReLU                          (B, T, 512)   the seed's "FC 512 features"
      -> BiLSTM(512 -> 256 per direction, 2 layers, dropout 0.3)
      -> final hidden state of both directions            (B, 512)
      -> FC(512 -> 128) -> ReLU -> Dropout(0.5) -> FC(128 -> 2)   (B, 2) logits (real, fake)

3,740,802 parameters at the default sizes (conv blocks 389,376, FC 131,584, BiLSTM 3,153,920,
classifier 65,922). The seed gives the block pattern but not the number of blocks or their
widths; four doubling blocks are Verity's choice and are recorded in the checkpoint metadata.
Trained from scratch (the seed publishes no weights). softmax[:, 1] is P(fake).
"""

from __future__ import annotations

import torch
from torch import nn

CHANNELS = (32, 64, 128, 256)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True), nn.MaxPool2d(2))


class CNNBiLSTM(nn.Module):
    layout = "cnn_bilstm"
    manipulated_index = 1

    def __init__(
        self,
        channels: tuple[int, ...] = CHANNELS,
        feature_dim: int = 512,
        hidden: int = 256,
        layers: int = 2,
        lstm_dropout: float = 0.3,
        head_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        widths = (3, *channels)
        self.features = nn.Sequential(*(_block(a, b) for a, b in zip(widths[:-1], widths[1:])))
        self.fc = nn.Sequential(nn.Linear(channels[-1], feature_dim), nn.ReLU(inplace=True))
        self.lstm = nn.LSTM(feature_dim, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                            dropout=lstm_dropout if layers > 1 else 0.0)
        self.classifier = nn.Sequential(nn.Linear(2 * hidden, 128), nn.ReLU(inplace=True), nn.Dropout(head_dropout), nn.Linear(128, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        f = self.features(x.flatten(0, 1)).mean(dim=(2, 3))  # (B*T, 256)
        f = self.fc(f).view(b, t, -1)  # (B, T, 512)
        _, (h, _) = self.lstm(f)  # h: (layers * 2, B, 256)
        return self.classifier(torch.cat([h[-2], h[-1]], dim=1))  # last layer, forward + backward -> (B, 2)


def cam_layer(model: CNNBiLSTM) -> nn.Module:
    """The layer Grad-CAM reads: the last conv block's ReLU (before its pooling), 14 x 14 at 224 px."""
    return model.features[-1][2]
