"""The frame-sequence classifiers: shapes, parameter counts, the two upstream seed-001 layouts
loading strictly from state dicts built to upstream's key names, and safe loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from core.detectors import sequence_model as sc
from core.models.cnn_bilstm import CNNBiLSTM
from core.models.mobilenet_lstm import MobileNetBiLSTM, MobileNetLSTM, mobilenet_v2_features
from core.weights import WeightsError


def lstm_params(i: int, h: int, layers: int = 1, bidirectional: bool = False) -> int:
    """W_ih (4h x in), W_hh (4h x h), b_ih and b_hh (4h each) per layer and direction."""
    d = 2 if bidirectional else 1
    return sum(d * (4 * h * ((i if k == 0 else d * h) + h) + 8 * h) for k in range(layers))


def count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


MOBILENET_FEATURES = 2_223_872  # torchvision mobilenet_v2: 3,504,872 minus its Linear(1280, 1000)


def test_mobilenet_features_count_matches_torchvision() -> None:
    from torchvision.models import mobilenet_v2

    assert count(mobilenet_v2_features()) == count(mobilenet_v2(weights=None)) - (1280 * 1000 + 1000) == MOBILENET_FEATURES


@pytest.mark.parametrize(
    "model, logits, expected",
    [
        (MobileNetBiLSTM, 1, MOBILENET_FEATURES + lstm_params(1280, 256, bidirectional=True) + 512 + 1),
        (MobileNetLSTM, 2, MOBILENET_FEATURES + lstm_params(1280, 256) + (256 * 128 + 128) + (128 * 2 + 2)),
        (CNNBiLSTM, 2, sum(9 * a * b + b + 2 * b for a, b in [(3, 32), (32, 64), (64, 128), (128, 256)])
         + (256 * 512 + 512) + lstm_params(512, 256, layers=2, bidirectional=True) + (512 * 128 + 128) + (128 * 2 + 2)),
    ],
)
def test_shapes_and_parameter_counts(model: type[nn.Module], logits: int, expected: int) -> None:
    m = model().eval()
    assert count(m) == expected
    with torch.no_grad():
        out = m(torch.rand(2, 3, 3, 64, 64))  # (B, T, 3, H, W): any size the CNN can pool
    assert out.shape == (2, logits)
    p = sc.p_manipulated(out)
    assert p.shape == (2,) and bool(((p >= 0) & (p <= 1)).all())


def test_parameter_counts_as_documented() -> None:
    assert count(MobileNetBiLSTM()) == 5_374_209 and count(MobileNetLSTM()) == 3_831_938 and count(CNNBiLSTM()) == 3_740_802


# ----------------------------------------------------------------------------------------------
# upstream layouts: reference modules named as upstream's code names them (attribute names are
# what a state dict's keys are made of), written here independently of core/models


class UpstreamCNNLSTM(nn.Module):
    """Upstream cnn_lstm.py CNNLSTMDetector's structure: cnn / lstm / classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn = mobilenet_v2_features()
        self.lstm = nn.LSTM(input_size=1280, hidden_size=256, num_layers=1, batch_first=True, bidirectional=True)
        self.classifier = nn.Linear(512, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        f = self.cnn(x.reshape(b * t, c, h, w)).mean(dim=[2, 3]).reshape(b, t, -1)
        out, _ = self.lstm(f)
        return self.classifier(out[:, -1])


class UpstreamExtractor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = mobilenet_v2_features()
        self.pool = nn.AdaptiveAvgPool2d((1, 1))


class UpstreamDeepfakeDetector(nn.Module):
    """Upstream scripts/train.py DeepfakeDetector's structure: cnn.features / cnn.pool / lstm / classifier.{0,3}."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn = UpstreamExtractor()
        self.lstm = nn.LSTM(input_size=1280, hidden_size=256, num_layers=1, batch_first=True)
        self.classifier = nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = torch.stack([self.cnn.pool(self.cnn.features(x[:, t])).flatten(1) for t in range(x.shape[1])], dim=1)
        _, (h, _) = self.lstm(feats)
        return self.classifier(h[-1])


@pytest.mark.parametrize(
    "reference, ours, layout, keys",
    [
        (UpstreamCNNLSTM, MobileNetBiLSTM, "cnn_lstm_detector",
         ["cnn.0.0.weight", "cnn.18.1.running_var", "lstm.weight_ih_l0_reverse", "classifier.weight"]),
        (UpstreamDeepfakeDetector, MobileNetLSTM, "deepfake_detector",
         ["cnn.features.0.0.weight", "cnn.features.18.1.num_batches_tracked", "lstm.weight_hh_l0", "classifier.0.weight", "classifier.3.bias"]),
    ],
)
def test_upstream_layout_loads_strictly_and_computes_the_same(reference: type[nn.Module], ours: type[nn.Module], layout: str,
                                                             keys: list[str], tmp_path: Path) -> None:
    torch.manual_seed(1)
    ref = reference().eval()
    sd = ref.state_dict()
    assert set(keys) <= set(sd)
    model = ours().eval()
    model.load_state_dict(sd, strict=True)  # every key present, none extra, same shapes
    x = torch.rand(1, 3, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x), atol=1e-5)
    assert sc.upstream_layout(sd) == layout
    # through the detector's loader: a bare torch.save state dict, weights-only, layout recognised
    path = tmp_path / "upstream.pt"
    torch.save(sd, path)
    loaded = sc.load_model(path=path, device="cpu")
    assert loaded.architecture == {"arch": "mobilenet_lstm", "layout": layout}
    assert loaded.prep.input == "frame" and loaded.prep.sequence_length == 30
    assert loaded.prep.normalisation == ("0_1" if layout == "cnn_lstm_detector" else "imagenet")
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), ref(x), atol=1e-5)


def test_a_state_dict_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    sd = UpstreamDeepfakeDetector().state_dict()
    sd.pop("classifier.0.bias")
    path = tmp_path / "broken.pt"
    torch.save(sd, path)
    with pytest.raises(WeightsError, match="does not fit"):
        sc.load_model(path=path, device="cpu")
    torch.save({"foo.weight": torch.ones(1)}, path)
    with pytest.raises(WeightsError, match="unknown key names"):
        sc.load_model(path=path, device="cpu")


def test_sha256_mismatch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "upstream.pt"
    torch.save(UpstreamCNNLSTM().state_dict(), path)
    with pytest.raises(WeightsError, match="does not match"):
        sc.load_model(path=path, sha256="0" * 64, device="cpu")


class Payload:
    """Unpickling this creates `marker`: stands for any code a malicious checkpoint could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (open, (str(self.marker), "w"))


def test_pickle_payload_in_a_sequence_checkpoint_is_refused(tmp_path: Path) -> None:
    from core.train.seq import _load_resume, _save_resume

    marker = tmp_path / "payload-ran"
    sd = dict(UpstreamCNNLSTM().state_dict())
    sd["extra"] = Payload(marker)
    path = tmp_path / "cnn_lstm_detector.pt"
    torch.save(sd, path)
    with pytest.raises(WeightsError, match="refused"):
        sc.load_model(path=path, device="cpu")
    assert not marker.exists(), "the payload ran during a refused load"
    # a resume checkpoint carrying one is refused the same way (its sha256 side file matches)
    resume = tmp_path / "checkpoint_last.pt"
    _save_resume(resume, {"epoch": 0, "extra": Payload(marker)})
    assert not marker.exists()
    with pytest.raises(WeightsError, match="refused"):
        _load_resume(resume)
    assert not marker.exists()
