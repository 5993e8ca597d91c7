"""core.weights and `verity weights`: manifest, sha256 checks, safe loading, import and fetch."""

from __future__ import annotations

import logging
import os
import pickle
import re
import shutil
import socket
import threading
import time
import tomllib
from pathlib import Path

import pytest
import torch

import core.cli
import core.weights.verify as verify
from core.weights import (
    WeightsError,
    detectors_disabled,
    load_state_dict,
    manifest,
    register_local,
    save_checkpoint,
    status,
    user_dir,
    verified_path,
)
from core.weights.transfer import check_network, import_file

REAL_MANIFEST = Path(__file__).resolve().parents[1] / "weights" / "manifest.toml"


def cli(argv: list[str]) -> int:
    """`verity ARGV` through core.cli.main, with only the weights command registered, so that
    these tests do not depend on every other command module importing."""
    import argparse

    from core.commands import weights as weights_command

    def parser() -> argparse.ArgumentParser:
        p = argparse.ArgumentParser(prog="verity")
        p.add_argument("-v", "--verbose", action="store_true")
        weights_command.register(p.add_subparsers(dest="command"))
        return p

    real = core.cli.build_parser
    core.cli.build_parser = parser
    try:
        return core.cli.main(argv)
    finally:
        core.cli.build_parser = real


class Payload:
    """Unpickling this creates `marker`: stands for any code a malicious checkpoint could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (open, (str(self.marker), "w"))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project weights folder holding a copy of the real manifest, and nothing else."""
    d = tmp_path / "project-weights"
    d.mkdir()
    shutil.copy(REAL_MANIFEST, d / "manifest.toml")
    monkeypatch.setenv("VERITY_PROJECT_WEIGHTS_DIR", str(d))
    return d


def add_entry(project: Path, name: str, **fields: object) -> None:
    lines = [f"\n[weights.{name}]"]
    for k, v in fields.items():
        lines.append(f"{k} = " + ("true" if v is True else "false" if v is False else f'"{v}"' if isinstance(v, str) else str(v)))
    with open(project / "manifest.toml", "a") as fh:
        fh.write("\n".join(lines) + "\n")


def small_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"lstm.weight": torch.randn(8, 4), "fc.bias": torch.zeros(1, dtype=torch.float16), "steps": torch.arange(5)}


# --- the manifest ---------------------------------------------------------------------------


def test_project_manifest_is_complete_and_honest() -> None:
    data = tomllib.loads(REAL_MANIFEST.read_text())["weights"]
    assert {"lipfd_ckpt", "clip_vit_l14_openai", "resnet50_imagenet", "xception_imagenet", "eyeblink_lstm_head", "mobilenet_v2_imagenet"} <= set(data)
    for name, e in data.items():
        assert e["kind"] in ("backbone", "head", "full"), name
        assert e["detector"] and e["file"] and e["source"] and e["licence"], name
        assert e.get("sha256") is None or re.fullmatch(r"[0-9a-f]{64}", e["sha256"]), name
        if e.get("sha256_prefix"):  # torchvision names carry the hash prefix
            assert e["sha256_prefix"] in e["file"], name
        if name in ("lipfd_ckpt", "clip_vit_l14_openai", "resnet50_imagenet", "xception_imagenet", "mobilenet_v2_imagenet"):
            assert e["preprocessing"] and e["architecture"], name
    assert data["xception_imagenet"]["preprocessing"]["input_size"] == [299, 299]
    assert data["lipfd_ckpt"]["detector"] == "lipfd" and data["lipfd_ckpt"]["kind"] == "full"


def test_missing_entry_is_reported_with_reason(project: Path) -> None:
    st = status("lipfd_ckpt")
    assert st.state == "missing" and not st.ok and st.path is None
    assert "lipfd_ckpt.pth" in st.reason and "import" in st.reason
    with pytest.raises(WeightsError, match="lipfd_ckpt"):
        verified_path("lipfd_ckpt")
    with pytest.raises(WeightsError, match="no weights entry"):
        status("no_such_entry")
    assert detectors_disabled()["lipfd"] == ["lipfd_ckpt"]


