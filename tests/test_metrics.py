import numpy as np

from core.train.metrics import binary_metrics, save_curves


def test_metrics_direction_and_rates(tmp_path) -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.6, 0.3, 0.9, 0.8, 0.4, 0.7])
    m = binary_metrics(y, s)
    assert m["confusion_matrix"] == {"tn": 3, "fp": 1, "fn": 1, "tp": 3}
    assert m["fpr"] == 0.25 and m["fnr"] == 0.25  # one real called fake, one fake called real
    assert m["acc"] == 0.75
    assert 0.8 < m["roc_auc"] < 1.0
    assert len(save_curves(y, s, tmp_path, "t")) == 2


def test_one_class_gives_no_auc() -> None:
    m = binary_metrics([1, 1], [0.2, 0.9])
    assert m["roc_auc"] is None and m["fnr"] == 0.5
