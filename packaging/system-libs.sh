#!/bin/sh
# Installs the Debian/Ubuntu packages the desktop window needs and this machine lacks: whatever
# the Qt xcb platform plugin cannot load (on a fresh desktop install typically libxcb-cursor0,
# libxcb-icccm4 and libxcb-keysyms1). The command line (verity analyze ...) needs none of them.
#
#   sh packaging/system-libs.sh [PYTHON]     (PYTHON: the venv's python, default .venv/bin/python)
#
# Never fails the set-up: where it cannot install (no apt-get, not root and no sudo), it prints
# the packages an administrator must install, and `verity` says the same when started.
py=${1:-.venv/bin/python}
pkgs=$("$py" -m desktop.platform_check --packages 2>/dev/null)
[ -n "$pkgs" ] || exit 0

say() { echo "verity set-up: $*" >&2; }
if ! command -v apt-get >/dev/null 2>&1; then
    say "the desktop needs these packages (no apt-get here; ask an administrator): $pkgs"
    exit 0
fi
if [ "$(id -u)" = 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1 && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then
    as_root="sudo"
else
    say "the desktop needs these packages; ask an administrator to run: apt-get install -y $pkgs"
    exit 0
fi
say "installing $pkgs"
# A fresh machine may have no package lists yet: update once and retry.
# shellcheck disable=SC2086 # $pkgs is a list of package names
if ! $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $pkgs >/dev/null 2>&1; then
    $as_root apt-get update -q >/dev/null 2>&1
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $pkgs >/dev/null 2>&1 ||
        say "could not install them; ask an administrator to run: apt-get install -y $pkgs"
fi
exit 0
