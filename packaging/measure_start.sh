#!/usr/bin/env bash
# Start-up time of the desktop window, under a fresh Xvfb: seconds from process start until the
# main window is mapped, and until it is painted (the screen's top-left corner is no longer black).
#
#   packaging/measure_start.sh [--runs N] [--cold DIR] [--shot PNG] -- COMMAND [ARG...]
#
#   --cold DIR   before each run, evict DIR's files from the page cache (vmtouch -e: only those
#                files, not the machine's whole cache), as after a reboot
#   --shot PNG   save a screenshot of the last run, 2 s after it painted
#
# Each run gets an empty HOME (no saved window layout, no recent case). Needs Debian's xvfb,
# xdotool and imagemagick (and vmtouch for --cold).
set -euo pipefail
runs=3 cold="" shot=""
while [ $# -gt 0 ]; do
    case $1 in
        --runs) runs=$2; shift 2 ;;
        --cold) cold=$2; shift 2 ;;
        --shot) shot=$2; shift 2 ;;
        --) shift; break ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--runs N] [--cold DIR] [--shot PNG] -- COMMAND [ARG...]" >&2; exit 2; }

tmp=$(mktemp -d)
exec 3<> "$tmp/displayfd"
Xvfb -displayfd 3 -screen 0 1600x1000x24 -nolisten tcp >"$tmp/xvfb.log" 2>&1 &
xvfb=$!
trap 'kill $xvfb 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do [ -s "$tmp/displayfd" ] && break; sleep 0.1; done
export DISPLAY=:$(head -1 "$tmp/displayfd")

painted() { [ "$(import -silent -window root -crop 300x40+0+0 +repage -format '%[fx:mean>0.02]' info: 2>/dev/null)" = 1 ]; }
now() { date +%s.%N; }

for i in $(seq "$runs"); do
    [ -n "$cold" ] && vmtouch -q -e "$cold"
    rm -rf "$tmp/home" && mkdir "$tmp/home"
    t0=$(now)
    HOME=$tmp/home "$@" >"$tmp/app.log" 2>&1 &
    app=$!
    until xdotool search --onlyvisible --name Verity >/dev/null 2>&1; do
        kill -0 $app 2>/dev/null || { wait $app && rc=0 || rc=$?; echo "run $i: exited ($rc) before a window showed: $(tail -1 "$tmp/app.log")"; continue 2; }
        sleep 0.05
    done
    t1=$(now)
    until painted; do kill -0 $app 2>/dev/null || break; sleep 0.05; done
    t2=$(now)
    printf 'run %d: mapped %.2f s, painted %.2f s\n' "$i" "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t0" | bc)"
    if [ "$i" = "$runs" ] && [ -n "$shot" ]; then sleep 2; import -silent -window root "$shot"; fi
    kill $app 2>/dev/null; wait $app 2>/dev/null || true
done
