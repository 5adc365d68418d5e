"""Benchmark pretraining configs: step img/s, FLOP/s vs the matmul peak, memory, pipeline.

    python tools/benchmark.py [CONFIG ...] [--device cuda] [--amp] [--compile] \
        [--batch-size N] [--compare OURS=STOCK] [--json out.json]
"""
from mim_plugins.apis import run_cli
from mim_plugins.benchmark.cli import main

if __name__ == '__main__':
    run_cli(main)