# --- safe loading ---------------------------------------------------------------------------


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_pickle_payload_is_refused_and_never_runs(tmp_path: Path, writer: str, caplog: pytest.LogCaptureFixture) -> None:
    marker = tmp_path / "payload-ran"
    ckpt = tmp_path / "evil.pth"
    if writer == "torch.save":
        torch.save({"weight": torch.ones(2), "extra": Payload(marker)}, ckpt)
    else:  # a bare pickle (legacy format) without any tensor
        with open(ckpt, "wb") as fh:
            pickle.dump({"weight": [1.0, 2.0], "extra": Payload(marker)}, fh, protocol=2)
    with caplog.at_level(logging.ERROR, logger="verity.weights"), pytest.raises(WeightsError, match="arbitrary code") as err:
        load_state_dict(ckpt)
    assert re.search(r"\((io|builtins)\.open\)", str(err.value))  # the examiner is told what the pickle wanted to call
    assert not marker.exists(), "the payload ran during a refused load"
    assert any("refused" in r.getMessage() for r in caplog.records)
    # Control: the payload is live, an unrestricted unpickler does run it.
    torch.load(ckpt, weights_only=False) if writer == "torch.save" else pickle.loads(ckpt.read_bytes())
    assert marker.exists()


def test_plain_torch_state_dict_loads_weights_only(tmp_path: Path) -> None:
    sd = small_state()
    path = tmp_path / "plain.pth"
    torch.save(sd, path)
    got, meta = load_state_dict(path)
    assert meta == {} and set(got) == set(sd)
    for k in sd:
        assert torch.equal(got[k], sd[k]) and got[k].dtype == sd[k].dtype
    # Nested upstream layout ({"model": sd, "epoch": n}) comes back as is: the caller unwraps.
    torch.save({"model": sd, "total_steps": 12}, path)
    got, _ = load_state_dict(path)
    assert got["total_steps"] == 12 and torch.equal(got["model"]["lstm.weight"], sd["lstm.weight"])


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 1)), str(path))
    with pytest.raises(WeightsError, match="TorchScript archive, which cannot be loaded without running its code"):
        load_state_dict(path)


def test_not_a_checkpoint_gives_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pth"):
        load_state_dict(junk)
    bad_st = tmp_path / "junk.safetensors"
    bad_st.write_bytes(b"\x00" * 16)
    with pytest.raises(WeightsError, match="safetensors"):
        load_state_dict(bad_st)
    with pytest.raises(WeightsError, match="not found"):
        load_state_dict(tmp_path / "absent.pth")


def test_safetensors_round_trip_keeps_weights_and_metadata(tmp_path: Path) -> None:
    sd = small_state()
    sd["tied"] = sd["lstm.weight"]  # shares memory: safetensors alone would refuse it
    meta = {
        "architecture": {"input_size": 2048, "hidden_size": 128, "layers": [1, 2]},
        "preprocessing": {"mean": [0.5, 0.5, 0.5], "colour_order": "RGB"},
        "training_data": {"real": 40, "fake": 38, "source": "synthetic"},
        "metrics": {"auc": 0.91, "eer": None},
    }
    path = tmp_path / "head.safetensors"
    digest = save_checkpoint(path, sd, meta)
    assert digest == verify._hash_file(path)
    got, got_meta = load_state_dict(path, expected_sha256=digest)
    assert set(got) == set(sd)
    for k in sd:
        assert torch.equal(got[k], sd[k]) and got[k].dtype == sd[k].dtype
    for k, v in meta.items():
        assert got_meta[k] == v
    import core

    assert got_meta["software"]["version"] == core.__version__ and got_meta["software"]["name"] == "Verity"
    assert "saved_utc" in got_meta and "torch" in got_meta["software"]
    with pytest.raises(WeightsError, match="not a tensor"):
        save_checkpoint(tmp_path / "x.safetensors", {"n": 3}, {})  # type: ignore[dict-item]
    with pytest.raises(WeightsError, match="JSON"):
        save_checkpoint(tmp_path / "y.safetensors", sd, {"metrics": {"auc": float("nan")}})


# --- sha256 verification --------------------------------------------------------------------


def test_flipped_byte_fails_sha256(project: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = user_dir() / "eyeblink_lstm_head.safetensors"
    digest = save_checkpoint(path, small_state(), {"architecture": {}})
    register_local("eyeblink_lstm_head", path, detector="eyeblink_cnn_lstm", sha256=digest)
    assert status("eyeblink_lstm_head").ok
    assert verified_path("eyeblink_lstm_head") == path.resolve()
    assert load_state_dict("eyeblink_lstm_head")[0]["steps"].tolist() == [0, 1, 2, 3, 4]

    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # one bit in the tensor data: same size, still a readable file
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.ERROR, logger="verity.weights"):
        st = status("eyeblink_lstm_head")
    assert st.state == "bad_hash" and not st.ok
    assert digest in st.reason and "refused" in st.reason
    assert any("eyeblink_lstm_head" in r.getMessage() for r in caplog.records), "a mismatch must be logged"
    with pytest.raises(WeightsError, match="does not match"):
        verified_path("eyeblink_lstm_head")
    with pytest.raises(WeightsError, match="does not match"):
        load_state_dict("eyeblink_lstm_head")
    with pytest.raises(WeightsError, match="does not match"):
        load_state_dict(path, expected_sha256=digest)
    assert "eyeblink_lstm_head" in detectors_disabled()["eyeblink_cnn_lstm"]


