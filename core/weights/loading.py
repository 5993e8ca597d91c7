"""Safe loading and saving of checkpoints.

Loading goes through safetensors (no code at all) or `torch.load(weights_only=True)`, whose
restricted unpickler refuses any global outside torch's allow-list *before* calling it: a pickle
that needs arbitrary code is refused with a WeightsError and its payload never runs.
Our own checkpoints are safetensors with one JSON metadata block under the key "verity".
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import core
from core.weights.manifest import WeightsError, manifest
from core.weights.verify import check_file, remember_sha256, verified_path

if TYPE_CHECKING:
    import torch

log = logging.getLogger("verity.weights")

META_KEY = "verity"  # the safetensors metadata key holding our JSON block


def _resolve(source: str | Path, expected_sha256: str | None) -> Path:
    """A manifest name -> its verified file; a path -> itself, verified when a hash is given."""
    if isinstance(source, str) and source in manifest() and not Path(source).is_file():
        path = verified_path(source)
        if expected_sha256 is not None and check_file(source, path, expected_sha256).state != "found":
            raise WeightsError(f"weights {source!r}: the file's sha256 does not match the expected {expected_sha256}")
        return path
    path = Path(source).expanduser()
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path}")
    if expected_sha256 is not None:
        st = check_file(path.name, path, expected_sha256)
        if not st.ok:
            raise WeightsError(st.reason)
    return path


def _is_pickle(path: Path) -> bool:
    """Starts with a pickle PROTO opcode (protocol 2-5): a pickle stream, not random bytes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
    except OSError:
        return False
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _refusal(path: Path, message: str) -> WeightsError:
    """What torch's restricted unpickler refused, from its error text. Only a refused GLOBAL (a
    function or class the pickle would call) is known to mean code; a pickle it cannot parse may
    hold anything; bytes that are no pickle at all are a damaged file or not a checkpoint."""
    m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", message) or re.search(r"GLOBAL ([\w.]+)", message)
    if m:
        log.error("checkpoint %s refused: unpickling needs %s", path, m.group(1))
        return WeightsError(f"{path.name} refused: loading it would need to run arbitrary code ({m.group(1)}); only plain tensors are accepted")
    m = re.search(r"WeightsUnpickler error:\s*(.+)", message)
    what = m.group(1).strip().rstrip(".") if m else "an unreadable stream"
    log.error("checkpoint %s refused: %s", path, what)
    if _is_pickle(path):
        return WeightsError(
            f"{path.name} refused: a pickle that torch's restricted unpickler cannot read ({what}); it may hold objects "
            "other than tensors, or code, and is not loaded; only plain tensors are accepted"
        )
    return WeightsError(
        f"{path.name} refused: not a checkpoint that can be loaded safely (torch's restricted unpickler stops at {what}): "
        "a damaged file, or not a checkpoint at all"
    )


def torch_load(path: Path, mmap: bool = False) -> Any:
    """`torch.load(weights_only=True)` with every failure as a one-line WeightsError. `mmap`:
    tensors stay on disk until read (to look at shapes only); a legacy (non-zip) file is read whole."""
    import torch

    if path.stat().st_size == 0:
        raise WeightsError(f"{path.name} is empty (0 bytes), not a checkpoint")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "looks like a TorchScript archive": reported below as an error
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            except RuntimeError as exc:
                if not (mmap and "mmap can only be used" in str(exc)):
                    raise
                return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _refusal(path, str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - corrupt zip, truncated file, TorchScript archive...
        text = str(exc)
        if "TorchScript" in text:
            raise WeightsError(
                f"{path.name} is a TorchScript archive, which cannot be loaded without running its code; use a plain state dict or safetensors"
            ) from None
        first = re.split(r"(?<=[.!?])\s|\n", text, maxsplit=1)[0] if text else ""  # torch's advice to drop weights_only is not for us
        raise WeightsError(f"{path.name} cannot be loaded as a weights-only checkpoint: {type(exc).__name__}: {first}") from None


def load_state_dict(source: str | Path, expected_sha256: str | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a checkpoint without running code from it: (state dict or nested dict, metadata).

    `source` is a manifest entry name (checked against the manifest's sha256) or a path
    (checked against `expected_sha256` when given). Nested {"model": sd} / {"state_dict": sd}
    is returned as is: the caller unwraps.
    """
    path = _resolve(source, expected_sha256)
    if path.suffix.lower() == ".safetensors":
        return _load_safetensors(path)
    obj = torch_load(path)
    if not isinstance(obj, dict):
        raise WeightsError(f"{path.name} holds a {type(obj).__name__}, not a state dict")
    return obj, {}


def _load_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import SafetensorError, safe_open

    try:
        tensors: dict[str, torch.Tensor] = {}
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            raw = fh.metadata() or {}
            for key in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
                tensors[key] = fh.get_tensor(key)
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path.name} is not a readable safetensors file: {exc}") from None
    return tensors, safetensors_metadata(path, raw)


def safetensors_metadata(path: Path, raw: dict[str, str]) -> dict[str, Any]:
    """The header's string metadata with our JSON block (key "verity") merged in."""
    meta: dict[str, Any] = {k: v for k, v in raw.items() if k != META_KEY}
    if META_KEY in raw:
        try:
            block = json.loads(raw[META_KEY])
        except json.JSONDecodeError as exc:
            raise WeightsError(f"{path.name}: its metadata block is not valid JSON ({exc})") from None
        if isinstance(block, dict):
            meta.update(block)
    return meta


def save_checkpoint(path: str | Path, state_dict: dict[str, Any], metadata: dict[str, Any]) -> str:
    """Write tensors as safetensors with a JSON metadata block; return the file's sha256.

    `metadata` should hold "architecture", "preprocessing", "training_data" (a summary) and
    "metrics"; the software version, torch version and time are added here.
    """
    import torch
    from safetensors.torch import save_file

    from core.weights.verify import _hash_file

    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"cannot save {key!r}: a {type(value).__name__}, not a tensor (put it in the metadata)")
        t = value.detach().to("cpu").contiguous()
        # safetensors refuses tensors sharing memory (tied weights): give each its own copy
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen and t.numel():
            t = t.clone()
        seen.add(ptr)
        tensors[key] = t
    block = {
        **metadata,
        "software": {"name": core.SOFTWARE_NAME, "version": core.__version__, "torch": torch.__version__},
        "saved_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        text = json.dumps(block, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"checkpoint metadata is not plain JSON: {exc}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata={META_KEY: text, "format": "pt"})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    digest = _hash_file(path)
    remember_sha256(path, digest)
    return digest
