"""SemMAE stage 1: write one part map per image (dataset-level k-means on a frozen ViT).

    python tools/part_learning/learn_parts.py --config CONFIG --checkpoint CKPT \
        --data-root data/mnist5k --data-prefix train [--part-root DIR] [--num-parts 7] \
        [--grid G] [--batch-size 64] [--fit-images 10000] [--fit-epochs 3] [--num-workers 2]
    torchrun --nproc_per_node N tools/part_learning/learn_parts.py ... --launcher pytorch

CONFIG is the ViT's mmpretrain config (its model.backbone and data_preprocessor mean/std), CKPT
its weights (MAE pretraining, fine-tuning, converted; 'backbone.' prefix or a bare backbone).
Maps go to {data_root}/part_maps/{data_prefix} by default, laid out as LoadPartMap reads them;
the centroids to {part_root}/centroids.pth and a summary (counts, corrupt images) to
{part_root}/part_learning.json. Rerunning skips the images whose map exists and reuses the
centroids. See configs/semmae/README.md, "Stage 1: part learning".
"""
import argparse
import datetime
import os
from typing import List, Optional

import torch

from mim_plugins.apis import UserInputError, run_cli
from mim_plugins.parts.part_learner import print_summary


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='SemMAE stage 1: part maps from a frozen ViT')
    parser.add_argument('--config', required=True, help="the ViT's mmpretrain config")
    parser.add_argument('--checkpoint', required=True, help="the ViT's checkpoint (.pth)")
    parser.add_argument('--data-root', required=True, help='data set root (CustomDataset)')
    parser.add_argument('--data-prefix', default='',
                        help='image folder inside the root (e.g. train); part maps mirror it')
    parser.add_argument('--ann-file', help='optional list of images (first column, relative '
                        'to data_root/data_prefix); default: every image in the folder')
    parser.add_argument('--part-root', help='output folder (default DATA_ROOT/part_maps/PREFIX)')
    parser.add_argument('--centroids', help='centroids file (default PART_ROOT/centroids.pth); '
                        'reused when it exists')
    parser.add_argument('--num-parts', type=int, default=7, help='K (SemMAE: 7)')
    parser.add_argument('--grid', type=int, help='side of the part map: the masking patch grid '
                        "(default: the ViT's token grid)")
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--fit-images', type=int, default=10000,
                        help='images drawn to fit the k-means (memory does not depend on it)')
    parser.add_argument('--fit-epochs', type=int, default=3, help='passes over those images')
    parser.add_argument('--num-workers', type=int, default=2, help='image decoding processes')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none',
                        help="'pytorch' under torchrun: images are sharded by rank")
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    for name in ('batch_size', 'fit_images', 'fit_epochs'):
        if getattr(args, name) < 1:
            raise UserInputError(f"--{name.replace('_', '-')} {getattr(args, name)} must be at "
                                 'least 1. Fix: pass a positive number.')
    if args.grid is not None and not 1 <= args.grid <= 1024:
        raise UserInputError(f'--grid {args.grid} is not a patch-grid side. Fix: pass e.g. 14 '
                             '(224² / 16² or 112² / 8²) or 7 (the demo).')
    if args.num_workers < 0:
        raise UserInputError('--num-workers must be >= 0. Fix: pass 0 to decode in-process.')


def init_launcher(launcher: str) -> None:
    """torchrun's process group: nccl on GPUs, gloo on CPU (as the training tools do). The
    timeout is long because the other ranks wait while rank 0 fits the centroids."""
    if launcher == 'none' or torch.distributed.is_initialized():
        return
    if 'RANK' not in os.environ:
        raise UserInputError("--launcher pytorch needs torchrun's environment (RANK, ...). Fix: "
                             'start with torchrun --nproc_per_node N ..., or drop --launcher.')
    backend = 'gloo'
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
        backend = 'nccl'
    torch.distributed.init_process_group(backend=backend, timeout=datetime.timedelta(hours=12))


def main(argv: Optional[List[str]] = None) -> None:
    from mim_plugins.parts import learn_parts

    args = parse_args(argv)
    check_args(args)
    init_launcher(args.launcher)
    summary = learn_parts(
        args.config, args.checkpoint, args.data_root, args.data_prefix, ann_file=args.ann_file,
        part_root=args.part_root, num_parts=args.num_parts, grid=args.grid,
        batch_size=args.batch_size, fit_images=args.fit_images, fit_epochs=args.fit_epochs,
        num_workers=args.num_workers, seed=args.seed, centroids_file=args.centroids,
        progress=not args.no_progress)
    if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
        print_summary(summary, 'parts')
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == '__main__':
    run_cli(main)
