"""Issue 13 item 10: `weights import --confirm` opens the file safely and checks it holds the
tensors of the entry's architecture before it records any hash; a hash recorded by mistake can
be replaced by the examiner, with a line in the weights audit log.
"""

from __future__ import annotations

import json
import os
import random
import tomllib
from pathlib import Path

import pytest
import torch

from core.weights import load_state_dict, manifest, status
from core.weights.manifest import local_manifest_path
from tests.test_weights import REAL_MANIFEST, Payload, cli, project  # noqa: F401 - `project`: the fixture

HEAD = "eyeblink_lstm_head"
pytestmark = pytest.mark.usefixtures("project")  # a project weights folder with a copy of the real manifest, per test


def lipfd_shaped_state() -> dict[str, torch.Tensor]:
    """Every tensor of LipFD (ViT-L/14) at its shape, as stride-0 views of one value: a file of a
    few hundred kB that an import's tensor check accepts (it checks names and shapes, not values)."""
    from core.models.lipfd import LipFD

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in LipFD().state_dict().items()}
    one = torch.zeros(())
    return {k: one.expand(shape) for k, shape in shapes.items()}


def head_state(seed: int, hidden: int = 128) -> dict[str, torch.Tensor]:
    """An EyeBlink LSTM head's tensors (2048 -> hidden LSTM, Linear(hidden, 1)), random values."""
    from core.models.eyeblink_cnn_lstm import EyeBlinkHead

    torch.manual_seed(seed)
    return EyeBlinkHead(hidden=hidden).state_dict()


def recorded_sha(name: str) -> str | None:
    path = local_manifest_path()
    if not path.is_file():
        return None
    return json.loads(path.read_text())["weights"].get(name, {}).get("sha256")