def test_hash_cache_avoids_rehashing(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = user_dir() / "timm_legacy_xception_tf_in1k.safetensors"
    path.parent.mkdir(parents=True)
    path.write_bytes(os.urandom(4096))
    calls: list[Path] = []
    real = verify._hash_file

    def counting(p: Path) -> str:
        calls.append(p)
        return real(p)

    monkeypatch.setattr(verify, "_hash_file", counting)
    first = status("xception_imagenet")
    assert first.state == "unverified" and len(calls) == 1
    second = status("xception_imagenet")
    assert second.sha256 == first.sha256 and len(calls) == 1, "the second status call re-hashed the file"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # the file changed (mtime)
    status("xception_imagenet")
    assert len(calls) == 2
    status("xception_imagenet", rehash=True)  # `verity weights list --rehash`: the examiner distrusts the cache
    assert len(calls) == 3


def test_local_entry_cannot_replace_a_published_hash(project: Path, tmp_path: Path) -> None:
    f = tmp_path / "known.bin"
    f.write_bytes(b"published weights")
    add_entry(project, "known", detector="demo", file="known.bin", kind="backbone", sha256=verify._hash_file(f))
    other = tmp_path / "other.bin"
    other.write_bytes(b"something else")
    with pytest.raises(WeightsError, match="publishes sha256"):
        register_local("known", other, detector="demo", kind="backbone")


def test_any_verified_entry_of_a_group_enables_the_detector(project: Path) -> None:
    add_entry(project, "upstream_model", detector="demo", file="upstream.pth", kind="full", group="demo_model")
    add_entry(project, "local_model", detector="demo", file="local.safetensors", kind="full", group="demo_model", required=False)
    assert detectors_disabled()["demo"] == ["upstream_model"]
    path = user_dir() / "local.safetensors"
    sha = save_checkpoint(path, small_state(), {})
    register_local("local_model", path, detector="demo", kind="full", sha256=sha)
    assert "demo" not in detectors_disabled()


# --- import ---------------------------------------------------------------------------------


def test_import_verifies_known_hash_and_refuses_wrong_file(project: Path, tmp_path: Path) -> None:
    good = tmp_path / "downloaded.bin"
    torch.save(small_state(), good)  # an entry without an architecture: any safe checkpoint with tensors
    add_entry(project, "demo_backbone", detector="demo", file="demo.bin", kind="backbone", sha256=verify._hash_file(good))
    assert status("demo_backbone").state == "missing"
    res = import_file(good, name="demo_backbone")
    assert res.state == "found" and res.path == user_dir() / "demo.bin"
    assert status("demo_backbone").ok and "demo" not in detectors_disabled()
    wrong = tmp_path / "demo.bin"
    wrong.write_bytes(b"tampered")
    with pytest.raises(WeightsError, match="does not match"):
        import_file(wrong)  # recognised by its file name, refused by its hash
    assert status("demo_backbone").ok, "a refused import must not replace the verified file"


def test_import_without_known_hash_needs_confirmation(project: Path, tmp_path: Path) -> None:
    src = tmp_path / "ckpt.pth"
    from tests.test_weights_import import lipfd_shaped_state

    torch.save({"model": lipfd_shaped_state()}, src)  # upstream's layout, every LipFD tensor at its shape
    res = import_file(src)  # recognised by its upstream name ckpt.pth
    assert res.state == "unverified" and res.sha256 in res.message and "--confirm" in res.message
    assert status("lipfd_ckpt").state == "unverified" and "lipfd" in detectors_disabled()
    with pytest.raises(WeightsError):
        load_state_dict("lipfd_ckpt")
    assert cli(["weights", "import", str(src), "--name", "lipfd_ckpt", "--confirm"]) == 0
    st = status("lipfd_ckpt")
    assert st.ok and st.sha256 == res.sha256 and "lipfd" not in detectors_disabled()
    assert manifest()["lipfd_ckpt"].origin == "local" and manifest()["lipfd_ckpt"].architecture["state_dict_key"] == "model"
    assert set(load_state_dict("lipfd_ckpt")[0]) == {"model"}


def test_import_refuses_published_prefix_mismatch_even_confirmed(project: Path, tmp_path: Path) -> None:
    src = tmp_path / "mobilenet_v2-b0353104.pth"
    torch.save(small_state(), src)
    with pytest.raises(WeightsError, match="prefix b0353104"):
        import_file(src, confirm=True)
    assert status("mobilenet_v2_imagenet").state == "missing"


# --- the CLI --------------------------------------------------------------------------------


def test_weights_list_reports_missing_and_disabled_detectors(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["weights", "list"]) == 0
    out = capsys.readouterr().out
    block = out[out.index("lipfd_ckpt") :].split("\n\n")[0]
    assert "[MISSING]" in block.splitlines()[0]
    tail = out[out.index("Detectors unavailable") :]
    assert re.search(r"lipfd: needs lipfd_ckpt \(missing\)", tail)
    assert re.search(r"eyeblink_cnn_lstm: needs .*xception_imagenet \(missing\).*eyeblink_lstm_head \(missing\)", tail)
    seq = next(line for line in tail.splitlines() if line.strip().startswith("sequence_cnn:"))
    assert "sequence_cnn_local (missing)" in seq and "seq_upstream_cnn_lstm (missing)" in seq
    assert "mobilenet_v2_imagenet" not in tail  # its backbone is optional (training only): it disables nothing

    assert cli(["weights", "list", "--json"]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    states = {e["name"]: e["state"] for e in data["entries"]}
    assert states["lipfd_ckpt"] == "missing"
    assert data["detectors_unavailable"]["lipfd"] == ["lipfd_ckpt"]


def test_weights_fetch_without_network_fails_fast(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def no_dns(*_a: object, **_k: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    t0 = time.monotonic()
    rc = cli(["weights", "fetch", "--dest", str(tmp_path / "carry")])
    elapsed = time.monotonic() - t0
    err = capsys.readouterr().err
    assert rc != 0 and elapsed < 10
    assert "no network" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "carry").exists()


def test_fetch_does_not_hang_on_a_stalled_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def stalled(*_a: object, **_k: object) -> None:
        release.wait(60)  # a resolver that never answers (air-gapped machine, dead DNS server)
        raise socket.gaierror("late")

    monkeypatch.setattr(socket, "getaddrinfo", stalled)
    t0 = time.monotonic()
    try:
        with pytest.raises(WeightsError, match="no network: .* did not resolve within 0.5 s"):
            check_network(["download.pytorch.org", "huggingface.co"], timeout=0.5)
        assert time.monotonic() - t0 < 3
    finally:
        release.set()


def test_fetch_refuses_entries_without_direct_download(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["weights", "fetch", "--dest", str(tmp_path), "--name", "lipfd_ckpt"]) == 2
    assert "no direct download" in capsys.readouterr().err


def test_fetch_downloads_checks_and_writes_sha256sums(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The download path itself, against a local HTTP server (no internet needed)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    import functools
    import http.server

    served = tmp_path / "served"
    served.mkdir()
    good = served / "tiny-backbone.pth"
    torch.save(small_state(), good)
    prefix = verify._hash_file(good)[:8]
    (served / "wrong.pth").write_bytes(b"not the published file")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        add_entry(project, "tiny_backbone", detector="demo", file=f"tiny-{prefix}.pth", kind="backbone", sha256_prefix=prefix, url=f"{base}/tiny-backbone.pth")
        add_entry(project, "tampered_backbone", detector="demo", file="tampered.pth", kind="backbone", sha256_prefix="00000000", url=f"{base}/wrong.pth")
        dest = tmp_path / "carry"
        assert cli(["weights", "fetch", "--dest", str(dest), "--name", "tiny_backbone"]) == 0
        fetched = dest / f"tiny-{prefix}.pth"
        digest = verify._hash_file(fetched)
        assert fetched.read_bytes() == good.read_bytes()
        assert (dest / "SHA256SUMS").read_text() == f"{digest}  {fetched.name}\n"
        assert "--confirm" in capsys.readouterr().out  # no full hash published: the examiner confirms on import
        assert cli(["weights", "fetch", "--dest", str(dest), "--name", "tampered_backbone"]) == 2
        assert "prefix 00000000" in capsys.readouterr().err
        assert not (dest / "tampered.pth").exists() and not list(dest.glob("*.part"))
    finally:
        server.shutdown()
        server.server_close()
