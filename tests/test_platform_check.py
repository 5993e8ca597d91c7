"""First start: `verity` checks the Qt platform plugin before any QApplication exists and, when a
library is missing, names it with the apt-get command and exits 2 (no Qt abort, no traceback).

No X server is needed: the missing library is simulated, once by a fake `ldd` report, once for
real with a copy of PySide6's xcb plugin whose dependency on libxcb-icccm.so.4 is renamed to a
library that exists nowhere, so the real dynamic loader (through ldd) reports it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from desktop import launcher, platform_check
from desktop.platform_check import candidate_platforms, debian_package, gui_problem, missing_libraries, plugin_dirs, plugin_file

ROOT = Path(__file__).resolve().parents[1]
REAL = "libxcb-icccm.so.4"
GONE = "libvrty-gone.so.4"  # same length as REAL, so the renamed plugin stays a valid ELF file

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the platform check applies to Linux only")


def _xcb_plugin() -> Path:
    path = plugin_file("xcb", plugin_dirs({}))
    if path is None:
        pytest.skip("PySide6's xcb platform plugin is not installed")
    return path


def _ldd_report(*missing: str) -> str:
    lines = ["\tlinux-vdso.so.1 (0x00007ffd)", "\tlibQt6Gui.so.6 => /x/libQt6Gui.so.6 (0x00007f01)"]
    lines += [f"\t{name} => not found" for name in missing]
    return "\n".join(lines) + "\n"


@pytest.fixture
def renamed_plugin(tmp_path: Path) -> Path:
    """A folder of platform plugins holding a copy of libqxcb.so that needs GONE instead of REAL."""
    if shutil.which("ldd") is None:
        pytest.skip("ldd is not available")
    real = _xcb_plugin()
    data = real.read_bytes()
    if REAL.encode() + b"\0" not in data:
        pytest.skip(f"this PySide6's xcb plugin does not link {REAL} directly")
    platforms = tmp_path / "plugins" / "platforms"
    platforms.mkdir(parents=True)
    (platforms / real.name).write_bytes(data.replace(REAL.encode() + b"\0", GONE.encode() + b"\0"))
    # the plugin finds Qt's libraries through its RUNPATH $ORIGIN/../../lib
    (tmp_path / "lib").symlink_to(real.parents[2] / "lib", target_is_directory=True)
    return platforms


@linux_only
def test_real_loader_reports_the_renamed_library(renamed_plugin: Path) -> None:
    missing = missing_libraries(renamed_plugin / "libqxcb.so")
    before = missing_libraries(_xcb_plugin())
    assert missing is not None and before is not None
    assert GONE in missing and GONE not in before
    assert set(missing) - {GONE} <= set(before)  # nothing else is reported that the original lacks


@linux_only
def test_launcher_names_the_missing_library_and_exits_2(renamed_plugin: Path, tmp_path: Path) -> None:
    """The real entry point in its own process, the real ldd, no mocking."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QT_", "WAYLAND_", "XDG_SESSION"))}
    env.update(QT_QPA_PLATFORM="xcb", QT_QPA_PLATFORM_PLUGIN_PATH=str(renamed_plugin), DISPLAY=":97", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from desktop.launcher import main; sys.argv = ['verity']; sys.exit(main())"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert GONE in lines[0] and "apt-get install -y" in lines[0] and "libvrty-gone4" in lines[0]
    assert "Traceback" not in proc.stderr and "qt.qpa" not in proc.stderr
    assert proc.stdout == ""


@linux_only
def test_launcher_exits_2_before_creating_the_application(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _xcb_plugin()
    for var in ("QT_QPA_PLATFORM", "QT_QPA_PLATFORM_PLUGIN_PATH", "QT_PLUGIN_PATH", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DISPLAY", ":97")
    monkeypatch.setattr(platform_check, "run_ldd", lambda path: _ldd_report("libxcb-cursor.so.0", "libxcb-keysyms.so.1"))
    started: list[bool] = []
    import desktop.app

    monkeypatch.setattr(desktop.app, "main", lambda: started.append(True) or 0)
    monkeypatch.setattr(sys, "argv", ["verity"])
    assert launcher.main() == 2
    assert not started
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "libxcb-cursor.so.0, libxcb-keysyms.so.1" in err
    assert "apt-get install -y libxcb-cursor0 libxcb-keysyms1" in err


@linux_only
def test_gui_starts_when_nothing_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    _xcb_plugin()
    monkeypatch.setattr(platform_check, "run_ldd", lambda path: _ldd_report())
    assert gui_problem({"DISPLAY": ":0"}) is None


@linux_only
def test_no_display_is_one_line_not_a_qt_abort(monkeypatch: pytest.MonkeyPatch) -> None:
    _xcb_plugin()
    monkeypatch.setattr(platform_check, "run_ldd", lambda path: _ldd_report())
    problem = gui_problem({})
    assert problem is not None and "DISPLAY not set" in problem and "\n" not in problem


@linux_only
def test_unknown_when_ldd_cannot_tell(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ldd the check stays out of the way (Qt reports for itself)."""
    _xcb_plugin()
    monkeypatch.setattr(platform_check, "run_ldd", lambda path: None)
    assert gui_problem({"DISPLAY": ":0"}) is None


@linux_only
def test_offscreen_needs_no_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform_check, "run_ldd", lambda path: _ldd_report())
    assert gui_problem({"QT_QPA_PLATFORM": "offscreen"}) is None


def test_candidate_platforms() -> None:
    assert candidate_platforms({}) == ["xcb"]
    assert candidate_platforms({"QT_QPA_PLATFORM": "offscreen"}) == ["offscreen"]
    assert candidate_platforms({"QT_QPA_PLATFORM": "wayland;xcb:nograb"}) == ["wayland", "xcb"]
    assert candidate_platforms({"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"}) == ["wayland", "xcb"]


@pytest.mark.parametrize(
    ("soname", "package"),
    [
        ("libxcb-cursor.so.0", "libxcb-cursor0"),
        ("libxcb-icccm.so.4", "libxcb-icccm4"),
        ("libxcb-keysyms.so.1", "libxcb-keysyms1"),
        ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
        ("libX11-xcb.so.1", "libx11-xcb1"),
        ("libxcb-render-util.so.0", "libxcb-render-util0"),
        ("libglib-2.0.so.0", "libglib2.0-0"),
        ("libEGL.so.1", "libegl1"),
        ("libdbus-1.so.3", "libdbus-1-3"),
    ],
)
def test_debian_package_names(soname: str, package: str) -> None:
    assert debian_package(soname) == package


@pytest.fixture(autouse=True)
def _no_leaked_weights_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bundle launcher sets VERITY_PROJECT_WEIGHTS_DIR in os.environ; undo it after each test
    (set then delete: monkeypatch restores the variable's absence)."""
    monkeypatch.setenv("VERITY_PROJECT_WEIGHTS_DIR", "unset")
    monkeypatch.delenv("VERITY_PROJECT_WEIGHTS_DIR")


def test_bundle_keeps_weights_beside_the_executable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """In the PyInstaller bundle the weights folder lies beside the executable, outside the code."""
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "verity" / "verity"))
    monkeypatch.delenv("VERITY_PROJECT_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr(sys, "argv", ["verity", "-c", "pass"])
    assert launcher.main() == 0
    assert os.environ["VERITY_PROJECT_WEIGHTS_DIR"] == str(tmp_path / "verity" / "weights")


def test_bundle_runs_modules_and_code_like_python(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`verity -m MODULE` and `verity -c CODE` in the bundle (core starts helpers with sys.executable -m)."""
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "verity"))
    out = tmp_path / "out.txt"
    monkeypatch.setattr(sys, "argv", ["verity", "-c", f"import sys; open({str(out)!r}, 'w').write(' '.join(sys.argv))", "x"])
    assert launcher.main() == 0
    assert out.read_text() == "-c x"
    monkeypatch.setattr(sys, "argv", ["verity", "-m", "json.tool", "--help"])
    assert launcher.main() == 0
