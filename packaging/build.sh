#!/usr/bin/env bash
# Build the one-folder desktop bundle (PyInstaller) from a clean clone of this repository.
#
#   packaging/build.sh [--torch cuda|cpu] [--torch-wheels DIR | --torch-index URL]
#                      [--rev REV] [--venv DIR] [--out DIR] [--archive] [--keep]
#
#   --torch cuda   (default) torch/torchvision as constraints.txt pins them from PyPI: a CUDA
#                  build (several GB) that uses a GPU when present and runs on the CPU otherwise.
#   --torch cpu    the same versions, CPU-only, from --torch-wheels DIR (a folder of wheels) or
#                  --torch-index URL (a package index serving CPU wheels: PyPI's Linux x86_64
#                  torch is the CUDA build). torchvision must import beside that torch.
#   --rev REV      the commit to build (default HEAD; uncommitted changes are never built)
#   --venv DIR     the build virtualenv (default: a fresh one in the work folder; reusing one
#                  saves the install)
#   --out DIR      where dist/verity/ goes (default: dist/ in this repository)
#   --archive      also write verity-VERSION-linux-ARCH-TORCH.tar.gz beside it
#   --keep         keep the work folder (clone, PyInstaller's build files)
#
# Needs: python3 (3.11) with venv, git, ldd, and on this build machine the X libraries the
# bundle carries (apt-get install -y libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1). The target
# machine needs neither Python nor those packages.
set -euo pipefail

torch=cuda wheels="" index="" rev=HEAD venv="" out="" archive=0 keep=0
die() { echo "build.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        --torch) torch=${2:?}; shift ;;
        --torch-wheels) wheels=$(realpath "${2:?}"); shift ;;
        --torch-index) index=${2:?}; shift ;;
        --rev) rev=${2:?}; shift ;;
        --venv) venv=$(realpath -m "${2:?}"); shift ;;
        --out) out=$(realpath -m "${2:?}"); shift ;;
        --archive) archive=1 ;;
        --keep) keep=1 ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
case $torch in cuda|cpu) ;; *) die "--torch is cuda or cpu, not $torch" ;; esac
if [ "$torch" = cpu ] && [ -z "$wheels$index" ]; then
    die "--torch cpu needs --torch-wheels DIR or --torch-index URL (PyPI's Linux x86_64 torch is the CUDA build)"
fi

repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
out=${out:-$repo/dist}
work=$(mktemp -d "${TMPDIR:-/tmp}/verity-build.XXXXXX")
[ "$keep" = 1 ] || trap 'rm -rf "$work"' EXIT
venv=${venv:-$work/venv}
start=$(date +%s)
step() { echo "== $(( $(date +%s) - start )) s: $*"; }

step "clean clone of $rev"
git clone -q --no-local "$repo" "$work/src"
git -C "$work/src" checkout -q --detach "$rev"
src=$work/src
commit=$(git -C "$src" rev-parse HEAD)

step "virtualenv $venv ($torch torch)"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q -c "$src/constraints.txt")
if [ "$torch" = cpu ]; then
    from=()
    [ -n "$wheels" ] && from+=(--no-index --find-links "$wheels")
    [ -n "$index" ] && from+=(--index-url "$index")
    # the versions constraints.txt pins (a local label such as +cpu satisfies them)
    pins=("$(grep '^torch==' "$src/constraints.txt")" "$(grep '^torchvision==' "$src/constraints.txt")")
    "${pip[@]}" --no-deps "${from[@]}" "${pins[@]}" || die "no CPU ${pins[*]} in ${wheels:-$index}"
fi
"${pip[@]}" -e "$src[bundle]"
versions=$("$venv/bin/python" -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__, "CUDA", torch.version.cuda or "none")') ||
    die "torch and torchvision do not import together in $venv"
echo "$versions"

step "X libraries to bundle"
(cd "$src" && "$venv/bin/python" -m desktop.platform_check xcb) ||
    die "install the X libraries above on this build machine first: the bundle carries them"

step "PyInstaller"
(cd "$src" && "$venv/bin/pyinstaller" --noconfirm --clean --log-level WARN \
    --distpath "$out" --workpath "$work/build" packaging/verity.spec)
app=$out/verity

step "desktop integration and build record"
cp "$src/packaging/install.sh" "$src/packaging/uninstall.sh" "$src/packaging/verity.desktop" "$app/"
version=$("$venv/bin/python" -c 'import tomllib; print(tomllib.load(open("'"$src"'/pyproject.toml", "rb"))["project"]["version"])')
cat > "$app/BUILD-INFO.txt" <<EOF
Verity $version, commit $commit
built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -sm), $(ldd --version | head -1)
$versions
EOF

step "smoke test (no Python on PATH)"
env -i HOME="$work" PATH=/usr/bin:/bin "$app/verity" --version
env -i HOME="$work" PATH=/usr/bin:/bin "$app/verity" weights list >/dev/null
# what the learned detectors and the face pass load lazily, and torchvision's operators
env -i HOME="$work" PATH=/usr/bin:/bin "$app/verity" -c '
import torch, torchvision, timm, open_clip, dlib, cv2, av, librosa, reportlab
from torchvision.ops import nms
from core.face.models import LANDMARKS_68, MMOD_FACE, model_path
assert nms(torch.tensor([[0.0, 0, 1, 1], [0, 0, 1, 1]]), torch.tensor([0.9, 0.8]), 0.5).tolist() == [0]
assert open_clip.get_model_config("ViT-L-14") is not None, "open_clip model configs missing"
timm.create_model("legacy_xception", pretrained=False, num_classes=0)  # architecture only, no weights
print("bundled:", model_path(LANDMARKS_68).name, model_path(MMOD_FACE).name, "torch", torch.__version__, "torchvision", torchvision.__version__)'

if [ "$archive" = 1 ]; then
    tarball=$out/verity-$version-linux-$(uname -m)-$torch.tar.gz
    step "archive $tarball"
    tar -C "$out" -czf "$tarball" verity
fi
step "done: $app ($(du -sh "$app" | cut -f1))"
