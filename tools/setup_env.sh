#!/usr/bin/env bash
# Installs the stack into a virtual environment, in one of two profiles (docs/install.md):
#
#   PROFILE=lite      (the default) nothing is compiled: torch, mmcv-lite, mmengine, mmpretrain,
#                     onedl-mmsegmentation (the maintained mmsegmentation fork, same `mmseg`
#                     module, no need of mmcv's ops), the demos' packages, the test tools,
#                     mim_plugins. Runs everything, segmentation included (`make setup`, what
#                     `make demo`, `make demo-seg`, `make test` and CI run).
#   PROFILE=compiled  (opt-in) mmcv 2.1.0 compiled with its ops instead of mmcv-lite, upstream
#                     mmsegmentation 1.2.2 instead of the fork; needs gcc/g++ (~20 min the first
#                     time on 2 cores). Replaces a lite environment's mmcv and mmseg in place.
#
#   VENV=.venv PYTHON=python3 PROFILE=lite bash tools/setup_env.sh
#
# Idempotent: a second run only checks. The stamp $VENV/.mim_plugins_stack records the profile,
# the torch choice and the files it was made from; a compiled environment already runs all a lite
# one does, so asking it for lite keeps it compiled. pip's wheel cache makes a re-install on the
# same machine fast (the compiled mmcv wheel is cached too).
#
# TORCH=2.14.1 (lite only): the newest torch + torchvision pair the registry serves
# (requirements/torch-2.14.txt) instead of the pinned 2.12.1 + 0.27.1 (requirements/torch.txt).
# GPU users of the compiled profile: MMCV_CUDA=1 compiles mmcv's CUDA ops too (needs nvcc
# matching torch's CUDA).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
PROFILE=${PROFILE:-lite}
TORCH=${TORCH:-2.12.1}
MMCV_VERSION=2.1.0
STAMP=$VENV/.mim_plugins_stack

say() { echo "[setup $(date +%H:%M:%S)] $*"; }
die() { echo "[setup] ERROR: $*" >&2; exit 1; }

cd "$ROOT"
case "$PROFILE" in
  lite|compiled) ;;
  full) die "PROFILE=full is now PROFILE=compiled, and no longer needed for segmentation: the default profile runs it without a compiler. Fix: PROFILE=lite (the default), or PROFILE=compiled for compiled mmcv ops + upstream mmsegmentation" ;;
  *) die "PROFILE=$PROFILE is not a profile. Fix: PROFILE=lite (the default, no compiler) or PROFILE=compiled (compiled mmcv ops + upstream mmsegmentation)" ;;
esac
case "$TORCH" in
  2.12.1) TORCH_REQ=requirements/torch.txt ;;
  2.14.1) TORCH_REQ=requirements/torch-2.14.txt ;;
  *) die "TORCH=$TORCH is not offered. Fix: TORCH=2.12.1 (the default, both profiles) or TORCH=2.14.1 (PROFILE=lite only)" ;;
esac

# The profile this environment has now: the stamp's, else what its mmcv distribution says.
have=""
if [ -f "$STAMP" ]; then
  have=$(cut -d' ' -f1 "$STAMP")
  case "$have" in
    lite|compiled) ;;
    *) have=compiled ;;  # 'full' and older stamps: compiled mmcv + mmsegmentation
  esac
