"""EyeBlink-CNN-LSTM (model card 000): frozen Xception per frame, LSTM over a blink sequence.

    eye crops (B, T, 3, H, W)
      -> Xception (timm `legacy_xception`, features_only, last map, frozen)  (B*T, 2048, h, w)
      -> global average pool                                                  (B, T, 2048)
      -> LSTM(2048 -> 128, 1 layer, forward only, batch_first), last hidden   (B, 128)
      -> Dropout(0.3) -> Linear(128 -> 1)                                     (B,) logits

Logits in training (BCEWithLogits), sigmoid at inference. As in the card, sigmoid(logit) is the
probability that the sequence is REAL (1 = real). Verity reports P(manipulated); the detector
(core/detectors/eyeblink_cnn_lstm.py) inverts it, once, and nothing here does.

The backbone is split from the head so training can cache backbone features once and train only
the head (1,115,265 parameters: LSTM 1,115,136 + Linear 129).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

BACKBONE_ARCH = "legacy_xception"
FEATURE_DIM = 2048
HIDDEN = 128
DROPOUT = 0.3


class XceptionFeatures(nn.Module):
    """Frozen ImageNet Xception: images (N, 3, H, W) -> pooled features (N, 2048)."""

    def __init__(self, weights: str | os.PathLike[str] | dict[str, torch.Tensor] | None = None) -> None:
        """`weights`: None (random init, for tests and shapes only), a verified local file, or a
        state dict already loaded and verified by core.weights. Never downloads anything."""
        super().__init__()
        import timm

        kwargs: dict[str, Any] = {"features_only": True, "out_indices": (4,)}
        if isinstance(weights, dict):
            kwargs.update(pretrained=True, pretrained_cfg_overlay={"state_dict": weights})
        elif weights is not None:
            # timm reads the local file itself (safetensors, or torch.load weights_only=True);
            # the caller has verified its sha256.
            kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": os.fspath(weights)})
        else:
            kwargs.update(pretrained=False)
        self.body = timm.create_model(BACKBONE_ARCH, **kwargs)
        self.data_config = timm.data.resolve_data_config({}, model=self.body)
        for p in self.body.parameters():
            p.requires_grad_(False)
        self.body.eval()

    def train(self, mode: bool = True) -> XceptionFeatures:
        # frozen: batch-norm statistics stay those of ImageNet whatever the caller does
        super().train(False)
        return self

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        fmap = self.body(images)[-1]  # (N, 2048, h, w)
        return fmap.mean(dim=(-2, -1))  # (N, 2048)


class EyeBlinkHead(nn.Module):
    """The trainable part: feature sequences (B, T, 2048) -> logits (B,) with sigmoid = P(real)."""

    def __init__(self, feature_dim: int = FEATURE_DIM, hidden: int = HIDDEN, dropout: float = DROPOUT) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size=feature_dim, hidden_size=hidden, num_layers=1, bidirectional=False, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden, 1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        _, (h_n, _) = self.lstm(feats)  # h_n: (1, B, 128)
        return self.fc(self.dropout(h_n[-1])).squeeze(-1)  # (B,)

    @torch.no_grad()
    def p_real(self, feats: torch.Tensor) -> torch.Tensor:
        """Card convention: probability that each sequence is REAL, (B,)."""
        return torch.sigmoid(self(feats))


class EyeBlinkCNNLSTM(nn.Module):
    """Backbone + head end to end: (B, T, 3, H, W) -> logits (B,)."""

    def __init__(self, backbone: XceptionFeatures, head: EyeBlinkHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        b, t = clips.shape[:2]
        feats = self.backbone(clips.flatten(0, 1)).view(b, t, -1)  # (B, T, 2048)
        return self.head(feats)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
