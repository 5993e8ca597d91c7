"""Entry point `verity`: the GUI with no arguments, the CLI (core.cli) with any.

The same file is the entry point of the PyInstaller bundle (packaging/verity.spec).
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path


def _frozen_setup(argv: list[str]) -> int | None:
    """In the bundle: the weights folder (manifest and checkpoints) lies beside the executable,
    outside the bundled code, so checkpoints can be added without rebuilding. And
    `verity -m MODULE ...` runs a bundled module, as `python -m` would (core code starts helper
    processes with `sys.executable -m`, which is this executable here); `verity -c CODE` runs
    code with the bundled libraries (the build's smoke test, diagnosis on the target machine)."""
    os.environ.setdefault("VERITY_PROJECT_WEIGHTS_DIR", str(Path(sys.executable).resolve().parent / "weights"))
    if len(argv) >= 2 and argv[0] == "-c":
        sys.argv = ["-c", *argv[2:]]
        exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
        return 0
    if len(argv) >= 2 and argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        try:
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            if isinstance(exc.code, int) or exc.code is None:
                return exc.code or 0
            print(exc.code, file=sys.stderr)
            return 1
        return 0
    return None


def main() -> int:
    argv = sys.argv[1:]
    if getattr(sys, "frozen", False):
        code = _frozen_setup(argv)
        if code is not None:
            return code
    if argv:
        from core.cli import main as cli_main

        return cli_main(argv)
    # Before any Qt import: a platform plugin that cannot load makes Qt abort the process.
    from desktop.platform_check import gui_problem

    problem = gui_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    try:
        from desktop.app import main as gui_main
    except ImportError as exc:
        print(f"verity: the desktop application cannot start ({exc}); the CLI works: verity --help", file=sys.stderr)
        return 2
    return gui_main()


if __name__ == "__main__":
    sys.exit(main())
