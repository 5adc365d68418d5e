"""SemMAE masks figure: each image, its semantic part map and its masks at several λ.

    python tools/visualization/vis_semmae_masks.py IMAGE [IMAGE ...] --part-root DIR \
        --img-prefix DIR --out fig.png [--lams 1 0.5 0 | --schedule-epochs E] [--ratio 0.75]
        [--seed 0] [--num-parts 7]

The part map of each image is read where LoadPartMap(part_root, img_prefix) reads it during
training ({part_root}/{image path relative to img_prefix}.png, see configs/semmae/README.md).
One row per image: original | part map overlay | masked image at each λ (gray = masked; every
column masks the same number of patches). --schedule-epochs E shows instead the λ of SemMAE's
'square' schedule at epochs 0, E/4, E/2, 3E/4 and E-1 of an E-epoch run.
"""
import argparse
import os
import os.path as osp
from typing import List, Optional, Tuple

from mim_plugins.apis import UserInputError, run_cli


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='SemMAE part maps and masks at several λ')
    parser.add_argument('images', nargs='+', help='image files, one row each')
    parser.add_argument('--part-root', required=True, help='folder of the part maps')
    parser.add_argument('--img-prefix', required=True,
                        help='the image folder that the part-map folder mirrors')
    parser.add_argument('--out', required=True, help='output PNG')
    which = parser.add_mutually_exclusive_group()
    which.add_argument('--lams', type=float, nargs='+', default=[1.0, 0.5, 0.0],
                       help='λ of each masked column (1 = intra-part, 0 = inter-part)')
    which.add_argument('--schedule-epochs', type=int, metavar='E',
                       help="show the 'square' schedule's λ at epochs 0, E/4, E/2, 3E/4, E-1")
    parser.add_argument('--ratio', type=float, default=0.75, help='mask ratio r in (0, 1)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random masks')
    parser.add_argument('--num-parts', type=int, default=7,
                        help='K: every part id must be below it (SemMAE: 7)')
    return parser.parse_args(argv)


def schedule_columns(max_epochs: int) -> Tuple[List[float], List[str]]:
    """λ and titles at epochs 0, E/4, E/2, 3E/4, E-1 (each once) of the 'square' schedule."""
    from mim_plugins.masking import lambda_schedule

    epochs = list(dict.fromkeys(
        [0, max_epochs // 4, max_epochs // 2, 3 * max_epochs // 4, max_epochs - 1]))
    lams = [lambda_schedule(e, max_epochs, 'square') for e in epochs]
    return lams, [f'epoch {e}, λ={lam:.2f}' for e, lam in zip(epochs, lams)]


def check_args(args: argparse.Namespace) -> None:
    """One clear error for an argument out of range or a missing image (missing or bad part
    maps are reported, naming the image, when they are read)."""
    if not 0.0 < args.ratio < 1.0:
        raise UserInputError(f'--ratio {args.ratio} is outside (0, 1). Fix: pass a mask ratio '
                             'strictly between 0 and 1 (SemMAE: 0.75).')
    bad = [lam for lam in args.lams if not 0.0 <= lam <= 1.0]
    if bad:
        raise UserInputError(f'--lams {bad} outside [0, 1]. Fix: λ runs from 1 (intra-part) to '
                             '0 (inter-part).')
    if args.schedule_epochs is not None and args.schedule_epochs < 1:
        raise UserInputError(f'--schedule-epochs {args.schedule_epochs} must be at least 1. '
                             'Fix: pass the number of pretraining epochs (e.g. 800).')
    if not 1 <= args.num_parts <= 256:
        raise UserInputError(f'--num-parts {args.num_parts} is outside 1..256 (part maps are '
                             '8-bit). Fix: pass the number of parts K of the maps (SemMAE: 7).')
    for path in args.images:
        if not osp.isfile(path):
            raise UserInputError(f"Image '{path}' does not exist. Fix: check the path.")


def main(argv: Optional[List[str]] = None) -> None:
    from mim_plugins.datasets.part_maps import part_map_path
    from mim_plugins.visualization import render_semmae_masks

    args = parse_args(argv)
    check_args(args)
    if args.schedule_epochs is None:
        lams, titles = args.lams, None
    else:
        lams, titles = schedule_columns(args.schedule_epochs)
    maps = [part_map_path(args.part_root, args.img_prefix, p) for p in args.images]
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    render_semmae_masks(args.images, maps, args.out, lams=lams, mask_ratio=args.ratio,
                        seed=args.seed, num_parts=args.num_parts, titles=titles)
    print(f'Saved {args.out}: {len(args.images)} rows of original / part map / masks at '
          + ', '.join(f'λ={lam:.2f}' for lam in lams))


if __name__ == '__main__':
    run_cli(main)
