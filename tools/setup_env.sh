#!/usr/bin/env bash
# Installs the whole stack (torch, mmcv with ops, mmengine, mmpretrain, mmsegmentation, mim_plugins)
# into a virtual environment. Idempotent: a second run only checks, and pip's wheel cache makes a
# re-install on the same machine fast (the compiled mmcv wheel is cached too).
#
#   VENV=.venv PYTHON=python3 bash tools/setup_env.sh
#
# GPU users: set MMCV_CUDA=1 to compile mmcv's CUDA ops (needs nvcc matching torch's CUDA).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
MMCV_VERSION=2.1.0
STAMP=$VENV/.mim_plugins_stack

say() { echo "[setup $(date +%H:%M:%S)] $*"; }
die() { echo "[setup] ERROR: $*" >&2; exit 1; }

cd "$ROOT"
# The stamp records the requirement files it was made from: an edited file triggers a new install.
want=$(cat requirements/*.txt setup.py tools/setup_env.sh | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ "${FORCE:-0}" != 1 ] \
   && "$VENV/bin/python" -c "import mmcv.ops, mmseg, mmpretrain, mim_plugins" 2>/dev/null; then
  say "stack already installed in $VENV (FORCE=1 to redo)"
  exit 0
fi

command -v "$PYTHON" >/dev/null || die "'$PYTHON' not found; set PYTHON=/path/to/python3.10-3.11"
"$PYTHON" -c 'import sys; assert (3, 8) <= sys.version_info[:2] <= (3, 12)' 2>/dev/null \
  || die "$("$PYTHON" -V) is not supported; use Python 3.8-3.12 (PYTHON=python3.11)"
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV" || die "python -m venv failed; install the venv module (apt-get install python3-venv)"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

say "build tools (pip, setuptools<81, wheel, ninja)"
"${PIP[@]}" install -q --upgrade pip
"${PIP[@]}" install -q --upgrade -r requirements/build.txt

say "torch + torchvision (requirements/torch.txt; ~3 GB the first time, cached after)"
"${PIP[@]}" install -q -r requirements/torch.txt || die "torch install failed; check network access to the package registry"

if "$VENV/bin/python" -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" 2>/dev/null; then
  say "mmcv $MMCV_VERSION with ops already installed"
else
  say "mmcv $MMCV_VERSION with ops: from pip's wheel cache, or compiled from source the first time (~16 min on 2 cores)"
  export MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)}
  if [ "${MMCV_CUDA:-0}" = 1 ]; then export FORCE_CUDA=1; fi
  "${PIP[@]}" install -q --no-build-isolation "mmcv==$MMCV_VERSION" \
    || die "mmcv $MMCV_VERSION failed to build; it needs gcc/g++ and the Python headers (apt-get install build-essential python3-dev)"
fi

say "OpenMMLab packages (requirements/runtime.txt)"
"${PIP[@]}" install -q -r requirements/runtime.txt -r requirements/tests.txt
"${PIP[@]}" install -q --no-deps openmim==0.3.9  # see requirements/runtime.txt
say "mim_plugins (editable)"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e .

say "checking the stack"
"$VENV/bin/python" - <<'EOF' || die "the stack does not import; run with FORCE=1 to reinstall"
import torch, torchvision, mmcv, mmcv.ops, mmengine, mmpretrain, mmseg, mim, mim_plugins
print(f'  torch {torch.__version__}  torchvision {torchvision.__version__}  mmcv {mmcv.__version__} (ops)  '
      f'mmengine {mmengine.__version__}  mmpretrain {mmpretrain.__version__}  mmseg {mmseg.__version__}')
EOF
echo "$want" > "$STAMP"
say "done: activate with 'source $VENV/bin/activate'"
