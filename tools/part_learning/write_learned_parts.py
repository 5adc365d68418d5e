"""SemMAE stage 1 with the learned part learner: write one part map per image.

    python tools/part_learning/write_learned_parts.py --config CONFIG --checkpoint CKPT \
        --data-root data/mnist5k --data-prefix train [--part-root DIR] [--grid G]
    torchrun --nproc_per_node N tools/part_learning/write_learned_parts.py ... --launcher pytorch

CONFIG/CKPT: a SemMAEPartLearner trained with tools/train.py
(configs/semmae/semmae-parts_*.py). Maps go to {data_root}/part_maps/{data_prefix} by default,
laid out as LoadPartMap reads them, with a summary (counts, corrupt images) in
{part_root}/part_learning.json; rerunning skips the images whose map exists. The k-means
baseline is tools/part_learning/learn_parts.py. See docs/semmae_stage1.md.
"""
import argparse
from typing import List, Optional

import torch

from mim_plugins.apis import UserInputError, run_cli
from mim_plugins.parts.part_learner import print_summary

from learn_parts import init_launcher


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='SemMAE stage 1: learned part maps')
    parser.add_argument('--config', required=True, help="the part learner's config")
    parser.add_argument('--checkpoint', required=True, help="the part learner's checkpoint")
    parser.add_argument('--data-root', required=True, help='data set root (CustomDataset)')
    parser.add_argument('--data-prefix', default='',
                        help='image folder inside the root (e.g. train); part maps mirror it')
    parser.add_argument('--ann-file', help='optional list of images (first column)')
    parser.add_argument('--part-root', help='output folder (default DATA_ROOT/part_maps/PREFIX)')
    parser.add_argument('--grid', type=int, help="side of the part map (default: the ViT's grid)")
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--num-workers', type=int, default=2, help='image decoding processes')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none',
                        help="'pytorch' under torchrun: images are sharded by rank")
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    from mim_plugins.parts.learned_parts import learned_parts

    args = parse_args(argv)
    if args.batch_size < 1 or args.num_workers < 0:
        raise UserInputError('--batch-size must be >= 1 and --num-workers >= 0. Fix: pass e.g. '
                             '--batch-size 64 --num-workers 2.')
    if args.grid is not None and not 1 <= args.grid <= 1024:
        raise UserInputError(f'--grid {args.grid} is not a patch-grid side. Fix: pass e.g. 14.')
    init_launcher(args.launcher)
    summary = learned_parts(args.config, args.checkpoint, args.data_root, args.data_prefix,
                            ann_file=args.ann_file, part_root=args.part_root, grid=args.grid,
                            batch_size=args.batch_size, num_workers=args.num_workers,
                            progress=not args.no_progress)
    if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
        print_summary(summary, 'learned parts')
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == '__main__':
    run_cli(main)
