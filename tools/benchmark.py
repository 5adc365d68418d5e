"""Benchmark pretraining configs: step img/s, FLOP/s vs the matmul peak, memory, pipeline.

    python tools/benchmark.py [CONFIG ...] [--device cuda] [--amp] [--compile] \
        [--batch-size N] [--compare OURS=STOCK] [--json out.json]

Data pipeline mode: stock pipelines against their crop-aware-decoding variants on real JPEGs
(img/s per core, crop boxes, PSNR, profile; mim_plugins/benchmark/pipeline_compare.py):

    python tools/benchmark.py pipeline [--data DIR] [--images 200] [--pair OURS=STOCK] \
        [--json out.json]

SemMAE stage 1 mode: the learned part learner's training step and inference, and the k-means
baseline's inference, per image at ViT-B/16 and 224x224 by default (GFLOP/img, memory;
mim_plugins/benchmark/parts_cli.py, docs/semmae_stage1.md "Cost"):

    python tools/benchmark.py parts [--device cuda] [--batch-size N] [--arch b] \
        [--img-size 224] [--patch-size 16] [--json out.json]
"""
import sys

from mim_plugins.apis import run_cli
from mim_plugins.benchmark.cli import main
from mim_plugins.benchmark.parts_cli import main as parts_main
from mim_plugins.benchmark.pipeline_compare import main as pipeline_main

if __name__ == '__main__':
    if sys.argv[1:2] == ['pipeline']:
        run_cli(lambda: pipeline_main(sys.argv[2:]))
    elif sys.argv[1:2] == ['parts']:
        run_cli(lambda: parts_main(sys.argv[2:]))
    else:
        run_cli(main)
