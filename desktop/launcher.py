"""Entry point `verity`: the GUI with no arguments, the CLI (core.cli) with any."""

from __future__ import annotations

import sys


def main() -> int:
    if len(sys.argv) > 1:
        from core.cli import main as cli_main

        return cli_main(sys.argv[1:])
    try:
        from desktop.app import main as gui_main
    except ImportError as exc:
        print(f"verity: the desktop application cannot start ({exc}); the CLI works: verity --help", file=sys.stderr)
        return 2
    return gui_main()


if __name__ == "__main__":
    sys.exit(main())
