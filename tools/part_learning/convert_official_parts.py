"""Convert the official SemMAE processed data (one .npy per image) to our layout: an image
folder and the part maps stage 2 reads (mim_plugins/parts/official_npy.py has the format).

    python tools/part_learning/convert_official_parts.py SRC OUT [--source-grid 28] \
        [--pixel-mean 0.485 0.456 0.406] [--pixel-std 0.229 0.224 0.225]

SRC is the official data folder (e.g. token_data_224_8_2_tmp/train with class subfolders);
every SRC/REL.npy becomes OUT/images/REL.png and OUT/part_maps/REL.png, so a SemMAE config
trains on exactly those parts with data_root=OUT, data_prefix='images' and
LoadPartMap(part_root=OUT/part_maps, img_prefix=OUT/images, grid=G, num_parts=7 (8 if some
patch has no part; the summary says)). Existing outputs are skipped (rerun to resume); files that
are not in the layout are listed and skipped.
"""
import argparse
import glob
import os
import os.path as osp
from typing import Dict, List, Optional

import numpy as np
from PIL import Image

from mim_plugins.apis import UserInputError, run_cli
from mim_plugins.datasets.part_maps import save_part_map


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='folder of official .npy files (searched recursively)')
    parser.add_argument('out', help='output root: OUT/images and OUT/part_maps')
    parser.add_argument('--source-grid', type=int, default=28,
                        help='side of the patch grid the patch indices count in (official: 28)')
    parser.add_argument('--pixel-mean', type=float, nargs=3, default=[0.485, 0.456, 0.406],
                        help='mean the stored float pixels were normalised with ([0, 1] units)')
    parser.add_argument('--pixel-std', type=float, nargs=3, default=[0.229, 0.224, 0.225])
    return parser.parse_args(argv)


def convert(src: str, out: str, source_grid: int, mean, std) -> Dict:
    """Convert every .npy under ``src``; returns dict(converted, skipped, bad, grid, no_part)."""
    from mim_plugins.parts.official_npy import decode_official, to_uint8

    files = sorted(glob.glob(osp.join(src, '**', '*.npy'), recursive=True))
    if not files:
        raise UserInputError(f"No .npy files under '{src}'. Fix: pass the official processed "
                             'data folder (e.g. token_data_224_8_2_tmp/train).')
    done = dict(converted=0, skipped=0, bad=[], grids=set(), no_part=0)
    for path in files:
        rel = osp.splitext(osp.relpath(path, src))[0] + '.png'
        img_out, map_out = osp.join(out, 'images', rel), osp.join(out, 'part_maps', rel)
        if osp.isfile(img_out) and osp.isfile(map_out):
            done['skipped'] += 1
            continue
        try:
            pixels, ids = decode_official(np.load(path), source_grid, what=f"'{path}'")
        except (UserInputError, ValueError, OSError) as exc:
            done['bad'].append(f'{path}: {exc}')
            continue
        done['grids'].add(ids.shape)
        done['no_part'] += int((ids == 7).sum())
        os.makedirs(osp.dirname(img_out), exist_ok=True)
        tmp = osp.join(osp.dirname(img_out), '.tmp-' + osp.basename(img_out))
        Image.fromarray(to_uint8(pixels, mean, std)).save(tmp, format='PNG')
        os.replace(tmp, img_out)  # the map last: an image without a map is redone on resume
        save_part_map(map_out, ids)
        done['converted'] += 1
    return done


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    done = convert(args.src, args.out, args.source_grid, args.pixel_mean, args.pixel_std)
    grids = ', '.join(f'{h}x{w}' for h, w in sorted(done['grids'])) or 'none'
    print(f"{done['converted']} converted, {done['skipped']} already there, {len(done['bad'])} "
          f"not in the official layout; part-map grids: {grids}; patches without a part "
          f"(id 7): {done['no_part']}")
    for line in done['bad'][:20]:
        print(f'  skipped {line}')
    return done


if __name__ == '__main__':
    run_cli(main)
