"""Evidence intake: streamed hashing and container probing. The file is only ever read."""

from core.digest import sha256_file
from core.evidence.probe import EvidenceInfo, check_readable, probe

__all__ = ["EvidenceInfo", "check_readable", "probe", "sha256_file"]