elif [ -x "$VENV/bin/python" ]; then
  have=$("$VENV/bin/python" -c "
from importlib.metadata import version
for dist, profile in (('mmcv', 'compiled'), ('mmcv-lite', 'lite')):
    try:
        version(dist); print(profile); break
    except Exception:
        pass" 2>/dev/null || true)
fi
if [ "$PROFILE" = lite ] && [ "$have" = compiled ]; then
  [ "$TORCH" = 2.12.1 ] || die "$VENV has the compiled profile, whose mmcv ops break with another torch. Fix: install TORCH=$TORCH into another environment (VENV=/path/to/new-venv TORCH=$TORCH bash tools/setup_env.sh)"
  say "$VENV has the compiled profile, which runs all the lite one does: keeping it"
  PROFILE=compiled
fi
[ "$PROFILE" = lite ] || [ "$TORCH" = 2.12.1 ] \
  || die "TORCH=$TORCH works with PROFILE=lite only: mmcv $MMCV_VERSION's ops do not compile against torch >= 2.14 (its headers need C++20). Fix: PROFILE=lite TORCH=$TORCH, or unset TORCH for the compiled profile"

checks="import mmpretrain, mmseg.models, pytest, mim_plugins"
if [ "$PROFILE" = compiled ]; then checks="import mmcv.ops; $checks"; fi
# The stamp records the profile, the torch choice and the files it was made from: an edited file
# triggers a new install.
want="$PROFILE $TORCH $(cat requirements/*.txt setup.py tools/setup_env.sh | sha256sum | cut -c1-16)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ "${FORCE:-0}" != 1 ] \
   && "$VENV/bin/python" -c "$checks" 2>/dev/null; then
  say "$PROFILE profile already installed in $VENV (FORCE=1 to redo)"
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
say "installing the $PROFILE profile into $VENV"

say "build tools (pip, wheel, ninja)"
"${PIP[@]}" install -q --upgrade pip
"${PIP[@]}" install -q --upgrade -r requirements/build.txt

say "torch $TORCH + torchvision + the setuptools they accept ($TORCH_REQ; ~3 GB the first time)"
"${PIP[@]}" install -q -r "$TORCH_REQ" || die "torch install failed; check network access to the package registry"

# mmcv-lite and mmcv install the same `mmcv` package, onedl-mmsegmentation and mmsegmentation the
# same `mmseg`: side by side, one would overwrite the other's files, and uninstalling either would
# break both. Switching profiles removes the other profile's distributions first.
if [ "$PROFILE" = lite ]; then
  other=(mmcv mmsegmentation)
else
  other=(mmcv-lite onedl-mmsegmentation)
fi
for dist in "${other[@]}"; do
  if "${PIP[@]}" show -q "$dist" >/dev/null 2>&1; then
    say "switching to the $PROFILE profile: removing $dist"
    "${PIP[@]}" uninstall -q -y "$dist"
  fi
done

if [ "$PROFILE" = lite ]; then
  say "mmcv-lite $MMCV_VERSION (pure Python, no compiled ops)"
  "${PIP[@]}" install -q "mmcv-lite==$MMCV_VERSION" || die "mmcv-lite $MMCV_VERSION failed to install; check network access to the package registry"
elif "$VENV/bin/python" -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" 2>/dev/null; then
  say "mmcv $MMCV_VERSION with ops already installed"
else
  say "mmcv $MMCV_VERSION with ops: from pip's wheel cache, or compiled from source the first time (~20 min on 2 cores)"
  export MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)}
  if [ "${MMCV_CUDA:-0}" = 1 ]; then export FORCE_CUDA=1; fi
  "${PIP[@]}" install -q --no-build-isolation "mmcv==$MMCV_VERSION" \
    || die "mmcv $MMCV_VERSION failed to build; it needs gcc/g++ and the Python headers (apt-get install build-essential python3-dev). Without a compiler, PROFILE=lite (the default) runs everything"
fi

SEG_REQ=requirements/seg.txt
if [ "$PROFILE" = compiled ]; then SEG_REQ=requirements/seg-compiled.txt; fi
say "OpenMMLab packages (requirements/runtime.txt, $SEG_REQ, tests.txt, photos.txt)"
"${PIP[@]}" install -q -r requirements/runtime.txt -r "$SEG_REQ" -r requirements/tests.txt \
  -r requirements/photos.txt
"${PIP[@]}" install -q --no-deps openmim==0.3.9  # see requirements/runtime.txt
say "mim_plugins (editable)"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e .

say "checking the stack"
PROFILE=$PROFILE "$VENV/bin/python" - <<'EOF' || die "the stack does not import; run with FORCE=1 to reinstall"
import os
import torch, torchvision, mmcv, mmengine, mmpretrain, mim, mim_plugins
from importlib.metadata import version
from mim_plugins.utils.stack import seg_missing
assert seg_missing() is None, seg_missing()
import mmseg
compiled = os.environ['PROFILE'] == 'compiled'
if compiled:
    import mmcv.ops
seg_dist = 'mmsegmentation' if compiled else 'onedl-mmsegmentation'
print(f'  torch {torch.__version__}  torchvision {torchvision.__version__}  '
      f'mmcv {mmcv.__version__} ({"ops" if compiled else "lite, no ops"})  '
      f'mmengine {mmengine.__version__}  mmpretrain {mmpretrain.__version__}  '
      f'{seg_dist} {version(seg_dist)} (mmseg {mmseg.__version__})')
EOF
echo "$want" > "$STAMP"
say "done ($PROFILE profile): activate with 'source $VENV/bin/activate'"
