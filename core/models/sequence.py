"""The frame-sequence classifiers by their recorded architecture: `{"arch": "mobilenet_lstm",
"layout": ...}` (seed 001, core/models/mobilenet_lstm.py) or `{"arch": "cnn_bilstm", "params": ...}`
(seed 004, core/models/cnn_bilstm.py)."""

from __future__ import annotations

from typing import Any

from torch import nn

ARCHS = ("mobilenet_lstm", "cnn_bilstm")


def build_sequence_model(architecture: dict[str, Any]) -> nn.Module:
    arch = architecture.get("arch")
    if arch == "mobilenet_lstm":
        from core.models.mobilenet_lstm import build

        return build(architecture.get("layout", "deepfake_detector"))
    if arch == "cnn_bilstm":
        from core.models.cnn_bilstm import CNNBiLSTM

        return CNNBiLSTM(**(architecture.get("params") or {}))
    raise ValueError(f"unknown sequence architecture {arch!r} (known: {', '.join(ARCHS)})")
