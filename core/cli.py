"""`verity <command>`: analyze / report / case / weights / train / eval / bench.

Each command lives in its own module under core/commands and is found automatically: a module
there defines `register(subparsers)` which adds its parser and sets `func(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import traceback
from pathlib import Path

import core
from core.errors import VerityError

log = logging.getLogger("verity")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="verity", description="Verity: offline deepfake forensics")
    parser.add_argument("--version", action="version", version=f"%(prog)s {core.__version__}")
    parser.add_argument("--db", type=Path, default=None, help="case database file (default: in the user data folder)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import core.commands as commands

    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not mod.name.startswith("_"):
            importlib.import_module(f"core.commands.{mod.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except VerityError as exc:
        print(f"verity: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("verity: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - an examiner gets one line, not a traceback
        if args.verbose:
            traceback.print_exc()
        print(f"verity: internal error: {type(exc).__name__}: {exc} (run with -v for details)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
