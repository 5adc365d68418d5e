"""Attention maps and argmax parts of the learned part learner over images (SemMAE Figure 1,
panels (e) and (f)).

    python tools/visualization/vis_learned_parts.py IMAGE [IMAGE ...] --config CONFIG \
        --checkpoint CKPT --out parts.png [--cell 112]

CONFIG/CKPT: a SemMAEPartLearner trained with tools/train.py (docs/semmae_stage1.md). One row per
image: the image, each part's attention map (min-max scaled), the argmax parts (a part has the
same colour in every image) and their overlay.
"""
import argparse
import os
import os.path as osp
from typing import List, Optional

from mim_plugins.apis import UserInputError, run_cli


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='learned part attention maps and parts')
    parser.add_argument('images', nargs='+', help='image files')
    parser.add_argument('--config', required=True, help="the part learner's config")
    parser.add_argument('--checkpoint', required=True, help="the part learner's checkpoint")
    parser.add_argument('--out', required=True, help='output PNG')
    parser.add_argument('--cell', type=int, default=112, help='pixels per picture')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    from mim_plugins.visualization.learned_parts import render_learned_parts

    args = parse_args(argv)
    missing = [p for p in args.images if not osp.isfile(p)]
    if missing:
        raise UserInputError(f"Image '{missing[0]}' does not exist. Fix: check the path.")
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    render_learned_parts(args.config, args.checkpoint, args.images, args.out, args.cell)
    print(f'Saved {args.out}: attention maps and parts of {len(args.images)} images')


if __name__ == '__main__':
    run_cli(main)
