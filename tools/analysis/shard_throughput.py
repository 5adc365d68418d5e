"""Images per second per CPU core: training samples read from webdataset shards vs from the
image folder (CustomDataset), same images, same pipeline, through a torch DataLoader.

    python tools/analysis/shard_throughput.py [--data-root data/mnist5k] [--shards DIR] \
        [--images 4000] [--batch-size 64] [--workers 0] [--repeats 3] [--pipeline full|decode]

Packs DATA_ROOT/train into DIR (default DATA_ROOT/shards, 8 shards) with
tools/dataset_converters/pack_shards.py when DIR has no index yet; prepares the embedded
MNIST-5k when DATA_ROOT is missing. ``--pipeline decode`` times reading + decoding + packing
only, ``full`` adds the demo's RandomResizedCrop. With ``--workers 0`` everything runs in this
process on one core (one thread); with K workers the rate is divided by K. After one warm-up
pass each (the page cache then holds both: this compares the per-file cost of a folder with the
sequential read of a shard, not disk speed), the two sources alternate for ``--repeats`` timed
passes each; the best and the median pass are reported with the machine's load average
(``uptime``), since other processes share the cores.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import List, Optional

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='img/s per core: shards vs image folder')
    parser.add_argument('--data-root', default='data/mnist5k', help='CustomDataset root')
    parser.add_argument('--shards', help='shard folder (default DATA_ROOT/shards)')
    parser.add_argument('--images', type=int, default=4000, help='images per timed pass')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--workers', type=int, default=0, help='dataloader workers (0: 1 core)')
    parser.add_argument('--repeats', type=int, default=3, help='timed passes per source')
    parser.add_argument('--pipeline', choices=('full', 'decode'), default='full')
    return parser.parse_args(argv)


def ensure_data(args: argparse.Namespace) -> str:
    """The shard folder, packed (and the folder data prepared) if needed."""
    from mim_plugins.datasets import prepare_mnist5k
    if not osp.isdir(osp.join(args.data_root, 'train')):
        prepare_mnist5k(args.data_root)
    shards = args.shards or osp.join(args.data_root, 'shards')
    if not osp.isfile(osp.join(shards, 'train-index.json')):
        subprocess.run([sys.executable, osp.join(ROOT, 'tools/dataset_converters/pack_shards.py'),
                        args.data_root, shards, '--samples-per-shard', '500'], check=True,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    return shards


def make_loader(source: str, args: argparse.Namespace, shards: str):
    from mmengine.dataset import default_collate
    from mmpretrain.datasets import CustomDataset
    from torch.utils.data import DataLoader

    from mim_plugins.datasets.shards import ShardDataset
    tail = [dict(type='RandomResizedCrop', scale=28, crop_ratio_range=(0.5, 1.0),
                 backend='pillow', interpolation='bicubic')] if args.pipeline == 'full' else []
    tail.append(dict(type='PackInputs'))
    if source == 'folder':
        dataset = CustomDataset(data_root=args.data_root, data_prefix='train', with_label=False,
                                pipeline=[dict(type='LoadImageFromFile')] + tail)
        return DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True,
                          num_workers=args.workers, persistent_workers=args.workers > 0,
                          collate_fn=default_collate)
    with open(osp.join(shards, 'train-index.json')) as f:
        last = len(json.load(f)['shards']) - 1
    dataset = ShardDataset(shards=f'train-{{000000..{last:06d}}}.tar', data_root=shards,
                           index='train-index.json', batch_size=args.batch_size, seed=0,
                           pipeline=[dict(type='LoadImageFromShard')] + tail)
    return DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers,
                      persistent_workers=args.workers > 0, collate_fn=default_collate)


def timed_pass(loader, images: int, epoch: int) -> float:
    """Images per second over one pass of up to ``images`` images (epochs chained, from
    ``epoch`` on: a shard stream reshuffles per epoch)."""
    seen, start = 0, time.perf_counter()
    while seen < images:
        if hasattr(loader.dataset, 'set_epoch'):
            loader.dataset.set_epoch(epoch)
        epoch += 1
        for batch in loader:
            seen += len(batch['inputs'])
            if seen >= images:
                break
    return seen / (time.perf_counter() - start)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    import cv2
    import torch
    from mmengine.registry import init_default_scope
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    init_default_scope('mmpretrain')
    import mim_plugins  # noqa: F401  (registers ShardDataset and LoadImageFromShard)
    shards = ensure_data(args)
    cores = max(1, args.workers)
    loaders = {source: make_loader(source, args, shards) for source in ('folder', 'shards')}
    for loader in loaders.values():
        timed_pass(loader, args.images, 0)  # warm-up: page cache, worker start
    rates: dict = {source: [] for source in loaders}
    for i in range(args.repeats):  # alternated, so both sources share the machine's load
        for source, loader in loaders.items():
            rates[source].append(timed_pass(loader, args.images, 1000 * (i + 1)))
    for source, got in rates.items():
        print(json.dumps(dict(source=source, pipeline=args.pipeline, workers=args.workers,
                              batch_size=args.batch_size, images=args.images,
                              img_per_s=round(max(got), 1),
                              img_per_s_per_core=round(max(got) / cores, 1),
                              median_per_core=round(float(np.median(got)) / cores, 1),
                              load_avg=[round(x, 2) for x in os.getloadavg()])), flush=True)

if __name__ == '__main__':
    main()
