#!/bin/sh
# Install Verity for this user (no root): the menu entry, the icon and `verity` on ~/.local/bin.
#
#   sh install.sh      from the bundle folder (dist/verity/): copies the bundle to
#                      ~/.local/opt/verity (VERITY_APP_DIR overrides it) and installs from there
#   sh packaging/install.sh   from a source checkout: uses the checkout's .venv/bin/verity
#
# User data is not touched: cases and imported weights live in ~/.local/share/verity, settings
# in ~/.config/Verity.
# sh uninstall.sh (beside this script, or in the installed bundle) removes what this one adds.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
data=${XDG_DATA_HOME:-$HOME/.local/share}
bin=$HOME/.local/bin

if [ -x "$here/verity" ] && [ -d "$here/_internal" ]; then
    app=${VERITY_APP_DIR:-$HOME/.local/opt/verity}
    if [ "$here" != "$app" ]; then
        rm -rf "$app.new"
        mkdir -p "$(dirname "$app")"
        cp -a "$here" "$app.new"
        if [ -d "$app/weights" ]; then  # checkpoints placed in the old bundle's weights/ stay
            for f in "$app/weights"/*; do
                [ -e "$app.new/weights/$(basename "$f")" ] || cp -a "$f" "$app.new/weights/"
            done
        fi
        rm -rf "$app"
        mv "$app.new" "$app"
    fi
    exe=$app/verity
    icon=$app/_internal/resources/icons/verity.svg
else
    src=$(dirname "$here")
    exe=$src/.venv/bin/verity
    icon=$src/resources/icons/verity.svg
    [ -x "$exe" ] || { echo "install.sh: $exe not found: run the README's set-up command first" >&2; exit 2; }
fi

mkdir -p "$bin" "$data/applications" "$data/icons/hicolor/scalable/apps"
ln -sfn "$exe" "$bin/verity"
cp "$icon" "$data/icons/hicolor/scalable/apps/verity.svg"
# The menu starts the absolute path: a desktop session's PATH often lacks ~/.local/bin.
sed "s|^Exec=.*|Exec=\"$exe\"|; s|^TryExec=.*|TryExec=$exe|" "$here/verity.desktop" > "$data/applications/verity.desktop"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$data/applications" || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$data/icons/hicolor" 2>/dev/null || true

echo "installed: $exe"
echo "  menu entry $data/applications/verity.desktop, icon $data/icons/hicolor/scalable/apps/verity.svg, command $bin/verity"
case ":$PATH:" in *":$bin:"*) ;; *) echo "  $bin is not on PATH: add it, or start $exe" ;; esac
echo "  weights: verity weights import FILE... (into ${XDG_DATA_HOME:-$HOME/.local/share}/verity/weights)"