def bad_files(tmp: Path) -> dict[str, tuple[Path, str, str]]:
    """kind -> (file, the entry it is offered for, what the refusal must say)."""
    marker = tmp / "payload-ran"
    files: dict[str, tuple[Path, str, str]] = {}
    p = tmp / "pickle.pth"
    torch.save({"model": {"conv1.weight": torch.ones(2)}, "x": Payload(marker)}, p)
    files["pickle payload"] = (p, "lipfd_ckpt", "arbitrary code")
    p = tmp / "empty.pth"
    p.write_bytes(b"")
    files["0-byte file"] = (p, "lipfd_ckpt", "empty")
    p = tmp / "random.pth"
    p.write_bytes(random.Random(13).randbytes(50_000))
    files["random bytes"] = (p, "lipfd_ckpt", "not a checkpoint that can be loaded safely")
    p = tmp / "random.safetensors"
    p.write_bytes(random.Random(14).randbytes(50_000))
    files["random safetensors"] = (p, HEAD, "not a readable safetensors")
    p = tmp / "other.pth"
    torch.save({"model": {"fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)}}, p)
    files["another model's tensors"] = (p, "lipfd_ckpt", "are missing")
    p = tmp / "narrow.pth"
    sd = lipfd_shaped_state()
    sd["backbone.fc.weight"] = torch.zeros(1, 2048)  # LipFD's classifier reads 2048 + 768 features
    torch.save({"model": sd}, p)
    files["right names, wrong shapes"] = (p, "lipfd_ckpt", "tensor backbone.fc.weight has shape [1, 2048], the model needs [1, 2816]")
    p = tmp / "head.pth"
    torch.save(head_state(0), p)
    files["wrong format"] = (p, HEAD, "not the same format")
    return files


@pytest.mark.parametrize(
    "kind",
    ["pickle payload", "0-byte file", "random bytes", "random safetensors", "another model's tensors", "right names, wrong shapes", "wrong format"],
)
def test_confirmed_import_refuses_what_is_not_the_entrys_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    path, name, reason = bad_files(tmp_path)[kind]
    assert cli(["weights", "import", str(path), "--name", name, "--confirm"]) == 1
    out = capsys.readouterr().out
    assert reason in out and path.name in out, out
    assert kind == "pickle payload" or "arbitrary code" not in out  # only a refused global means code
    assert recorded_sha(name) is None  # no hash recorded
    assert status(name).state == "missing"  # nothing installed either
    assert not (tmp_path / "payload-ran").exists()
    assert cli(["weights", "list"]) == 0
    assert f"{name}  [MISSING]" in capsys.readouterr().out


def test_right_file_is_recorded_and_logged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from core.weights import save_checkpoint

    good = tmp_path / "head.safetensors"
    sha = save_checkpoint(good, head_state(1), {"format": "verity.eyeblink_head/1"})
    assert cli(["weights", "import", str(good), "--name", HEAD, "--confirm"]) == 0
    out = capsys.readouterr().out
    assert "all 6 tensors of EyeBlink LSTM head present" in out
    assert status(HEAD).ok and recorded_sha(HEAD) == sha
    assert set(load_state_dict(HEAD)[0]) == set(head_state(1))
    assert cli(["weights", "log"]) == 0
    out = capsys.readouterr().out
    assert f"sha256 recorded on confirmation: {HEAD} sha256 {sha}" in out and "chain intact" in out


def test_mistaken_hash_is_replaced_with_an_audit_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from core.weights import save_checkpoint

    first, right = tmp_path / "a" / "head.safetensors", tmp_path / "b" / "head.safetensors"
    save_checkpoint(first, head_state(1), {})  # a valid head, but the wrong one: confirmed by mistake
    save_checkpoint(right, head_state(2), {})
    assert cli(["weights", "import", str(first), "--name", HEAD, "--confirm"]) == 0
    sha_first = recorded_sha(HEAD)
    capsys.readouterr()
    # the right file is refused against the recorded hash, and the examiner is told how to replace it
    assert cli(["weights", "import", str(right), "--name", HEAD, "--confirm"]) == 1
    assert "--replace" in capsys.readouterr().out
    assert recorded_sha(HEAD) == sha_first
    assert cli(["weights", "import", str(right), "--name", HEAD, "--confirm", "--replace"]) == 0
    out = capsys.readouterr().out
    sha_right = recorded_sha(HEAD)
    assert sha_right != sha_first and f"replaces {sha_first}" in out
    assert status(HEAD).ok and status(HEAD).sha256 == sha_right
    from core.weights.history import audit_path, read_log

    log = read_log()
    assert [r["action"] for r in log] == ["sha256 recorded on confirmation", "sha256 replaced"]
    assert log[1]["previous_sha256"] == sha_first and log[1]["sha256"] == sha_right and log[1]["actor"]
    assert cli(["weights", "log"]) == 0 and "chain intact" in capsys.readouterr().out
    # the log is tamper-evident: an edited line breaks its chain
    text = audit_path().read_text().replace(sha_first, "f" * 64)
    audit_path().write_text(text)
    assert cli(["weights", "log"]) == 1
    assert "line 1 was changed" in capsys.readouterr().out


def test_published_hash_cannot_be_replaced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from core.weights import save_checkpoint
    from core.weights.verify import _hash_file

    published = tmp_path / "pub" / "head.safetensors"
    save_checkpoint(published, head_state(1), {})

    folder = Path(os.environ["VERITY_PROJECT_WEIGHTS_DIR"])
    text = (folder / "manifest.toml").read_text().replace(
        'file = "eyeblink_lstm_head.safetensors"', f'file = "eyeblink_lstm_head.safetensors"\nsha256 = "{_hash_file(published)}"'
    )
    (folder / "manifest.toml").write_text(text)
    assert manifest()[HEAD].sha256 == _hash_file(published)
    other = tmp_path / "head.safetensors"
    save_checkpoint(other, head_state(2), {})
    assert cli(["weights", "import", str(other), "--name", HEAD, "--confirm", "--replace"]) == 1
    out = capsys.readouterr().out
    assert "does not match" in out and recorded_sha(HEAD) is None


def test_every_project_entry_names_a_checkable_architecture() -> None:
    """Each entry of weights/manifest.toml resolves to the model whose tensors an import checks."""
    from core.weights.contents import _model_shapes
    from core.weights.manifest import WeightEntry

    data = tomllib.loads(REAL_MANIFEST.read_text())["weights"]
    for name, raw in data.items():
        got = _model_shapes(WeightEntry.from_dict(name, raw, "project"), {})
        assert got is not None, name
        what, shapes = got
        assert shapes and all(isinstance(s, tuple) for s in shapes.values()), name
    resnet = _model_shapes(WeightEntry.from_dict("resnet50_imagenet", data["resnet50_imagenet"], "project"), {})
    assert resnet is not None and resnet[1]["fc.weight"] == (1000, 2048)
