"""Can Qt's platform plugin start here? Checked before any QApplication exists, without Qt.

When the platform plugin cannot load, Qt aborts the process (a core dump, no exception) and its
message names only the first missing library. On a fresh Debian/Ubuntu workstation the xcb
plugin typically lacks libxcb-cursor0, libxcb-icccm4 and libxcb-keysyms1. This module asks the
dynamic loader (`ldd`) for every library the plugin cannot find, so `verity` can say which are
missing and the exact command that installs them, then exit 2.

Run as a script it serves the set-up script:
`python -m desktop.platform_check --packages` prints the Debian packages the xcb plugin still
needs (nothing when it can load) and exits 2 when some are missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

# The Qt platforms that need a display server, and the variable that names it.
DISPLAY_VARS = {"xcb": "DISPLAY", "wayland": "WAYLAND_DISPLAY"}

# Debian package names that do not follow the usual rule (see debian_package).
PACKAGE_EXCEPTIONS = {
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libgobject-2.0.so.0": "libglib2.0-0",
    "libgcc_s.so.1": "libgcc-s1",
    "libz.so.1": "zlib1g",
}

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)
_SONAME = re.compile(r"^(?P<base>.+)\.so\.(?P<version>\d+)(?:\.\d+)*$")

LddRunner = Callable[[Path], str | None]


def debian_package(soname: str) -> str:
    """The Debian package that ships `soname`, by Debian's naming policy (libfoo.so.4 -> libfoo4;
    libfoo-x11.so.0 -> libfoo-x11-0 when the name ends in a digit). A best guess for libraries
    outside PACKAGE_EXCEPTIONS; the message names the library too."""
    if soname in PACKAGE_EXCEPTIONS:
        return PACKAGE_EXCEPTIONS[soname]
    m = _SONAME.match(soname)
    if not m:
        return soname
    base = m["base"].lower()
    return f"{base}-{m['version']}" if base[-1].isdigit() else f"{base}{m['version']}"


def candidate_platforms(env: Mapping[str, str]) -> list[str]:
    """The platform plugins Qt will try, in order (QT_QPA_PLATFORM, else what a Linux desktop gets)."""
    requested = [p.split(":", 1)[0].strip() for p in env.get("QT_QPA_PLATFORM", "").split(";")]
    requested = [p for p in requested if p]
    if requested:
        return requested
    if env.get("XDG_SESSION_TYPE") == "wayland" and env.get("WAYLAND_DISPLAY"):
        return ["wayland", "xcb"]
    return ["xcb"]


def plugin_dirs(env: Mapping[str, str]) -> list[Path]:
    """Where Qt looks for platform plugins: the override variables, then PySide6's own folder
    (found without importing PySide6, which would load Qt)."""
    dirs = [Path(p) for p in env.get("QT_QPA_PLATFORM_PLUGIN_PATH", "").split(os.pathsep) if p]
    dirs += [Path(p) / "platforms" for p in env.get("QT_PLUGIN_PATH", "").split(os.pathsep) if p]
    spec = importlib.util.find_spec("PySide6")
    if spec is not None and spec.submodule_search_locations:
        dirs += [Path(p) / "Qt" / "plugins" / "platforms" for p in spec.submodule_search_locations]
    return dirs


def plugin_file(platform: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        path = d / f"libq{platform}.so"
        if path.is_file():
            return path
    return None


def run_ldd(path: Path) -> str | None:
    """ldd's report on `path`; None when ldd is absent or fails (then Qt is left to try)."""
    try:
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.stdout else None


def missing_libraries(path: Path, ldd: LddRunner | None = None) -> list[str] | None:
    """Libraries the loader cannot find for `path` and everything it links (sorted, unique);
    None when that cannot be told."""
    report = (ldd or run_ldd)(path)
    if report is None:
        return None
    return sorted(set(_NOT_FOUND.findall(report)))


def packages_for(libraries: list[str]) -> list[str]:
    return sorted({debian_package(lib) for lib in libraries})


def gui_problem(env: Mapping[str, str] | None = None, ldd: LddRunner | None = None) -> str | None:
    """One line saying why the desktop cannot start here, or None when it can (or when that
    cannot be told: Windows, macOS, a plugin or ldd not found; Qt then reports for itself)."""
    if not sys.platform.startswith("linux"):
        return None
    env = os.environ if env is None else env
    dirs = plugin_dirs(env)
    platforms = candidate_platforms(env)
    first_missing: tuple[str, list[str]] | None = None
    no_display: list[str] = []
    for platform in platforms:
        path = plugin_file(platform, dirs)
        if path is None:
            return None
        missing = missing_libraries(path, ldd)
        if missing is None:
            return None
        if missing:
            first_missing = first_missing or (platform, missing)
            continue
        var = DISPLAY_VARS.get(platform)
        if var and not env.get(var):
            no_display.append(var)
            continue
        return None
    if first_missing is not None:
        platform, missing = first_missing
        return (
            f"verity: the desktop cannot start: Qt's {platform} platform plugin needs {', '.join(missing)}, "
            f"not installed here; install as root with: apt-get install -y {' '.join(packages_for(missing))} "
            "(the command line works without them: verity --help)"
        )
    return (
        f"verity: the desktop cannot start: no display ({' and '.join(no_display)} not set); "
        "start it from a desktop session (the command line works without one: verity --help)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m desktop.platform_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--packages", action="store_true", help="print only the Debian packages the plugin still needs")
    ap.add_argument("platform", nargs="?", default="xcb", help="the Qt platform plugin (default: xcb)")
    args = ap.parse_args(argv)
    path = plugin_file(args.platform, plugin_dirs(os.environ))
    if path is None:
        print(f"no Qt platform plugin {args.platform!r} found (is PySide6 installed?)", file=sys.stderr)
        return 1
    missing = missing_libraries(path)
    if missing is None:
        print(f"cannot tell which libraries {path} needs (ldd not available)", file=sys.stderr)
        return 1
    if args.packages:
        if missing:
            print(" ".join(packages_for(missing)))
    else:
        print(f"{path}: " + (f"missing {', '.join(missing)} (packages: {' '.join(packages_for(missing))})" if missing else "all libraries found"))
    return 2 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
