"""Self-attention of chosen query patches in a pretrained ViT, as a PNG (the SemanticMIM figure).

    python tools/visualization/vis_attention.py CONFIG CHECKPOINT IMAGE [IMAGE ...] \
        --query ROW COL [--query ROW COL ...] --out attention.png [--layer -1] [--cell 112]

CONFIG is any config whose model.backbone is an mmpretrain ViT (a pretraining config such as
configs/mae/mae_*.py, or a fine-tuning one); only the backbone is built and loaded. One row per
image and query: the input with the query patch in a red box | that patch's attention over all
patches in layer --layer (mean over heads) | both overlaid. ROW and COL count patches from the
top left, from 0 (a 28-pixel image in 4-pixel patches has rows and columns 0..6).
"""
import argparse
import os
import os.path as osp
from typing import List, Optional

from mim_plugins.apis import UserInputError, run_cli


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='ViT attention maps of query patches')
    parser.add_argument('config', help='a config whose model.backbone is a ViT')
    parser.add_argument('checkpoint', help='a checkpoint of that model (or of its backbone)')
    parser.add_argument('images', nargs='+', help='image files')
    parser.add_argument('--query', nargs=2, type=int, action='append', required=True,
                        metavar=('ROW', 'COL'), help='a query patch; repeat for more')
    parser.add_argument('--out', required=True, help='output PNG')
    parser.add_argument('--layer', type=int, default=-1,
                        help='transformer layer, from 0 (negative: from the end; default last)')
    parser.add_argument('--cell', type=int, default=112, help='pixels per picture')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    from mim_plugins.visualization.attention import render_attention

    args = parse_args(argv)
    if args.cell < 16:
        raise UserInputError(f'--cell {args.cell} is too small to draw. Fix: pass 16 or more.')
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    rows = render_attention(args.config, args.checkpoint, args.images,
                            [tuple(q) for q in args.query], args.out, layer=args.layer,
                            cell=args.cell)
    print(f'Saved {args.out}: {rows} rows (image x query) of query / attention / overlay')


if __name__ == '__main__':
    run_cli(main)
