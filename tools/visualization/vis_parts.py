"""Part maps overlaid on their images, as a PNG grid (SemMAE stage 1 output).

    python tools/visualization/vis_parts.py --part-root data/mnist5k/part_maps/train \
        --img-prefix data/mnist5k/train --out parts.png [IMAGE ...] [--num 8] [--num-parts 7]

Without IMAGE arguments, --num images spread evenly over the sorted image folder are shown.
Rows of --cols images; each image takes three columns: original | part colours | overlay.
A part id has the same colour in every image, so consistent parts show as consistent colours.
"""
import argparse
import os
import os.path as osp
from typing import List, Optional

import numpy as np

from mim_plugins.apis import UserInputError, run_cli


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='SemMAE part maps overlaid on images')
    parser.add_argument('images', nargs='*', help='image files (default: --num from the folder)')
    parser.add_argument('--part-root', required=True, help='folder of the part maps')
    parser.add_argument('--img-prefix', required=True,
                        help='the image folder that the part-map folder mirrors')
    parser.add_argument('--out', required=True, help='output PNG')
    parser.add_argument('--num', type=int, default=8, help='images to show without IMAGE args')
    parser.add_argument('--cols', type=int, default=2, help='images per row')
    parser.add_argument('--num-parts', type=int, default=7, help='K (ids must be below it)')
    parser.add_argument('--alpha', type=float, default=0.5, help='opacity of the part colours')
    parser.add_argument('--cell', type=int, default=112, help='pixels per picture')
    return parser.parse_args(argv)


def pick_images(args: argparse.Namespace) -> List[str]:
    """The IMAGE arguments, or ``--num`` images evenly spaced over the sorted image folder."""
    if args.images:
        missing = [p for p in args.images if not osp.isfile(p)]
        if missing:
            raise UserInputError(f"Image '{missing[0]}' does not exist. Fix: check the path.")
        return list(args.images)
    from mim_plugins.parts import list_images
    if args.num < 1:
        raise UserInputError(f'--num {args.num} must be at least 1. Fix: pass a positive number.')
    paths = list_images(args.img_prefix, exclude=args.part_root)
    picks = np.linspace(0, len(paths) - 1, min(args.num, len(paths))).round().astype(int)
    return [paths[i] for i in picks]


def main(argv: Optional[List[str]] = None) -> None:
    from PIL import Image

    from mim_plugins.datasets.part_maps import part_map_path
    from mim_plugins.visualization import colorize_parts, overlay_parts, save_grid
    from mim_plugins.datasets.read_image import read_rgb
    from mim_plugins.visualization.part_masks import load_part_ids

    args = parse_args(argv)
    if args.cols < 1 or not 0.0 <= args.alpha <= 1.0:
        raise UserInputError('--cols must be >= 1 and --alpha in [0, 1]. Fix: e.g. --cols 2 '
                             '--alpha 0.5.')
    images = pick_images(args)
    # Read every map first: a missing or bad one stops before anything is drawn.
    maps = [load_part_ids(part_map_path(args.part_root, args.img_prefix, p), p, args.num_parts)
            for p in images]
    tiles = []
    for path, ids in zip(images, maps):
        image = np.array(Image.fromarray(read_rgb(path)).resize((args.cell, args.cell),
                                                                Image.BILINEAR))
        colours = colorize_parts(ids, args.num_parts)
        colours = np.array(Image.fromarray(colours).resize((args.cell, args.cell), Image.NEAREST))
        tiles.append([image, colours,
                      overlay_parts(image, ids, alpha=args.alpha, num_parts=args.num_parts)])
    blank = np.full((args.cell, args.cell, 3), 255, np.uint8)
    while len(tiles) % args.cols:
        tiles.append([blank] * 3)
    rows = [sum(tiles[r:r + args.cols], []) for r in range(0, len(tiles), args.cols)]
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    save_grid(rows, args.out, titles=['image', 'parts', 'overlay'] * args.cols, cell=args.cell)
    print(f'Saved {args.out}: {len(images)} images with their {args.num_parts}-part maps')


if __name__ == '__main__':
    run_cli(main)
