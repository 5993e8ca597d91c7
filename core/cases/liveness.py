"""Is the process that started a run still alive?

A run records the pid, the host name and the process start time (`proc_start`). At the next
open of the store a `running` run is judged:

- same host, pid gone (or a zombie)                         -> dead: mark it `interrupted`;
- same host, pid alive but started at another time          -> the pid was reused: dead;
- same host, pid alive, same start time (or unknown start)  -> alive: leave it `running`;
- another host (a case file on a shared drive)              -> unknown: leave it `running`.

The start time comes from /proc on Linux (clock ticks since boot, plus the boot id so a
reboot is noticed); elsewhere it is unknown and only the pid is checked.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path


def host_name() -> str:
    return socket.gethostname()


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces: split after its closing parenthesis
    return raw[raw.rindex(")") + 2 :].split()


def process_start(pid: int | None = None) -> str | None:
    """A token that names one process lifetime: boot id + start time, or None where unknown."""
    stat = _proc_stat(pid or os.getpid())
    if stat is None:
        return None
    return f"{_boot_id()}:{stat[19]}"  # field 22 of /proc/PID/stat: start time in ticks


def _pid_alive(pid: int) -> bool:
    if sys.platform == "win32":
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ok = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return bool(ok) and code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)  # signal 0: existence check only (POSIX)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    stat = _proc_stat(pid)
    return not (stat is not None and stat[0] == "Z")  # a zombie has finished


def run_alive(pid: int | None, host: str | None, proc_start: str | None) -> bool | None:
    """True / False, or None when it cannot be known from here (another host, no pid)."""
    if pid is None or not host:
        return None
    if host != host_name():
        return None
    if not _pid_alive(pid):
        return False
    if proc_start and (now := process_start(pid)) is not None and now != proc_start:
        return False  # the pid now belongs to another process
    return True
