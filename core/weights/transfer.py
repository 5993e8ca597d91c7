"""Bringing checkpoint files onto the machine: import from a path, fetch on a connected machine.

`fetch` is the only code in Verity that touches the network, and it runs only when the examiner
asks for it. It checks that the download hosts resolve within a few seconds first, so an
air-gapped machine gets a clear "no network" error at once instead of a hang.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import core
from core.weights import history
from core.weights.contents import check_contents
from core.weights.local import _project_sha256, register_local
from core.weights.manifest import WeightEntry, WeightsError, manifest, user_dir
from core.weights.verify import judge, log, remember_sha256

CHUNK = 1 << 20
RESOLVE_TIMEOUT_S = 4.0  # DNS answer wait; an air-gapped machine must fail fast, not hang
SOCKET_TIMEOUT_S = 5.0  # per blocking socket operation during a download


@dataclass
class ImportResult:
    name: str
    path: Path
    sha256: str
    state: str  # "found" (verified or confirmed) / "unverified" (copied, hash not yet confirmed)
    message: str


def _copy_hashing(src: Path, dst: Path) -> str:
    """Copy src to dst in one pass, returning the sha256 of the bytes written."""
    digest = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while chunk := fin.read(CHUNK):
            digest.update(chunk)
            fout.write(chunk)
    return digest.hexdigest()


def _pick_entry(src: Path, digest: str, entries: dict[str, WeightEntry]) -> WeightEntry:
    by_hash = [e for e in entries.values() if e.sha256 == digest]
    if len(by_hash) == 1:
        return by_hash[0]
    by_file = [e for e in entries.values() if src.name in (Path(e.file).name, e.upstream_file)]
    if len(by_file) == 1:
        return by_file[0]
    raise WeightsError(f"cannot tell which weights entry {src.name} is (sha256 {digest}); name it with --name NAME (see 'verity weights list')")


def import_file(
    src: str | Path,
    name: str | None = None,
    confirm: bool = False,
    detector: str | None = None,
    kind: str | None = None,
    replace: bool = False,
) -> ImportResult:
    """Copy a checkpoint into the user weights folder under its manifest file name and verify it.

    The copy must first open safely and hold every tensor the entry's architecture needs
    (core/weights/contents.py); nothing is installed or recorded otherwise. An entry with a known
    sha256 must match it. For an entry without one, the file is copied but stays unverified unless
    `confirm` (the examiner confirms it is the right file): then its hash is recorded in the local
    manifest. `replace` (with `confirm`) replaces a sha256 recorded earlier on confirmation, never a
    published one. Both decisions are appended to the weights audit log (core/weights/history.py).
    A file not matching a published sha256 prefix is refused. `detector`/`kind` let a confirmed
    import create an entry the project manifest lacks.
    """
    src = Path(src).expanduser()
    if not src.is_file():
        raise WeightsError(f"cannot import {src}: not a file")
    entries = manifest()
    dest_dir = user_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = dest_dir / f".import-{os.getpid()}-{src.name}.part"
    try:
        digest = _copy_hashing(src, tmp)
        if name is not None and name not in entries:
            if not (confirm and detector):
                raise WeightsError(f"no weights entry named {name!r}; to add one, give --detector DETECTOR and --confirm")
            entry = WeightEntry(name=name, detector=detector, file=src.name, kind=kind or "head", origin="local")
        else:
            entry = entries[name] if name is not None else _pick_entry(src, digest, entries)
        dest = dest_dir / Path(entry.file).name if not Path(entry.file).is_absolute() else dest_dir / src.name
        state, reason = judge(entry.name, digest, entry.sha256, entry.sha256_prefix, str(src))
        replacing = state == "bad_hash" and replace and confirm and _replaceable(entry)
        if replacing:
            state, reason = judge(entry.name, digest, None, entry.sha256_prefix, str(src))  # a published prefix still holds
        if state == "bad_hash":
            hint = ""
            if _replaceable(entry) and not replace:
                hint = (f"; the recorded sha256 was confirmed here, not published: if {src.name} is the right file, replace it "
                        f"with 'verity weights import {src} --name {entry.name} --confirm --replace' (audited)")
            raise WeightsError(f"not installed as {entry.name}: {reason}{hint}")
        if (src.suffix.lower() == ".safetensors") != (dest.suffix.lower() == ".safetensors"):
            # installed under the entry's name, it would be read in the other format and fail at analysis
            raise WeightsError(f"not installed as {entry.name}: {src.name} and the entry's file {dest.name} are not the same format "
                               "(safetensors / PyTorch); convert it on a trusted machine, or name the entry it is for")
        checked = check_contents(entry, tmp, src.name)  # before anything is installed or recorded
        if state == "unverified" and not confirm:
            # Copied but not trusted: the detector stays unavailable until the hash is confirmed.
            os.replace(tmp, dest)
            remember_sha256(dest, digest)
            return ImportResult(
                entry.name,
                dest,
                digest,
                "unverified",
                f"copied to {dest} ({checked}); the manifest has no sha256 for {entry.name}, so it stays unused until you "
                f"compare sha256 {digest} with the source and run: verity weights import {dest} --name {entry.name} --confirm",
            )
        if dest.resolve() != src.resolve():
            os.replace(tmp, dest)
        remember_sha256(dest, digest)
        if state == "unverified":  # confirmed by the examiner: record the hash
            previous = entry.sha256 if replacing else None
            register_local(entry.name, dest, detector=entry.detector, kind=entry.kind, sha256=digest)
            history.record(
                "sha256 replaced" if replacing else "sha256 recorded on confirmation", entry.name,
                sha256=digest, previous_sha256=previous, file=str(dest), source=str(src.resolve()), contents=checked,
            )
            log.info("weights %s: sha256 %s recorded on the examiner's confirmation (%s)", entry.name, digest, dest)
            what = f"replaces {previous}" if replacing else "recorded on your confirmation"
            return ImportResult(entry.name, dest, digest, "found", f"{entry.name}: sha256 {digest} {what} ({checked}); installed at {dest}")
        return ImportResult(entry.name, dest, digest, "found", f"{entry.name}: sha256 verified ({checked}); installed at {dest}")
    finally:
        tmp.unlink(missing_ok=True)


def _replaceable(entry: WeightEntry) -> bool:
    """A sha256 the examiner recorded (local manifest), not one the project publishes."""
    return entry.sha256 is not None and entry.origin == "local" and _project_sha256(entry.name) is None


def fetchable(names: list[str] | None = None) -> list[WeightEntry]:
    """Entries with a direct download URL (public backbones); a Google Drive page is not one."""
    entries = manifest()
    if names:
        missing = [n for n in names if n not in entries]
        if missing:
            raise WeightsError(f"no weights entry named {', '.join(missing)}")
        chosen = [entries[n] for n in names]
    else:
        chosen = [e for e in entries.values() if e.kind == "backbone"]
    out = []
    for e in chosen:
        if not e.url or "drive.google.com" in e.url:
            raise WeightsError(f"{e.name} has no direct download; get it by hand from {e.url or e.source} (see weights/README.md)")
        out.append(e)
    return out


def check_network(hosts: list[str], timeout: float = RESOLVE_TIMEOUT_S) -> None:
    """Raise WeightsError('no network ...') unless every host resolves within `timeout` seconds.

    getaddrinfo has no timeout of its own and can block far longer on an air-gapped machine, so
    each look-up runs in a daemon thread that is abandoned (never waited for, not even at exit)
    when the deadline passes.
    """
    results: dict[str, BaseException | None] = {}
    threads = []
    for host in hosts:

        def resolve(h: str = host) -> None:
            try:
                socket.getaddrinfo(h, 443, 0, socket.SOCK_STREAM)
                results[h] = None
            except BaseException as exc:  # noqa: BLE001 - reported below as "no network"
                results[h] = exc

        t = threading.Thread(target=resolve, name=f"verity-dns-{host}", daemon=True)
        t.start()
        threads.append((host, t))
    deadline = time.monotonic() + timeout
    hint = "run 'verity weights fetch' on a connected machine and carry the folder across (see weights/README.md)"
    for host, t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
        if host not in results:
            raise WeightsError(f"no network: {host} did not resolve within {timeout:g} s; {hint}")
        if results[host] is not None:
            raise WeightsError(f"no network: cannot resolve {host} ({results[host]}); {hint}")


def download(e: WeightEntry, dest_dir: Path, timeout: float = SOCKET_TIMEOUT_S) -> tuple[Path, str]:
    """Download one entry's file into dest_dir (checked against its sha256 or prefix)."""
    assert e.url is not None
    dest = dest_dir / Path(e.file).name
    part = dest.with_name(dest.name + ".part")
    req = urllib.request.Request(e.url, headers={"User-Agent": f"verity/{core.__version__} (weights fetch)"})
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp, open(part, "wb") as out:  # noqa: S310 - https URLs from the manifest
            while chunk := resp.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise WeightsError(f"download of {e.name} from {e.url} failed: {reason}") from None
    sha = digest.hexdigest()
    state, reason = judge(e.name, sha, e.sha256, e.sha256_prefix, e.url)
    if state == "bad_hash":
        part.unlink(missing_ok=True)
        raise WeightsError(f"download of {e.name} refused: {reason}")
    os.replace(part, dest)
    return dest, sha


def fetch(dest_dir: str | Path, names: list[str] | None = None, resolve_timeout: float = RESOLVE_TIMEOUT_S) -> list[tuple[WeightEntry, Path, str]]:
    """Download the chosen entries into dest_dir and write SHA256SUMS there (for `sha256sum -c`)."""
    dest_dir = Path(dest_dir).expanduser()
    entries = fetchable(names)
    hosts = sorted({urlparse(e.url or "").hostname or "" for e in entries} - {""})
    check_network(hosts, resolve_timeout)
    dest_dir.mkdir(parents=True, exist_ok=True)
    done: list[tuple[WeightEntry, Path, str]] = []
    for e in entries:
        path, sha = download(e, dest_dir)
        done.append((e, path, sha))
        log.info("fetched %s -> %s (sha256 %s)", e.name, path, sha)
    sums = dest_dir / "SHA256SUMS"
    lines = {ln.split("  ", 1)[1]: ln for ln in sums.read_text().splitlines() if "  " in ln} if sums.is_file() else {}
    for _e, path, sha in done:
        lines[path.name] = f"{sha}  {path.name}"
    sums.write_text("".join(f"{v}\n" for _k, v in sorted(lines.items())))
    return done
