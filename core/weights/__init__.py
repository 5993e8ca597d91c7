"""Model weights: the manifest, sha256 verification, safe loading and saving.

Every learned detector gets its checkpoints through here: `verified_path(name)` or
`load_state_dict(name)`; a missing or mismatching file raises `WeightsError` with the reason,
which the detector reports as `unavailable`. Nothing here touches the network
(`verity weights fetch` in core/commands/weights.py is the only code that does, on request).
"""

from core.weights.loading import load_state_dict, save_checkpoint
from core.weights.local import register_local
from core.weights.manifest import WeightEntry, WeightsError, manifest, project_dir, user_dir
from core.weights.verify import WeightStatus, all_status, detectors_disabled, file_sha256, status, status_table, verified_path

__all__ = [
    "WeightEntry",
    "WeightStatus",
    "WeightsError",
    "all_status",
    "detectors_disabled",
    "file_sha256",
    "load_state_dict",
    "manifest",
    "project_dir",
    "register_local",
    "save_checkpoint",
    "status",
    "status_table",
    "user_dir",
    "verified_path",
]
