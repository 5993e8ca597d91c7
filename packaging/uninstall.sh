#!/bin/sh
# Remove what install.sh added for this user: the menu entry, the icon, ~/.local/bin/verity and
# the installed bundle (~/.local/opt/verity, or VERITY_APP_DIR).
#
# Never removed: cases and imported weights (~/.local/share/verity), settings (~/.config/Verity).
# A checkpoint placed by hand in the installed bundle's weights/ folder makes it stop and say
# so; --force removes it with the bundle.
set -eu

data=${XDG_DATA_HOME:-$HOME/.local/share}
app=${VERITY_APP_DIR:-$HOME/.local/opt/verity}
link=$HOME/.local/bin/verity
force=0
[ "${1:-}" = --force ] && force=1

if [ -d "$app/weights" ] && [ "$force" = 0 ]; then
    extra=$(find "$app/weights" -mindepth 1 ! -name manifest.toml ! -name README.md | head -20)
    if [ -n "$extra" ]; then
        echo "uninstall.sh: $app/weights holds files of yours:" >&2
        echo "$extra" >&2
        echo "move them (verity weights import FILE puts them in the user folder) or rerun with --force" >&2
        exit 2
    fi
fi

rm -f "$data/applications/verity.desktop" "$data/icons/hicolor/scalable/apps/verity.svg"
# only our own link (the command may be another installation's)
if [ -L "$link" ]; then
    case $(readlink "$link") in "$app/verity" | */.venv/bin/verity) rm -f "$link" ;; esac
fi
removed="menu entry, icon and command link"
if [ -x "$app/verity" ] && [ -d "$app/_internal" ]; then
    rm -rf "$app"
    removed="$removed, and $app"
fi
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$data/applications" || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$data/icons/hicolor" 2>/dev/null || true
echo "removed Verity's $removed"
echo "kept: ${XDG_DATA_HOME:-$HOME/.local/share}/verity (cases, weights) and ${XDG_CONFIG_HOME:-$HOME/.config}/Verity (settings)"
