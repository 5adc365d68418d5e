#!/usr/bin/env bash
# The GPU check (docs/gpu.md), for a bare GPU machine whose python3 has torch and torchvision
# but which reaches no network (the lent H200: Python 3.12, torch 2.11 + CUDA 13):
#
#   1. installs the project's pure-Python stack from the carried wheelhouse/
#      (tools/build_wheelhouse.sh fills it) into $SITE with pip --no-index, and puts $SITE and
#      this checkout on PYTHONPATH; then imports everything and loads every ViT-B/16 config, so a
#      missing package shows here, by name, before any GPU time is spent;
#   2. runs the CUDA tests (`pytest -m cuda`), JUnit results in $OUT/cuda_tests.xml;
#   3. runs tools/gpu_check.py: every ViT-B/16 pretraining config in mixed precision, eager and
#      torch.compile'd, AdamW foreach vs fused, the data pipeline on every core, the CUDA tests'
#      results merged in: $OUT/gpu_check.json and $OUT/gpu_check.txt.
#
#   OUT=/path bash tools/gpu_check.sh [--install-only] [GPU_CHECK_ARGS ...]
#
# GPU_CHECK_ARGS go to tools/gpu_check.py (e.g. --budget-s 300, --device cpu --steps 2 CONFIG for
# a smoke run on CPU). Environment: PYTHON (python3), WHEELHOUSE (wheelhouse), SITE
# (/tmp/mim_plugins_site), SKIP_INSTALL=1 (use the packages this python already has: a machine
# set up by tools/setup_env.sh), SKIP_TESTS=1, CUDA_TESTS (the test files to run `-m cuda` over:
# tests/test_cuda.py), TEST_TIMEOUT (240 s). Exit status: 0 when all is
# well, 1 when a test or a config failed, 2 when the install or the preflight did.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
WHEELHOUSE=${WHEELHOUSE:-$ROOT/wheelhouse}
SITE=${SITE:-/tmp/mim_plugins_site}
OUT=${OUT:-$ROOT/work_dirs/gpu_check}
INSTALL_ONLY=0
if [ "${1:-}" = --install-only ]; then INSTALL_ONLY=1; shift; fi

say() { echo "[gpu_check $(date +%H:%M:%S)] $*"; }
die() { echo "[gpu_check] ERROR: $*" >&2; exit 2; }

cd "$ROOT"
mkdir -p "$OUT" || die "cannot create OUT=$OUT. Fix: OUT=/a/writable/folder"
command -v "$PYTHON" >/dev/null || die "'$PYTHON' not found. Fix: PYTHON=/path/to/python3"
"$PYTHON" -c 'import torch, torchvision' 2>/dev/null \
  || die "$PYTHON has no working torch + torchvision. Fix: run on a machine whose python has them (PYTHON=...)"
say "$("$PYTHON" -c 'import sys, torch; print(f"Python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}, GPU: {torch.cuda.get_device_name() if torch.cuda.is_available() else None}")')"

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  shopt -s nullglob
  wheels=("$WHEELHOUSE"/*.whl)
  [ ${#wheels[@]} -gt 0 ] || die "$WHEELHOUSE has no wheels. Fix: bash tools/build_wheelhouse.sh on a machine with the package registry, and carry wheelhouse with the run"
  if "$PYTHON" -c 'import pkg_resources' 2>/dev/null; then
    # keep the machine's own setuptools: carried only for pkg_resources, which it has
    keep=(); for w in "${wheels[@]}"; do case $(basename "$w") in setuptools-*) ;; *) keep+=("$w") ;; esac; done
    wheels=("${keep[@]}")
  fi
  say "installing ${#wheels[@]} wheels from $WHEELHOUSE into $SITE (no index, no dependencies)"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --disable-pip-version-check --target "$SITE" "${wheels[@]}" || die "pip install from $WHEELHOUSE failed (above)"
  export PYTHONPATH="$SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
fi

say "preflight: imports and the ViT-B/16 configs"
"$PYTHON" - <<'EOF' || die "the stack is incomplete (above). Fix: add the missing package's wheel to WHEELS in tools/build_wheelhouse.sh, rebuild and carry it"
import importlib, sys, warnings
warnings.filterwarnings('ignore')
missing = []
for name in ('mmengine', 'mmcv', 'mmpretrain', 'mim_plugins', 'pkg_resources', 'pytest'):
    try:
        importlib.import_module(name)
    except Exception as exc:  # the first line names the missing module
        missing.append(f'{name} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ""})')
if missing:
    sys.exit('[gpu_check] does not import: ' + '; '.join(missing))
from mim_plugins.benchmark.gpu import GPU_CONFIGS
from mim_plugins.benchmark.measure import load_config
for path in GPU_CONFIGS:
    load_config(path)
import mmcv, mmengine, mmpretrain, torch
print(f'[gpu_check] mmengine {mmengine.__version__}, mmcv {mmcv.__version__}, mmpretrain '
      f'{mmpretrain.__version__}, {len(GPU_CONFIGS)} configs load')
EOF
[ $INSTALL_ONLY = 1 ] && { say "installed (--install-only)"; exit 0; }

status=0
junit=()
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  say "CUDA tests: pytest -m cuda"
  timeout "${TEST_TIMEOUT:-240}" "$PYTHON" -m pytest -m cuda -q -rs -p no:cacheprovider \
    --junitxml="$OUT/cuda_tests.xml" ${CUDA_TESTS:-tests/test_cuda.py} 2>&1 | tee "$OUT/cuda_tests.log"
  rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || { say "CUDA tests: pytest exit status $rc"; status=1; }
  [ -f "$OUT/cuda_tests.xml" ] && junit=(--tests-junit "$OUT/cuda_tests.xml")
fi

say "measurements: tools/gpu_check.py $*"
PYTHONUNBUFFERED=1 "$PYTHON" tools/gpu_check.py --out "$OUT" "${junit[@]}" "$@" 2>&1 \
  | tee "$OUT/gpu_check.log"
rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] || status=$([ "$rc" = 2 ] && echo 2 || echo 1)
say "done (status $status): $OUT/gpu_check.txt, $OUT/gpu_check.json"
exit $status
