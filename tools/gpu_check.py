"""The GPU check's measurements (tools/gpu_check.sh runs it after the install and the CUDA
tests): every ViT-B/16 pretraining config in mixed precision, eager and compiled, AdamW foreach
vs fused, the data pipeline on every core; gpu_check.json + gpu_check.txt under --out.

    python tools/gpu_check.py [CONFIG ...] [--out DIR] [--device cuda] [--steps 20] \
        [--budget-s 330] [--tests-junit cuda_tests.xml]

Exit status 1 when a config fails, a loss is not finite or a CUDA test failed.
"""
import sys

from mim_plugins.apis import run_cli
from mim_plugins.benchmark.gpu import main


def _main() -> None:
    if not main()['ok']:
        sys.exit(1)


if __name__ == '__main__':
    run_cli(_main)
