"""Benchmark pretraining configs: step img/s, FLOP/s vs the matmul peak, memory, pipeline.

    python tools/benchmark.py [CONFIG ...] [--device cuda] [--amp] [--compile] \
        [--batch-size N] [--compare OURS=STOCK] [--json out.json]

Data pipeline mode: stock pipelines against their crop-aware-decoding variants on real JPEGs
(img/s per core, crop boxes, PSNR, profile; mim_plugins/benchmark/pipeline_compare.py):

    python tools/benchmark.py pipeline [--data DIR] [--images 200] [--pair OURS=STOCK] \
        [--json out.json]
"""
import sys

from mim_plugins.apis import run_cli
from mim_plugins.benchmark.cli import main
from mim_plugins.benchmark.pipeline_compare import main as pipeline_main

if __name__ == '__main__':
    if sys.argv[1:2] == ['pipeline']:
        run_cli(lambda: pipeline_main(sys.argv[2:]))
    else:
        run_cli(main)
