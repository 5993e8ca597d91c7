"""`verity <command>`: analyze / report / case / weights / train / eval / bench.

Each command lives in its own module under core/commands and is found automatically: a module
there defines `register(subparsers)` which adds its parser and sets `func(args) -> int`.

Exit codes (docs/cases-and-reports.md): 0 success; 1 the command ran and found a problem (a
broken audit log, refused imports, some videos failed); 2 an error in the input, with one line on
stderr; 3 an internal error (a bug: `-v` shows the traceback). Faults of the case file:
4 not found (a mistyped `--db`), 5 not a Verity case file, 6 damaged, 7 read-only,
8 disk full, 9 locked by another process, 10 stored results changed (report refused).
130 interrupted (Ctrl+C), 143 terminated (SIGTERM; a run in progress is recorded as cancelled),
141 the output was closed early (`verity case show 1 | head`), silently, as other Unix tools.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import pkgutil
import signal
import sys
import traceback
from pathlib import Path
from types import FrameType

import core
from core.errors import TerminatedError, VerityError

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


EXIT_BROKEN_PIPE = 128 + 13
EXIT_TERMINATED = 128 + 15
EXIT_DISK_FULL = 8  # the same as the case file's StoreFullError


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise TerminatedError()


def _quiet_broken_pipe() -> int:
    """The reader went away (`| head`): no message, and no second error when Python flushes."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


def main(argv: list[str] | None = None) -> int:
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)  # a run in progress ends `cancelled`, not `running`
    except ValueError:  # not the main thread (an embedding application): leave signals alone
        previous = None
    try:
        return _main(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, while it can still be told apart
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except VerityError as exc:
        print(f"verity: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))
    except TerminatedError as exc:
        print(f"verity: {exc}", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("verity: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            return _internal(exc, args.verbose)
        where = f": {exc.filename}" if exc.filename else ""
        print(f"verity: error: no space left on the device{where}; free some space and run it again", file=sys.stderr)
        return EXIT_DISK_FULL
    except Exception as exc:  # noqa: BLE001 - an examiner gets one line, not a traceback
        return _internal(exc, args.verbose)


def _internal(exc: BaseException, verbose: bool) -> int:
    if verbose:
        traceback.print_exception(exc)
    print(f"verity: internal error: {type(exc).__name__}: {exc} (run with -v for details)", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main())
