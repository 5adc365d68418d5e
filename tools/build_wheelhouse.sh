#!/usr/bin/env bash
# Fills wheelhouse/ (git-ignored) with the pure-Python wheels that tools/gpu_check.sh installs on
# a GPU machine that has Python 3.12, torch and torchvision but no network (docs/gpu.md):
# the lite profile's OpenMMLab packages (mmcv-lite 2.1.0, as tools/setup_env.sh PROFILE=lite
# installs it) and those of their requirements that machine's image lacks. Run it here, where the
# package registry is reachable; carry the folder with the GPU run (`carry: ["wheelhouse"]`).
#
#   bash tools/build_wheelhouse.sh            # WHEELHOUSE=wheelhouse PYTHON=python3
#
# Checks, before it says done: every wheel is pure Python (py3-none-any: they are built here on
# whatever this machine is, and installed there on x86-64 Python 3.12); every requirement of
# every wheel (Python 3.12 on Linux, no extras) is in the wheelhouse or in DEVICE_HAS, the
# packages that machine's image is documented to hold; and the folder fits what a run carries.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=${WHEELHOUSE:-$ROOT/wheelhouse}
PYTHON=${PYTHON:-python3}
# 64 MiB travel with a run, the working tree included; leave it 32 MiB.
MAX_MIB=${MAX_MIB:-32}

# The OpenMMLab pins are requirements/runtime.txt's and setup_env.sh's; the rest are the versions
# the lite profile resolves to, which the tests here ran with. setuptools only for pkg_resources
# (mmengine imports it to find installed packages), which setuptools >= 81 no longer has:
# gpu_check.sh installs it only where `import pkg_resources` fails.
WHEELS=(
  mmengine==0.10.7 mmcv-lite==2.1.0 mmpretrain==1.2.0
  addict==2.4.0 termcolor==3.3.0 yapf==0.43.0 platformdirs==4.14.9
  mat4py==0.6.0 modelindex==0.0.2 model-index==0.1.11 ordered-set==4.1.0
  importlib-metadata==10.2.0 lazy-importer==0.1.0
  setuptools==80.10.2
)
# What the GPU machine's image holds that these wheels ask for (the device README's package list;
# opencv-python-headless provides the `cv2` that mmengine's and mmcv's opencv-python names).
DEVICE_HAS="click einops markdown matplotlib numpy opencv-python opencv-python-headless packaging
pillow pyyaml regex rich setuptools torch torchvision zipp"

say() { echo "[wheelhouse] $*"; }
die() { echo "[wheelhouse] ERROR: $*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "'$PYTHON' not found. Fix: PYTHON=/path/to/python3 bash $0"
rm -rf "$DEST"
mkdir -p "$DEST"
say "building ${#WHEELS[@]} wheels into $DEST (pip wheel: downloads a wheel, builds an sdist)"
"$PYTHON" -m pip wheel -q --no-deps --disable-pip-version-check -w "$DEST" "${WHEELS[@]}" \
  || die "pip wheel failed; check access to the package registry"

DEVICE_HAS=$DEVICE_HAS "$PYTHON" - "$DEST" <<'EOF' || die "the wheelhouse is incomplete (above)"
import os, re, sys, zipfile
try:
    from packaging.markers import Marker
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.markers import Marker
    from pip._vendor.packaging.requirements import Requirement

def canon(name): return re.sub(r'[-_.]+', '-', name).lower()

dest = sys.argv[1]
wheels = sorted(f for f in os.listdir(dest) if f.endswith('.whl'))
have = {canon(w.split('-')[0]) for w in wheels} | {canon(n) for n in os.environ['DEVICE_HAS'].split()}
env = dict(python_version='3.12', python_full_version='3.12.3', sys_platform='linux',
           platform_system='Linux', os_name='posix', implementation_name='cpython',
           platform_machine='x86_64', extra='')
problems = [f'{w}: not pure Python (py3-none-any)' for w in wheels if not w.endswith('-none-any.whl')]
for w in wheels:
    with zipfile.ZipFile(os.path.join(dest, w)) as z:
        meta = next(n for n in z.namelist() if n.endswith('.dist-info/METADATA'))
        for line in z.read(meta).decode().splitlines():
            if line.startswith('Requires-Dist:'):
                req = Requirement(line.split(':', 1)[1].strip())
                if req.marker is None or req.marker.evaluate(env):
                    if canon(req.name) not in have:
                        problems.append(f'{w} requires {req}, which neither the wheelhouse nor '
                                        'the GPU image has: add it to WHEELS in tools/build_wheelhouse.sh')
for p in problems:
    print(f'[wheelhouse] {p}', file=sys.stderr)
sys.exit(1 if problems else 0)
EOF

kib=$(du -sk "$DEST" | cut -f1)
[ "$kib" -le $((MAX_MIB * 1024)) ] \
  || die "$DEST is $((kib / 1024)) MiB, over the $MAX_MIB MiB a run can carry beside the working tree. Fix: drop wheels the GPU image already has"
say "done: $(ls "$DEST" | wc -l) wheels, $((kib / 1024)).$(((kib % 1024) * 10 / 1024)) MiB in $DEST"
ls -1 "$DEST" | sed 's/^/  /'
