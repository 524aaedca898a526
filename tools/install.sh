#!/usr/bin/env bash
# Creates .venv with everything avrobust needs. Idempotent: a stamp keyed on the hash of
# pyproject.toml and this script makes a second run with nothing changed return in seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${AVROBUST_VENV:-$ROOT/.venv}"
STAMP="$VENV/.avrobust-install-stamp"

hash_inputs() { cat pyproject.toml tools/install.sh | sha256sum | cut -d' ' -f1; }
WANT="$(hash_inputs)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -x "$VENV/bin/python" ]]; then
    exit 0
fi

log() { printf '\033[1m[install]\033[0m %s\n' "$*"; }

# Open3D's wheel links against libusb-1.0, which slim images lack.
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so'; then
    log "installing the system library libusb-1.0 (Open3D needs it)"
    SUDO=""
    if [[ "$(id -u)" != "0" ]]; then SUDO="sudo"; fi
    if command -v apt-get >/dev/null; then
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libusb-1.0-0
    else
        echo "error: libusb-1.0 is missing and apt-get is not available; install libusb-1.0 with" \
             "your system's package manager, then run 'make install' again" >&2
        exit 1
    fi
fi

PY="${AVROBUST_PYTHON:-}"
if [[ -z "$PY" ]]; then
    for cand in python3.11 python3.12 python3.10 python3; do
        if command -v "$cand" >/dev/null; then PY="$cand"; break; fi
    done
fi
"$PY" - <<'PYCHECK'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"error: avrobust needs Python >= 3.10, found {sys.version.split()[0]}")
PYCHECK

if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV with $($PY --version)"
    "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

# torch first, pinned, so that the dependency resolver never swaps in another build.
# x86_64 gets the PyPI build (CUDA-enabled, runs on CPU too); aarch64 the CPU build.
if [[ -n "${AVROBUST_TORCH_SPEC:-}" ]]; then
    read -r -a TORCH <<<"$AVROBUST_TORCH_SPEC"
elif [[ "$(uname -m)" == "aarch64" ]]; then
    TORCH=("torch==2.9.1" "torchvision==0.24.1")
else
    TORCH=("torch==2.14.1" "torchvision==0.29.1")
fi
log "installing ${TORCH[*]}"
"${PIP[@]}" install -q "${TORCH[@]}"

log "installing avrobust and its dependencies (editable, with the dev extras)"
"${PIP[@]}" install -q -e '.[dev]'

# torchattacks (AutoAttack for the digital robust-accuracy numbers) pins requests 2.25, which
# Ray's dependencies refuse; it never imports requests, so it goes in without its dependencies
# (torch, torchvision, scipy and tqdm are already here).
log "installing torchattacks 3.5.1 (without its requests pin)"
"${PIP[@]}" install -q --no-deps "torchattacks==3.5.1"

"$VENV/bin/python" -c "import avrobust, torch, open3d, kornia, cv2" \
    || { echo "error: the environment in $VENV does not import; see the messages above" >&2; exit 1; }

echo "$WANT" >"$STAMP"
log "done: $VENV"
